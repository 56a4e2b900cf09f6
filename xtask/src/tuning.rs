//! The OS tuning profile of a suite: read, compare, apply, record.
//!
//! `cargo xtask tune <suite>` prints current and wanted values; `--apply` (or
//! `bench --tune`) writes them. Nothing is changed silently: what was applied
//! is recorded with the run, before and after, and the first value each
//! setting had is kept (`target/tune-restore.json`) until `tune --restore`
//! (or the next `--tune`, which starts from there) puts it back.
//!
//! Besides sysctls, one setting is an iptables rule pair: `loopback.notrack`
//! = `on` exempts loopback from connection tracking (raw table NOTRACK), which
//! Docker's NAT rules otherwise switch on for every loopback connection. At a
//! million connections its hash chains cost as much kernel time as TCP's own
//! lookups (measured: 14% of all CPU in `__nf_conntrack_find_get`).

use anyhow::Context as _;

use std::collections::BTreeMap;

pub use rtbench_record::Setting;

/// The pseudo-setting for the loopback NOTRACK rules.
pub const LOOPBACK_NOTRACK: &str = "loopback.notrack";
const NOTRACK_RULES: [[&str; 4]; 2] = [["PREROUTING", "-i", "lo", ""], ["OUTPUT", "-o", "lo", ""]];

fn iptables(action: &str, rule: &[&str; 4]) -> bool {
    std::process::Command::new("iptables")
        .args([
            "-t", "raw", action, rule[0], rule[1], rule[2], "-j", "NOTRACK",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A sysctl's value with whitespace folded (`1024\t4096` reads as `1024 4096`),
/// or `None` where it does not exist (a module not loaded).
pub fn read(name: &str) -> Option<String> {
    if name == LOOPBACK_NOTRACK {
        let on = NOTRACK_RULES.iter().all(|r| iptables("-C", r));
        return Some(if on { "on" } else { "off" }.into());
    }
    rtbench_sys::sysctl::read(name).ok()
}

pub fn write(name: &str, value: &str) -> anyhow::Result<()> {
    if name == LOOPBACK_NOTRACK {
        let (check, change) = if value == "on" {
            ("-C", "-I")
        } else {
            ("-C", "-D")
        };
        for r in &NOTRACK_RULES {
            let present = iptables(check, r);
            if present != (value == "on") && !iptables(change, r) {
                return Err(anyhow::anyhow!(
                    "iptables -t raw {change} {} {} {} -j NOTRACK failed",
                    r[0],
                    r[1],
                    r[2]
                ));
            }
        }
        return Ok(());
    }
    rtbench_sys::sysctl::write(name, value)
        .map_err(|e| anyhow::anyhow!("sysctl -w {name}=\"{value}\": {e:#}"))
}

/// Where `--tune` keeps the values it replaced, for `tune --restore`.
fn restore_point() -> std::path::PathBuf {
    crate::root().join("target/tune-restore.json")
}

/// Adds `name`'s value before the first change to the restore point (a
/// value already there is older and stays).
fn remember(name: &str, before: &str) -> anyhow::Result<()> {
    let path = restore_point();
    let mut saved: BTreeMap<String, String> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    saved
        .entry(name.to_string())
        .or_insert_with(|| before.to_string());
    std::fs::create_dir_all(path.parent().expect("in target/"))
        .with_context(|| format!("{}", path.parent().expect("in target/").display()))?;
    Ok(rtbench_record::write_json(&path, &saved)?)
}

/// `cargo xtask tune --restore`: puts back every value `--tune` changed
/// since the last restore; returns (setting, value) as restored.
pub fn restore() -> anyhow::Result<Vec<(String, String)>> {
    let path = restore_point();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let saved: BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in saved {
        match write(&name, &value) {
            Ok(()) => done.push((name, value)),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if errors.is_empty() {
        let _ = std::fs::remove_file(&path);
        Ok(done)
    } else {
        Err(anyhow::Error::msg(errors.join("\n")))
    }
}

/// Reads (and with `apply`, writes) every setting of a profile. Applying
/// first puts back what earlier `--tune`s changed, so the machine is its
/// own settings plus this profile's, whichever suite ran before (the
/// original's tiny TCP buffers, left from an idle run, once throttled a
/// fan-out run's bus connection to 55 events/s).
pub fn run(
    profile: &BTreeMap<String, String>,
    apply: bool,
) -> (BTreeMap<String, Setting>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    if apply && let Err(e) = restore() {
        errors.push(format!("{e:#}"));
    }
    for (name, wanted) in profile {
        let before = read(name);
        if apply && before.as_deref() != Some(wanted.as_str()) {
            if let Some(b) = &before
                && let Err(e) = remember(name, b)
            {
                errors.push(format!("{e:#}"));
            }
            if let Err(e) = write(name, wanted) {
                errors.push(format!("{e:#}"));
            }
        }
        out.insert(
            name.clone(),
            Setting {
                wanted: wanted.clone(),
                before,
                after: read(name),
            },
        );
    }
    (out, errors)
}

/// `cargo xtask tune`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The suite whose tuning is shown: a name under suites/ or a TOML file
    #[arg(value_name = "SUITE", required_unless_present = "restore")]
    pub suite: Option<String>,
    /// Set the wanted values, as bench --tune does [default: off: only show them]
    #[arg(long)]
    pub apply: bool,
    /// Put back every setting --tune changed, instead of showing a suite's [default: off]
    #[arg(long, conflicts_with_all = ["suite", "apply"])]
    pub restore: bool,
}

/// `cargo xtask tune <suite> [--apply]` or `cargo xtask tune --restore`.
pub fn task(a: Args) -> anyhow::Result<()> {
    if a.restore {
        let restored = restore()?;
        if restored.is_empty() {
            println!("nothing to restore: no --tune changed this machine since the last restore");
        }
        for (name, value) in restored {
            println!("{name:<34} restored to {value}");
        }
        return Ok(());
    }
    let name = a
        .suite
        .context("usage: cargo xtask tune <suite> [--apply] | cargo xtask tune --restore")?;
    let apply = a.apply;
    let suite = crate::suite::load(&crate::suite::resolve(&name)?)?;
    let (settings, errors) = run(&suite.tuning, apply);
    println!("{:<34} {:<30} {:<30}", "sysctl", "current", "wanted");
    for (name, s) in &settings {
        let cur = s.after.as_deref().unwrap_or("(absent)");
        let mark = if cur == s.wanted { "" } else { "  <- differs" };
        println!("{name:<34} {cur:<30} {:<30}{mark}", s.wanted);
    }
    if !apply
        && settings
            .values()
            .any(|s| s.after.as_deref() != Some(s.wanted.as_str()))
    {
        println!("\napply with: cargo xtask tune {name} --apply");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow::Error::msg(errors.join("\n")))
    }
}

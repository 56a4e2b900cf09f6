//! `cargo xtask bench <suite>`: one command from source to record.
//!
//! Build the release binaries; preflight (and `--tune`); start the server;
//! run the load generator while sampling the server and the machine every
//! second and serving the live page; stop everything, also on Ctrl-C or
//! failure; write the record (`record.rs`) atomically. This module is the
//! task: the set-up every invocation shares (`prepare`, also `versus`'s) and
//! the loop over a suite's variants; each concern of a run has a module.

mod args;
mod console;
mod environment;
mod placement;
mod plan;
pub(crate) mod record_dir;
mod run;
mod signals;
mod start;
mod verdict;
mod watch;

use std::sync::{Arc, Mutex};

pub use args::{Args, OnFlag, RunsOn, Size, protocol_flag};
pub use placement::Side;
pub use run::run_one;

use crate::dashboard;
use crate::suite::{self, Suite, Variant};

/// What every bench invocation sets up before its runs, versus or not.
pub struct Prepared {
    pub suite: Suite,
    /// The suite's name: its file's stem.
    pub name: String,
    /// The variants to run; `[None]` for a suite without variants.
    pub variants: Vec<Option<Variant>>,
    /// One live page for the whole invocation, whichever run is going.
    pub live: dashboard::State,
}

/// Reads the suite, makes Ctrl-C end a run rather than the xtask, builds
/// the release binaries, serves the live page, and picks the variants.
pub fn prepare(a: &Args) -> anyhow::Result<Prepared> {
    let path = suite::resolve(&a.suite)?;
    let suite = suite::load(&path)?;
    let name = path
        .file_stem()
        .map_or("suite".into(), |s| s.to_string_lossy().into_owned());
    signals::install();
    crate::build_release()?;
    let live: dashboard::State = Arc::new(Mutex::new(dashboard::History::default()));
    match dashboard::serve(&a.dashboard, live.clone()) {
        Ok(addr) => eprintln!("xtask: live dashboard: http://{addr}/"),
        Err(e) => eprintln!("xtask: no live dashboard: {e:#}"),
    }
    let variants: Vec<Option<Variant>> = match &a.variant {
        Some(want) => match suite.variants.iter().find(|v| v.name == *want) {
            Some(v) => vec![Some(v.clone())],
            None => {
                let names: Vec<&str> = suite.variants.iter().map(|v| v.name.as_str()).collect();
                return Err(anyhow::anyhow!(
                    "suite `{name}` has no variant `{want}`; variants: {}",
                    names.join(", ")
                ));
            }
        },
        // Variants run on request only (a soak's long one) are left out;
        // with none left, the suite runs as written.
        None => {
            let chosen: Vec<Option<Variant>> = suite
                .variants
                .iter()
                .filter(|v| !v.on_request)
                .cloned()
                .map(Some)
                .collect();
            if chosen.is_empty() {
                vec![None]
            } else {
                chosen
            }
        }
    };
    Ok(Prepared {
        suite,
        name,
        variants,
        live,
    })
}

/// The bench's exit status when it ran but a run fell short: scripts and
/// CI tell an objective missed from a run that could not complete.
pub mod exit {
    /// Every run completed, but an objective (`[slo]`, `--slo`) failed,
    /// or a soak found a leak (`summary.json`'s `soak.drift.leaks`): a
    /// leak is an objective missed, so it shares the status.
    pub const SLO_FAILED: i32 = 2;
    /// A run did not complete (a process of it ended, a worker was lost).
    pub const INCOMPLETE: i32 = 3;
    /// Interrupted (Ctrl-C, SIGTERM): 128 + SIGINT, as shells say it.
    pub const INTERRUPTED: i32 = 130;
}

/// Runs every variant of a suite; exits `exit::INTERRUPTED` when
/// interrupted, then `exit::INCOMPLETE` or `exit::SLO_FAILED` when a run
/// fell short. (`--versus` is `versus::task`'s.)
pub fn task(a: Args) -> anyhow::Result<()> {
    let Prepared {
        suite,
        name,
        variants,
        live: state,
    } = prepare(&a)?;
    crate::setup::ensure_suite(&suite.setup, &format!("suite {name}"))?;
    if a.roofline {
        let dir = crate::roofline::measure(&crate::roofline::Args {
            host_net: a.host_net,
            ..crate::roofline::Args::default()
        })?;
        eprintln!("xtask: roofline measured: {}", dir.display());
    }
    // A variant that cannot run (a server that does not start) is said and
    // the others still run: a long suite is not lost to one of its servers.
    let mut refused = Vec::new();
    let mut worst = 0;
    for v in &variants {
        let (dir, complete) = match run_one(&suite, &name, v.as_ref(), &a, &state, &Side::default())
        {
            Ok(done) => done,
            Err(e) if variants.len() > 1 && signals::received() == 0 => {
                let label = v.as_ref().map_or(name.as_str(), |v| v.name.as_str());
                eprintln!("xtask: bench {name} ({label}) did not run: {e:#}");
                refused.push(format!("{label}: {e:#}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        println!("{}", dir.display());
        if !complete && signals::received() != 0 {
            std::process::exit(exit::INTERRUPTED);
        }
        let summary = rtbench_record::read_summary(&dir)?;
        let leaks = summary
            .soak
            .as_ref()
            .map_or(&[][..], |s| &s.drift.leaks[..]);
        if !leaks.is_empty() {
            eprintln!("xtask: LEAK: {}", leaks.join(", "));
        }
        let slo_failed = summary.slo.iter().any(|o| !o.pass) || !leaks.is_empty();
        worst = worst.max(match (complete, slo_failed) {
            (false, _) => exit::INCOMPLETE,
            (true, true) => exit::SLO_FAILED,
            (true, false) => 0,
        });
    }
    if !refused.is_empty() {
        return Err(anyhow::anyhow!(
            "{} of {} variants did not run:\n{}",
            refused.len(),
            variants.len(),
            refused.join("\n")
        ));
    }
    if worst != 0 {
        eprintln!(
            "xtask: {}",
            if worst == exit::INCOMPLETE {
                "a run did not complete (exit 3)"
            } else {
                "an objective failed or a leak was found (exit 2)"
            }
        );
        std::process::exit(worst);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// ARCHITECTURE.md's invariant for the bench, read off its sources:
    /// bench never reaches versus (versus depends on bench), and the plan,
    /// the judgement and the console touch no process, only the suite, the
    /// command line and what was measured.
    #[test]
    fn bench_never_uses_versus_and_its_judgement_no_process() {
        let dir = crate::root().join("xtask/src/bench");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // Spelled in two halves so this test does not find itself.
            let versus = concat!("crate::", "versus");
            assert!(!text.contains(versus), "{} uses versus", path.display());
            let name = path.file_name().unwrap().to_str().unwrap();
            if ["plan.rs", "verdict.rs", "console.rs"].contains(&name) {
                for process in [
                    "std::process",
                    "crate::server",
                    "super::run",
                    "super::placement",
                    "super::start",
                    "super::watch",
                ] {
                    assert!(!text.contains(process), "{name} uses {process}");
                }
            }
        }
    }
}

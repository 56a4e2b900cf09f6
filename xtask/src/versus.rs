//! `cargo xtask bench <suite> --versus GIT_REF [--pairs N]`: this checkout's
//! server (A) against one built at GIT_REF (B), in one invocation, A B A B.
//! On a shared, noisy machine two runs made minutes apart differ by more than
//! many changes do; each B is set against the A beside it, and the record
//! keeps every pair's ratio, so the spread shows.
//!
//! B is built in a git worktree (`target/versus/<commit>`) with its own target
//! directory; the load generator is this checkout's for both sides, so only
//! the server differs.

use std::path::{Path, PathBuf};
use std::process::Command;

use rtbench_protocol::time::{compact_utc, now_ns};
use rtbench_record::{BenchSummary, Ratio, Revision, Versus, VersusRun};

use crate::bench::{self, Args, Side};
use crate::suite::{Suite, Variant};
use crate::{dashboard, root};

/// `bench --versus`: the bench's set-up, then one variant's pairs, locally.
pub fn task(a: Args) -> anyhow::Result<()> {
    let git_ref = a.versus.clone().expect("dispatched on --versus");
    let bench::Prepared {
        suite,
        name,
        variants,
        live,
    } = bench::prepare(&a)?;
    let [v] = &variants[..] else {
        return Err(anyhow::anyhow!(
            "--versus runs one variant: name it with --variant (suite `{name}` has {})",
            variants.len()
        ));
    };
    if a.runs_on() != bench::RunsOn::Local {
        return Err(anyhow::Error::msg(
            "--versus runs locally: both servers on this machine",
        ));
    }
    run(&git_ref, &suite, &name, v.as_ref(), &a, &live)
}

fn run(
    git_ref: &str,
    suite: &Suite,
    name: &str,
    variant: Option<&Variant>,
    a: &Args,
    state: &dashboard::State,
) -> anyhow::Result<()> {
    let b_commit = git(&["rev-parse", "--verify", &format!("{git_ref}^{{commit}}")])
        .map_err(|e| anyhow::anyhow!("--versus {git_ref}: not a commit here: {e:#}"))?;
    let a_commit = git(&["rev-parse", "HEAD"])?;
    let b_bin = build_at(&b_commit)?;
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| default_dir(git_ref, name, variant));
    let tmp = bench::record_dir::begin(&dir)?;
    let sides = [
        ("A", crate::server_bin(), None),
        ("B", b_bin, Some(b_commit.clone())),
    ];
    let (runs, summaries) = run_pairs(&sides, &tmp, suite, name, variant, a, state)?;
    let complete_pairs: Vec<(&BenchSummary, &BenchSummary)> = summaries
        .chunks(2)
        .filter_map(|p| match p {
            [a, b] if a.complete && b.complete => Some((a, b)),
            _ => None,
        })
        .collect();
    let versus = Versus {
        format_version: rtbench_record::FORMAT_VERSION,
        scenario: name.to_string(),
        variant: variant.map(|v| v.name.clone()),
        started_at: summaries
            .first()
            .map(|s| s.started_at.clone())
            .unwrap_or_default(),
        host: crate::record::host_id(),
        a: Revision {
            git_ref: "HEAD".into(),
            commit: a_commit,
        },
        b: Revision {
            git_ref: git_ref.into(),
            commit: b_commit,
        },
        runs,
        ratios: Ratio::of_pairs(&complete_pairs),
    };
    rtbench_record::write_json(&tmp.join(rtbench_record::VERSUS), &versus)?;
    bench::record_dir::finish(&tmp, &dir)?;
    print_ratios(&versus, complete_pairs.len());
    println!("{}", dir.display());
    if versus.runs.iter().any(|r| !r.complete) {
        return Err(anyhow::Error::msg(
            "a run was incomplete: the ratios cover the complete pairs only",
        ));
    }
    Ok(())
}

/// `results/<suite>/<time>-<host>[-variant]-versus-<ref>`.
fn default_dir(git_ref: &str, name: &str, variant: Option<&Variant>) -> PathBuf {
    let label: String = git_ref
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let variant = variant.map_or(String::new(), |v| format!("-{}", v.name));
    root().join("results").join(name).join(format!(
        "{}-{}{variant}-versus-{label}",
        compact_utc(now_ns()),
        crate::record::host_id()
    ))
}

/// Runs A B A B ... into `tmp`, stopping at the first incomplete run.
fn run_pairs(
    sides: &[(&str, PathBuf, Option<String>); 2],
    tmp: &Path,
    suite: &Suite,
    name: &str,
    variant: Option<&Variant>,
    a: &Args,
    state: &dashboard::State,
) -> anyhow::Result<(Vec<VersusRun>, Vec<BenchSummary>)> {
    let mut runs: Vec<VersusRun> = Vec::new();
    let mut summaries: Vec<BenchSummary> = Vec::new();
    for i in 1..=a.pairs {
        for (side, bin, commit) in sides {
            let run_dir = format!("{side}{i}");
            eprintln!(
                "xtask: versus {side}{i} of {}: server {}",
                a.pairs,
                bin.display()
            );
            let s = Side {
                server_bin: bin.clone(),
                commit: commit.clone(),
                dir: Some(tmp.join(&run_dir)),
                ..Side::default()
            };
            let (d, complete) = bench::run_one(suite, name, variant, a, state, &s)?;
            runs.push(VersusRun {
                side: side.to_string(),
                dir: run_dir,
                complete,
            });
            summaries.push(rtbench_record::read_summary(&d)?);
            if !complete {
                return Ok((runs, summaries));
            }
        }
    }
    Ok((runs, summaries))
}

fn print_ratios(versus: &Versus, pairs: usize) {
    eprintln!("xtask: B / A over {pairs} pair(s): median [min, max]");
    for m in rtbench_record::metrics::METRICS {
        if let Some(r) = versus.ratios.get(m.key) {
            eprintln!(
                "xtask:   {:<32} {:.3} [{:.3}, {:.3}]",
                m.label, r.median, r.min, r.max
            );
        }
    }
}

/// Builds the server at `commit` in its own worktree and target directory;
/// returns a copy of the binary named by the commit.
fn build_at(commit: &str) -> anyhow::Result<PathBuf> {
    let short = &commit[..12.min(commit.len())];
    let bin = root().join(format!("target/versus/bin/rtbench-server-{short}"));
    if bin.exists() {
        return Ok(bin);
    }
    let tree = root().join(format!("target/versus/{short}"));
    if !tree.join("Cargo.toml").exists() {
        let _ = git(&["worktree", "prune"]);
        git(&[
            "worktree",
            "add",
            "--detach",
            tree.to_str().unwrap_or_default(),
            commit,
        ])?;
    }
    let target = root().join("target/versus/target");
    eprintln!(
        "xtask: building the server at {short} in {}",
        tree.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "rtbench-server",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(&tree)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run cargo: {e:#}"))?;
    if !status.success() {
        return Err(anyhow::anyhow!(
            "building the server at {short} failed ({status})"
        ));
    }
    crate::copy_file(&target.join("release/rtbench-server"), &bin)?;
    Ok(bin)
}

fn git(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run git: {e:#}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(anyhow::anyhow!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

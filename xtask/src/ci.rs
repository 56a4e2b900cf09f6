//! `cargo xtask ci`: what CI runs, runnable locally in one command: set-up
//! (toolchain components, system packages, the workflow linters), the
//! workflow checks, fmt, clippy and every test (xtask/tests/bench.rs runs a
//! real smoke bench).
//!
//! The heavy tests (real benches, Docker, network namespaces and sshd,
//! Chromium) are `#[ignore]`d with the reason, so a plain `cargo test` is a
//! quick loop; this task runs them too (`--include-ignored`) unless
//! `RTBENCH_QUICK=1`, which also skips installing what only they need.

use crate::{cargo, root, setup};

/// Suites whose servers the heavy tests start (`loadgen/tests/protocols.rs`,
/// `xtask/tests/subjects.rs`): their `[setup]` is installed first.
const SUITES_TESTED: [&str; 2] = ["brokers", "peers"];

pub fn run() -> anyhow::Result<()> {
    let quick = std::env::var("RTBENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    setup::ensure_rust_components()?;
    // `CHROMIUM` names another browser build (GitHub's runners ship Chrome).
    let packages: Vec<setup::Package> = setup::TEST_PACKAGES
        .into_iter()
        .filter(|p| p.debian != "chromium" || std::env::var_os("CHROMIUM").is_none())
        .filter(|p| !quick || p.debian == setup::REDIS.debian)
        .collect();
    setup::ensure(&packages)?;
    if !quick {
        // The heavy tests start the brokers and peers as those suites do.
        for name in SUITES_TESTED {
            let suite = crate::suite::load(&crate::suite::resolve(name)?)?;
            setup::ensure_suite(
                &suite.setup,
                &format!("the tests of suite {name}'s servers"),
            )?;
        }
    }
    setup::ensure_python_tools()?;
    check_workflows()?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    if quick {
        eprintln!("xtask: RTBENCH_QUICK: the heavy tests are skipped (listed as ignored)");
        cargo(&["test", "--workspace"])?;
    } else {
        cargo(&["test", "--workspace", "--", "--include-ignored"])?;
    }
    // The fuzz targets for a bounded number of cases, counted and printed
    // (the test above runs them too; this says how many).
    cargo(&[
        "run",
        "--quiet",
        "-p",
        "rtbench-fuzz",
        "--",
        "--cases",
        "5000",
    ])
}

/// The GitHub workflows: schema-valid and free of zizmor's findings (both
/// offline).
fn check_workflows() -> anyhow::Result<()> {
    let dir = root().join(".github/workflows");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let run = |cmd: &str, args: &[&str]| -> anyhow::Result<()> {
        eprintln!("xtask: {cmd} {}", args.join(" "));
        let status = std::process::Command::new(cmd)
            .args(args)
            .current_dir(root())
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run {cmd}: {e:#}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{cmd} found problems in .github/workflows ({status})"
            ))
        }
    };
    let mut args = vec!["--builtin-schema", "vendor.github-workflows"];
    args.extend(files.iter().map(String::as_str));
    run("check-jsonschema", &args)?;
    run("zizmor", &["--offline", ".github/workflows/"])
}

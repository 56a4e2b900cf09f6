//! The project's tasks as a library, so tests read run records through the
//! same types that write them. `main.rs` is the command line.

pub mod abuse;
pub mod bench;
pub mod ci;
pub mod cli;
pub mod containers;
pub mod dashboard;
pub mod engine;
pub mod faults;
pub mod flags;
pub mod fuzz;
pub mod hosts;
pub mod memprobe;
pub mod netns;
pub mod oom;
pub mod preflight;
pub mod record;
pub mod roofline;
pub mod sample;
pub mod server;
pub mod setup;
pub mod site;
pub mod subject;
pub mod suite;
pub mod swarm;
pub mod sweep;
pub mod tuning;
pub mod versus;

/// The workspace root (the xtask crate's parent).
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The release server this checkout builds.
pub fn server_bin() -> std::path::PathBuf {
    root().join("target/release/rtbench-server")
}

/// `rtbench-loadgen run SCENARIO --out DIR` from this checkout's release
/// build: inside the run's namespace if there is one, ended with the xtask,
/// stdout (its progress bars) discarded. Callers add flags and spawn.
pub fn loadgen_run(scenario: &std::path::Path, out: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(root().join("target/release/rtbench-loadgen"));
    netns::enter(&mut cmd);
    server::die_with_parent(&mut cmd)
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null());
    cmd
}

/// Copies a file, creating the destination's directory.
pub fn copy_file(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to.parent().expect("has a parent"))
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", to.display()))?;
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{} -> {}: {e:#}", from.display(), to.display()))
}

/// Runs `cargo` with `args` in the workspace root; an error names the command.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = std::process::Command::new(cargo)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run cargo: {e:#}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "`cargo {}` failed ({status})",
            args.join(" ")
        ))
    }
}

/// Builds the release binaries a run uses: the server and the load generator.
pub fn build_release() -> anyhow::Result<()> {
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "rtbench-server",
        "-p",
        "rtbench-loadgen",
    ])
}

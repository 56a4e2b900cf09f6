//! `cargo xtask site|compare|regress`: run `rtbench-site`, which reads every
//! record under results/. It is a binary of its own so that the xtask keeps
//! few dependencies (no template engine or plotting here).

/// Runs `rtbench-site <command> <args>`; its exit status becomes ours.
pub fn task(command: &str, args: &[String]) -> Result<(), String> {
    let mut all: Vec<&str> = vec![
        "run",
        "--quiet",
        "--release",
        "-p",
        "rtbench-site",
        "--",
        command,
    ];
    all.extend(args.iter().map(String::as_str));
    crate::cargo(&all)
}

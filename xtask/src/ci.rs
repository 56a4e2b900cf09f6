//! `cargo xtask ci`: what CI runs, runnable locally in one command: the
//! checks and every test (xtask/tests/bench.rs runs a real smoke bench).

use crate::cargo;

pub fn run() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])
}

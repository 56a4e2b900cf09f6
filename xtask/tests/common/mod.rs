//! What the xtask's end-to-end tests share: a scratch directory, the real
//! xtask binary, and one run at a time (runs share the machine, ports and
//! process checks).

#![allow(dead_code)] // each test binary uses a part

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `<tmp>/rtbench-xtask-<name>-<pid>/record`, the directory made empty.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtbench-xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("record")
}

/// The xtask binary, run from the workspace root.
pub fn xtask(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).current_dir(xtask::root());
    c
}

//! `cargo xtask <task>`: the project's tasks, one module each; the command
//! line is `cli.rs`.
//!
//! The xtask convention (an alias in `.cargo/config.toml`) keeps project
//! automation in Rust, with no tool to install beyond cargo.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use xtask::cli::{self, Cli};

fn main() -> ExitCode {
    let task = match Cli::try_parse() {
        Ok(Cli { task: Some(task) }) => task,
        Ok(Cli { task: None }) => {
            let _ = Cli::command().print_help();
            return ExitCode::SUCCESS;
        }
        // Help is not a failure; a refused command line fails with 1, as
        // every other refusal of the xtask does (scripts and tests read it).
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

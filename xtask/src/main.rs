//! `cargo xtask <task>`: the project's tasks, one module each.
//!
//! The xtask convention (an alias in `.cargo/config.toml`) keeps project
//! automation in Rust, with no tool to install beyond cargo.

use std::process::ExitCode;

use xtask::{abuse, bench, ci, fuzz, memprobe, roofline, site, tuning};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  bench <suite> [--scale F | --connections N] [--rate R] [--hold S] [--out DIR] [--tune] [--roofline] [--dashboard ADDR]
                              build, preflight, run a suite (suites/*.toml), write its record under results/
  tune <suite> [--apply]      show (or apply) a suite's OS tuning: current and wanted values
  tune --restore              put back every setting --tune changed
  roofline [--pairs N] [--repeat R] [--seconds S] [--out DIR] [--host-net]
                              this machine's limits with plain TCP (pairs, fan-out, round trips) as a record under results/roofline/
  memprobe [--connections N] [--rate R]
                              KiB per idle connection, server and load generator
  site [--out DIR]            render every record under results/ into a static site (default target/site)
  compare RUN_A RUN_B         headline deltas of two runs (record directories or <scenario>/<run>)
  regress <scenario>          judge the scenario's newest run against its history (site/regress.toml); fails on a regression
  abuse [--seconds N]         hostile clients of every kind beside a normal load: what the normal clients saw, RSS, limits
  fuzz [--seconds N] [--target NAME]
                              fuzz every parser a client or publisher feeds (default 60 s); fails on a finding
  ci                          set-up, fmt check, clippy (warnings denied), every test (a smoke bench among them)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::task(rest),
        Some("tune") => tuning::task(rest),
        Some("ci") => ci::run(),
        Some(cmd @ ("compare" | "regress")) => site::task(cmd, rest),
        Some("site") => site::task("render", rest),
        Some("memprobe") => memprobe::run(rest),
        Some("roofline") => roofline::run(rest),
        Some("fuzz") => fuzz::run(rest),
        Some("abuse") => abuse::run(rest),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

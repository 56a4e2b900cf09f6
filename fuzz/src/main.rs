//! `rtbench-fuzz [--seconds N | --cases N] [--target NAME] [--seed S]`:
//! fuzzes every target (or one), prints the cases run and every finding;
//! exit status 1 when something was found.

use std::process::ExitCode;
use std::time::Duration;

use rtbench_fuzz::engine::{self, Budget};
use rtbench_fuzz::targets::TARGETS;

fn main() -> ExitCode {
    // A panic is a finding, reported with its input below: not a backtrace.
    std::panic::set_hook(Box::new(|_| {}));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut budget = Budget::For(Duration::from_secs(10));
    let mut only: Option<String> = None;
    let mut seed = 1u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().map(String::as_str).unwrap_or("");
        match a.as_str() {
            "--seconds" => match value.parse::<f64>() {
                Ok(s) if s > 0.0 => budget = Budget::For(Duration::from_secs_f64(s)),
                _ => return usage(&format!("--seconds: `{value}` is not a positive number")),
            },
            "--cases" => match value.parse() {
                Ok(n) => budget = Budget::Cases(n),
                Err(_) => return usage(&format!("--cases: `{value}` is not a count")),
            },
            "--target" => only = Some(value.to_string()),
            "--seed" => match value.parse() {
                Ok(s) => seed = s,
                Err(_) => return usage(&format!("--seed: `{value}` is not a number")),
            },
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|t| only.as_ref().is_none_or(|o| o == t.name))
        .collect();
    if targets.is_empty() {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        return usage(&format!(
            "no target `{}`; targets: {}",
            only.unwrap_or_default(),
            names.join(", ")
        ));
    }
    // Each target gets an equal share of a time budget.
    let share = match budget {
        Budget::For(d) => Budget::For(d / targets.len() as u32),
        b => b,
    };
    let mut found = 0;
    for t in targets {
        let out = engine::run(t, share, seed);
        println!(
            "rtbench-fuzz: {:<14} {:>9} cases in {:>6.1} s ({:.0}/s), {} finding(s)",
            out.target,
            out.cases,
            out.elapsed.as_secs_f64(),
            out.cases as f64 / out.elapsed.as_secs_f64().max(1e-9),
            out.findings.len()
        );
        for f in &out.findings {
            println!(
                "  {}: {}\n    input: {}",
                out.target,
                f.what,
                engine::show(&f.input)
            );
        }
        found += out.findings.len();
    }
    if found == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "rtbench-fuzz: {problem}\nusage: rtbench-fuzz [--seconds N | --cases N] [--target NAME] [--seed S]"
    );
    ExitCode::from(2)
}

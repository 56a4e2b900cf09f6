//! `rtbench-site`: the results site, compare and regress, over `results/`.
//! `cargo xtask site|compare|regress` run this binary.

use anyhow::{Result, anyhow};
use std::path::PathBuf;
use std::process::ExitCode;

use rtbench_site::{compare, load, regress, render};

const USAGE: &str = "usage: rtbench-site <command> [--results DIR]

commands:
  render [--out DIR] [--criterion DIR]   write the static site (default target/site)
  compare RUN_A RUN_B                    headline deltas of two runs (a record directory, or <scenario>/<run>)
  regress <scenario>                     judge the newest run against its history; exit 1 on a regression";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rtbench-site: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("in the workspace")
        .to_path_buf()
}

fn run(args: Vec<String>) -> Result<ExitCode> {
    let mut positional = Vec::new();
    let mut results = root().join("results");
    let mut out = root().join("target/site");
    let mut criterion = Some(root().join("target/criterion"));
    let mut thresholds = root().join("site/regress.toml");
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match a.as_str() {
            "--results" => results = value(&a)?.into(),
            "--out" => out = value(&a)?.into(),
            "--criterion" => criterion = Some(value(&a)?.into()),
            "--thresholds" => thresholds = value(&a)?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            s if s.starts_with("--") => return Err(anyhow!("unknown flag `{s}`\n{USAGE}")),
            _ => positional.push(a),
        }
    }
    let thresholds = regress::Thresholds::read(&thresholds)?;
    match positional.first().map(String::as_str) {
        Some("render") => {
            let records = load::load(&results);
            let report = render::render(
                &records,
                &render::Options {
                    out: out.clone(),
                    checkout: root(),
                    criterion,
                    thresholds,
                },
            )?;
            for w in &report.warnings[records.warnings.len()..] {
                eprintln!("rtbench-site: warning: {w}");
            }
            println!(
                "rtbench-site: {} page(s) from {} run(s) in {} (open {})",
                report.pages.len(),
                records.runs.len(),
                out.display(),
                out.join("index.html").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some("compare") => {
            let [_, a, b] = positional.as_slice() else {
                return Err(anyhow!("compare takes two runs\n{USAGE}"));
            };
            let (da, db) = (resolve(&results, a), resolve(&results, b));
            let (sa, sb) = (
                rtbench_record::read_summary(&da).map_err(anyhow::Error::msg)?,
                rtbench_record::read_summary(&db).map_err(anyhow::Error::msg)?,
            );
            print!("{}", compare::table(a, &sa, b, &sb));
            Ok(ExitCode::SUCCESS)
        }
        Some("regress") => {
            let [_, scenario] = positional.as_slice() else {
                return Err(anyhow!("regress takes one scenario\n{USAGE}"));
            };
            let records = load::load(&results);
            let j = regress::gate(&records, scenario, &thresholds)?;
            println!(
                "regress {}: against {} earlier run(s)",
                j.run,
                j.baseline_runs.len()
            );
            if let Some(n) = &j.note {
                println!("  no verdict: {n}");
            }
            for v in &j.verdicts {
                println!("  {}", v.line());
            }
            let bad: Vec<String> = j.regressions().map(|v| v.line()).collect();
            if bad.is_empty() {
                println!("no regression");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("rtbench-site: {} regressed:", j.run);
                for b in bad {
                    eprintln!("  {b}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        _ => Err(anyhow!(USAGE)),
    }
}

/// A run named as a directory, or as `<scenario>/<run>` under results/.
fn resolve(results: &std::path::Path, name: &str) -> PathBuf {
    let p = PathBuf::from(name);
    if p.join(rtbench_record::SUMMARY).exists() {
        p
    } else {
        results.join(name)
    }
}

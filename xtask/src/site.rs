//! `cargo xtask site|compare|regress`: run `rtbench-site`, which reads every
//! record under results/. It is a binary of its own so that the xtask keeps
//! few dependencies (no template engine or plotting here). The flags are
//! rtbench-site's, declared here too so a bad command line is refused before
//! anything builds; a flag left out is left to rtbench-site's default.

use std::path::PathBuf;

/// `cargo xtask site`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Where the site is written [default: target/site]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub results: Results,
    /// The criterion micro-benchmarks' results [default: target/criterion]
    #[arg(long, value_name = "DIR")]
    pub criterion: Option<PathBuf>,
    #[command(flatten)]
    pub thresholds: Thresholds,
}

/// `cargo xtask compare`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The first run: a record directory or <scenario>/<run>
    #[arg(value_name = "RUN_A")]
    pub run_a: String,
    /// The second run, set against the first
    #[arg(value_name = "RUN_B")]
    pub run_b: String,
    #[command(flatten)]
    pub results: Results,
}

/// `cargo xtask regress`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct RegressArgs {
    /// The scenario whose newest run is judged against its history
    #[arg(value_name = "SCENARIO")]
    pub scenario: String,
    #[command(flatten)]
    pub results: Results,
    #[command(flatten)]
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Results {
    /// The records read [default: results]
    #[arg(long = "results", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Thresholds {
    /// The regression gate's thresholds [default: site/regress.toml]
    #[arg(long = "thresholds", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

pub fn render(a: RenderArgs) -> anyhow::Result<()> {
    let mut pass = Vec::new();
    flag(&mut pass, "--out", a.out);
    flag(&mut pass, "--results", a.results.dir);
    flag(&mut pass, "--criterion", a.criterion);
    flag(&mut pass, "--thresholds", a.thresholds.file);
    task("render", pass)
}

pub fn compare(a: CompareArgs) -> anyhow::Result<()> {
    let mut pass = vec![a.run_a, a.run_b];
    flag(&mut pass, "--results", a.results.dir);
    task("compare", pass)
}

pub fn regress(a: RegressArgs) -> anyhow::Result<()> {
    let mut pass = vec![a.scenario];
    flag(&mut pass, "--results", a.results.dir);
    flag(&mut pass, "--thresholds", a.thresholds.file);
    task("regress", pass)
}

fn flag(pass: &mut Vec<String>, name: &str, value: Option<PathBuf>) {
    if let Some(v) = value {
        pass.extend([name.to_string(), v.to_string_lossy().into_owned()]);
    }
}

/// Runs `rtbench-site <command> <args>`; its exit status becomes ours.
fn task(command: &str, args: Vec<String>) -> anyhow::Result<()> {
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

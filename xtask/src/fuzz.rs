//! `cargo xtask fuzz [--seconds N] [--target NAME]`: the fuzz targets
//! (`fuzz/`) for a while, release-built; prints the cases each ran and every
//! finding with its input, and fails when there is one.

use crate::{cargo, flags};

/// `cargo xtask fuzz`'s command line, passed on to `rtbench-fuzz`.
#[derive(Debug, Clone, clap::Args)]
// `-5` reaches the value's parser, which says what is wrong with it.
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Seconds of fuzzing, shared by the targets
    #[arg(long, value_name = "N", default_value_t = 60.0, value_parser = flags::positive_number)]
    pub seconds: f64,
    /// Fuzz only this target [default: every target]
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// The mutations' seed [default: rtbench-fuzz's, 1]
    #[arg(long, value_name = "S", value_parser = flags::whole_number)]
    pub seed: Option<u64>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut pass: Vec<String> = ["run", "--release", "--quiet", "-p", "rtbench-fuzz", "--"]
        .map(String::from)
        .into();
    if let Some(t) = a.target {
        pass.extend(["--target".into(), t]);
    }
    if let Some(s) = a.seed {
        pass.extend(["--seed".into(), s.to_string()]);
    }
    pass.extend(["--seconds".into(), a.seconds.to_string()]);
    cargo(&pass.iter().map(String::as_str).collect::<Vec<_>>())
}

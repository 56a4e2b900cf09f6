//! `cargo xtask fuzz [--seconds N] [--target NAME]`: the fuzz targets
//! (`fuzz/`) for a while, release-built; prints the cases each ran and every
//! finding with its input, and fails when there is one.

use crate::cargo;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut pass: Vec<&str> = vec!["run", "--release", "--quiet", "-p", "rtbench-fuzz", "--"];
    let mut it = args.iter();
    let mut seconds = "60".to_string();
    while let Some(a) = it.next() {
        let value = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--seconds" => {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0)
                    .ok_or(format!("--seconds: `{value}` is not a positive number"))?;
                seconds = value.clone();
            }
            "--target" | "--seed" => pass.extend([a.as_str(), value.as_str()]),
            other => return Err(format!("fuzz: unknown argument `{other}`")),
        }
    }
    pass.extend(["--seconds", &seconds]);
    cargo(&pass)
}

//! Criterion's results (`target/criterion/**/new/`), summarized for the
//! site: each benchmark's median and the 95% interval around it.

use anyhow::Result;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
pub struct Bench {
    pub id: String,
    pub median: String,
    pub low: String,
    pub high: String,
    /// The median per element, when the benchmark declared its elements.
    pub per_element: Option<String>,
}

#[derive(Deserialize)]
struct BenchmarkJson {
    full_id: String,
    /// `{"Elements": n}`, `{"Bytes": n}`, ... or null.
    #[serde(default)]
    throughput: serde_json::Value,
}

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

/// Every benchmark found under `dir`, by id; and what could not be read.
pub fn read(dir: &Path) -> (Vec<Bench>, Vec<String>) {
    let mut benches = Vec::new();
    let mut problems = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if p.file_name().is_some_and(|n| n == "new") && p.join("benchmark.json").exists() {
                match one(&p) {
                    Ok(b) => benches.push(b),
                    Err(e) => problems.push(format!("{e:#}")),
                }
            } else {
                stack.push(p);
            }
        }
    }
    benches.sort_by(|a, b| a.id.cmp(&b.id));
    (benches, problems)
}

fn one(new: &Path) -> Result<Bench> {
    let b: BenchmarkJson = rtbench_record::read_json(&new.join("benchmark.json"))
        .map_err(anyhow::Error::msg)
        .map_err(anyhow::Error::msg)?;
    let e: Estimates = rtbench_record::read_json(&new.join("estimates.json"))
        .map_err(anyhow::Error::msg)
        .map_err(anyhow::Error::msg)?;
    let m = e.median;
    Ok(Bench {
        id: b.full_id,
        median: ns(m.point_estimate),
        low: ns(m.confidence_interval.lower_bound),
        high: ns(m.confidence_interval.upper_bound),
        per_element: b.throughput["Elements"]
            .as_u64()
            .filter(|n| *n > 0)
            .map(|n| ns(m.point_estimate / n as f64)),
    })
}

/// Nanoseconds in the unit that reads best.
pub fn ns(v: f64) -> String {
    let (x, u) = match v {
        v if v >= 1e9 => (v / 1e9, "s"),
        v if v >= 1e6 => (v / 1e6, "ms"),
        v if v >= 1e3 => (v / 1e3, "µs"),
        v => (v, "ns"),
    };
    if x >= 100.0 {
        format!("{x:.0} {u}")
    } else {
        format!("{x:.3} {u}")
    }
}

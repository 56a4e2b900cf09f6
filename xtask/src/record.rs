//! The bench run record: `results/<scenario>/<UTC time>-<host>/`.
//!
//! | file | content |
//! |---|---|
//! | `scenario.toml` | the suite as run: overrides applied, variant and target filled in |
//! | `load.toml` | its `[load]` part, as handed to the load generator |
//! | `environment.json` | `Environment`: machine, kernel, sysctls and limits as read, tuning before/after, toolchain, git commit, binaries and flags |
//! | `server.csv` | one `sample::Sample` a second |
//! | `preflight.json` | every check and its verdict |
//! | `loadgen/` | the load generator's run directory (`loadgen/README.md`) |
//! | `summary.json` | `BenchSummary`: the headline figures |
//!
//! `FORMAT_VERSION` changes whenever a reader must know. The results site and
//! the regression gate read records through these types.

use std::collections::BTreeMap;
use std::path::Path;

use rtbench_loadgen::record::{Bottleneck, Summary as LoadSummary};
use serde::{Deserialize, Serialize};

use crate::suite::Overrides;
use crate::tuning::Setting;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSummary {
    pub format_version: u32,
    pub scenario: String,
    pub variant: Option<String>,
    pub description: String,
    /// False when interrupted or when a part failed; the figures then cover
    /// what ran.
    pub complete: bool,
    pub stopped_by: Option<String>,
    pub started_at: String,
    pub host: String,
    /// The user's overrides (`--scale`, `--connections`, `--rate`, `--hold`).
    pub overrides: Overrides,
    pub connections: Connections,
    pub connect_ms: Latency,
    pub delivery_ms: Latency,
    pub deliveries_per_s: f64,
    pub server: ServerFigures,
    pub system: SystemFigures,
    pub errors: Errors,
    pub client_bottleneck: Bottleneck,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connections {
    pub target: u64,
    pub peak: u64,
    pub held: u64,
    pub failed: u64,
    pub time_to_target_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerFigures {
    pub processes: u64,
    pub rss_before_kib: u64,
    /// Highest RSS while the connections were held.
    pub rss_peak_kib: u64,
    /// (peak RSS − RSS before) / peak connections, both while holding.
    pub kib_per_connection: f64,
    /// Mean CPU over the hold, all processes (100 = one core); null when no
    /// sample fell in the hold.
    pub cpu_holding_pct: Option<f64>,
    /// Absent from records made before several processes were run.
    #[serde(default)]
    pub per_process: Vec<ProcessFigures>,
    /// The event bus, when the run had several processes.
    #[serde(default)]
    pub redis: Option<RedisFigures>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessFigures {
    pub connections_peak: u64,
    pub rss_peak_kib: u64,
    pub cpu_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisFigures {
    pub rss_peak_kib: u64,
    pub cpu_holding_pct: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SystemFigures {
    pub mem_used_before_kib: u64,
    pub mem_used_peak_kib: u64,
    /// Whole-machine memory per connection: kernel, server and load generator.
    pub kib_per_connection: f64,
    pub tcp_mem_peak_kib: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Errors {
    pub failed: BTreeMap<String, u64>,
    pub closed_by_server: BTreeMap<String, u64>,
    pub error_frames: BTreeMap<String, u64>,
    pub misdelivered: u64,
    pub duplicates: u64,
    /// Deliveries the servers made that no client received (from their
    /// `rtbench_deliveries_total`); unknown when a server could not be read.
    pub lost: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub format_version: u32,
    pub host: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: usize,
    pub mem_total_kib: u64,
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    /// Relevant sysctls as read at the start.
    pub sysctls: BTreeMap<String, Option<String>>,
    /// The suite's tuning: wanted, before, after (`applied` false: read only).
    pub tuning: BTreeMap<String, Setting>,
    pub tuning_applied: bool,
    pub rustc: String,
    pub git_commit: String,
    pub git_dirty: bool,
    pub server_version: String,
    /// The first server process's flags; every process gets the same, but for
    /// `--max-connections` when a cap is split (the first cap % P take one more).
    pub server_args: Vec<String>,
    #[serde(default = "one")]
    pub server_processes: u64,
    pub loadgen_version: String,
    pub overrides: Overrides,
}

fn one() -> u64 {
    1
}

pub fn latency(p: &rtbench_loadgen::stats::Percentiles) -> Latency {
    Latency {
        p50: p.p50,
        p99: p.p99,
        p999: p.p999,
        count: p.count,
    }
}

pub fn errors(l: &LoadSummary) -> Errors {
    Errors {
        failed: l.counters.failed.clone(),
        closed_by_server: l.counters.closed_by_server.clone(),
        error_frames: l.counters.error_frames.clone(),
        misdelivered: l.events.misdelivered,
        duplicates: l.events.duplicates,
        lost: l.events.lost,
    }
}

pub fn read_summary(dir: &Path) -> Result<BenchSummary, String> {
    let p = dir.join("summary.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).expect("serializes"),
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record committed under results/ must stay readable by these types.
    #[test]
    fn every_committed_record_reads_back() {
        let mut n = 0;
        for suite in std::fs::read_dir(crate::root().join("results")).unwrap() {
            for run in std::fs::read_dir(suite.unwrap().path()).unwrap() {
                let dir = run.unwrap().path();
                let s = read_summary(&dir).unwrap();
                assert_eq!(s.format_version, FORMAT_VERSION, "{}", dir.display());
                let env: Environment = serde_json::from_str(
                    &std::fs::read_to_string(dir.join("environment.json")).unwrap(),
                )
                .unwrap();
                assert!(env.cores > 0);
                rtbench_loadgen::record::read_summary(&dir.join("loadgen")).unwrap();
                n += 1;
            }
        }
        assert!(n > 0, "no records under results/");
    }
}

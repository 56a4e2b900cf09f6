//! The live page's data, typed at both ends: the load generator writes its
//! latest second to `live.json` (`LiveSecond`), the bench reads it back each
//! second (the schedule's clock, the live page), joins the server sample
//! and the faults so far (`LivePoint`) and streams that to the page. A
//! renamed field is a compile error on every side, not an empty chart.

use serde::{Deserialize, Serialize};

use crate::series::ServerSample;

/// `live.json`'s name in the load generator's run directory.
pub const LIVE_JSON: &str = "live.json";

/// The load generator's latest whole second, replaced each second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSecond {
    /// The second of the schedule it closes.
    pub t: u64,
    /// Arrivals in the whole scenario.
    pub target: u64,
    pub open: u64,
    pub connecting: u64,
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub closed_by_server: u64,
    /// Deliveries so far, and in this second.
    pub deliveries: u64,
    pub deliveries_per_s: u64,
    pub received_bytes_per_s: u64,
    pub sent_bytes_per_s: u64,
    pub connect_p50_ms: f64,
    pub connect_p99_ms: f64,
    pub delivery_p50_ms: f64,
    pub delivery_p99_ms: f64,
    pub arrival_lag_max_ms: f64,
    pub worker_cpu_max_pct: f64,
    pub loadgen_rss_kib: u64,
    /// The self-check's warnings so far (lost workers, lag, saturated CPU).
    pub warnings: Vec<String>,
}

/// One point of the live page: the load generator's second (none before
/// its first), the servers' and machine's sample, and what the bench adds.
#[derive(Debug, Clone, Serialize)]
pub struct LivePoint {
    #[serde(flatten)]
    pub load: Option<LiveSecond>,
    #[serde(flatten)]
    pub server: ServerSample,
    /// `suite (variant)`.
    pub scenario: String,
    pub cores: usize,
    /// Processes that ended during the run, as the console said them.
    pub faults: Vec<String>,
}

impl LiveSecond {
    /// Reads `live.json` from a run directory; None before the first second
    /// or when the file is being replaced.
    pub fn read(dir: &std::path::Path) -> Option<LiveSecond> {
        let text = std::fs::read_to_string(dir.join(LIVE_JSON)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's JavaScript reads these keys by name (the xtask's
    /// `dashboard.rs`): a point carries the second's and the sample's
    /// fields side by side, and a point before the first second only the
    /// sample's.
    #[test]
    fn a_point_flattens_both_sides() {
        let p = LivePoint {
            load: Some(LiveSecond {
                t: 7,
                open: 3,
                ..LiveSecond::default()
            }),
            server: ServerSample {
                server_rss_kib: 9,
                ..ServerSample::default()
            },
            scenario: "smoke".into(),
            cores: 2,
            faults: vec![],
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["t"], 7);
        assert_eq!(v["open"], 3);
        assert_eq!(v["server_rss_kib"], 9);
        assert_eq!(v["scenario"], "smoke");
        let early = LivePoint { load: None, ..p };
        let v = serde_json::to_value(&early).unwrap();
        assert!(v.get("t").is_none());
        assert_eq!(v["t_s"], 0.0);
    }
}

//! A sweep's record (`sweep.json`): one suite run at rising offered load,
//! each step a bench record of its own in a subdirectory, and the knee,
//! the most load that met the objectives and the least that did not.
//!
//! Why: a saturated throughput says what a server does while its queues
//! grow; an operator needs the load it takes while latency stays under a
//! target, and the curve around that point.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::slo::{Outcome, Threshold};

/// Marks a sweep's record directory.
pub const SWEEP: &str = "sweep.json";

/// What a sweep raises from step to step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Over {
    /// Events per second from every publisher together (`--publish-rate`);
    /// for a suite without publishers, arrivals per second (`--rate`).
    Rate,
    /// Connections in all (`--connections`).
    Connections,
    /// Pings per second in all: the connections over the ping interval
    /// (`--ping-interval`).
    Pings,
}

impl fmt::Display for Over {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Over::Rate => "rate",
            Over::Connections => "connections",
            Over::Pings => "pings",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sweep {
    pub format_version: u32,
    pub scenario: String,
    pub variant: Option<String>,
    pub host: String,
    pub started_at: String,
    pub over: Over,
    /// The unit of `offered` and `achieved` (`events/s`, `connections`, ...).
    pub unit: String,
    /// The objectives every step is held to.
    pub slo: Vec<Threshold>,
    /// In the order they ran.
    pub steps: Vec<Step>,
    pub knee: Knee,
    /// Why the sweep ended where it did.
    pub ended: String,
    /// The roofline record the host had when the sweep ran.
    #[serde(default)]
    pub roofline: Option<String>,
}

/// One run of the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Its bench record's directory, relative to the sweep's.
    pub dir: String,
    /// The load asked for, in the sweep's unit.
    pub offered: f64,
    /// The load the run achieved, in the same unit.
    pub achieved: f64,
    /// Deliveries per second the clients received.
    pub deliveries_per_s: f64,
    /// Deliveries per second offered: `offered` events/s times the receivers
    /// each event had (for `--over rate` with publishers).
    #[serde(default)]
    pub offered_deliveries_per_s: Option<f64>,
    /// The objectives' latency (the first threshold's), in ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// The servers' CPU while holding (100 = one core).
    pub server_cpu_pct: Option<f64>,
    pub complete: bool,
    /// The load generator's self-check fired: this step measured the
    /// client, not the server.
    pub client_bottleneck: bool,
    #[serde(default)]
    pub client_reasons: Vec<String>,
    pub slo: Vec<Outcome>,
    /// Every objective met, in a complete run the client did not limit.
    pub pass: bool,
}

/// Where the objectives stop holding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    /// The most offered load that met every objective.
    pub last_pass: Option<f64>,
    /// The least offered load that did not.
    pub first_fail: Option<f64>,
}

impl Sweep {
    pub fn read(dir: &std::path::Path) -> Result<Sweep, crate::ReadError> {
        crate::read_json(&dir.join(SWEEP))
    }

    /// The step that ran at the knee's passing load.
    pub fn knee_step(&self) -> Option<&Step> {
        let at = self.knee.last_pass?;
        self.steps.iter().find(|s| s.offered == at && s.pass)
    }
}

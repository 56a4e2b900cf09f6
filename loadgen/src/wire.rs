//! The controller's and workers' line protocol, in one place because both
//! sides speak it and neither should depend on the other for it: the plan
//! and the start go down to a worker, reports come up, one JSON object a
//! line, over its stdin and stdout or the one TCP connection it accepts
//! (`worker --listen`). A worker over SSH or in a container reads and writes
//! exactly these lines, so changing a field here changes the wire format.

use std::collections::BTreeMap;

use rtbench_record::load::{Closing, EventSpan};
use rtbench_record::scenario::Scenario;
use rtbench_record::series::HostSample;
use serde::{Deserialize, Serialize};

use crate::stats::Counters;

/// What the controller tells a worker (its first JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: Scenario,
    pub worker: u64,
    pub workers: u64,
    /// When arrival offsets start counting (CLOCK_REALTIME ns). Left 0 in
    /// the plan: it comes in the `Start` line once every worker is ready.
    #[serde(default)]
    pub start_unix_ns: u64,
    /// This machine's clock minus the controller's: every time the worker
    /// takes is moved onto the controller's clock (`clock_ns`).
    #[serde(default)]
    pub clock_offset_ns: i64,
    /// Whether this worker reports its machine's memory, CPU, load and
    /// sockets each second (one worker per host does).
    #[serde(default)]
    pub sample_host: bool,
}

/// The controller's second line, once every worker has said `ready`: when
/// the schedule starts (the ready barrier).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Start {
    pub start_unix_ns: u64,
}

/// The JSON lines a worker writes on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Report {
    /// Set up and able to reach every target: waiting for `Start`.
    Ready { worker: u64 },
    /// Every second: cumulative counters, the second's own latency histograms.
    Tick {
        worker: u64,
        t: u64,
        counters: Counters,
        connecting: u64,
        /// How late the latest-started arrival of this second was.
        lag_max_ms: f64,
        cpu_pct: f64,
        rss_kib: u64,
        interval: BTreeMap<String, String>,
        /// The machine's figures, from the worker that samples its host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<HostSample>,
    },
    /// Once, at the end: everything.
    Final {
        worker: u64,
        complete: bool,
        counters: Counters,
        hists: BTreeMap<String, String>,
        cpu_s: f64,
        /// RSS before the first arrival, and at its highest.
        rss_start_kib: u64,
        peak_rss_kib: u64,
        /// How many of this worker's subscribers received how many events
        /// (events received, subscribers), when the scenario publishes; pairs,
        /// not a map: an internally tagged enum cannot read integer keys.
        #[serde(default)]
        received_by_subscriber: Vec<(u32, u64)>,
        /// Each event this worker's receivers got, when the scenario times
        /// events one by one (`per_event`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        events: Vec<EventSpan>,
        /// This worker's closing phase.
        #[serde(default)]
        closing: Closing,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_with_missed_events_by_sequence_reads_back() {
        let mut counters = Counters::default();
        counters.missed_by_seq.insert(42, 3);
        let tick = Report::Tick {
            worker: 0,
            t: 1,
            counters,
            connecting: 0,
            lag_max_ms: 0.0,
            cpu_pct: 0.0,
            rss_kib: 0,
            interval: BTreeMap::new(),
            host: None,
        };
        let line = serde_json::to_string(&tick).unwrap();
        match serde_json::from_str::<Report>(&line).unwrap() {
            Report::Tick { counters, .. } => {
                assert_eq!(
                    counters.missed_by_seq.into_iter().collect::<Vec<_>>(),
                    vec![(42, 3)]
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

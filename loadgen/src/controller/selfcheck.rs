//! The self-check's rules: when the load generator itself was the
//! bottleneck. The thresholds and the words for them live here once, so the
//! live page's warnings and the record's `client_bottleneck` reasons say
//! the same thing for the same figures.

use std::collections::BTreeMap;

use rtbench_record::load::Percentiles;

/// A worker this busy for this many seconds was the bottleneck.
pub const CPU_SATURATED_PCT: f64 = 90.0;
pub const CPU_SATURATED_SECONDS: usize = 3;
/// Arrivals or publishing this late mean the client fell behind its schedule.
pub const LAG_LIMIT_MS: f64 = 100.0;

/// One reason per worker saturated long enough, from its count of
/// saturated seconds; with the busiest worker's figure when given.
pub fn cpu_reasons(saturated: &BTreeMap<u64, usize>, cpu_max: Option<f64>) -> Vec<String> {
    saturated
        .iter()
        .filter(|(_, secs)| **secs >= CPU_SATURATED_SECONDS)
        .map(|(w, secs)| match cpu_max {
            Some(cpu_max) => format!(
                "worker {w} used >= {CPU_SATURATED_PCT}% of a core for {secs} s (max {cpu_max:.0}%)"
            ),
            None => format!("worker {w} used >= {CPU_SATURATED_PCT}% of a core for {secs} s"),
        })
        .collect()
}

/// Arrivals that started too far behind their schedule.
pub fn arrival_lag_reason(lag_max_ms: f64) -> Option<String> {
    (lag_max_ms > LAG_LIMIT_MS).then(|| {
        format!(
            "arrivals started up to {lag_max_ms:.0} ms behind schedule (limit {LAG_LIMIT_MS} ms)"
        )
    })
}

/// Events published too far behind their schedule.
pub fn publish_lag_reason(lag_max_ms: f64) -> Option<String> {
    (lag_max_ms > LAG_LIMIT_MS).then(|| {
        format!(
            "events published up to {lag_max_ms:.0} ms behind schedule (limit {LAG_LIMIT_MS} ms)"
        )
    })
}

/// Frames read this long after they arrived mean a worker fell behind its
/// sockets, not that it paced its reads (about a millisecond) or worked
/// through a broadcast's burst (a few hundred): latencies are timed by the
/// kernel's receive time, but a client this far behind is using the cores
/// the server needs and, kept up, fills its sockets and makes the server queue.
pub const READ_WAIT_LIMIT_MS: f64 = 1000.0;

/// Workers that read what arrived too long after it came.
pub fn read_wait_reason(wait: &Percentiles) -> Option<String> {
    (wait.p99 > READ_WAIT_LIMIT_MS).then(|| {
        format!(
            "workers read what arrived up to {:.0} ms after it came (p99; limit {READ_WAIT_LIMIT_MS} ms)",
            wait.p99
        )
    })
}

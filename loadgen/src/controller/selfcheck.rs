//! The self-check's rules: when the load generator itself was the
//! bottleneck. The thresholds and the words for them live here once, so the
//! live page's warnings and the record's `client_bottleneck` reasons say
//! the same thing for the same figures (arrivals aside: the live page sees
//! each second's latest, the record every arrival's p99).

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

/// Arrivals that started too far behind their schedule, judged by the p99
/// of every arrival's lag: a client that keeps falling behind is flagged,
/// one paused once by the machine is not (this shared VM's background bursts
/// hold every process back for 20-130 ms every few seconds, the servers
/// too). By the worst arrival alone, one arrival 107 ms late in 353,553
/// flagged a whole run whose workers used 4% of a core each. The worst is
/// named beside the p99.
pub fn arrival_lag_reason(lag: &Percentiles) -> Option<String> {
    (lag.p99 > LAG_LIMIT_MS).then(|| {
        format!(
            "arrivals started up to {:.0} ms behind schedule (p99; limit {LAG_LIMIT_MS} ms; the latest {:.0} ms)",
            lag.p99, lag.max
        )
    })
}

/// The live page's warning: any arrival this second that late (the p99
/// over the run is the record's, `arrival_lag_reason`).
pub fn arrival_lag_warning(lag_max_ms: f64) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_hist, percentiles_ms, record_ns};

    /// `n` arrivals `ms` late each, into `h`.
    fn late(h: &mut crate::stats::Hist, n: u64, ms: u64) {
        for _ in 0..n {
            record_ns(h, ms * 1_000_000);
        }
    }

    #[test]
    fn arrivals_are_judged_by_their_p99_lag_not_the_worst_one() {
        // 1,000 arrivals: 995 on time-ish, 5 held back 300 ms by one pause.
        let mut h = new_hist();
        late(&mut h, 995, 2);
        late(&mut h, 5, 300);
        assert_eq!(arrival_lag_reason(&percentiles_ms(&h)), None);
        // Another 20 arrivals 150 ms late: 2.5% of them, past the p99.
        late(&mut h, 20, 150);
        assert_eq!(
            arrival_lag_reason(&percentiles_ms(&h)).as_deref(),
            Some(
                "arrivals started up to 150 ms behind schedule (p99; limit 100 ms; the latest 300 ms)"
            )
        );
        // The live page's warning is each second's latest.
        assert!(arrival_lag_warning(100.0).is_none());
        assert_eq!(
            arrival_lag_warning(101.0).as_deref(),
            Some("arrivals started up to 101 ms behind schedule (limit 100 ms)")
        );
    }
}

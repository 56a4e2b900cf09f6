//! The scenario's objectives (`[slo]`), evaluated once the run is over on
//! the histograms every worker sent, merged exactly: a quantile here is the
//! quantile of every sample of every worker and host, which a tool that
//! averages its runners' percentiles cannot give.

use rtbench_record::load::Summary;
use rtbench_record::slo::{Count, Latency, Metric, Outcome, Slo, Statistic};

use crate::stats::{Hist, Hists};

/// Each threshold with what the run measured.
pub(super) fn evaluate(slo: &Slo, hists: &Hists, s: &Summary) -> Vec<Outcome> {
    slo.thresholds
        .iter()
        .map(|t| Outcome::of(*t, measured(t.metric, hists, s)))
        .collect()
}

fn measured(metric: Metric, hists: &Hists, s: &Summary) -> Option<f64> {
    match metric {
        Metric::Latency(latency, stat) => latency_ms(hist(hists, latency), stat),
        Metric::Count(count) => Some(match count {
            Count::Failed => s.connections.failed as f64,
            Count::Held => s.connections.held as f64,
            Count::Duplicates => s.events.duplicates as f64,
            Count::Misdelivered => s.events.misdelivered as f64,
            Count::Lost => s.events.lost? as f64,
        }),
    }
}

fn hist(h: &Hists, latency: Latency) -> &Hist {
    match latency {
        Latency::Connect => &h.connect,
        Latency::ConnectAttempt => &h.connect_attempt,
        Latency::Delivery => &h.delivery,
        Latency::RoundTrip => &h.echo,
        Latency::Reconnect => &h.reconnect,
    }
}

/// A statistic of a histogram of microseconds, in milliseconds; None
/// without samples.
pub(crate) fn latency_ms(h: &Hist, stat: Statistic) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    let us = match stat {
        Statistic::Quantile(q) => h.value_at_quantile(q) as f64,
        Statistic::Max => h.max() as f64,
        Statistic::Mean => h.mean(),
    };
    Some(us / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{decode, encode, merge, new_hist, record_ns};

    /// What the controller does with the workers' histograms (decode each,
    /// add them up) gives every threshold the value it would have over all
    /// the samples in one histogram, for any quantile.
    #[test]
    fn thresholds_on_merged_histograms_equal_those_on_all_samples() {
        let workers = 7;
        let mut each: Vec<Hist> = (0..workers).map(|_| new_hist()).collect();
        let mut all = new_hist();
        for i in 0..50_000u64 {
            // Each worker its own spread, so no worker alone resembles the whole.
            let w = (crate::users::mix(i) % workers as u64) as usize;
            let ns = (crate::users::mix(i ^ 0xabc) % 200_000_000) * (w as u64 + 1);
            record_ns(&mut each[w], ns);
            record_ns(&mut all, ns);
        }
        let mut merged = new_hist();
        for h in &each {
            merge(&mut merged, &decode(&encode(h)).unwrap());
        }
        for stat in [
            Statistic::Quantile(0.5),
            Statistic::Quantile(0.99),
            Statistic::Quantile(0.995),
            Statistic::Quantile(0.9999),
            Statistic::Max,
            Statistic::Mean,
        ] {
            assert_eq!(
                latency_ms(&merged, stat),
                latency_ms(&all, stat),
                "{stat:?}"
            );
        }
        // An average of the workers' p99s is not the p99 of the run.
        let avg: f64 = each
            .iter()
            .map(|h| latency_ms(h, Statistic::Quantile(0.99)).unwrap())
            .sum::<f64>()
            / workers as f64;
        assert_ne!(Some(avg), latency_ms(&all, Statistic::Quantile(0.99)));
        assert_eq!(latency_ms(&new_hist(), Statistic::Max), None);
    }
}

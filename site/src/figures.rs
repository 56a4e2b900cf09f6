//! One rule for a figure a run does not have. A record writes zeros where a
//! figure does not apply (an idle run's delivery latency, `0.0` with a
//! count of 0), where it is lost in noise (machine memory that did not grow
//! measurably) and where the sampler read nothing (server CPU of exactly 0
//! while connections were held). Printed as numbers, those zeros read as
//! results. Every page and `compare` asks this module what to print, so a
//! figure is "none", "none (within noise)" or "not measured (why)" the same
//! way everywhere.
//!
//! A leaf: it reads `rtbench-record`'s types and nothing of the site.

use rtbench_record::metrics::{self, METRICS, Metric};
use rtbench_record::{BenchSummary, Latency};

/// What a run says about one figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    Value(f64),
    /// The run had nothing to measure (no events: no delivery latency).
    None,
    /// Measured, but smaller than what the measurement can tell from zero.
    WithinNoise,
    /// The run never got there (time to target).
    NotReached,
    /// There was something to measure but it was not read; why.
    NotMeasured(String),
}

impl Figure {
    pub fn value(&self) -> Option<f64> {
        match self {
            Figure::Value(v) => Some(*v),
            _ => None,
        }
    }

    /// The value with its unit, or what stands in its place.
    pub fn text(&self, unit: &str) -> String {
        match self {
            Figure::Value(v) => metrics::format(*v, unit),
            Figure::None => "none".into(),
            Figure::WithinNoise => "none (within noise)".into(),
            Figure::NotReached => "not reached".into(),
            Figure::NotMeasured(why) => format!("not measured ({why})"),
        }
    }

    /// For a narrow table cell: the value as `value` writes it, or the
    /// absence without its reason.
    pub fn cell(&self, value: impl Fn(f64) -> String) -> String {
        match self {
            Figure::Value(v) => value(*v),
            Figure::NotMeasured(_) => "not measured".into(),
            absent => absent.text(""),
        }
    }
}

/// `metric` of run `s`: the record's value, or why there is none.
///
/// The record's metric (`Metric::get`) already answers `None` where a
/// count is 0; this adds what a summary shows only by its other fields:
/// - server memory and CPU a subject could not be sampled for
///   (`unmeasured`, e.g. a server given by URL);
/// - server CPU with no sample in the hold (`None`), or exactly 0 over a
///   hold with connections open: a server holding connections uses some
///   CPU, and the sampler reads 0 for a process it could not read;
/// - machine memory per connection that did not grow (peak at or below the
///   start) or grew less than the server's RSS alone, which it includes:
///   the machine's other memory moved more than the connections did.
pub fn of(metric: &Metric, s: &BenchSummary) -> Figure {
    let held = s.connections.peak > 0;
    let server_unsampled = s.unmeasured.iter().find(|u| u.starts_with("server memory"));
    match metric.key {
        "server_kib_per_conn" | "server_cpu_pct" if server_unsampled.is_some() => {
            Figure::NotMeasured(server_unsampled.expect("checked").clone())
        }
        "server_cpu_pct" => match s.server.cpu_holding_pct {
            None => Figure::NotMeasured("no sample fell in the hold".into()),
            Some(c) if c == 0.0 && held => Figure::NotMeasured(
                "the sampler read no CPU time while connections were held".into(),
            ),
            Some(c) => Figure::Value(c),
        },
        "system_kib_per_conn" if held => s
            .system
            .kib_per_connection_measured(s.server.kib_per_connection)
            .map_or(Figure::WithinNoise, Figure::Value),
        "time_to_target_s" => (metric.get)(s).map_or(Figure::NotReached, Figure::Value),
        "loadgen_kib_per_conn" if held => (metric.get)(s).map_or(
            Figure::NotMeasured("not in records this old".into()),
            Figure::Value,
        ),
        _ => (metric.get)(s).map_or(Figure::None, Figure::Value),
    }
}

/// The figure of the metric named `key` (one of `METRICS`).
pub fn by_key(key: &str, s: &BenchSummary) -> Figure {
    of(metric(key), s)
}

/// The metric named `key`; a name not in `METRICS` is a bug here.
pub fn metric(key: &str) -> &'static Metric {
    METRICS
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("no metric `{key}`"))
}

/// A latency's p50 / p99 / p99.9 in ms with its sample count, or "none"
/// when nothing was timed (the same rule as the metrics': a count of 0).
pub fn latency(l: &Latency) -> String {
    if l.count == 0 {
        return "none".into();
    }
    format!(
        "{} / {} / {} ms ({} samples)",
        ms(l.p50),
        ms(l.p99),
        ms(l.p999),
        metrics::group(l.count as i64)
    )
}

/// A latency's p50 / p99 in ms, or "none", for narrow tables.
pub fn latency_pair(l: &Latency) -> String {
    if l.count == 0 {
        return "none".into();
    }
    format!("{} / {}", ms(l.p50), ms(l.p99))
}

/// Milliseconds to three significant figures or so, without the unit.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> BenchSummary {
        let mut s: BenchSummary = serde_json::from_value(serde_json::json!({
            "format_version": 1, "scenario": "idle", "variant": null, "description": "",
            "complete": true, "stopped_by": null, "started_at": "", "host": "vm",
            "overrides": {}, "connections": {"target": 10, "peak": 10, "held": 10, "failed": 0, "time_to_target_s": 1.0},
            "connect_ms": {"p50": 1.0, "p99": 2.0, "p999": 3.0, "count": 10},
            "delivery_ms": {"p50": 0.0, "p99": 0.0, "p999": 0.0, "count": 0},
            "deliveries_per_s": 0.0,
            "server": {"processes": 1, "rss_before_kib": 100, "rss_peak_kib": 110, "kib_per_connection": 1.0, "cpu_holding_pct": 0.5},
            "system": {"mem_used_before_kib": 1000, "mem_used_peak_kib": 1050, "kib_per_connection": 5.0, "tcp_mem_peak_kib": 0},
            "errors": {"failed": {}, "closed_by_server": {}, "error_frames": {}, "misdelivered": 0, "duplicates": 0, "lost": 0},
            "client_bottleneck": {"bottleneck": false, "reasons": []}
        }))
        .unwrap();
        s.loadgen.kib_per_connection = Some(0.1);
        s
    }

    #[test]
    fn absent_figures_say_why() {
        let mut s = idle();
        assert_eq!(by_key("delivery_p99_ms", &s).text("ms"), "none");
        assert_eq!(by_key("deliveries_per_s", &s).text("/s"), "none");
        assert_eq!(latency(&s.delivery_ms), "none");
        assert_eq!(by_key("system_kib_per_conn", &s), Figure::Value(5.0));
        s.system.mem_used_peak_kib = s.system.mem_used_before_kib;
        s.system.kib_per_connection = 0.0;
        assert_eq!(
            by_key("system_kib_per_conn", &s).text("KiB"),
            "none (within noise)"
        );
        s.server.cpu_holding_pct = Some(0.0);
        assert!(
            by_key("server_cpu_pct", &s)
                .text("% of a core")
                .starts_with("not measured (")
        );
        s.server.cpu_holding_pct = None;
        assert!(
            by_key("server_cpu_pct", &s)
                .text("")
                .starts_with("not measured (")
        );
        s.connections.time_to_target_s = None;
        assert_eq!(by_key("time_to_target_s", &s).text("s"), "not reached");
    }
}

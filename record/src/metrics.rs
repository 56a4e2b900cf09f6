//! The headline metrics: one list, read by the site's tables and charts, by
//! `compare`, by the regression gate (its thresholds name these keys) and by
//! `--versus` ratios.

use crate::BenchSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

pub struct Metric {
    /// Stable name: thresholds and versus ratios are keyed by it.
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// None when the run has no such figure (no deliveries, target not reached).
    pub get: fn(&BenchSummary) -> Option<f64>,
}

fn some_if(count: u64, v: f64) -> Option<f64> {
    (count > 0).then_some(v)
}

pub const METRICS: &[Metric] = &[
    Metric {
        key: "held",
        label: "connections held",
        unit: "",
        better: Better::Higher,
        get: |s| Some(s.connections.held as f64),
    },
    Metric {
        key: "failed",
        label: "failed connections",
        unit: "",
        better: Better::Lower,
        get: |s| Some(s.connections.failed as f64),
    },
    Metric {
        key: "time_to_target_s",
        label: "time to target",
        unit: "s",
        better: Better::Lower,
        get: |s| s.connections.time_to_target_s,
    },
    Metric {
        key: "connect_p50_ms",
        label: "connect p50",
        unit: "ms",
        better: Better::Lower,
        get: |s| some_if(s.connect_ms.count, s.connect_ms.p50),
    },
    Metric {
        key: "connect_p99_ms",
        label: "connect p99",
        unit: "ms",
        better: Better::Lower,
        get: |s| some_if(s.connect_ms.count, s.connect_ms.p99),
    },
    Metric {
        key: "connect_p999_ms",
        label: "connect p99.9",
        unit: "ms",
        better: Better::Lower,
        get: |s| some_if(s.connect_ms.count, s.connect_ms.p999),
    },
    Metric {
        key: "delivery_p50_ms",
        label: "delivery p50",
        unit: "ms",
        better: Better::Lower,
        get: |s| some_if(s.delivery_ms.count, s.delivery_ms.p50),
    },
    Metric {
        key: "delivery_p99_ms",
        label: "delivery p99",
        unit: "ms",
        better: Better::Lower,
        get: |s| some_if(s.delivery_ms.count, s.delivery_ms.p99),
    },
    Metric {
        key: "round_trip_p99_ms",
        label: "round trip p99",
        unit: "ms",
        better: Better::Lower,
        get: |s| some_if(s.round_trip_ms.count, s.round_trip_ms.p99),
    },
    Metric {
        key: "delivery_p999_ms",
        label: "delivery p99.9",
        unit: "ms",
        better: Better::Lower,
        get: |s| some_if(s.delivery_ms.count, s.delivery_ms.p999),
    },
    Metric {
        key: "deliveries_per_s",
        label: "deliveries/s",
        unit: "/s",
        better: Better::Higher,
        get: |s| some_if(s.delivery_ms.count, s.deliveries_per_s),
    },
    Metric {
        key: "server_kib_per_conn",
        label: "server memory per connection",
        unit: "KiB",
        better: Better::Lower,
        get: |s| (s.connections.peak > 0).then_some(s.server.kib_per_connection),
    },
    Metric {
        key: "loadgen_kib_per_conn",
        label: "load generator memory per connection",
        unit: "KiB",
        better: Better::Lower,
        get: |s| s.loadgen.kib_per_connection,
    },
    Metric {
        key: "system_kib_per_conn",
        label: "machine memory per connection",
        unit: "KiB",
        better: Better::Lower,
        get: |s| (s.connections.peak > 0).then_some(s.system.kib_per_connection),
    },
    Metric {
        key: "server_cpu_pct",
        label: "server CPU while holding",
        unit: "% of a core",
        better: Better::Lower,
        get: |s| s.server.cpu_holding_pct,
    },
];

pub fn by_key(key: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.key == key)
}

/// A value with its unit, rounded for people.
pub fn format(v: f64, unit: &str) -> String {
    let n = if v.abs() >= 1000.0 || v.fract() == 0.0 {
        group(v.round() as i64)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    match unit {
        "" => n,
        "/s" => format!("{n}/s"),
        u => format!("{n} {u}"),
    }
}

/// 1234567 -> "1,234,567".
pub fn group(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::format(1_000_382.0, ""), "1,000,382");
        assert_eq!(super::format(1.941, "ms"), "1.94 ms");
        assert_eq!(super::format(50613.57, "/s"), "50,614/s");
        assert_eq!(super::format(14.887, "ms"), "14.9 ms");
    }
}

//! `scenarios/<scenario>/side-by-side.html`: for a suite of several
//! variants (the `peers` suite's servers, the `brokers` suite's), each
//! variant's headline run in one table, and beside it one bar chart per
//! figure with a bar per variant (coloured by the server it ran, the same in
//! every chart: `idle-nats` and `fanout-nats` alike). A figure no run has
//! (delivery latency in a suite that publishes nothing) has no chart; a run
//! without it has no bar, and its chart says which.

use anyhow::Result;
use rtbench_record::{BenchSummary, Latency, metrics};
use serde_json::{Value, json};

use super::runs::{run_path, side_by_side};
use super::writer::Site;
use crate::{chart, figures};

/// A figure the page sets side by side: its title, unit, and its value in
/// a run, when the run has it.
struct Column {
    title: &'static str,
    unit: &'static str,
    value: fn(&BenchSummary) -> Option<f64>,
}

fn timed(l: &Latency, v: f64) -> Option<f64> {
    (l.count > 0).then_some(v)
}

/// The figures charted, in the table's order.
const COLUMNS: &[Column] = &[
    Column {
        title: "connections held",
        unit: "connections",
        value: |s| figures::by_key("held", s).value(),
    },
    Column {
        title: "failed connections",
        unit: "connections",
        value: |s| figures::by_key("failed", s).value(),
    },
    Column {
        title: "server memory per connection",
        unit: "KiB",
        value: |s| figures::by_key("server_kib_per_conn", s).value(),
    },
    Column {
        title: "machine memory per connection",
        unit: "KiB",
        value: |s| figures::by_key("system_kib_per_conn", s).value(),
    },
    Column {
        title: "load generator memory per connection",
        unit: "KiB",
        value: |s| figures::by_key("loadgen_kib_per_conn", s).value(),
    },
    Column {
        title: "connect p50",
        unit: "ms",
        value: |s| timed(&s.connect_ms, s.connect_ms.p50),
    },
    Column {
        title: "connect p99",
        unit: "ms",
        value: |s| timed(&s.connect_ms, s.connect_ms.p99),
    },
    Column {
        title: "round trip (keepalive or echo) p50",
        unit: "ms",
        value: |s| timed(&s.round_trip_ms, s.round_trip_ms.p50),
    },
    Column {
        title: "round trip (keepalive or echo) p99",
        unit: "ms",
        value: |s| timed(&s.round_trip_ms, s.round_trip_ms.p99),
    },
    Column {
        title: "delivery p50",
        unit: "ms",
        value: |s| timed(&s.delivery_ms, s.delivery_ms.p50),
    },
    Column {
        title: "delivery p99",
        unit: "ms",
        value: |s| timed(&s.delivery_ms, s.delivery_ms.p99),
    },
    Column {
        title: "delivery p99.9",
        unit: "ms",
        value: |s| timed(&s.delivery_ms, s.delivery_ms.p999),
    },
    Column {
        title: "server CPU per delivery",
        unit: "µs",
        value: |s| s.costs.server_cpu_us_per_delivery,
    },
    Column {
        title: "server CPU while holding",
        unit: "% of a core",
        value: |s| figures::by_key("server_cpu_pct", s).value(),
    },
];

/// The page, when the scenario has at least two variants to set side by side.
pub(super) fn page(site: &mut Site, scenario: &str) -> Result<()> {
    let rows = side_by_side(site.records, scenario);
    if rows.len() < 2 {
        return Ok(());
    }
    let mut hosts: Vec<&str> = rows.iter().map(|r| r.1.host.as_str()).collect();
    hosts.dedup();
    let table: Vec<Value> = rows
        .iter()
        .map(|(run, s)| {
            let kib = |key: &str| figures::by_key(key, s).cell(|v| format!("{v:.2}"));
            json!({
                "variant": s.variant,
                "server": s.server_under_test,
                "held": metrics::group(s.connections.held as i64),
                "failed": metrics::group(s.connections.failed as i64),
                "server_kib": kib("server_kib_per_conn"),
                "machine_kib": kib("system_kib_per_conn"),
                "loadgen_kib": kib("loadgen_kib_per_conn"),
                "connect": figures::latency_pair(&s.connect_ms),
                "round_trip": figures::latency_pair(&s.round_trip_ms),
                "delivery": delivery(&s.delivery_ms),
                "cpu_per_delivery": s.costs.server_cpu_us_per_delivery.map_or("none".into(), |c| format!("{c:.1} µs")),
                "cpu": figures::by_key("server_cpu_pct", s).cell(|c| format!("{c:.1}%")),
                "href": format!("{}/index.html", run_path(run)),
                "name": run.name,
            })
        })
        .collect();
    let summaries: Vec<&BenchSummary> = rows.iter().map(|r| r.1).collect();
    let description = rows[0].1.description.clone();
    let ctx = json!({"title": format!("{scenario} side by side"), "scenario": scenario, "description": description, "hosts": hosts.join(", "), "rows": table, "charts": charts(&summaries)?});
    site.write(
        &format!("scenarios/{scenario}/side-by-side.html"),
        "side-by-side.html",
        ctx,
    )
}

/// p50 / p99 / p99.9, or "none" where nothing was delivered.
fn delivery(l: &Latency) -> String {
    if l.count == 0 {
        return "none".into();
    }
    format!(
        "{} / {} / {}",
        figures::ms(l.p50),
        figures::ms(l.p99),
        figures::ms(l.p999)
    )
}

/// One bar chart per figure some run has, a bar per run that has it.
fn charts(runs: &[&BenchSummary]) -> Result<Vec<Value>> {
    let name = |s: &BenchSummary| s.variant.clone().unwrap_or_else(|| s.scenario.clone());
    let mut servers: Vec<&str> = Vec::new();
    for s in runs {
        if !servers.contains(&s.server_under_test.as_str()) {
            servers.push(&s.server_under_test);
        }
    }
    let colour = |s: &BenchSummary| {
        servers
            .iter()
            .position(|x| *x == s.server_under_test)
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for c in COLUMNS {
        let bars: Vec<chart::Bar> = runs
            .iter()
            .filter_map(|s| {
                Some(chart::Bar {
                    label: name(s),
                    value: (c.value)(s)?,
                    colour: colour(s),
                })
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        let without: Vec<String> = runs
            .iter()
            .filter(|s| (c.value)(s).is_none())
            .map(|s| name(s))
            .collect();
        let title = format!("{} ({})", c.title, c.unit);
        let Some(drawn) = chart::bars(&title, c.unit, &bars)? else {
            continue;
        };
        out.push(json!({
            "title": drawn.title,
            "svg": drawn.svg,
            "summary": drawn.summary,
            "without": without.join(", "),
        }));
    }
    Ok(out)
}

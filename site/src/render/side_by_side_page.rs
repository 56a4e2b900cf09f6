//! `scenarios/<scenario>/side-by-side.html`: for a suite of several
//! variants (the `peers` suite's servers), each variant's headline run in
//! one table.

use anyhow::Result;
use rtbench_record::metrics;
use serde_json::{Value, json};

use super::runs::{run_path, side_by_side};
use super::writer::Site;
use crate::figures;

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
                "connect": figures::latency_pair(&s.connect_ms),
                "round_trip": figures::latency_pair(&s.round_trip_ms),
                "cpu": figures::by_key("server_cpu_pct", s).cell(|c| format!("{c:.1}%")),
                "href": format!("{}/index.html", run_path(run)),
                "name": run.name,
            })
        })
        .collect();
    let description = rows[0].1.description.clone();
    let ctx = json!({"title": format!("{scenario} side by side"), "scenario": scenario, "description": description, "hosts": hosts.join(", "), "rows": table});
    site.write(
        &format!("scenarios/{scenario}/side-by-side.html"),
        "side-by-side.html",
        ctx,
    )
}

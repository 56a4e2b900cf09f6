//! `scenarios/<scenario>/side-by-side.html`: for a suite of several
//! variants (the `peers` suite's servers), each variant's headline run in
//! one table.

use rtbench_record::metrics;
use serde_json::{Value, json};

use super::headline::fmt_ms;
use super::runs::{run_path, side_by_side};
use super::writer::Site;

/// The page, when the scenario has at least two variants to set side by side.
pub(super) fn page(site: &mut Site, scenario: &str) -> Result<(), String> {
    let rows = side_by_side(site.records, scenario);
    if rows.len() < 2 {
        return Ok(());
    }
    let mut hosts: Vec<&str> = rows.iter().map(|r| r.1.host.as_str()).collect();
    hosts.dedup();
    let table: Vec<Value> = rows
        .iter()
        .map(|(run, s)| {
            let pair = |l: &rtbench_record::Latency| {
                if l.count == 0 {
                    "none".to_string()
                } else {
                    format!("{} / {}", fmt_ms(l.p50), fmt_ms(l.p99))
                }
            };
            let unmeasured = s.unmeasured.iter().any(|u| u.starts_with("server memory"));
            json!({
                "variant": s.variant,
                "server": s.server_under_test,
                "held": metrics::group(s.connections.held as i64),
                "failed": metrics::group(s.connections.failed as i64),
                "server_kib": if unmeasured { "not measured".to_string() } else { format!("{:.2}", s.server.kib_per_connection) },
                "machine_kib": format!("{:.2}", s.system.kib_per_connection),
                "connect": pair(&s.connect_ms),
                "round_trip": pair(&s.round_trip_ms),
                "cpu": match s.server.cpu_holding_pct { Some(c) if !unmeasured => format!("{c:.1}%"), _ => "not measured".into() },
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

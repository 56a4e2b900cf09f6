//! `index.html`: the site's front page. Each scenario leads with its
//! headline (each variant's best complete full-scale run), links the newest
//! run of any size, and draws its key latency over the runs like the newest;
//! then each host's roofline, the ceiling those figures are read against.

use rtbench_record::metrics;
use rtbench_record::roofline::{Roofline, Spread};
use serde_json::{Value, json};

use super::headline::headline;
use super::runs::{run_info, side_by_side};
use super::writer::Site;
use crate::chart;
use crate::load::Run;
use crate::regress::{self, Thresholds};

pub(super) fn page(site: &mut Site, t: &Thresholds) -> Result<(), String> {
    let mut scenarios = Vec::new();
    for scenario in site.records.scenarios() {
        let runs: Vec<&Run> = site
            .records
            .of(&scenario)
            .filter(|r| !r.in_versus)
            .collect();
        let latest = runs
            .iter()
            .rev()
            .find(|r| r.complete())
            .or(runs.last())
            .copied();
        // The history line follows the latest run's configuration.
        let key = latest.and_then(|r| r.config_key());
        let metric = if latest
            .and_then(|r| r.summary.as_ref())
            .is_some_and(|s| s.delivery_ms.count > 0)
        {
            metrics::by_key("delivery_p99_ms")
        } else {
            metrics::by_key("connect_p99_ms")
        }
        .expect("known metric");
        let same: Vec<&Run> = runs
            .iter()
            .filter(|r| r.complete() && r.config_key() == key)
            .copied()
            .collect();
        let mut points = Vec::new();
        let mut marks = Vec::new();
        for (i, r) in same.iter().enumerate() {
            if let Some(v) = r.summary.as_ref().and_then(|s| (metric.get)(s)) {
                if regress::judge(site.records, r, t)
                    .regressions()
                    .next()
                    .is_some()
                {
                    marks.push(points.len());
                }
                points.push((i as f64, v));
            }
        }
        let spark = chart::spark(&points, &marks).ok().flatten();
        // The headline: each variant's best complete run at full scale
        // (a CI-sized or scaled run is not the scenario's figure).
        let lead_runs = side_by_side(site.records, &scenario);
        let leads: Vec<Value> = lead_runs
            .iter()
            .map(|(r, s)| json!({"variant": s.variant, "run": run_info(r), "headline": headline(r, site.records.roofline_for(r))}))
            .collect();
        scenarios.push(json!({
            "name": scenario,
            "runs": runs.len(),
            "latest": latest.map(run_info),
            "description": latest.and_then(|r| r.summary.as_ref()).map(|s| s.description.clone()),
            "leads": leads,
            "headline": if leads.is_empty() { latest.map(|r| headline(r, site.records.roofline_for(r))).unwrap_or_default() } else { Vec::new() },
            "spark": spark,
            "side_by_side": lead_runs.len() >= 2,
            "spark_label": format!("{} over {} run(s) like the latest", metric.label, points.len()),
        }));
    }
    let rooflines: Vec<Value> = newest_rooflines(&site.records.rooflines)
        .into_iter()
        .map(|(name, r)| json!({"name": name, "host": r.host, "measured_at": r.measured_at, "rows": roofline_rows(r)}))
        .collect();
    let ctx = json!({"title": "Results", "scenarios": scenarios, "rooflines": rooflines, "warnings": site.records.warnings});
    site.write("index.html", "index.html", ctx)
}

/// Each host's newest roofline.
fn newest_rooflines(all: &[(String, Roofline)]) -> Vec<&(String, Roofline)> {
    let mut out: Vec<&(String, Roofline)> = Vec::new();
    for r in all.iter().rev() {
        if !out.iter().any(|o| o.1.host == r.1.host) {
            out.push(r);
        }
    }
    out
}

fn roofline_rows(r: &Roofline) -> Vec<Value> {
    let m = &r.measured;
    let spread = |s: &Spread, unit: &str| {
        format!(
            "{}{unit} (median of {}; {} to {})",
            metrics::group(s.median.round() as i64),
            s.runs.len(),
            metrics::group(s.min.round() as i64),
            metrics::group(s.max.round() as i64)
        )
    };
    let mut rows = vec![
        json!({"label": "connection pairs opened", "value": format!("{} pairs at {}", metrics::group(m.pairs.count as i64), spread(&m.pairs.per_second, "/s"))}),
        json!({"label": "machine memory per pair (both ends, MemTotal − MemAvailable)", "value": format!("{:.2} KiB ({:.2} to {:.2})", m.pairs.kernel_kib_per_pair.median, m.pairs.kernel_kib_per_pair.min, m.pairs.kernel_kib_per_pair.max)}),
        json!({"label": "kernel slab per pair (both ends)", "value": format!("{:.2} KiB ({:.2} to {:.2})", m.pairs.slab_kib_per_pair.median, m.pairs.slab_kib_per_pair.min, m.pairs.slab_kib_per_pair.max)}),
    ];
    for f in &m.fanout {
        rows.push(json!({"label": format!("fan-out, {} B, {} per write", f.size, f.per_write), "value": spread(&f.deliveries_per_s, " deliveries/s")}));
    }
    rows.push(json!({"label": format!("round trips, {} B", m.round_trips.request_bytes), "value": spread(&m.round_trips.per_second, "/s")}));
    rows
}

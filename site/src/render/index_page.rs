//! `index.html`: the site's front page. The headline band first (`band`),
//! then a card per scenario in order of importance (`cards`), then each
//! host's roofline, the ceiling the figures are read against. The full
//! tables are on each scenario's page.

use anyhow::Result;
use rtbench_record::metrics;
use rtbench_record::roofline::{Roofline, Spread};
use serde_json::{Value, json};

use super::band::band;
use super::cards;
use super::writer::Site;
use crate::regress::Thresholds;

pub(super) fn page(site: &mut Site, t: &Thresholds) -> Result<()> {
    let band = band(site.records);
    let cards: Vec<Value> = cards::ordered(site.records.scenarios())
        .iter()
        .map(|s| cards::card(site, s, t))
        .collect();
    let rooflines: Vec<Value> = newest_rooflines(&site.records.rooflines)
        .into_iter()
        .map(|(name, r)| json!({"name": name, "host": r.host, "measured_at": r.measured_at, "rows": roofline_rows(r)}))
        .collect();
    let ctx = json!({
        "title": "Realtime WebSocket servers at millions of connections",
        "page_description": page_description(&band),
        "band": band,
        "cards": cards,
        "rooflines": rooflines,
        "warnings": site.records.warnings,
    });
    site.write("index.html", "index.html", ctx)
}

/// The band in one sentence, for a link shared.
fn page_description(band: &[Value]) -> String {
    let figures: Vec<String> = band
        .iter()
        .filter(|t| !t["original"].is_null())
        .map(|t| {
            format!(
                "{} {}",
                t["value"].as_str().unwrap_or(""),
                t["label"].as_str().unwrap_or("")
            )
        })
        .collect();
    format!(
        "rtbench's reproducible benchmarks of realtime WebSocket servers: {}; every figure linked to its run and raw data.",
        figures.join(", ")
    )
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
    if let Some(p) = &m.pings {
        rows.push(json!({"label": format!("pings: {} connections, a {} B request every {:.0} s ({}/s offered)", metrics::group(p.connections as i64), p.request_bytes, p.interval_s, metrics::group(p.offered_per_s.round() as i64)), "value": format!("{}; machine CPU {:.0}% busy, {:.1} µs per round trip", spread(&p.per_second, "/s"), p.machine_busy_pct.median, p.machine_us_per_trip.median)}));
    }
    rows
}

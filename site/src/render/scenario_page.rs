//! `scenarios/<scenario>/index.html`: a scenario in full, where its card's
//! links lead. Each variant's headline run (its best complete run at full
//! scale) with every headline figure, read against the host's roofline;
//! then every run of the scenario, newest first.

use anyhow::Result;
use rtbench_record::metrics;
use serde_json::{Value, json};

use super::headline::headline;
use super::runs::{run_info, side_by_side};
use super::sweeps::{knee_text, sweep_path};
use super::writer::Site;
use crate::load::Run;

pub(super) fn page(site: &mut Site, scenario: &str) -> Result<()> {
    let runs: Vec<&Run> = site.records.of(scenario).filter(|r| !r.in_group).collect();
    let latest = runs
        .iter()
        .rev()
        .find(|r| r.complete())
        .or(runs.last())
        .copied();
    let leads = side_by_side(site.records, scenario);
    let lead_tables: Vec<Value> = leads
        .iter()
        .map(|(r, s)| json!({"variant": s.variant, "run": run_info(r), "headline": headline(r, site.records.roofline_for(r))}))
        .collect();
    // Without a full-scale run, the newest of any size stands in.
    let fallback = match (lead_tables.is_empty(), latest) {
        (true, Some(r)) => headline(r, site.records.roofline_for(r)),
        _ => Vec::new(),
    };
    let all: Vec<Value> = runs.iter().rev().map(|r| run_row(r)).collect();
    let description = latest
        .and_then(|r| r.summary.as_ref())
        .map(|s| s.description.clone());
    let ctx = json!({
        "title": scenario,
        "page_description": format!("{scenario}: each variant's headline run with every figure, and all {} runs of the scenario.", runs.len()),
        "scenario": scenario,
        "description": description,
        "latest": latest.map(run_info),
        "leads": lead_tables,
        "headline": fallback,
        "side_by_side": leads.len() >= 2,
        "runs": all,
        "sweeps": sweeps(site, scenario),
    });
    site.write(
        &format!("scenarios/{scenario}/index.html"),
        "scenario.html",
        ctx,
    )
}

/// The scenario's sweeps, newest first: where each one's knee lies.
fn sweeps(site: &Site, scenario: &str) -> Vec<Value> {
    site.records
        .sweeps
        .iter()
        .rev()
        .filter(|r| r.scenario == scenario)
        .map(|r| {
            let slo: Vec<String> = r.sweep.slo.iter().map(|t| t.to_string()).collect();
            json!({
                "href": sweep_path(r),
                "title": format!("{} over {} at {}", r.name, r.sweep.over, slo.join(", ")),
                "knee": knee_text(&r.sweep),
            })
        })
        .collect()
}

/// One line of the scenario's runs: its name, sizes and what it held.
fn run_row(run: &Run) -> Value {
    let s = run.summary.as_ref();
    json!({
        "run": run_info(run),
        "held": s.map(|s| format!("{} of {}", metrics::group(s.connections.held as i64), metrics::group(s.connections.target as i64))),
    })
}

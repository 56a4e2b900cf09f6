//! `scenarios/<scenario>/compare.html`: runs of a scenario side by side,
//! the scenario's versus records and their ratios, and the published
//! reference run drawn beside ours for scale.
//!
//! Only comparable runs share a table: the same variant and the same size
//! (target connections). A run of 19,000 connections set beside one of
//! 1,000,000 reads as a 97.6% drop; each size and variant gets its own
//! group instead, and a run alone in its group is listed, not compared.

use anyhow::Result;
use rtbench_record::metrics::{self, METRICS};
use serde_json::{Value, json};

use super::runs::{run_info, size_label};
use super::writer::Site;
use crate::chart::{self, Series};
use crate::figures;
use crate::load::{Records, Reference, Run};
use crate::rows;

/// Runs of one scenario that may be compared: one variant, one size.
pub struct Group<'a> {
    pub variant: Option<String>,
    pub target: u64,
    /// The newest complete run of each configuration (host, overrides,
    /// deployment) within the group, newest first.
    pub runs: Vec<&'a Run>,
}

/// Columns in one group's table at most.
const RUNS_PER_GROUP: usize = 6;
/// Groups drawn in the charts at most (each by its newest run).
const CHARTED_GROUPS: usize = 6;

/// `scenario`'s complete runs (versus runs aside) in comparable groups,
/// the largest size first, then variants in the order they first appear.
pub fn groups<'a>(records: &'a Records, scenario: &str) -> Vec<Group<'a>> {
    let mut groups: Vec<Group> = Vec::new();
    let runs: Vec<&Run> = records
        .of(scenario)
        .filter(|r| r.complete() && !r.in_group)
        .collect();
    for r in runs.into_iter().rev() {
        let Some(s) = r.summary.as_ref() else {
            continue;
        };
        let group = match groups
            .iter_mut()
            .position(|g| g.variant == s.variant && g.target == s.connections.target)
        {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Group {
                    variant: s.variant.clone(),
                    target: s.connections.target,
                    runs: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        if group.runs.len() < RUNS_PER_GROUP
            && !group.runs.iter().any(|c| c.config_key() == r.config_key())
        {
            group.runs.push(r);
        }
    }
    // Stable: variants keep their order of appearance within a size.
    groups.sort_by_key(|g| std::cmp::Reverse(g.target));
    groups
}

/// One group's table: each metric for each run, with its change against
/// the group's first (newest) run where both have a value.
fn group_table(g: &Group) -> Value {
    let first = g.runs.first().and_then(|r| r.summary.as_ref());
    let rows: Vec<Value> = METRICS
        .iter()
        .map(|m| {
            let base = first.and_then(|s| figures::of(m, s).value());
            let cells: Vec<Value> = g
                .runs
                .iter()
                .map(|r| {
                    let figure = r.summary.as_ref().map(|s| figures::of(m, s));
                    let v = figure.as_ref().and_then(|f| f.value());
                    json!({
                        "value": figure.map(|f| f.text(m.unit)),
                        "delta": match (v, base) { (Some(v), Some(b)) if b != 0.0 && v != b => Some(format!("{:+.1}%", 100.0 * (v - b) / b)), _ => None },
                    })
                })
                .collect();
            json!({"label": m.label, "cells": cells})
        })
        .collect();
    json!({
        "label": size_label(g.variant.as_deref(), g.target),
        "runs": g.runs.iter().map(|r| run_info(r)).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// Chart legends: variant and size, and the run's time only where two
/// charted runs share both.
fn legend(charted: &[&Run]) -> Vec<String> {
    let base = |r: &Run| {
        let s = r.summary.as_ref();
        size_label(
            s.and_then(|s| s.variant.as_deref()),
            s.map_or(0, |s| s.connections.target),
        )
    };
    charted
        .iter()
        .map(|r| {
            let label = base(r);
            if charted.iter().filter(|o| base(o) == label).count() > 1 {
                let time = r.name.split('-').next().unwrap_or(&r.name);
                format!("{label} · {time}")
            } else {
                label
            }
        })
        .collect()
}

pub(super) fn page(site: &mut Site, scenario: &str) -> Result<()> {
    let groups = groups(site.records, scenario);
    let reference = site
        .records
        .references
        .iter()
        .find(|r| r.info.compare_with.iter().any(|s| s == scenario));
    let tables: Vec<Value> = groups.iter().map(group_table).collect();
    let chosen: Vec<&Run> = groups
        .iter()
        .take(CHARTED_GROUPS)
        .filter_map(|g| g.runs.first().copied())
        .collect();
    let charts = over_time(site, &chosen, reference);
    let versus = versus_tables(site.records, scenario);
    let ctx = json!({
        "title": format!("{scenario}: compare"),
        "page_description": format!("{scenario}: its runs side by side, within one variant and size, with the versus records' ratios{}.", if reference.is_some() { " and the published 2021 run for scale" } else { "" }),
        "scenario": scenario,
        "alone": tables.iter().filter(|t| t["runs"].as_array().is_some_and(|r| r.len() < 2)).collect::<Vec<_>>(),
        "groups": tables,
        "charts": charts,
        "versus": versus,
        "reference": reference.map(|r| json!({"name": r.name, "info": r.info})),
    });
    site.write(
        &format!("scenarios/{scenario}/compare.html"),
        "compare.html",
        ctx,
    )
}

/// Users, server memory and server CPU over time: each charted run, and
/// the reference's published series beside them.
fn over_time(site: &mut Site, chosen: &[&Run], reference: Option<&Reference>) -> Vec<Value> {
    let labels = legend(chosen);
    let each = |f: &dyn Fn(&Run) -> Vec<(f64, f64)>| -> Vec<Series> {
        chosen
            .iter()
            .zip(&labels)
            .map(|(r, label)| Series::new(label.clone(), f(r)))
            .collect()
    };
    let mut users = each(&|r| rows::over_time(&r.timeseries, |t| t.open as f64));
    let mut mem = each(&|r| rows::over_time(&r.server, |s| s.server_rss_kib as f64 / 1024.0));
    let mut cpu = each(&|r| {
        let cores = r.cores().unwrap_or(1.0);
        rows::over_time(&r.server, |s| s.server_cpu_pct / cores)
    });
    // The reference's published series, where its setup names them.
    if let Some((rf, setup)) = reference.and_then(|r| Some((r, r.info.setup.as_ref()?))) {
        let name = format!("{} (reference)", rf.info.title);
        users.push(Series::new(name.clone(), rf.column(&setup.connections)).backdrop());
        mem.push(Series::new(name.clone(), rf.column(&setup.memory_used_mib)).backdrop());
        cpu.push(Series::new(name, rf.column(&setup.cpu_pct)).backdrop());
    }
    let mut charts = Vec::new();
    charts.extend(site.chart(
        chart::lines("Connected users", "s", "connections", &users),
        "Connected users",
        "no series",
    ));
    charts.extend(site.chart(
        chart::lines(
            "Server memory (the reference: the whole server, MB)",
            "s",
            "MiB",
            &mem,
        ),
        "Server memory",
        "no series",
    ));
    charts.extend(site.chart(
        chart::lines("Server CPU, % of all its machine's cores", "s", "%", &cpu),
        "Server CPU",
        "no series",
    ));
    charts
}

/// The scenario's versus records: A and B, their runs, each metric's ratios.
fn versus_tables(records: &Records, scenario: &str) -> Vec<Value> {
    records
        .versus
        .iter()
        .filter(|v| v.scenario == scenario)
        .map(|v| {
            json!({
                "name": v.name, "a": v.versus.a, "b": v.versus.b,
                "runs": v.versus.runs.iter().map(|r| json!({"side": r.side, "dir": r.dir, "complete": r.complete, "href": format!("../../runs/{scenario}/{}/{}/index.html", v.name, r.dir)})).collect::<Vec<_>>(),
                "ratios": METRICS.iter().filter_map(|m| {
                    let r = v.versus.ratios.get(m.key)?;
                    Some(json!({"label": m.label, "median": format!("{:.3}", r.median), "min": format!("{:.3}", r.min), "max": format!("{:.3}", r.max), "n": r.pairs.len(), "better": ratio_verdict(m.better, r.min, r.max)}))
                }).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// What the pairs agree on, stated as a fact about the pairs.
fn ratio_verdict(better: metrics::Better, min: f64, max: f64) -> &'static str {
    use metrics::Better::*;
    match better {
        _ if min <= 1.0 && max >= 1.0 => "pairs disagree",
        Lower if max < 1.0 => "B lower (better) in every pair",
        Higher if min > 1.0 => "B higher (better) in every pair",
        Lower => "B higher (worse) in every pair",
        Higher => "B lower (worse) in every pair",
    }
}

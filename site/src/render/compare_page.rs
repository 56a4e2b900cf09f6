//! `scenarios/<scenario>/compare.html`: runs of a scenario side by side,
//! the scenario's versus records and their ratios, and the published
//! reference run drawn beside ours for scale.

use rtbench_record::metrics::{self, METRICS};
use serde_json::{Value, json};

use super::runs::run_info;
use super::writer::Site;
use crate::chart::{self, Series};
use crate::load::Run;

pub(super) fn page(site: &mut Site, scenario: &str) -> Result<(), String> {
    // The newest complete run of each configuration, newest first.
    let mut chosen: Vec<&Run> = Vec::new();
    for r in site
        .records
        .of(scenario)
        .filter(|r| r.complete() && !r.in_versus)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        if chosen.len() < 6 && !chosen.iter().any(|c| c.config_key() == r.config_key()) {
            chosen.push(r);
        }
    }
    let reference = site
        .records
        .references
        .iter()
        .find(|r| r.info.compare_with.iter().any(|s| s == scenario));
    let first = chosen.first().and_then(|r| r.summary.as_ref());
    let rows: Vec<Value> = METRICS
        .iter()
        .map(|m| {
            let base = first.and_then(|s| (m.get)(s));
            let cells: Vec<Value> = chosen
                .iter()
                .map(|r| {
                    let v = r.summary.as_ref().and_then(|s| (m.get)(s));
                    json!({
                        "value": v.map(|v| metrics::format(v, m.unit)),
                        "delta": match (v, base) { (Some(v), Some(b)) if b != 0.0 && v != b => Some(format!("{:+.1}%", 100.0 * (v - b) / b)), _ => None },
                    })
                })
                .collect();
            json!({"label": m.label, "cells": cells})
        })
        .collect();
    let mut charts = Vec::new();
    let label = |r: &Run| r.name.clone();
    let users: Vec<Series> = chosen
        .iter()
        .map(|r| {
            Series::new(
                label(r),
                r.timeseries
                    .as_ref()
                    .map(|t| t.xy("t_s", "open", |v| v))
                    .unwrap_or_default(),
            )
        })
        .collect();
    let mut users = users;
    let mut mem: Vec<Series> = chosen
        .iter()
        .map(|r| {
            let sv = r.server.clone().unwrap_or_default();
            Series::new(label(r), sv.xy("t_s", "server_rss_kib", |v| v / 1024.0))
        })
        .collect();
    let mut cpu: Vec<Series> = chosen
        .iter()
        .map(|r| {
            let cores = r.cores().unwrap_or(1.0);
            Series::new(
                label(r),
                r.server
                    .as_ref()
                    .map(|t| t.xy("t_s", "server_cpu_pct", |v| v / cores))
                    .unwrap_or_default(),
            )
        })
        .collect();
    if let Some(rf) = reference {
        let name = format!("{} (reference)", rf.info.title);
        users.push(Series::new(
            name.clone(),
            rf.table("graphes-users-simultaneous.csv")
                .map(|t| t.xy("time", "Connected", |v| v))
                .unwrap_or_default(),
        ));
        mem.push(Series::new(
            name.clone(),
            rf.table("graphes-freemem-mean.csv")
                .map(|t| t.xy("time", "Used", |v| v))
                .unwrap_or_default(),
        ));
        cpu.push(Series::new(
            name,
            rf.table("graphes-cpu-mean.csv")
                .map(|t| t.xy("time", "Usage", |v| v))
                .unwrap_or_default(),
        ));
    }
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
    let versus: Vec<Value> = site
        .records
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
        .collect();
    let ctx = json!({
        "title": format!("{scenario}: compare"),
        "scenario": scenario,
        "runs": chosen.iter().map(|r| run_info(r)).collect::<Vec<_>>(),
        "rows": rows,
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

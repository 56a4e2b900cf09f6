//! `scenarios/<scenario>/history.html`: each headline metric over the
//! scenario's runs, one line per configuration (a CI-sized run is not a full
//! one), regressions marked, and each run's verdicts.

use anyhow::Result;
use rtbench_record::metrics::METRICS;
use serde_json::{Value, json};

use super::runs::{config_label, run_info};
use super::writer::Site;
use crate::chart::{self, Series};
use crate::load::Run;
use crate::regress::{self, Thresholds};

pub(super) fn page(site: &mut Site, scenario: &str, t: &Thresholds) -> Result<()> {
    let runs: Vec<&Run> = site.records.of(scenario).filter(|r| !r.in_group).collect();
    let judged: Vec<(&Run, regress::Judgement)> = runs
        .iter()
        .map(|r| (*r, regress::judge(site.records, r, t)))
        .collect();
    let mut charts = Vec::new();
    for m in METRICS {
        // One line per configuration: a CI-sized run is not a full one.
        let mut configs: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let mut marks = Vec::new();
        for (i, (r, j)) in judged.iter().enumerate() {
            let (Some(k), Some(v)) = (
                r.config_key(),
                r.summary
                    .as_ref()
                    .filter(|_| r.complete())
                    .and_then(|s| (m.get)(s)),
            ) else {
                continue;
            };
            match configs.iter_mut().find(|(c, _)| *c == k) {
                Some((_, pts)) => pts.push((i as f64, v)),
                None => configs.push((k, vec![(i as f64, v)])),
            }
            if j.regressions().any(|x| x.key == m.key) {
                marks.push((i, v));
            }
        }
        if configs.is_empty() {
            continue;
        }
        let mut series: Vec<Series> = configs
            .into_iter()
            .map(|(k, p)| Series::new(config_label(&k), p))
            .collect();
        if !marks.is_empty() {
            series.push(Series::new(
                "regression",
                marks.iter().map(|&(i, v)| (i as f64, v)).collect(),
            ));
        }
        let title = format!(
            "{} ({})",
            m.label,
            if m.unit.is_empty() { "count" } else { m.unit }
        );
        let drawn = chart::lines(&title, "run", m.unit, &series);
        charts.extend(site.chart(drawn, &title, "no values"));
    }
    let rows: Vec<Value> = judged
        .iter()
        .enumerate()
        .map(|(i, (r, j))| {
            json!({
                "n": i, "run": run_info(r),
                "verdicts": j.verdicts.iter().map(|v| json!({"line": v.line(), "regressed": v.regressed})).collect::<Vec<_>>(),
                "regressed": j.regressions().count(),
                "note": j.note,
            })
        })
        .collect();
    let ctx = json!({
        "title": format!("{scenario}: history"),
        "page_description": format!("{scenario}: every headline metric over its runs, one line per configuration, regressions marked."),
        "scenario": scenario,
        "charts": charts,
        "rows": rows,
    });
    site.write(
        &format!("scenarios/{scenario}/history.html"),
        "history.html",
        ctx,
    )
}

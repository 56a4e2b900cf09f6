//! `scenarios/<scenario>/sweep-<name>.html`: one sweep, latency against
//! offered load with the knee marked and, for a fan-out swept by rate, the
//! machine's bare-TCP fan-out at one write per delivery drawn beside it
//! (its saturated rate, and its p99 paced where the roofline measured it);
//! then every step, each linking to its run.

use anyhow::Result;
use rtbench_record::metrics;
use serde_json::{Value, json};

use super::runs::run_info;
use super::sweeps::{bare_tcp, knee_text, sweep_path};
use super::writer::Site;
use crate::chart::{self, Mark, Series};
use crate::load::SweepRecord;

pub(super) fn page(site: &mut Site, r: &SweepRecord) -> Result<()> {
    let sw = &r.sweep;
    let chart = curve(site, r);
    let bare = bare_tcp(site.records, r);
    let steps: Vec<Value> = sw
        .steps
        .iter()
        .map(|s| {
            let run = site
                .records
                .find(&format!("{}/{}/{}", r.scenario, r.name, s.dir))
                .map(run_info);
            json!({
                "dir": s.dir,
                "run": run,
                "offered": metrics::group(s.offered.round() as i64),
                "achieved": metrics::group(s.achieved.round() as i64),
                "offered_deliveries": s.offered_deliveries_per_s.map(|d| metrics::group(d.round() as i64)),
                "deliveries": metrics::group(s.deliveries_per_s.round() as i64),
                "latency": format!("{:.2} / {:.2} / {:.2}", s.p50_ms, s.p99_ms, s.p999_ms),
                "cpu": s.server_cpu_pct.map(|c| format!("{:.0}%", c)),
                "verdict": verdict(s),
                "pass": s.pass,
                "slo": s.slo.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let slo: Vec<String> = sw.slo.iter().map(|t| t.to_string()).collect();
    let ctx = json!({
        "title": format!("{}: capacity at {}", r.scenario, slo.join(", ")),
        "page_description": format!("{} swept over {} ({}) against {}: {}.", r.scenario, sw.over, sw.unit, slo.join(", "), sw.ended),
        "scenario": r.scenario,
        "name": r.name,
        "sweep": {"over": sw.over.to_string(), "unit": sw.unit, "variant": sw.variant, "started_at": sw.started_at, "host": sw.host, "ended": sw.ended, "roofline": sw.roofline},
        "slo": slo,
        "knee": knee_text(sw),
        "bare_tcp": bare.map(|b| json!({
            "saturated": metrics::group(b.saturated.round() as i64),
            "knee": b.knee.map(|k| metrics::group(k.round() as i64)),
            "paced_max": b.paced_p99.last().map(|p| metrics::group(p.0.round() as i64)),
        })),
        "chart": chart,
        "steps": steps,
    });
    site.write(&sweep_path(r), "sweep.html", ctx)
}

fn verdict(s: &rtbench_record::sweep::Step) -> &'static str {
    match (s.complete, s.client_bottleneck, s.pass) {
        (false, _, _) => "incomplete",
        (_, true, _) => "load generator the bottleneck",
        (_, _, true) => "met",
        _ => "missed",
    }
}

/// Latency (p50, p99, p99.9) against offered load; x in deliveries/s when
/// every step knows them (a fan-out), so the roofline can stand beside it.
fn curve(site: &mut Site, r: &SweepRecord) -> Option<Value> {
    let sw = &r.sweep;
    let mut steps: Vec<&rtbench_record::sweep::Step> = sw.steps.iter().collect();
    steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let in_deliveries = steps.iter().all(|s| s.offered_deliveries_per_s.is_some());
    let x = |s: &rtbench_record::sweep::Step| {
        if in_deliveries {
            s.offered_deliveries_per_s.unwrap_or(s.offered)
        } else {
            s.offered
        }
    };
    let line = |name: &str, f: fn(&rtbench_record::sweep::Step) -> f64| {
        Series::new(name, steps.iter().map(|s| (x(s), f(s))).collect())
    };
    let bare = in_deliveries.then(|| bare_tcp(site.records, r)).flatten();
    let mut series = vec![
        line("p50", |s| s.p50_ms),
        line("p99", |s| s.p99_ms),
        line("p99.9", |s| s.p999_ms),
    ];
    if let Some(b) = bare.as_ref().filter(|b| !b.paced_p99.is_empty()) {
        series.push(Series::new("bare-TCP p99, paced", b.paced_p99.clone()));
    }
    let mut marks = Vec::new();
    if let Some(knee) = sw.knee_step() {
        marks.push(Mark {
            x: x(knee),
            name: "knee: the most load that met the objectives".into(),
        });
    }
    if let Some(b) = &bare {
        marks.push(Mark {
            x: b.saturated,
            name: "bare-TCP fan-out, one write per delivery".into(),
        });
    }
    let x_desc = if in_deliveries {
        "offered deliveries/s"
    } else {
        sw.unit.as_str()
    };
    let title = format!(
        "latency against offered load ({})",
        sw.slo.first().map_or(String::new(), |t| t.to_string())
    );
    let drawn = chart::capacity_curve(&title, x_desc, &series, &marks);
    site.chart(drawn, &title, "no step measured a latency")
}

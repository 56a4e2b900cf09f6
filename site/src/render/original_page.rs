//! `reference/<name>/beside-rtbench.html`: "rtbench vs the 2021 original",
//! for a reference whose record states its setup. The original beside each
//! headline run of the scenario that repeats it (one per variant), figure by
//! figure: connections, time to target, arrival rate, memory per
//! connection, CPU and machines used; then the climb to the target drawn
//! over the published series, and memory as the connections climbed.
//!
//! The definitions are stated on the page: the original's memory is its
//! server machine's (kernel and server), ours the one machine's that runs
//! both ends; its CPU is its series' last sample, ours the mean over the hold.

use anyhow::Result;
use rtbench_record::metrics;
use serde_json::{Value, json};

use super::runs::{activity, original_href, run_info, session_label, side_by_side};
use super::writer::Site;
use crate::chart::{self, Series};
use crate::figures;
use crate::load::{Reference, ReferenceSetup, Run};
use crate::original::{self, OriginalFigures};
use crate::rows::over_time;

pub(super) fn page(site: &mut Site, r: &Reference) -> Result<()> {
    let (Some(setup), Some(orig)) = (r.info.setup.as_ref(), original::figures(r)) else {
        return Ok(());
    };
    let ours: Vec<&Run> = side_by_side(site.records, &setup.scenario)
        .into_iter()
        .map(|(run, _)| run)
        .collect();
    let rows = rows(setup, &orig, &ours);
    let charts = charts(site, r, setup, &ours);
    let ctx = json!({
        "title": format!("rtbench vs the 2021 original ({})", r.info.title),
        "page_description": format!(
            "rtbench beside {}: {} connections on {} machines then; {} on one machine here. Connections, time to target, memory per connection, CPU, machines and arrival rate, side by side.",
            r.info.title,
            metrics::group(orig.connections as i64),
            orig.machines,
            ours.iter().filter_map(|r| r.summary.as_ref()).map(|s| s.connections.held).max().map_or("none yet".into(), |h| metrics::group(h as i64)),
        ),
        "reference": {"name": r.name, "info": r.info},
        "runs": ours.iter().map(|r| run_info(r)).collect::<Vec<_>>(),
        "rows": rows,
        "charts": charts,
    });
    site.write(&original_href(r), "original.html", ctx)
}

/// One figure: the original's cell, then each of our runs'.
fn row(label: &str, original: String, ours: Vec<String>) -> Value {
    json!({"label": label, "original": original, "ours": ours})
}

fn rows(setup: &ReferenceSetup, orig: &OriginalFigures, ours: &[&Run]) -> Vec<Value> {
    let mut rows = load_rows(setup, orig, ours);
    rows.extend(cost_rows(setup, orig, ours));
    rows
}

/// Each of our runs' cell, "–" where it has none.
fn each(ours: &[&Run], f: impl Fn(&Run) -> Option<String>) -> Vec<String> {
    ours.iter()
        .map(|r| f(r).unwrap_or_else(|| "–".into()))
        .collect()
}

/// What was asked of the servers: connections, how fast, doing what.
fn load_rows(setup: &ReferenceSetup, orig: &OriginalFigures, ours: &[&Run]) -> Vec<Value> {
    let s = |r: &Run| r.summary.clone();
    vec![
        row(
            "connections held",
            metrics::group(orig.connections as i64),
            each(ours, |r| {
                let s = s(r)?;
                Some(format!(
                    "{} of {}",
                    metrics::group(s.connections.held as i64),
                    metrics::group(s.connections.target as i64)
                ))
            }),
        ),
        row(
            "time to target",
            match orig.time_to_target_s {
                Some(t) => format!(
                    "{} s to {} (Tsung samples every 10 s)",
                    metrics::group(t as i64),
                    metrics::group(setup.target_connections as i64)
                ),
                None => "not reached".into(),
            },
            each(ours, |r| {
                Some(figures::by_key("time_to_target_s", &s(r)?).text("s"))
            }),
        ),
        row(
            "arrival rate",
            format!("{}/s", metrics::group(setup.arrival_rate_per_s as i64)),
            each(ours, |r| {
                Some(format!(
                    "{}/s",
                    metrics::group(r.arrival_rate()?.round() as i64)
                ))
            }),
        ),
        row(
            "what each connection did",
            setup.session.clone(),
            each(ours, |r| {
                Some(format!("{}, {}", session_label(r)?, activity(r)?))
            }),
        ),
    ]
}

/// What it cost them: memory, CPU, machines.
fn cost_rows(setup: &ReferenceSetup, orig: &OriginalFigures, ours: &[&Run]) -> Vec<Value> {
    let s = |r: &Run| r.summary.clone();
    vec![
        row(
            "server memory per connection (the server's process)",
            "not published: Tsung reports the machine's".into(),
            each(ours, |r| {
                Some(figures::by_key("server_kib_per_conn", &s(r)?).text("KiB"))
            }),
        ),
        row(
            "machine memory per connection (growth over the connections)",
            format!(
                "{:.1} KiB: the server machine's kernel and server, {} MiB grown (Tsung's MB read as MiB)",
                orig.machine_kib_per_connection,
                metrics::group((orig.memory_end_mib - orig.memory_start_mib).round() as i64)
            ),
            each(ours, |r| {
                Some(format!(
                    "{}: one machine's kernel for both ends of every connection, the server and the load generator",
                    figures::by_key("system_kib_per_conn", &s(r)?).text("KiB")
                ))
            }),
        ),
        row(
            "server CPU while holding",
            format!(
                "{:.1} cores: {:.1}% of {} at the last sample, {} s in",
                orig.cpu_last_cores, orig.cpu_last_pct, setup.server_cores, orig.cpu_last_t_s
            ),
            each(ours, |r| {
                let pct = figures::by_key("server_cpu_pct", &s(r)?).value()?;
                let cores = r.cores().unwrap_or(1.0);
                Some(format!(
                    "{:.2} cores: {:.0}% of the {cores}-core machine, the mean over the hold",
                    pct / 100.0,
                    pct / cores
                ))
            }),
        ),
        row(
            "machines used",
            format!(
                "{}: one {}-core server, {} load machines",
                orig.machines, setup.server_cores, setup.load_machines
            ),
            each(ours, |r| {
                let e = r.environment.as_ref()?;
                Some(format!(
                    "{}: {} cores, {} for the server and the load generator together",
                    r.machines(),
                    e.cores,
                    metrics::format(e.mem_total_kib as f64 / 1048576.0, "GiB")
                ))
            }),
        ),
    ]
}

fn charts(site: &mut Site, r: &Reference, setup: &ReferenceSetup, ours: &[&Run]) -> Vec<Value> {
    let label = |run: &Run| format!("rtbench, {}", run.variant().unwrap_or(&run.name));
    let original = "2021 original".to_string();
    let mut climb = vec![Series::new(original.clone(), r.column(&setup.connections)).backdrop()];
    let mut memory = vec![Series::new(original, original::memory_over_connections(r)).backdrop()];
    for run in ours {
        climb.push(Series::new(
            label(run),
            over_time(&run.timeseries, |t| t.open as f64),
        ));
        // The climb only: up to the first sample at the peak (as the
        // connections close, the line would run back over itself).
        let start = run.server.first().map_or(0, |s| s.mem_used_kib);
        let peak = run
            .server
            .iter()
            .map(|s| s.server_connections)
            .max()
            .unwrap_or(0);
        let climbing = run
            .server
            .iter()
            .position(|s| s.server_connections == peak)
            .map_or(0, |i| i + 1);
        let growth: Vec<(f64, f64)> = run.server[..climbing]
            .iter()
            .map(|s| {
                (
                    s.server_connections as f64,
                    (s.mem_used_kib as f64 - start as f64) / 1024.0,
                )
            })
            .collect();
        memory.push(Series::new(label(run), growth));
    }
    let target = metrics::group(setup.target_connections as i64);
    let mut charts = Vec::new();
    charts.extend(site.chart(
        chart::lines(
            &format!("The climb to {target} connections"),
            "s",
            "connections open",
            &climb,
        ),
        "The climb",
        "no series",
    ));
    charts.extend(site.chart(
        chart::lines(
            "Machine memory used as connections climbed (above the start)",
            "connections",
            "MiB",
            &memory,
        ),
        "Memory as connections climbed",
        "no series",
    ));
    charts
}

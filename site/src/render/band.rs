//! The front page's headline band: the project's main results in the first
//! screen, each figure linking to the run it comes from, and the 2021
//! original beside each one.
//!
//! - The most connections held on one machine, and its sessions.
//! - Server memory per connection in that run, and the machine's.
//! - Fan-out: the most deliveries per second of a full-scale run, labelled
//!   saturated when its record names the limit it ran into. A saturated
//!   rate is not a capacity (its latency is whatever the queues made it);
//!   once sweep records exist, the knee they find (the most load that met a
//!   latency target) is the figure this tile shows, and this rule is its
//!   fallback.

use rtbench_record::metrics;
use serde_json::{Value, json};

use super::runs::{activity, original_href, run_path, session_label};
use super::sweeps::sweep_path;
use crate::chart::approx;
use crate::figures::{self, Figure};
use crate::load::{Records, Reference, Run};
use crate::original::{self, OriginalFigures};

/// The band's tiles, in order; empty before any complete run.
pub fn band(records: &Records) -> Vec<Value> {
    let reference = records.references.iter().find(|r| r.info.setup.is_some());
    let orig = reference.and_then(|r| Some((r, original::figures(r)?)));
    let mut tiles = Vec::new();
    if let Some(run) = most_held(records) {
        tiles.push(connections(run, orig.as_ref()));
        tiles.extend(memory(run, orig.as_ref()));
    }
    tiles.extend(knee(records).or_else(|| fanout(records)));
    if let Some((r, f)) = &orig {
        tiles.push(original_tile(r, f));
    }
    tiles
}

/// The complete run (versus runs aside) that held the most connections on
/// one machine; the newest of equals.
fn most_held(records: &Records) -> Option<&Run> {
    records
        .runs
        .iter()
        .filter(|r| r.complete() && !r.in_group && r.machines() == 1)
        .filter_map(|r| Some((r, r.summary.as_ref()?.connections.held)))
        .max_by_key(|(_, held)| *held)
        .map(|(r, _)| r)
}

fn href(run: &Run) -> String {
    format!("{}/index.html", run_path(run))
}

/// The run's machine: "a 2-core, 24 GiB machine".
fn machine(run: &Run) -> String {
    run.environment.as_ref().map_or("one machine".into(), |e| {
        format!(
            "one {}-core, {} machine",
            e.cores,
            metrics::format(e.mem_total_kib as f64 / 1048576.0, "GiB")
        )
    })
}

fn connections(run: &Run, orig: Option<&(&Reference, OriginalFigures)>) -> Value {
    let s = run
        .summary
        .as_ref()
        .expect("a complete run has its summary");
    let sessions = session_label(run).unwrap_or("sessions");
    let processes = run.environment.as_ref().map_or(1, |e| e.server_processes);
    json!({
        "label": "connections held on one machine",
        "value": metrics::group(s.connections.held as i64),
        "unit": "",
        "href": href(run),
        "detail": format!("{sessions}, {}, on {}: {processes} server processes and the load generator ({} {})",
            activity(run).unwrap_or_default(), machine(run), run.scenario, run.variant().unwrap_or("")),
        "original": orig.map(|(r, f)| json!({
            "text": format!("2021 original: {} on a {}-core server fed by {} load machines",
                metrics::group(f.connections as i64),
                r.info.setup.as_ref().map_or(0, |s| s.server_cores),
                r.info.setup.as_ref().map_or(0, |s| s.load_machines)),
            "href": original_href(r),
        })),
    })
}

fn memory(run: &Run, orig: Option<&(&Reference, OriginalFigures)>) -> Option<Value> {
    let s = run.summary.as_ref()?;
    let Figure::Value(server) = figures::by_key("server_kib_per_conn", s) else {
        return None;
    };
    let machine = figures::by_key("system_kib_per_conn", s).text("KiB");
    let sessions = session_label(run).unwrap_or("sessions");
    Some(json!({
        "label": format!("server memory per connection, {sessions}"),
        "value": approx(server),
        "unit": "KiB",
        "href": href(run),
        "detail": format!("its RSS growth at {} held. The whole machine: {machine}, the kernel for both ends of every connection, the server and the load generator",
            metrics::group(s.connections.held as i64)),
        "original": orig.map(|(r, f)| json!({
            "text": format!("2021 original: {:.1} KiB for its whole server machine", f.machine_kib_per_connection),
            "href": original_href(r),
        })),
    }))
}

/// The most deliveries per second of a complete full-scale run, and
/// whether its record says it was saturated.
fn fanout(records: &Records) -> Option<Value> {
    let (run, s) = records
        .runs
        .iter()
        .filter(|r| r.complete() && !r.in_group)
        .filter_map(|r| Some((r, r.summary.as_ref()?)))
        .filter(|(_, s)| s.overrides.scale.is_none() && s.overrides.connections.is_none())
        .filter(|(_, s)| s.deliveries_per_s > 0.0)
        .max_by(|a, b| a.1.deliveries_per_s.total_cmp(&b.1.deliveries_per_s))?;
    let p99 = figures::by_key("delivery_p99_ms", s).text("ms");
    let held = format!(
        "{} {}",
        metrics::group(s.connections.held as i64),
        session_label(run).unwrap_or("sessions")
    );
    // What limited the hold, in a few words: "the machine's CPU".
    let limit = s.limit.as_ref().and_then(|l| l.over_the_hold());
    let (label, detail) = match limit {
        Some(limit) => (
            "fan-out, saturated",
            format!(
                "limited by {limit}, at delivery p99 {p99}: queues growing, not a rate a latency target allows · {held}"
            ),
        ),
        None => (
            "fan-out, the most measured",
            format!("at delivery p99 {p99} · {held}"),
        ),
    };
    Some(json!({
        "label": label,
        "value": metrics::group(s.deliveries_per_s.round() as i64),
        "unit": "deliveries/s",
        "href": href(run),
        "detail": format!("{detail} ({})", run.scenario),
        "original": {"text": "2021 original: none (its clients only waited; no message was sent)"},
    }))
}

/// The newest fan-out sweep's knee: the deliveries per second received at
/// the most load that met its objectives, with the saturated figure, if
/// any, beside it as a second, labelled one.
fn knee(records: &Records) -> Option<Value> {
    let (r, step) = records
        .sweeps
        .iter()
        .rev()
        .filter(|r| {
            r.sweep
                .steps
                .iter()
                .all(|s| s.offered_deliveries_per_s.is_some())
        })
        .find_map(|r| Some((r, r.sweep.knee_step()?)))?;
    let slo: Vec<String> = r.sweep.slo.iter().map(|t| t.to_string()).collect();
    let saturated = fanout(records).map_or(String::new(), |t| {
        format!(
            " · {}: {} {}",
            t["label"].as_str().unwrap_or(""),
            t["value"].as_str().unwrap_or(""),
            t["unit"].as_str().unwrap_or("")
        )
    });
    Some(json!({
        "label": format!("fan-out at {}", slo.join(", ")),
        "value": metrics::group(step.deliveries_per_s.round() as i64),
        "unit": "deliveries/s",
        "href": sweep_path(r),
        "detail": format!("the knee of a sweep of {}: the most offered load that met the objectives (delivery p99 {:.1} ms there){saturated}", r.scenario, step.p99_ms),
        "original": {"text": "2021 original: none (its clients only waited; no message was sent)"},
    }))
}

fn original_tile(r: &Reference, f: &OriginalFigures) -> Value {
    let setup = r.info.setup.as_ref().expect("figures need a setup");
    json!({
        "label": "the 2021 original",
        "value": f.machines.to_string(),
        "unit": "machines",
        "href": original_href(r),
        "detail": format!("{}: {} connections arriving at {}/s, on a {}-core server and {} load machines. rtbench beside it, figure by figure →",
            r.info.title, metrics::group(f.connections as i64), metrics::group(setup.arrival_rate_per_s as i64), setup.server_cores, setup.load_machines),
        "original": null,
    })
}

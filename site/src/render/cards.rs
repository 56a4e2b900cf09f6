//! A scenario's card on the front page: one sentence saying what it asks,
//! its three key figures, a small chart, its history line, and links to its
//! full table, history and compare pages. Cards come in order of importance
//! (`ORDER`), the scenarios not named there after, by name.
//!
//! What a card shows follows from its runs (`Kind`): a fault plan's storm,
//! servers set side by side, a fan-out's deliveries, or connections held.

use rtbench_record::metrics;
use serde_json::{Value, json};

use super::run_series;
use super::runs::{overrides_label, run_date, run_info, run_path, session_label, side_by_side};
use super::writer::{Site, first_sentence};
use crate::chart::{self, History, Series};
use crate::figures::{self, Figure};
use crate::load::Run;
use crate::regress::{self, Thresholds};
use crate::rows::over_time;

/// The scenarios that tell the story, most important first, each with the
/// question it answers.
const ORDER: [(&str, &str); 10] = [
    (
        "idle-1m",
        "Appwrite's 2021 benchmark on one machine: a million connections, opened and held idle.",
    ),
    (
        "target-2m",
        "Two million arrivals against a server capped at one million, then uncapped: is the cap held, and the rest refused cleanly?",
    ),
    (
        "fanout",
        "Events to signed-in subscribers spread over many channels: delivery latency and rate, each delivery checked against its permissions.",
    ),
    (
        "broadcast",
        "One event to every connection: how soon the first and the last receive it, beside bare TCP's time for as many single writes.",
    ),
    (
        "failover",
        "A server process killed under load: how many clients lose their connection, how soon they are back, which events they miss.",
    ),
    (
        "soak",
        "Hours of churn, 1,000 clients arriving and as many leaving a second, a server and Redis restarted: does any process's memory or descriptors creep?",
    ),
    (
        "peers",
        "rtbench-server beside Node's ws, Python's websockets and tokio-tungstenite, run the same way on the same machine.",
    ),
    (
        "brokers",
        "The servers people deploy, NATS, Mosquitto, RabbitMQ, Socket.IO and Centrifuge, each in its own protocol beside rtbench: memory, delivery latency, cost per delivery, the most each holds.",
    ),
    (
        "fanout-max",
        "Fan-out pushed until the machine saturates: the most deliveries per second, and the latency they come at.",
    ),
    (
        "smoke",
        "A few seconds of every part of a real run: what CI and a new user run first.",
    ),
];

/// How many of `ORDER` lead the page; the rest are ordered by name.
const LEADING: usize = 8;

/// `scenarios` in the order their cards appear.
pub fn ordered(mut scenarios: Vec<String>) -> Vec<String> {
    let rank = |s: &str| {
        ORDER[..LEADING]
            .iter()
            .position(|(n, _)| *n == s)
            .unwrap_or(LEADING)
    };
    scenarios.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    scenarios
}

/// What a scenario's runs show best.
enum Kind {
    /// A fault plan ran: the storm.
    Failover,
    /// Several servers or variants side by side: their memory.
    Variants,
    /// Events were delivered: the rate.
    Fanout,
    /// Connections were opened and held.
    Hold,
}

pub fn card(site: &mut Site, scenario: &str, t: &Thresholds) -> Value {
    let runs: Vec<&Run> = site.records.of(scenario).filter(|r| !r.in_group).collect();
    let latest = runs
        .iter()
        .rev()
        .find(|r| r.complete())
        .or(runs.last())
        .copied();
    let leads = side_by_side(site.records, scenario);
    // The card's run: the full-scale headline run that held the most, else
    // the newest run of any size.
    let lead = leads
        .iter()
        .max_by_key(|(_, s)| s.connections.held)
        .map(|(r, _)| *r)
        .or(latest);
    let servers: std::collections::BTreeSet<String> = leads
        .iter()
        .map(|(_, s)| site.relative(&s.server_under_test))
        .collect();
    let kind = match lead.and_then(|r| r.summary.as_ref()) {
        Some(s) if s.failover.is_some() => Kind::Failover,
        _ if servers.len() >= 2 => Kind::Variants,
        Some(s) if s.deliveries_per_s > 0.0 => Kind::Fanout,
        _ => Kind::Hold,
    };
    let lead_runs: Vec<&Run> = leads.iter().map(|(r, _)| *r).collect();
    let (figures, small) = match (&kind, lead) {
        (Kind::Variants, _) => (variant_figures(site, &lead_runs), variant_chart(&lead_runs)),
        (_, Some(run)) => (key_figures(&kind, run), run_chart(&kind, run)),
        (_, None) => (Vec::new(), Ok(None)),
    };
    let small = site.chart(small, scenario, "no time series in its run");
    let spark = history(site, &runs, [lead, latest], t);
    let sentence = ORDER
        .iter()
        .find(|(n, _)| *n == scenario)
        .map(|(_, s)| s.to_string())
        .or_else(|| latest.and_then(|r| Some(first_sentence(&r.summary.as_ref()?.description))));
    json!({
        "name": scenario,
        "sentence": sentence,
        "figures": figures,
        "chart": small,
        "spark": spark,
        "runs": runs.len(),
        "lead": lead.map(run_info),
        "latest": latest.map(run_info),
        "side_by_side": leads.len() >= 2,
    })
}

fn figure(label: &str, value: String, run: &Run) -> Value {
    json!({"label": label, "value": value, "href": format!("{}/index.html", run_path(run))})
}

/// Three figures of the card's run, by what it shows.
fn key_figures(kind: &Kind, run: &Run) -> Vec<Value> {
    let Some(s) = run.summary.as_ref() else {
        return Vec::new();
    };
    let held = match s.connections.held == s.connections.target {
        true => metrics::group(s.connections.held as i64),
        false => format!(
            "{} of {}",
            metrics::group(s.connections.held as i64),
            metrics::group(s.connections.target as i64)
        ),
    };
    let sessions = session_label(run).unwrap_or("sessions");
    match (kind, &s.failover) {
        (Kind::Failover, Some(f)) => vec![
            figure(
                "connections lost to the fault",
                format!(
                    "{} of {}",
                    metrics::group(f.connections_lost as i64),
                    metrics::group(f.open_before as i64)
                ),
                run,
            ),
            figure(
                "all back after",
                f.recovered_after_s
                    .map_or("never, within the run".into(), |t| metrics::format(t, "s")),
                run,
            ),
            figure(
                "events missed",
                format!(
                    "{:.2}% of {}",
                    100.0 * f.events_missed as f64 / f.events_expected.max(1) as f64,
                    metrics::group(f.events_expected as i64)
                ),
                run,
            ),
        ],
        (Kind::Fanout, _) => vec![
            figure(
                "deliveries per second",
                metrics::group(s.deliveries_per_s.round() as i64),
                run,
            ),
            figure(
                "delivery p99",
                figures::by_key("delivery_p99_ms", s).text("ms"),
                run,
            ),
            figure(&format!("connections held, {sessions}"), held, run),
        ],
        _ => vec![
            figure(&format!("connections held, {sessions}"), held, run),
            figure(
                "server memory per connection",
                figures::by_key("server_kib_per_conn", s).text("KiB"),
                run,
            ),
            figure("time to target", time_to_target(run), run),
        ],
    }
}

/// "501 s at 2,000/s".
fn time_to_target(run: &Run) -> String {
    let Some(s) = run.summary.as_ref() else {
        return "none".into();
    };
    let t = figures::by_key("time_to_target_s", s).text("s");
    match run.arrival_rate() {
        Some(rate) => format!("{t} at {}/s", metrics::group(rate.round() as i64)),
        None => t,
    }
}

/// Server memory per connection across the headline runs: the lowest, the
/// lowest of another server, and how many servers were compared.
fn variant_figures(site: &Site, runs: &[&Run]) -> Vec<Value> {
    let mut kib: Vec<(&Run, f64, String)> = runs
        .iter()
        .filter_map(|r| {
            let s = r.summary.as_ref()?;
            let v = figures::by_key("server_kib_per_conn", s).value()?;
            Some((*r, v, site.relative(&s.server_under_test)))
        })
        .collect();
    kib.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut out = Vec::new();
    let name = |r: &Run| r.variant().unwrap_or(&r.name).to_string();
    if let Some((best, v, server)) = kib.first() {
        out.push(figure(
            &format!("least server memory per connection: {}", name(best)),
            format!("{v:.2} KiB"),
            best,
        ));
        if let Some((next, v, _)) = kib.iter().find(|(_, _, s)| s != server) {
            out.push(figure(
                &format!("the next server: {}", name(next)),
                format!("{v:.2} KiB"),
                next,
            ));
        }
    }
    let servers: std::collections::BTreeSet<&str> = kib.iter().map(|k| k.2.as_str()).collect();
    if let Some((r, _, _)) = kib.first() {
        out.push(figure(
            "servers compared",
            format!("{} in {} runs", servers.len(), kib.len()),
            r,
        ));
    }
    out
}

fn variant_chart(runs: &[&Run]) -> chart::Drawn {
    let mut items: Vec<(String, f64, bool)> = runs
        .iter()
        .filter_map(|r| {
            let s = r.summary.as_ref()?;
            let Figure::Value(v) = figures::by_key("server_kib_per_conn", s) else {
                return None;
            };
            Some((
                r.variant().unwrap_or(&r.name).to_string(),
                v,
                s.server_under_test == "rtbench",
            ))
        })
        .collect();
    items.sort_by(|a, b| a.1.total_cmp(&b.1));
    chart::ranked_bars("Server memory per connection", "KiB", &items)
}

/// The card's run drawn small: its storm, its deliveries, or its climb.
fn run_chart(kind: &Kind, run: &Run) -> chart::Drawn {
    match kind {
        Kind::Failover => match run_series::storm(run) {
            Some(storm) => {
                chart::small_lines("The storm after the fault", "s", "connections", &storm[..1])
            }
            None => Ok(None),
        },
        Kind::Fanout => match run_series::deliveries(run) {
            Some(d) => chart::small_lines("Deliveries per second", "s", "deliveries/s", &[d]),
            None => Ok(None),
        },
        _ => {
            let open = Series::new("", over_time(&run.timeseries, |r| r.open as f64));
            chart::small_lines("Connections open", "s", "connections", &[open])
        }
    }
}

/// The scenario's key latency over the runs made like the card's run (same
/// variant, sizes, host and deployment), regressions marked; if that run has
/// no history yet, over the runs like the newest. None while there is one
/// point: a dot says nothing about a history.
fn history(
    site: &mut Site,
    runs: &[&Run],
    bases: [Option<&Run>; 2],
    t: &Thresholds,
) -> Option<Value> {
    let mut single = None;
    for base in bases.into_iter().flatten() {
        let idle = base
            .summary
            .as_ref()
            .is_none_or(|s| s.delivery_ms.count == 0);
        let metric = figures::metric(if idle {
            "connect_p99_ms"
        } else {
            "delivery_p99_ms"
        });
        let like: Vec<&Run> = runs
            .iter()
            .filter(|r| r.complete() && r.config_key() == base.config_key())
            .filter(|r| r.summary.as_ref().and_then(|s| (metric.get)(s)).is_some())
            .copied()
            .collect();
        let label = format!("{}, {}", metric.label, configuration(base));
        if like.len() < 2 {
            single.get_or_insert(label);
            continue;
        }
        let points: Vec<(f64, f64)> = like
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i as f64, (metric.get)(r.summary.as_ref()?)?)))
            .collect();
        let dates: Vec<String> = like
            .iter()
            .map(|r| run_date(r).unwrap_or_default())
            .collect();
        let marks: Vec<usize> = (0..like.len())
            .filter(|&i| {
                regress::judge(site.records, like[i], t)
                    .regressions()
                    .next()
                    .is_some()
            })
            .collect();
        let h = History {
            label: &label,
            unit: metric.unit,
            points: &points,
            dates: &dates,
            marks: &marks,
        };
        return site.chart(chart::spark(&h), &label, "no history");
    }
    single.map(|label| json!({"empty": format!("{label}: one run so far, no history to draw")}))
}

/// The configuration runs share to be one history: "no-ping, as written".
fn configuration(run: &Run) -> String {
    let s = run.summary.as_ref();
    let sizes = s.map_or("unknown sizes".into(), |s| overrides_label(&s.overrides));
    match run.variant() {
        Some(v) => format!("{v}, {sizes}"),
        None => sizes,
    }
}

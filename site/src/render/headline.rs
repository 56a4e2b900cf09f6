//! A run's headline figures, read against its host's roofline where there
//! is one ("67% of this machine's bare-TCP limit"): the table that leads
//! both the run's own page and, for each variant's headline run, the index.

use rtbench_record::metrics;
use rtbench_record::roofline::Roofline;
use rtbench_record::{BenchSummary, Failover};
use serde_json::{Value, json};

use super::runs::session_label;
use crate::figures::{self, Figure};
use crate::load::Run;

/// A figure as a share of the machine's limit: "67% of ...".
fn share(value: f64, limit: f64) -> String {
    format!("{:.0}%", 100.0 * value / limit)
}

pub fn headline(run: &Run, roofline: Option<&(String, Roofline)>) -> Vec<Value> {
    let Some(s) = run.summary.as_ref() else {
        return Vec::new();
    };
    let sessions = session_label(run).map_or(String::new(), |l| format!(" ({l})"));
    let mut h = vec![row(
        "connected users",
        format!(
            "{} held, {} peak, of {}{sessions}",
            metrics::group(s.connections.held as i64),
            metrics::group(s.connections.peak as i64),
            metrics::group(s.connections.target as i64)
        ),
    )];
    h.extend(circumstances(s));
    if let Some(f) = &s.failover {
        h.extend(failover(f));
    }
    h.extend(timings(run, s, roofline));
    if let Some(b) = &s.broadcast {
        h.extend(broadcast(b));
    }
    h.extend(memory(s, roofline));
    let cpu = figures::by_key("server_cpu_pct", s);
    h.push(row("server CPU while holding", cpu.text("% of a core")));
    let e = &s.errors;
    let n = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    h.push(row("errors", format!(
        "{} failed connects, {} closed by server, {} error frames, {} misdelivered, {} duplicates, {} lost",
        n(&e.failed), n(&e.closed_by_server), n(&e.error_frames), e.misdelivered, e.duplicates,
        e.lost.map_or("unknown".into(), |l| l.to_string()))));
    h.extend(verdicts(s));
    h
}

/// The objectives met or not, what limited the run, and how it closed.
fn verdicts(s: &BenchSummary) -> Vec<Value> {
    let mut h = Vec::new();
    if !s.slo.is_empty() {
        let met = s.slo.iter().filter(|o| o.pass).count();
        let each: Vec<String> = s.slo.iter().map(|o| o.to_string()).collect();
        h.push(row(
            "objectives",
            format!("{met} of {} met: {}", s.slo.len(), each.join("; ")),
        ));
    }
    if let Some(l) = &s.limit {
        h.push(row("what limited the run", l.to_string()));
    }
    if let Some(c) = s.closing.as_ref().filter(|c| c.open > 0) {
        h.push(row(
            "closing",
            format!(
                "{} connections closed in {:.1} s, {} without the server's answer",
                metrics::group(c.open as i64),
                c.seconds,
                metrics::group(c.aborted as i64)
            ),
        ));
    }
    h
}

fn row(label: &str, value: impl Into<Value>) -> Value {
    json!({"label": label, "value": value.into()})
}

/// What else was running, or not, that a reader must know first: another
/// server, processes that died, figures not measured, faults injected.
fn circumstances(s: &BenchSummary) -> Vec<Value> {
    let mut h = Vec::new();
    if s.server_under_test != "rtbench" {
        h.push(row("server under test", s.server_under_test.clone()));
    }
    if !s.process_exits.is_empty() {
        let list: Vec<String> = s
            .process_exits
            .iter()
            .map(|e| format!("{} (pid {}) at {:.1} s: {}", e.role, e.pid, e.t_s, e.status))
            .collect();
        h.push(row("processes that died during the run", list.join("; ")));
    }
    if !s.unmeasured.is_empty() {
        h.push(row("not measured", s.unmeasured.join("; ")));
    }
    if !s.faults_injected.is_empty() {
        let list: Vec<String> = s
            .faults_injected
            .iter()
            .map(|f| format!("{} {} at {} s (pid {})", f.action, f.target, f.at_s, f.pid))
            .collect();
        h.push(row("faults injected (the suite's plan)", list.join("; ")));
    }
    h
}

/// A fault plan's storm: what was lost, how long it took to come back.
fn failover(f: &Failover) -> Vec<Value> {
    vec![
        row(
            "failover: connections lost",
            format!(
                "{} of {}, all back after {}",
                metrics::group(f.connections_lost as i64),
                metrics::group(f.open_before as i64),
                f.recovered_after_s
                    .map_or("never, within the run".into(), |t| metrics::format(t, "s"))
            ),
        ),
        row(
            "failover: each client's wait, loss to open again (p50 / p99 / p99.9)",
            format!(
                "{} / {} / {} ms ({} reconnections)",
                figures::ms(f.reconnect_ms.p50),
                figures::ms(f.reconnect_ms.p99),
                figures::ms(f.reconnect_ms.p999),
                metrics::group(f.reconnects as i64)
            ),
        ),
        row(
            "failover: events missed (no replay in the protocol)",
            format!(
                "{} of {} sent to subscribers ({:.3}%), {} duplicates",
                metrics::group(f.events_missed as i64),
                metrics::group(f.events_expected as i64),
                100.0 * f.events_missed as f64 / (f.events_expected.max(1)) as f64,
                metrics::group(f.duplicates as i64)
            ),
        ),
        row(
            "failover: subscribers who missed events",
            format!(
                "{} of {}, at most {} missed by one",
                metrics::group(f.subscribers_missing_events as i64),
                metrics::group(f.open_before as i64),
                metrics::group(f.most_missed_by_one as i64)
            ),
        ),
        row(
            "failover: servers at their peak, from the fault on",
            format!(
                "{:.0}% of a core, {} RSS",
                f.servers_cpu_peak_pct,
                metrics::format(f.servers_rss_peak_kib as f64 / 1024.0, "MiB")
            ),
        ),
    ]
}

/// Time to target, traffic, latencies and deliveries. Every figure is
/// shown, absent ones saying so (`figures`): an idle run's delivery is
/// "none", not a missing row a reader must notice.
fn timings(run: &Run, s: &BenchSummary, roofline: Option<&(String, Roofline)>) -> Vec<Value> {
    let mut h = vec![row(
        "time to target",
        figures::by_key("time_to_target_s", s).text("s"),
    )];
    if let Some(l) = &run.load {
        let mb = |b: u64| metrics::format(b as f64 / 1e6, "MB");
        h.push(row(
            "total traffic (client side)",
            format!(
                "{} received, {} sent",
                mb(l.counters.bytes_in),
                mb(l.counters.bytes_out)
            ),
        ));
    }
    h.push(row(
        "connect p50 / p99 / p99.9",
        figures::latency(&s.connect_ms),
    ));
    h.push(row(
        "round trip p50 / p99 / p99.9 (ping or echo)",
        figures::latency(&s.round_trip_ms),
    ));
    h.push(row(
        "delivery p50 / p99 / p99.9",
        figures::latency(&s.delivery_ms),
    ));
    h.push(row("deliveries", deliveries(run, s, roofline)));
    h
}

/// A broadcast's bursts over its events (median, and the slowest), and the
/// time to last delivery beside bare TCP's for as many single writes, with
/// the roofline the record read.
fn broadcast(b: &rtbench_record::broadcast::Broadcast) -> Vec<Value> {
    let ms = |s: &rtbench_record::roofline::Spread| {
        format!(
            "{} ms (median; {} to {})",
            figures::ms(s.median),
            figures::ms(s.min),
            figures::ms(s.max)
        )
    };
    let mut h = vec![
        row(
            format!(
                "broadcast: time to first delivery, {} events",
                b.events.len()
            )
            .as_str(),
            ms(&b.to_first_ms),
        ),
        row("broadcast: time to last delivery", ms(&b.to_last_ms)),
        row(
            "broadcast: deliveries/s, first to last",
            format!("{} (median)", metrics::format(b.per_second.median, "/s")),
        ),
    ];
    if let Some(t) = &b.bare_tcp {
        h.push(row(
            "broadcast: beside bare TCP",
            format!(
                "{} single writes of {} B take {} ms at {}/s: the last delivery came after {:.2}x that [roofline {}]",
                metrics::group(t.deliveries as i64),
                t.size,
                figures::ms(t.writes_ms),
                metrics::group(t.one_write_per_s.round() as i64),
                t.to_last_ratio,
                t.roofline
            ),
        ));
    }
    h
}

/// The server's and the machine's memory per connection, the machine's
/// read against a bare-TCP connection pair on the same host.
fn memory(s: &BenchSummary, roofline: Option<&(String, Roofline)>) -> Vec<Value> {
    let server = match figures::by_key("server_kib_per_conn", s) {
        Figure::Value(v) => format!(
            "{v:.2} KiB ({} process(es), peak RSS {})",
            s.server.processes,
            metrics::format(s.server.rss_peak_kib as f64 / 1024.0, "MiB")
        ),
        absent => absent.text("KiB"),
    };
    let machine = match figures::by_key("system_kib_per_conn", s) {
        Figure::Value(v) => {
            let mut machine = format!("{v:.2} KiB (kernel, server and load generator)");
            if let Some((name, r)) = roofline {
                let bare = r.measured.pairs.kernel_kib_per_pair.median;
                if bare > 0.0 {
                    machine.push_str(&format!(
                        ": {} of this machine's bare-TCP connection pair ({bare:.2} KiB) [roofline {name}]",
                        share(v, bare)
                    ));
                }
            }
            machine
        }
        absent => absent.text("KiB"),
    };
    vec![
        row("server memory per connection", server),
        row("machine memory per connection", machine),
    ]
}

/// Deliveries per second, read against the bare-TCP fan-out for the frames
/// this run received; "none" for a run that published no events.
fn deliveries(run: &Run, s: &BenchSummary, roofline: Option<&(String, Roofline)>) -> String {
    let figure = figures::by_key("deliveries_per_s", s);
    let Figure::Value(per_s) = figure else {
        return figure.text("/s");
    };
    let mut value = metrics::format(per_s, "/s");
    let size = run
        .load
        .as_ref()
        .filter(|l| l.counters.frames_in > 0)
        .map_or(200, |l| {
            (l.counters.bytes_in / l.counters.frames_in) as usize
        });
    let connections = run.load.as_ref().map_or(0, |l| l.connections.held);
    if let Some((name, r)) = roofline {
        let at = |k: usize| {
            r.measured
                .fanout_for(size, k, connections)
                .map(|f| (f.size, f.deliveries_per_s.median))
        };
        if let Some((bytes, one)) = at(1) {
            value.push_str(&format!(
                ": {} of this machine's bare-TCP limit at one write per delivery ({}/s, {bytes} B)",
                share(per_s, one),
                metrics::group(one.round() as i64)
            ));
            if let Some((_, four)) = at(4) {
                value.push_str(&format!(
                    ", {} of it at 4 per write ({}/s)",
                    share(per_s, four),
                    metrics::group(four.round() as i64)
                ));
            }
            value.push_str(&format!(" [roofline {name}]"));
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtbench_record::broadcast::{BareTcp, Broadcast};
    use rtbench_record::load::Burst;
    use rtbench_record::roofline::Spread;

    #[test]
    fn a_broadcast_reads_its_last_delivery_against_bare_tcp() {
        let burst = |seq, to_last_ms| Burst {
            seq,
            received: 100_000,
            to_first_ms: 0.4,
            to_last_ms,
            per_second: 1e8 / to_last_ms,
        };
        let b = Broadcast {
            events: vec![burst(0, 900.0), burst(1, 1000.0)],
            to_first_ms: Spread::of(vec![0.4, 0.4]),
            to_last_ms: Spread::of(vec![900.0, 1000.0]),
            per_second: Spread::of(vec![1e5, 1.1e5]),
            bare_tcp: Some(BareTcp {
                roofline: "2026-12-06T075103Z-vm".into(),
                size: 200,
                one_write_per_s: 125_000.0,
                deliveries: 100_000,
                writes_ms: 800.0,
                to_last_ratio: 950.0 / 800.0,
            }),
        };
        let rows: Vec<String> = broadcast(&b)
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r["label"].as_str().unwrap(),
                    r["value"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            rows[0],
            "broadcast: time to first delivery, 2 events: 0.40 ms (median; 0.40 to 0.40)"
        );
        assert_eq!(
            rows[1],
            "broadcast: time to last delivery: 950 ms (median; 900 to 1000)"
        );
        assert_eq!(
            rows[3],
            "broadcast: beside bare TCP: 100,000 single writes of 200 B take 800 ms at 125,000/s: the last delivery came after 1.19x that [roofline 2026-12-06T075103Z-vm]"
        );
    }
}

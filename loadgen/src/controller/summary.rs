//! The run's summary: the workers' final reports added up, the seconds'
//! rows read for peak, held and time to target, what was published set
//! against what was received, and the self-check's verdict; then the lines
//! a person reads at the end of a run.

use std::collections::BTreeMap;

use rtbench_record::load::{
    Bottleneck, Burst, Closing, Connections, EventSpan, Events, FORMAT_VERSION, LoadgenSelf,
    StopCause, Summary,
};
use rtbench_record::scenario::Scenario;

use super::merge::Merge;
use super::selfcheck;
use crate::publisher::Published;
use crate::stats::{Counters, Hists, percentiles_ms};
use crate::sys::{self, now_ns};
use crate::wire::Report;

/// How the run ended, as the controller saw it.
pub(super) struct Ending {
    pub started_at: String,
    /// The schedule's start (CLOCK_REALTIME ns).
    pub start_ns: u64,
    /// Every worker reported its final, and no signal stopped the run.
    pub complete: bool,
    pub stopped_by: Option<StopCause>,
    /// Why the client may have been the limit (workers that died, a port
    /// search warning).
    pub client_limits: Vec<String>,
}

/// The workers' final reports, added up.
#[derive(Default)]
struct Finals {
    counters: Counters,
    hists: Hists,
    cpu_s: f64,
    start_rss_kib: u64,
    peak_rss_kib: u64,
    by_subscriber: BTreeMap<u32, u64>,
    /// Each timed event over every worker, by sequence.
    spans: BTreeMap<u64, EventSpan>,
    closing: Closing,
}

impl Finals {
    fn add_up(merge: &Merge) -> Result<Finals, String> {
        let mut f = Finals::default();
        for r in merge.finals.values() {
            if let Report::Final {
                counters,
                hists,
                cpu_s,
                rss_start_kib,
                peak_rss_kib,
                received_by_subscriber,
                events,
                closing,
                ..
            } = r
            {
                for e in events {
                    f.spans.entry(e.seq).or_default().add(e);
                }
                f.closing.add(closing);
                for (k, n) in received_by_subscriber {
                    *f.by_subscriber.entry(*k).or_default() += n;
                }
                f.start_rss_kib += rss_start_kib;
                f.counters.add(counters);
                f.hists.add_encoded(hists)?;
                f.cpu_s += cpu_s;
                f.peak_rss_kib += peak_rss_kib;
            }
        }
        Ok(f)
    }
}

/// Why the client may have been the bottleneck: the self-check's rules
/// over what the workers and the publisher reported.
fn client_reasons(merge: &Merge, published: &Published, f: &Finals, end: &Ending) -> Vec<String> {
    let mut reasons = selfcheck::cpu_reasons(&merge.saturated, Some(merge.cpu_max));
    reasons.extend(selfcheck::arrival_lag_reason(&percentiles_ms(
        &f.hists.arrival_lag,
    )));
    reasons.extend(selfcheck::read_wait_reason(&percentiles_ms(
        &f.hists.read_wait,
    )));
    reasons.extend(selfcheck::publish_lag_reason(
        published.lag_max_ns as f64 / 1e6,
    ));
    let sent = published.events + published.errors.values().sum::<u64>();
    if end.complete && sent < published.scheduled {
        reasons.push(format!(
            "{sent} of {} scheduled events were sent",
            published.scheduled
        ));
    }
    if f.counters.pings_skipped > 0 {
        reasons.push(format!(
            "{} pings or echoes not sent: sockets would block",
            f.counters.pings_skipped
        ));
    }
    if merge.bad_lines > 0 {
        reasons.push(format!(
            "{} worker lines could not be read",
            merge.bad_lines
        ));
    }
    reasons.extend(end.client_limits.iter().cloned());
    reasons
}

/// The headline figures of a run (`summary.json`), `worker_exits` left for
/// the caller.
pub(super) fn summarize(
    sc: &Scenario,
    name: &str,
    workers: u64,
    merge: &Merge,
    published: &Published,
    end: Ending,
) -> Result<Summary, String> {
    let f = Finals::add_up(merge)?;
    let reasons = client_reasons(merge, published, &f, &end);
    let Finals {
        counters,
        hists,
        cpu_s,
        start_rss_kib,
        peak_rss_kib,
        by_subscriber,
        spans,
        closing,
    } = f;
    let arrival_lag = percentiles_ms(&hists.arrival_lag);
    let target = sc.total_arrivals();
    let peak_open = merge.seen.peak_open;
    let held = merge.seen.held;
    let time_to_target_s = merge.seen.time_to_target_s;
    let cpu_max = merge.cpu_max;
    let arrivals_s = sc.arrivals_end_s();
    let duration_s = now_ns().saturating_sub(end.start_ns) as f64 / 1e9;
    let mut summary = Summary {
        format_version: FORMAT_VERSION,
        complete: end.complete,
        stopped_by: end.stopped_by,
        scenario: name.to_string(),
        description: sc.description.clone(),
        protocol: sc.target.protocol.name().into(),
        targets: sc.target.urls.clone(),
        started_at: end.started_at,
        schedule_start_unix_ns: end.start_ns,
        duration_s,
        workers,
        clock: format!(
            "CLOCK_REALTIME of {}: publisher and receivers on one host",
            sys::hostname()
        ),
        connections: Connections {
            target,
            attempted: counters.attempted,
            connected: counters.connected,
            failed: counters.failed_total(),
            peak_open,
            held,
            time_to_target_s,
            connect_rate: counters.connected.min(target) as f64 / arrivals_s,
        },
        connect_ms: percentiles_ms(&hists.connect),
        connect_attempt_ms: percentiles_ms(&hists.connect_attempt),
        delivery_ms: percentiles_ms(&hists.delivery),
        echo_ms: percentiles_ms(&hists.echo),
        reconnect_ms: percentiles_ms(&hists.reconnect),
        read_wait_ms: percentiles_ms(&hists.read_wait),
        bursts: spans.values().map(Burst::of).collect(),
        events: events(sc, published, &counters, by_subscriber),
        loadgen: LoadgenSelf {
            start_rss_kib,
            peak_rss_kib,
            kib_per_connection: if peak_open > 0 {
                peak_rss_kib.saturating_sub(start_rss_kib) as f64 / peak_open as f64
            } else {
                0.0
            },
            cpu_s,
            worker_cpu_max_pct: cpu_max,
            arrival_lag_max_ms: arrival_lag.max,
            arrival_lag_ms: arrival_lag,
        },
        client_bottleneck: Bottleneck {
            bottleneck: !reasons.is_empty(),
            reasons,
        },
        echo_mismatch: counters.echo_mismatch(),
        counters,
        worker_exits: Vec::new(),
        slo: Vec::new(),
        closing,
    };
    summary.slo = super::slo::evaluate(&sc.slo, &hists, &summary);
    Ok(summary)
}

/// What was published set against what was received.
fn events(
    sc: &Scenario,
    published: &Published,
    counters: &Counters,
    by_subscriber: BTreeMap<u32, u64>,
) -> Events {
    Events {
        scheduled: published.scheduled,
        published: published.events,
        server_deliveries: published.server_deliveries,
        received: counters.deliveries,
        per_second: counters.deliveries as f64 / sc.hold.duration_s.max(1.0),
        duplicates: counters.duplicates,
        misdelivered: counters.misdelivered,
        lost: (published.unreported == 0)
            .then(|| published.server_deliveries as i64 - counters.deliveries as i64),
        publish_errors: published.errors.clone(),
        publish_lag_max_ms: published.lag_max_ns as f64 / 1e6,
        in_flight_max: published.in_flight_max,
        in_flight_cap: published.in_flight_cap,
        received_by_subscriber: by_subscriber,
        refused: published.refused,
        span_expected: counters.span_expected,
        span_missed: counters.span_missed,
        span_missed_uncertain: published
            .uncertain
            .iter()
            .filter_map(|seq| counters.missed_by_seq.get(seq))
            .sum(),
        missed_by_seq: counters
            .missed_by_seq
            .iter()
            .take(20)
            .map(|(s, n)| (*s, *n))
            .collect(),
    }
}

/// The summary in a few lines on stderr.
pub(super) fn print_summary(s: &Summary) {
    for o in &s.slo {
        eprintln!("rtbench-loadgen: SLO {o}");
    }
    let c = &s.connections;
    eprintln!(
        "rtbench-loadgen: {} connected {}/{} (peak {}, held {}), failed {}, connect p50 {:.2} ms p99 {:.2} ms",
        if s.complete {
            "complete:"
        } else {
            "INCOMPLETE:"
        },
        c.connected,
        c.target,
        c.peak_open,
        c.held,
        c.failed,
        s.connect_ms.p50,
        s.connect_ms.p99
    );
    if s.events.scheduled > 0 {
        eprintln!(
            "rtbench-loadgen: events {} of {} scheduled published (lag max {:.1} ms), {} received ({:.0}/s), delivery p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms, duplicates {}, misdelivered {}",
            s.events.published,
            s.events.scheduled,
            s.events.publish_lag_max_ms,
            s.events.received,
            s.events.per_second,
            s.delivery_ms.p50,
            s.delivery_ms.p99,
            s.delivery_ms.p999,
            s.events.duplicates,
            s.events.misdelivered
        );
    }
    for b in &s.bursts {
        eprintln!(
            "rtbench-loadgen: event {}: {} received, first after {:.1} ms, last after {:.1} ms, {:.0} deliveries/s between",
            b.seq, b.received, b.to_first_ms, b.to_last_ms, b.per_second
        );
    }
    let cl = &s.closing;
    eprintln!(
        "rtbench-loadgen: closing: {} connections closed in {:.1} s, {} without the server's answer",
        cl.open, cl.seconds, cl.aborted
    );
    eprintln!(
        "rtbench-loadgen: load generator: {:.2} KiB/connection, peak worker CPU {:.0}%, read wait p50 {:.2} ms p99 {:.2} ms",
        s.loadgen.kib_per_connection,
        s.loadgen.worker_cpu_max_pct,
        s.read_wait_ms.p50,
        s.read_wait_ms.p99
    );
    if let Some(m) = &s.echo_mismatch {
        eprintln!("rtbench-loadgen: ECHOES NEVER MATCHED: {m}");
    }
    for r in &s.client_bottleneck.reasons {
        eprintln!("rtbench-loadgen: CLIENT BOTTLENECK: {r}");
    }
}

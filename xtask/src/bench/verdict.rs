//! The judgement of a run: from the load generator's record and the
//! server samples, the figures the bench record states (memory and CPU over
//! the hold, costs per delivery or ping) and `limit`, what limited the run.
//! Pure functions of what was measured, apart from the host id, so that a
//! verdict can be read without a run's processes.

use std::collections::BTreeMap;

use rtbench_record::limit::{Causes, Limit};
use rtbench_record::load::{Summary as LoadSummary, TimeseriesRow};
use rtbench_record::{FaultDone, ProcessExit, Role, StopCause};

use crate::record;
use crate::sample::{Sample, Work};
use crate::suite::Suite;
use rtbench_record::{
    BenchSummary, Connections, ProcessFigures, RedisFigures, ServerFigures, SystemFigures,
};

use super::plan::RunPlan;

/// Everything a run measured, as the judgement reads it.
pub struct Measured<'a> {
    /// The load generator's summary.
    pub load: &'a LoadSummary,
    /// Its seconds (read only when a fault plan ran: the storm's figures).
    pub rows: &'a [TimeseriesRow],
    /// The servers and the machine, one a second.
    pub samples: &'a [Sample],
    /// Wall-clock time of the samples' t_s = 0.
    pub sampler_start_unix_ns: u64,
    /// The servers' work over the whole run (None unless all answered).
    pub work: Option<Work>,
    pub tcp_before: &'a BTreeMap<String, u64>,
    pub tcp_after: &'a BTreeMap<String, u64>,
    /// Processes that ended on their own during the run.
    pub exits: Vec<ProcessExit>,
    /// What the fault plan did, and whether it killed any process.
    pub faults_done: Vec<FaultDone>,
    pub killed_any: bool,
    /// The signal that ended the run early, if one did.
    pub interrupted: Option<StopCause>,
    /// The host's newest roofline (its directory name): a broadcast's
    /// bursts are read against it.
    pub roofline: Option<&'a (String, rtbench_record::roofline::Roofline)>,
}

/// The record's summary of a run: what it measured, judged.
pub fn judge(
    plan: &RunPlan,
    suite: &Suite,
    overrides: rtbench_record::Overrides,
    m: Measured,
) -> BenchSummary {
    let l = m.load;
    // The hold on the sampler's clock: the load generator's schedule starts a
    // moment after it is launched, and it records exactly when.
    let schedule_s = l
        .schedule_start_unix_ns
        .saturating_sub(m.sampler_start_unix_ns) as f64
        / 1e9;
    let hold = (
        schedule_s + plan.load.arrivals_end_s() + 1.0,
        schedule_s + plan.load.hold_end_s() - 0.5,
    );
    let mut summary = summarize(plan, suite, overrides, &m, hold);
    summary.errors.lost = m
        .work
        .map(|w| w.deliveries as i64 - l.events.received as i64);
    summary.kernel_tcp = m
        .tcp_after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(m.tcp_before.get(k).copied().unwrap_or(*v));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect();
    judge_connecting(
        &mut summary,
        m.samples,
        (schedule_s + 1.0, schedule_s + plan.load.arrivals_end_s()),
        l.connections.connect_rate,
    );
    // A churn run's events are judged per connection (its `soak`), not
    // against every subscriber of the whole run.
    if !m.faults_done.is_empty() && !plan.load.session.churns() {
        summary.failover = crate::faults::failover(
            &m.faults_done,
            m.rows,
            m.samples,
            schedule_s,
            plan.load.hold_end_s(),
            l,
        );
    }
    if m.killed_any {
        // A killed process's delivery count died with it: the servers'
        // deliveries against the clients' would be meaningless.
        summary.errors.lost = None;
    }
    summary.broadcast = broadcast(plan, l, m.roofline);
    if plan.load.session.churns() {
        summary.soak = Some(soak(plan, l, m.samples, &m.faults_done, schedule_s));
    }
    summary.faults_injected = m.faults_done;
    summary.server_under_test = plan.subject.label();
    summary.unmeasured = plan.subject.unmeasured();
    let end_s = m.samples.last().map_or(0.0, |s| s.t_s);
    let mut exits = m.exits;
    for w in &l.worker_exits {
        let role = Role::Worker {
            index: w.worker,
            host: match w.host.as_str() {
                "" | "localhost" => None,
                host => Some(host.to_string()),
            },
        };
        // A worker the bench already named (its swarm node was lost) is
        // one exit, with what the load generator saw of it after.
        match exits.iter_mut().find(|e| e.role == role) {
            Some(e) => e.status = format!("{}; {}", e.status, w.status),
            None => exits.push(ProcessExit {
                t_s: end_s,
                role,
                pid: w.pid,
                status: w.status.clone(),
                cause: None,
            }),
        }
    }
    if !exits.is_empty() {
        summary.complete = false;
    }
    summary.process_exits = exits;
    summary
}

/// A churn run's soak section: the churn and events from the load
/// generator, the drift fitted to every process's series after warm-up
/// (the arrivals' ramp, then one and a half lifetimes and the drop hold,
/// until the population has settled; as long again after the last server
/// restart, whose reconnect storm moves every process's figures) up to
/// the end of the hold.
fn soak(
    plan: &RunPlan,
    l: &LoadSummary,
    samples: &[Sample],
    faults: &[FaultDone],
    schedule_s: f64,
) -> rtbench_record::drift::Soak {
    let sc = &plan.load;
    let settle_s = 1.5 * sc.session.lifetime_s + sc.session.drop_hold_s;
    let storm_s = faults
        .iter()
        .filter(|f| matches!(f.target, Role::Server(_)))
        .map(|f| f.t_s)
        .fold(0.0, f64::max);
    let from_s = (schedule_s + sc.arrivals_end_s()).max(storm_s) + settle_s;
    let to_s = schedule_s + sc.hold_end_s() - 0.5;
    let rows: Vec<_> = samples
        .iter()
        .flat_map(|s| s.processes.iter().cloned())
        .collect();
    let c = &l.counters;
    rtbench_record::drift::Soak {
        connected: c.connected,
        left_closed: c.left_closed,
        left_dropped: c.left_dropped,
        leaves_per_s: (c.left_closed + c.left_dropped) as f64 / sc.hold_end_s().max(1.0),
        drops_unreaped: c.drops_unreaped,
        events_published: l.events.published,
        events_refused: l.events.refused,
        events_expected: l.events.span_expected,
        events_missed: l
            .events
            .span_missed
            .saturating_sub(l.events.span_missed_uncertain),
        events_missed_uncertain: l.events.span_missed_uncertain,
        missed_by_seq: l.events.missed_by_seq.clone(),
        duplicates: l.events.duplicates,
        drift: rtbench_record::drift::judge(&rows, from_s, to_s, settle_s),
    }
}

/// A broadcast's bursts, read against bare TCP at the size of the events'
/// payload, as a sweep's knee is (the frames around them are larger, and
/// bare TCP is slower with larger messages: this errs against the server).
fn broadcast(
    plan: &RunPlan,
    l: &LoadSummary,
    roofline: Option<&(String, rtbench_record::roofline::Roofline)>,
) -> Option<rtbench_record::broadcast::Broadcast> {
    let payload = plan.load.publishers.first().map_or(0, |p| p.payload_bytes);
    rtbench_record::broadcast::Broadcast::of(
        &l.bursts,
        roofline.map(|(name, r)| (name.as_str(), r)),
        payload,
    )
}

/// The figures over the hold (`hold`: its span on the sampler's clock).
fn summarize(
    plan: &RunPlan,
    suite: &Suite,
    overrides: rtbench_record::Overrides,
    m: &Measured,
    hold: (f64, f64),
) -> BenchSummary {
    let (l, samples) = (m.load, m.samples);
    let before = samples.first().cloned().unwrap_or_default();
    // Memory is judged while the connections are held: closing allocates too
    // (close frames, timers), and that is not what holding a connection costs.
    let in_hold: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_s >= hold.0 && s.t_s <= hold.1)
        .collect();
    let judged: Vec<&Sample> = if in_hold.is_empty() {
        samples.iter().collect()
    } else {
        in_hold.clone()
    };
    // The server's own count; a server that exports none (not rtbench) is
    // judged by the clients' count of open connections.
    let peak_conns = match judged.iter().map(|s| s.server_connections).max() {
        Some(n) if n > 0 => n,
        _ => l.connections.peak_open,
    };
    let mem_peak = judged.iter().map(|s| s.mem_used_kib).max().unwrap_or(0);
    BenchSummary {
        format_version: rtbench_record::FORMAT_VERSION,
        scenario: plan.name.clone(),
        variant: plan.variant.as_ref().map(|v| v.name.clone()),
        description: suite.description.trim().to_string(),
        complete: l.complete && m.interrupted.is_none(),
        stopped_by: m.interrupted.or(l.stopped_by),
        started_at: l.started_at.clone(),
        host: crate::record::host_id(),
        overrides,
        connections: Connections {
            target: l.connections.target,
            peak: l.connections.peak_open,
            held: l.connections.held,
            failed: l.connections.failed,
            time_to_target_s: l.connections.time_to_target_s,
        },
        connect_ms: record::latency(&l.connect_ms),
        delivery_ms: record::latency(&l.delivery_ms),
        round_trip_ms: record::latency(&l.echo_ms),
        reconnect_ms: record::latency(&l.reconnect_ms),
        deliveries_per_s: l.events.per_second,
        server: server_figures(samples, &judged, &in_hold, peak_conns),
        system: SystemFigures {
            mem_used_before_kib: before.mem_used_kib,
            mem_used_peak_kib: mem_peak,
            kib_per_connection: per_connection(
                mem_peak.saturating_sub(before.mem_used_kib),
                peak_conns,
            ),
            tcp_mem_peak_kib: judged.iter().map(|s| s.tcp_mem_kib).max().unwrap_or(0),
        },
        errors: record::errors(l),
        client_bottleneck: l.client_bottleneck.clone(),
        costs: costs(&in_hold, m.work, l),
        loadgen: rtbench_record::LoadgenFigures {
            kib_per_connection: (l.connections.peak_open > 0)
                .then_some(l.loadgen.kib_per_connection),
            workers: l.workers,
            cpu_s: l.loadgen.cpu_s,
            worker_cpu_max_pct: l.loadgen.worker_cpu_max_pct,
        },
        limit: limit(&in_hold, l).map(|c| Causes::Found(vec![c])),
        server_under_test: "rtbench".into(),
        unmeasured: Vec::new(),
        process_exits: Vec::new(),
        kernel_tcp: Default::default(),
        faults_injected: Vec::new(),
        failover: None,
        slo: l.slo.clone(),
        broadcast: None,
        closing: Some(l.closing.clone()),
        soak: None,
    }
}

/// The server's figures over the hold: per process, Redis beside it, and the
/// memory a connection costs (`peak_conns`: the connections it is judged by).
fn server_figures(
    samples: &[Sample],
    judged: &[&Sample],
    in_hold: &[&Sample],
    peak_conns: u64,
) -> ServerFigures {
    let before = samples.first().cloned().unwrap_or_default();
    let rss_peak = judged.iter().map(|s| s.server_rss_kib).max().unwrap_or(0);
    ServerFigures {
        processes: samples.first().map_or(1, |s| s.per_process.len() as u64),
        per_process: per_process(samples, judged),
        redis: samples
            .iter()
            .any(|s| s.redis_rss_kib > 0)
            .then(|| RedisFigures {
                rss_peak_kib: judged.iter().map(|s| s.redis_rss_kib).max().unwrap_or(0),
                cpu_holding_pct: mean(in_hold.iter().map(|s| s.redis_cpu_pct)),
            }),
        rss_before_kib: before.server_rss_kib,
        rss_peak_kib: rss_peak,
        kib_per_connection: per_connection(
            rss_peak.saturating_sub(before.server_rss_kib),
            peak_conns,
        ),
        cpu_holding_pct: mean(in_hold.iter().map(|s| s.server_cpu_pct)),
    }
}

/// `delta` KiB spread over `conns` connections (0 with none).
fn per_connection(delta: u64, conns: u64) -> f64 {
    if conns > 0 {
        delta as f64 / conns as f64
    } else {
        0.0
    }
}

/// What limited the run: the load generator (its self-check fired; with
/// the machine's CPU when that was saturated too, for the two share it),
/// the machine's CPU (busy over the hold while the client kept its
/// schedule: the server's figures are its limit here), or nothing.
fn limit(in_hold: &[&Sample], l: &LoadSummary) -> Option<Limit> {
    let busy = mean(in_hold.iter().skip(1).map(|s| s.machine_cpu_pct));
    if l.client_bottleneck.bottleneck {
        return Some(Limit::LoadGenerator {
            reasons: l.client_bottleneck.reasons.clone(),
            machine_busy_pct: busy.filter(|b| *b >= SATURATED_PCT),
        });
    }
    let busy_pct = busy?;
    let server = mean(in_hold.iter().skip(1).map(|s| s.server_cpu_pct)).unwrap_or(0.0);
    let server_cores = server / 100.0;
    Some(if busy_pct >= SATURATED_PCT {
        Limit::MachineCpu {
            busy_pct,
            server_cores,
        }
    } else {
        Limit::Nothing {
            busy_pct,
            server_cores,
        }
    })
}

/// Machine CPU busy (100 = every core) from which a run is CPU-bound.
const SATURATED_PCT: f64 = 90.0;

/// What the work cost. Per delivery: the servers' CPU over the hold
/// divided by the deliveries the clients received per second, and their
/// syscalls and wake-ups over the whole run divided by their deliveries
/// (`work`: their counters, read at the end).
/// In a run without events, the same per ping, over the hold. The load
/// generator's syscalls are divided the same way over its whole run.
fn costs(in_hold: &[&Sample], work: Option<Work>, l: &LoadSummary) -> rtbench_record::Costs {
    let cpu_pct = mean(in_hold.iter().skip(1).map(|s| s.server_cpu_pct));
    let per = |x: f64, n: f64| (n > 0.0).then(|| x / n);
    let c = &l.counters;
    let loadgen_syscalls = (c.reads + c.writes) as f64;
    let mut out = rtbench_record::Costs::default();
    if l.events.received > 0 {
        out.deliveries = work.map_or(l.events.received, |w| w.deliveries);
        out.server_cpu_us_per_delivery = cpu_pct.and_then(|p| per(p * 1e4, l.events.per_second));
        if let Some(w) = work {
            out.server_syscalls_per_delivery =
                per((w.reads + w.writes) as f64, w.deliveries as f64);
            out.server_wakeups_per_delivery = per(w.wakeups as f64, w.deliveries as f64);
        }
        out.loadgen_syscalls_per_delivery = per(loadgen_syscalls, l.events.received as f64);
    } else if let (Some(first), Some(last)) = (in_hold.first(), in_hold.last()) {
        let pings = last.server_pongs.saturating_sub(first.server_pongs);
        let span = last.t_s - first.t_s;
        let syscalls = (last.server_reads + last.server_writes)
            .saturating_sub(first.server_reads + first.server_writes);
        out.pings = pings;
        out.server_cpu_us_per_ping = cpu_pct.and_then(|p| per(p * 1e4, pings as f64 / span));
        out.server_syscalls_per_ping = per(syscalls as f64, pings as f64);
        out.loadgen_syscalls_per_ping = per(loadgen_syscalls, c.pongs as f64);
    }
    out
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| sum / n as f64)
}

/// Each server process: its peak connections and RSS while holding, and the
/// CPU it used over the whole run.
fn per_process(samples: &[Sample], judged: &[&Sample]) -> Vec<ProcessFigures> {
    let n = samples.first().map_or(0, |s| s.per_process.len());
    (0..n)
        .map(|i| ProcessFigures {
            connections_peak: judged
                .iter()
                .filter_map(|s| s.per_process.get(i))
                .map(|p| p.0)
                .max()
                .unwrap_or(0),
            rss_peak_kib: judged
                .iter()
                .filter_map(|s| s.per_process.get(i))
                .map(|p| p.1)
                .max()
                .unwrap_or(0),
            cpu_s: samples
                .last()
                .and_then(|s| s.per_process.get(i))
                .map_or(0.0, |p| p.2),
        })
        .collect()
}

/// What limited the connecting, put before what limited the hold: a machine
/// saturated while connections arrived (`arrivals`: that span on the
/// sampler's clock), or connection attempts dropped at full accept queues.
/// Neither is said when the load generator was the bottleneck.
fn judge_connecting(
    summary: &mut BenchSummary,
    samples: &[Sample],
    arrivals: (f64, f64),
    connect_rate: f64,
) {
    if summary.client_bottleneck.bottleneck {
        return;
    }
    // A machine saturated while connections arrive makes connect latency
    // a measure of the machine: the limit says so, whatever the hold did.
    let arrivals_busy = mean(
        samples
            .iter()
            .filter(|s| s.t_s >= arrivals.0 && s.t_s <= arrivals.1)
            .map(|s| s.machine_cpu_pct),
    );
    if let Some(busy_pct) = arrivals_busy.filter(|b| *b >= SATURATED_PCT) {
        Causes::lead(
            &mut summary.limit,
            Limit::ConnectingCpu {
                busy_pct,
                arrivals_per_s: connect_rate,
            },
        );
    }
    // Connection attempts the kernel dropped at a full accept queue wait
    // for a SYN retransmit (1 s, then 3 s, ...): connect latency then
    // measures the server's accepting, not its work.
    if let Some(&dropped) = summary.kernel_tcp.get("TcpExt.ListenOverflows") {
        Causes::lead(&mut summary.limit, Limit::AcceptQueues { dropped });
    }
}

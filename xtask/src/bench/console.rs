//! What a finished run prints on stderr: the headline figures, faults, the
//! limit and any client bottleneck, read from the summary as recorded, so
//! the console never says what the record does not.

use rtbench_record::BenchSummary;

pub fn print_headline(s: &BenchSummary) {
    print_figures(s);
    print_broadcast(s);
    print_costs_and_limits(s);
}

/// A broadcast's bursts (median over its events) and bare TCP's time.
fn print_broadcast(s: &BenchSummary) {
    let Some(b) = &s.broadcast else { return };
    eprintln!(
        "xtask: broadcast, {} events: first delivery after {:.1} ms, last after {:.1} ms (median; max {:.1} ms), {:.0} deliveries/s between",
        b.events.len(),
        b.to_first_ms.median,
        b.to_last_ms.median,
        b.to_last_ms.max,
        b.per_second.median
    );
    if let Some(t) = &b.bare_tcp {
        eprintln!(
            "xtask: bare TCP: {} single writes of {} B take {:.0} ms at {:.0}/s (roofline {}): the last delivery came after {:.2}x that",
            t.deliveries, t.size, t.writes_ms, t.one_write_per_s, t.roofline, t.to_last_ratio
        );
    }
}

/// Connections, latencies, memory, and what ended or was not measured.
fn print_figures(s: &BenchSummary) {
    let c = &s.connections;
    eprintln!(
        "xtask: {}{} {}: peak {} / {} connections, held {}, failed {}, time to target {}",
        s.scenario,
        s.variant
            .as_ref()
            .map_or(String::new(), |v| format!(" ({v})")),
        if s.complete { "complete" } else { "INCOMPLETE" },
        c.peak,
        c.target,
        c.held,
        c.failed,
        c.time_to_target_s
            .map_or("not reached".into(), |t| format!("{t:.0} s")),
    );
    eprintln!(
        "xtask: connect p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms; delivery p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms, {:.0} deliveries/s",
        s.connect_ms.p50,
        s.connect_ms.p99,
        s.connect_ms.p999,
        s.delivery_ms.p50,
        s.delivery_ms.p99,
        s.delivery_ms.p999,
        s.deliveries_per_s
    );
    eprintln!(
        "xtask: server {:.2} KiB/connection, CPU while holding {}; whole machine {}",
        s.server.kib_per_connection,
        s.server
            .cpu_holding_pct
            .map_or("unknown (no sample in the hold)".into(), |c| format!(
                "{c:.1}%"
            )),
        s.system
            .kib_per_connection_measured(s.server.kib_per_connection)
            .map_or("none (its memory moved within noise)".into(), |k| format!(
                "{k:.2} KiB/connection"
            ))
    );
    if let Some(cl) = &s.closing {
        eprintln!(
            "xtask: closing: {} connections closed in {:.1} s, {} without the server's answer",
            cl.open, cl.seconds, cl.aborted
        );
    }
    if s.reconnect_ms.count > 0 {
        eprintln!(
            "xtask: reconnect (loss to open again) p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms ({} reconnections)",
            s.reconnect_ms.p50, s.reconnect_ms.p99, s.reconnect_ms.p999, s.reconnect_ms.count
        );
    }
    if s.round_trip_ms.count > 0 {
        eprintln!(
            "xtask: round trip (ping or echo) p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms ({} samples)",
            s.round_trip_ms.p50, s.round_trip_ms.p99, s.round_trip_ms.p999, s.round_trip_ms.count
        );
    }
    if s.server_under_test != "rtbench" {
        eprintln!("xtask: server under test: {}", s.server_under_test);
    }
    for u in &s.unmeasured {
        eprintln!("xtask: not measured: {u}");
    }
    for e in &s.process_exits {
        eprintln!(
            "xtask: FAULT: {} (pid {}) ended at {:.1} s: {}",
            e.role, e.pid, e.t_s, e.status
        );
    }
}

/// What the work cost, the kernel's counters, and what limited the run.
fn print_costs_and_limits(s: &BenchSummary) {
    let c = &s.costs;
    let show = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
    if c.deliveries > 0 {
        eprintln!(
            "xtask: per delivery: server {} us CPU, {} syscalls, {} wake-ups; load generator {} syscalls",
            show(c.server_cpu_us_per_delivery),
            show(c.server_syscalls_per_delivery),
            show(c.server_wakeups_per_delivery),
            show(c.loadgen_syscalls_per_delivery)
        );
    } else if c.pings > 0 {
        eprintln!(
            "xtask: per ping: server {} us CPU, {} syscalls; load generator {} syscalls",
            show(c.server_cpu_us_per_ping),
            show(c.server_syscalls_per_ping),
            show(c.loadgen_syscalls_per_ping)
        );
    }
    if !s.kernel_tcp.is_empty() {
        let counts: Vec<String> = s
            .kernel_tcp
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        eprintln!(
            "xtask: kernel TCP counters over the run: {}",
            counts.join(", ")
        );
    }
    if let Some(l) = &s.limit {
        eprintln!("xtask: limit: {l}");
    }
    for r in &s.client_bottleneck.reasons {
        eprintln!("xtask: CLIENT BOTTLENECK: {r}");
    }
    for o in &s.slo {
        eprintln!("xtask: SLO {o}");
    }
}

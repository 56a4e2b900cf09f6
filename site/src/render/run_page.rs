//! `runs/<scenario>/<run>/index.html`: one run in full: its headline, its
//! charts over time, errors by kind, the scenario as run, tuning,
//! environment, preflight, and every raw file of its record.

use anyhow::Result;
use rtbench_record::metrics;
use serde_json::{Value, json};

use rtbench_record::load::TimeseriesRow;
use rtbench_record::series::{HostSample, ServerSample};

use super::headline::headline;
use super::run_series;
use super::runs::{run_info, run_path, session_label};
use super::writer::Site;
use crate::chart::{self, Series};
use crate::load::Run;
use crate::rows::{over_time, over_time_where, per_second};

pub(super) fn page(site: &mut Site, run: &Run) -> Result<()> {
    let rel = format!("{}/index.html", run_path(run));
    let inside = format!("{}/{}", run.scenario, run.name);
    let raw = site.copy_raw(&run.dir, &site.out.join(run_path(run)).join("raw"), &inside)?;
    let charts = charts(site, run);
    let s = run.summary.as_ref();
    let bottleneck = s
        .filter(|s| s.client_bottleneck.bottleneck)
        .map(|s| s.client_bottleneck.reasons.clone());
    let ctx = json!({
        "title": format!("{}{}, {}", run.scenario, run.variant().map_or(String::new(), |v| format!(" ({v})")), run.name),
        "page_description": page_description(run),
        "run": run_info(run),
        "description": s.map(|s| s.description.clone()),
        "headline": headline(run, site.records.roofline_for(run)),
        "charts": charts,
        "bottleneck": bottleneck,
        "soak": s.and_then(|s| s.soak.as_ref()).map(soak_verdict),
        "errors": errors_table(run),
        "problems": run.problems,
        "scenario_toml": std::fs::read_to_string(run.dir.join(rtbench_record::SCENARIO)).ok(),
        "environment": run.environment.as_ref().map(environment_rows),
        "sysctls": run.environment.as_ref().map(|e| e.sysctls.iter().map(|(k, v)| json!([k, v.clone().unwrap_or("unreadable".into())])).collect::<Vec<_>>()),
        "tuning": run.environment.as_ref().map(|e| json!({
            "applied": e.tuning_applied,
            "rows": e.tuning.iter().map(|(k, s)| json!([k, s.wanted, s.before, s.after])).collect::<Vec<_>>(),
        })),
        "preflight": rtbench_record::read_json::<Value>(&run.dir.join(rtbench_record::PREFLIGHT)).ok(),
        "raw": raw.files,
        "raw_tar": {"href": raw.tar.0, "size": raw.tar.1},
    });
    site.write(&rel, "run.html", ctx)
}

/// The run in one sentence, for a link shared: what held, on what.
fn page_description(run: &Run) -> String {
    let Some(s) = run.summary.as_ref() else {
        return format!("{}: an incomplete run record.", run.id());
    };
    let sessions = session_label(run).map_or(String::new(), |l| format!(" ({l})"));
    format!(
        "{}{}: {} of {} connections held{sessions} on {}, started {}. Figures, charts and raw data.",
        run.scenario,
        run.variant().map_or(String::new(), |v| format!(" {v}")),
        metrics::group(s.connections.held as i64),
        metrics::group(s.connections.target as i64),
        s.host,
        s.started_at.get(..10).unwrap_or(&s.started_at)
    )
}

fn charts(site: &mut Site, run: &Run) -> Vec<Value> {
    let mut charts = Vec::new();
    charts.extend(connection_charts(site, run));
    charts.extend(resource_charts(site, run));
    if let Some(storm) = run_series::storm(run) {
        charts.extend(site.chart(
            chart::lines(
                "Failover: the storm after the first fault",
                "s",
                "connections",
                &storm,
            ),
            "Failover storm",
            "no time series",
        ));
    }
    charts.extend(drift_charts(site, run));
    charts.extend(traffic_chart(site, run));
    charts.extend(host_charts(site, run));
    charts
}

/// A soak's RSS and descriptors of every process over time, each with the
/// line fitted to it (the leak check's).
fn drift_charts(site: &mut Site, run: &Run) -> Vec<Value> {
    let mut charts = Vec::new();
    for (column, title, unit, scale) in [
        (
            "rss_kib",
            "Leak check: RSS per process, with its fitted line",
            "MiB",
            1024.0,
        ),
        (
            "fds",
            "Leak check: open descriptors per process, with its fitted line",
            "descriptors",
            1.0,
        ),
    ] {
        if let Some(series) = run_series::drift(run, column, scale) {
            charts.extend(site.chart(chart::lines(title, "s", unit, &series), title, "no samples"));
        }
    }
    charts
}

/// A soak's verdict for the page: the leaks named, every slope, the churn
/// and the events.
fn soak_verdict(s: &rtbench_record::drift::Soak) -> Value {
    let d = &s.drift;
    json!({
        "leaks": d.leaks,
        "method": d.method,
        "warmup_s": d.warmup_s,
        "unfitted": d.unfitted,
        "slopes": d.slopes.iter().map(|f| json!([
            f.series,
            format!("{:+.2}", f.per_hour),
            format!("[{:+.2}, {:+.2}]", f.low, f.high),
            f.unit,
            format!("{:.0}-{:.0} s", f.from_s, f.to_s),
            f.leak,
            f.one_step,
            f.settling,
            f.recent_per_hour.map_or(String::new(), |r| format!("{r:+.2}")),
        ])).collect::<Vec<_>>(),
        "churn": [
            ["connections opened", metrics::group(s.connected as i64)],
            ["left with a close frame", metrics::group(s.left_closed as i64)],
            ["left by a silent drop", metrics::group(s.left_dropped as i64)],
            ["leaves per second", format!("{:.0}", s.leaves_per_s)],
            ["drops the server had not reaped", metrics::group(s.drops_unreaped as i64)],
            ["events published", metrics::group(s.events_published as i64)],
            ["events refused (503, bus down)", metrics::group(s.events_refused as i64)],
            ["events expected (inside each connection's range)", metrics::group(s.events_expected as i64)],
            ["events missed", metrics::group(s.events_missed as i64)],
            ["events missed whose publishing had no clear answer", metrics::group(s.events_missed_uncertain as i64)],
            ["duplicates", metrics::group(s.duplicates as i64)],
        ],
    })
}

/// Users, connect latency, latency by percentile, deliveries and errors.
fn connection_charts(site: &mut Site, run: &Run) -> Vec<Value> {
    let ts = &run.timeseries;
    let mut charts = Vec::new();
    charts.extend(site.chart(
        chart::lines(
            "Simultaneous users",
            "s",
            "connections",
            &run_series::users(run),
        ),
        "Simultaneous users",
        "no time series",
    ));
    // Latency only in the seconds that opened connections.
    let connecting = |r: &TimeseriesRow| r.connect_rate > 0;
    let connect = vec![
        Series::new("p50", over_time_where(ts, connecting, |r| r.connect_p50_ms)),
        Series::new("p99", over_time_where(ts, connecting, |r| r.connect_p99_ms)),
    ];
    charts.extend(site.chart(
        chart::lines("Connect latency, each second", "s", "ms", &connect),
        "Connect latency over time",
        "no connections were made",
    ));
    let pct = vec![
        Series::new("delivery", run.delivery_percentiles.clone()),
        Series::new("connect", run.connect_percentiles.clone()),
    ];
    charts.extend(site.chart(
        chart::percentiles("Latency by percentile (HDR)", &pct),
        "Latency percentile distribution",
        "no latencies recorded",
    ));
    let deliveries = run_series::deliveries(run).map(|d| vec![d]);
    charts.extend(site.chart(
        deliveries.map_or(Ok(None), |d| {
            chart::lines("Deliveries per second", "s", "deliveries/s", &d)
        }),
        "Deliveries per second",
        "no events were published in this scenario",
    ));
    let errors = vec![
        Series::new(
            "failed connects/s",
            per_second(&over_time(ts, |r| r.failed as f64)),
        ),
        Series::new(
            "closed by server/s",
            per_second(&over_time(ts, |r| r.closed_by_server as f64)),
        ),
    ];
    charts.extend(site.chart(
        chart::lines("Errors per second", "s", "errors/s", &errors),
        "Errors",
        "no time series",
    ));
    charts
}

/// CPU, memory, memory per connection and load.
fn resource_charts(site: &mut Site, run: &Run) -> Vec<Value> {
    let (ts, sv) = (&run.timeseries, &run.server);
    let mut charts = Vec::new();
    let cpu = vec![
        Series::new(
            "server (all processes)",
            over_time(sv, |s| s.server_cpu_pct),
        ),
        Series::new("redis", over_time(sv, |s| s.redis_cpu_pct)),
        Series::new(
            "load generator (busiest worker)",
            over_time(ts, |r| r.worker_cpu_max_pct),
        ),
    ];
    charts.extend(site.chart(
        chart::lines("CPU (100 = one core)", "s", "%", &cpu),
        "CPU",
        "no samples",
    ));
    let mem0 = sv.first().map_or(0.0, |s| s.mem_used_kib as f64);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mem = vec![
        Series::new("server RSS", over_time(sv, |s| mib(s.server_rss_kib))),
        Series::new(
            "machine used, above the start",
            over_time(sv, |s| (s.mem_used_kib as f64 - mem0) / 1024.0),
        ),
        Series::new(
            "load generator RSS",
            over_time(ts, |r| mib(r.loadgen_rss_kib)),
        ),
    ];
    charts.extend(site.chart(
        chart::lines("Memory", "s", "MiB", &mem),
        "Memory",
        "no samples",
    ));
    charts.extend(site.chart(
        chart::lines(
            "Memory per connection",
            "s",
            "KiB",
            &bytes_per_connection(sv),
        ),
        "Memory per connection",
        "no connections were held",
    ));
    // The original's results had a load chart: runnable (and
    // uninterruptible) tasks, the machine's queue beside its CPU.
    let cores = run.cores().unwrap_or(1.0);
    let load = vec![
        Series::new("load average, 1 min", over_time(sv, |s| s.load1)),
        Series::new(
            "machine CPU busy, in cores",
            over_time(sv, |s| s.machine_cpu_pct * cores / 100.0),
        ),
    ];
    charts.extend(site.chart(
        chart::lines("Load", "s", "tasks / cores", &load),
        "Load",
        "no samples",
    ));
    charts
}

/// The original's traffic chart: bytes each way per second, the clients'
/// and (when the server reports them) the server's.
fn traffic_chart(site: &mut Site, run: &Run) -> Option<Value> {
    let (ts, sv) = (&run.timeseries, &run.server);
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    let mut traffic = vec![
        Series::new(
            "clients received",
            over_time(ts, |r| mib(r.received_bytes_per_s)),
        ),
        Series::new("clients sent", over_time(ts, |r| mib(r.sent_bytes_per_s))),
        Series::new(
            "server received",
            per_second(&over_time(sv, |s| mib(s.server_bytes_in))),
        ),
        Series::new(
            "server sent",
            per_second(&over_time(sv, |s| mib(s.server_bytes_out))),
        ),
    ];
    traffic.retain(|s| s.points.iter().any(|p| p.1 > 0.0));
    site.chart(
        chart::lines("Traffic", "s", "MiB/s", &traffic),
        "Traffic",
        "no traffic recorded (a record from before it was counted)",
    )
}

/// Each worker host's own machine, as its workers read it.
fn host_charts(site: &mut Site, run: &Run) -> Vec<Value> {
    let hosts: std::collections::BTreeSet<&str> =
        run.hosts.iter().map(|h| h.host.as_str()).collect();
    if hosts.is_empty() {
        return Vec::new();
    }
    let by_host = |f: &dyn Fn(&HostSample) -> f64| -> Vec<Series> {
        hosts
            .iter()
            .map(|name| Series::new(*name, over_time_where(&run.hosts, |h| h.host == *name, f)))
            .collect()
    };
    let mut charts = Vec::new();
    charts.extend(site.chart(
        chart::lines(
            "Load generator hosts: memory used",
            "s",
            "MiB",
            &by_host(&|h| h.mem_used_kib as f64 / 1024.0),
        ),
        "Hosts' memory",
        "no host samples",
    ));
    charts.extend(site.chart(
        chart::lines(
            "Load generator hosts: CPU busy (100 = every core)",
            "s",
            "%",
            &by_host(&|h| h.cpu_pct),
        ),
        "Hosts' CPU",
        "no host samples",
    ));
    charts
}

fn errors_table(run: &Run) -> Vec<Value> {
    let Some(s) = run.summary.as_ref() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (what, m) in [
        ("failed connect", &s.errors.failed),
        ("closed by server", &s.errors.closed_by_server),
        ("error frame", &s.errors.error_frames),
    ] {
        for (k, v) in m {
            rows.push(json!([what, k, v]));
        }
    }
    rows
}

fn environment_rows(e: &rtbench_record::Environment) -> Vec<Value> {
    vec![
        json!(["host", e.host]),
        json!(["kernel", e.kernel]),
        json!(["CPU", format!("{} ({} cores)", e.cpu_model, e.cores)]),
        json!([
            "memory",
            metrics::format(e.mem_total_kib as f64 / 1048576.0, "GiB")
        ]),
        json!([
            "open files (soft / hard)",
            format!("{} / {}", e.nofile_soft, e.nofile_hard)
        ]),
        json!([
            "git commit",
            format!(
                "{}{}",
                e.git_commit,
                if e.git_dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            )
        ]),
        json!(["rustc", e.rustc]),
        json!([
            "server",
            format!("{} x {}", e.server_processes, e.server_version)
        ]),
        json!(["server flags", e.server_args.join(" ")]),
        json!(["load generator", e.loadgen_version]),
        json!(["deployment", deployment_label(&e.deployment)]),
    ]
}

fn deployment_label(d: &rtbench_record::Deployment) -> String {
    let mut s = d.kind.clone();
    if let Some(c) = &d.containers {
        let lim = |l: &rtbench_record::Limits| {
            format!(
                "{} CPUs, {}",
                l.cpus.map_or("unlimited".into(), |c| c.to_string()),
                l.memory.as_deref().unwrap_or("unlimited memory")
            )
        };
        s += &format!(
            ": {} worker container(s); server {}; worker {}; redis {}; nofile {}; sysctls {:?}; images {}",
            c.workers,
            lim(&c.server),
            lim(&c.worker),
            lim(&c.redis),
            c.nofile,
            c.sysctls,
            d.images.join(", ")
        );
    }
    for h in &d.hosts {
        s += &match &h.node {
            Some(n) => format!(
                "; {} node {} {} (engine {}, {} CPUs, {:.1} GiB)",
                h.role,
                n.hostname,
                h.address,
                n.engine_version,
                n.cpus,
                n.memory_bytes as f64 / (1u64 << 30) as f64
            ),
            None => format!(
                "; {} {} (clock {:+.3} ms ± {:.3})",
                h.role,
                h.address,
                h.clock_offset_ns as f64 / 1e6,
                h.clock_error_ns as f64 / 1e6
            ),
        };
    }
    s
}

/// Server RSS and machine memory growth over the connections held, in KiB,
/// where at least 1% of the peak is connected (below, one-off costs dominate).
fn bytes_per_connection(sv: &[ServerSample]) -> Vec<Series> {
    let Some(first) = sv.first() else {
        return Vec::new();
    };
    let peak = sv.iter().map(|s| s.server_connections).max().unwrap_or(0);
    let held = |s: &ServerSample| s.server_connections > 0 && s.server_connections * 100 >= peak;
    let per = |now: u64, start: u64, s: &ServerSample| {
        (now as f64 - start as f64) / s.server_connections as f64
    };
    vec![
        Series::new(
            "server RSS",
            over_time_where(sv, held, |s| per(s.server_rss_kib, first.server_rss_kib, s)),
        ),
        Series::new(
            "machine (kernel, server, load generator)",
            over_time_where(sv, held, |s| per(s.mem_used_kib, first.mem_used_kib, s)),
        ),
    ]
}

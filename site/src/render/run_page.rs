//! `runs/<scenario>/<run>/index.html`: one run in full: its headline, its
//! charts over time, errors by kind, the scenario as run, tuning,
//! environment, preflight, and every raw file of its record.

use rtbench_record::metrics;
use serde_json::{Value, json};

use super::headline::headline;
use super::runs::{run_info, run_path};
use super::writer::{Site, copy_raw};
use crate::chart::{self, Series};
use crate::load::Run;

pub(super) fn page(site: &mut Site, run: &Run) -> Result<(), String> {
    let rel = format!("{}/index.html", run_path(run));
    let raw = copy_raw(&run.dir, &site.out.join(run_path(run)).join("raw"))?;
    let charts = charts(site, run);
    let s = run.summary.as_ref();
    let bottleneck = s
        .filter(|s| s.client_bottleneck.bottleneck)
        .map(|s| s.client_bottleneck.reasons.clone());
    let ctx = json!({
        "title": run.id(),
        "run": run_info(run),
        "description": s.map(|s| s.description.clone()),
        "headline": headline(run, site.records.roofline_for(run)),
        "charts": charts,
        "bottleneck": bottleneck,
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
        "raw": raw,
    });
    site.write(&rel, "run.html", ctx)
}

fn charts(site: &mut Site, run: &Run) -> Vec<Value> {
    let ts = run.timeseries.clone().unwrap_or_default();
    let sv = run.server.clone().unwrap_or_default();
    let mut charts = Vec::new();
    let mut push = |c: Option<Value>| charts.extend(c);
    let users = vec![
        Series::new("target (arrivals so far)", ts.xy("t_s", "attempted", |v| v)),
        Series::new("connected (load generator)", ts.xy("t_s", "open", |v| v)),
        Series::new(
            "connected (server)",
            sv.xy("t_s", "server_connections", |v| v),
        ),
    ];
    push(site.chart(
        chart::lines("Simultaneous users", "s", "connections", &users),
        "Simultaneous users",
        "no time series",
    ));
    let connecting: Vec<usize> = ts
        .col("connect_rate")
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter(|(_, r)| **r > 0.0)
        .map(|(i, _)| i)
        .collect();
    let pick = |col: &str| -> Vec<(f64, f64)> {
        let pts = ts.xy("t_s", col, |v| v);
        connecting
            .iter()
            .filter_map(|&i| pts.get(i).copied())
            .collect()
    };
    let connect = vec![
        Series::new("p50", pick("connect_p50_ms")),
        Series::new("p99", pick("connect_p99_ms")),
    ];
    push(site.chart(
        chart::lines("Connect latency, each second", "s", "ms", &connect),
        "Connect latency over time",
        "no connections were made",
    ));
    let pct = vec![
        Series::new("delivery", run.delivery_percentiles.clone()),
        Series::new("connect", run.connect_percentiles.clone()),
    ];
    push(site.chart(
        chart::percentiles("Latency by percentile (HDR)", &pct),
        "Latency percentile distribution",
        "no latencies recorded",
    ));
    let deliveries = [Series::new(
        "deliveries/s",
        ts.xy("t_s", "delivery_rate", |v| v),
    )];
    let any_delivery = deliveries[0].points.iter().any(|p| p.1 > 0.0);
    push(site.chart(
        if any_delivery {
            chart::lines("Deliveries per second", "s", "deliveries/s", &deliveries)
        } else {
            Ok(None)
        },
        "Deliveries per second",
        "no events were published in this scenario",
    ));
    let errors = vec![
        Series::new(
            "failed connects/s",
            per_second(&ts.xy("t_s", "failed", |v| v)),
        ),
        Series::new(
            "closed by server/s",
            per_second(&ts.xy("t_s", "closed_by_server", |v| v)),
        ),
    ];
    push(site.chart(
        chart::lines("Errors per second", "s", "errors/s", &errors),
        "Errors",
        "no time series",
    ));
    let cpu = vec![
        Series::new(
            "server (all processes)",
            sv.xy("t_s", "server_cpu_pct", |v| v),
        ),
        Series::new("redis", sv.xy("t_s", "redis_cpu_pct", |v| v)),
        Series::new(
            "load generator (busiest worker)",
            ts.xy("t_s", "worker_cpu_max_pct", |v| v),
        ),
    ];
    push(site.chart(
        chart::lines("CPU (100 = one core)", "s", "%", &cpu),
        "CPU",
        "no samples",
    ));
    let mem0 = sv
        .col("mem_used_kib")
        .and_then(|c| c.first().copied())
        .unwrap_or(0.0);
    let mem = vec![
        Series::new("server RSS", sv.xy("t_s", "server_rss_kib", |v| v / 1024.0)),
        Series::new(
            "machine used, above the start",
            sv.xy("t_s", "mem_used_kib", |v| (v - mem0) / 1024.0),
        ),
        Series::new(
            "load generator RSS",
            ts.xy("t_s", "loadgen_rss_kib", |v| v / 1024.0),
        ),
    ];
    push(site.chart(
        chart::lines("Memory", "s", "MiB", &mem),
        "Memory",
        "no samples",
    ));
    let per_conn = bytes_per_connection(&sv);
    push(site.chart(
        chart::lines("Memory per connection", "s", "KiB", &per_conn),
        "Memory per connection",
        "no connections were held",
    ));
    // The original's results had a load chart: runnable (and
    // uninterruptible) tasks, the machine's queue beside its CPU.
    let cores = run.cores().unwrap_or(1.0);
    let load = vec![
        Series::new("load average, 1 min", sv.xy("t_s", "load1", |v| v)),
        Series::new(
            "machine CPU busy, in cores",
            sv.xy("t_s", "machine_cpu_pct", |v| v * cores / 100.0),
        ),
    ];
    push(site.chart(
        chart::lines("Load", "s", "tasks / cores", &load),
        "Load",
        "no samples",
    ));
    // A fault plan's storm, close up: from a few seconds before the
    // first fault to the end, the connections open and arriving again.
    if let Some((first, last, before)) = run.summary.as_ref().and_then(|s| {
        Some((
            s.faults_injected.first()?.at_s,
            s.faults_injected.last()?.at_s,
            s.failover.as_ref()?.open_before as f64,
        ))
    }) {
        // From 5 s before the first fault to 20 s after the last: not
        // the end of the run, whose closing would dwarf the storm.
        let near = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
            pts.into_iter()
                .filter(|p| p.0 >= first - 5.0 && p.0 <= last + 20.0)
                .collect()
        };
        // On the storm's own scale: the clients missing, not the
        // 100,000 open around them.
        let storm = vec![
            Series::new(
                "clients not connected (of those open before the fault)",
                near(ts.xy("t_s", "open", |v| (before - v).max(0.0))),
            ),
            Series::new("connecting", near(ts.xy("t_s", "connecting", |v| v))),
            Series::new(
                "closed by server, per second",
                near(per_second(&ts.xy("t_s", "closed_by_server", |v| v))),
            ),
        ];
        push(site.chart(
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
    // The original's traffic chart: bytes each way per second, the
    // clients' and (when the server reports them) the server's.
    let mib = |v: f64| v / 1048576.0;
    let mut traffic = vec![
        Series::new(
            "clients received",
            ts.xy("t_s", "received_bytes_per_s", mib),
        ),
        Series::new("clients sent", ts.xy("t_s", "sent_bytes_per_s", mib)),
        Series::new(
            "server received",
            per_second(&sv.xy("t_s", "server_bytes_in", mib)),
        ),
        Series::new(
            "server sent",
            per_second(&sv.xy("t_s", "server_bytes_out", mib)),
        ),
    ];
    traffic.retain(|s| s.points.iter().any(|p| p.1 > 0.0));
    push(site.chart(
        chart::lines("Traffic", "s", "MiB/s", &traffic),
        "Traffic",
        "no traffic recorded (a record from before it was counted)",
    ));
    // Each worker host's own machine, as its workers read it.
    let hosts: std::collections::BTreeSet<&str> =
        run.hosts.iter().map(|h| h.host.as_str()).collect();
    let by_host = |f: &dyn Fn(&rtbench_record::series::HostSample) -> f64| -> Vec<Series> {
        hosts
            .iter()
            .map(|name| {
                let pts = run
                    .hosts
                    .iter()
                    .filter(|h| h.host == *name)
                    .map(|h| (h.t_s as f64, f(h)))
                    .collect();
                Series::new(*name, pts)
            })
            .collect()
    };
    if !hosts.is_empty() {
        push(site.chart(
            chart::lines(
                "Load generator hosts: memory used",
                "s",
                "MiB",
                &by_host(&|h| h.mem_used_kib as f64 / 1024.0),
            ),
            "Hosts' memory",
            "no host samples",
        ));
        push(site.chart(
            chart::lines(
                "Load generator hosts: CPU busy (100 = every core)",
                "s",
                "%",
                &by_host(&|h| h.cpu_pct),
            ),
            "Hosts' CPU",
            "no host samples",
        ));
    }
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
        s += &format!(
            "; {} {} (clock {:+.3} ms ± {:.3})",
            h.role,
            h.address,
            h.clock_offset_ns as f64 / 1e6,
            h.clock_error_ns as f64 / 1e6
        );
    }
    s
}

/// (t, v) counters into (t, per second).
/// Rates from a cumulative counter. A counter summed over processes drops
/// when one of them dies (its count goes with it): that second reads 0, not
/// a negative rate.
fn per_second(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .windows(2)
        .map(|w| {
            (
                w[1].0,
                ((w[1].1 - w[0].1) / (w[1].0 - w[0].0).max(1e-9)).max(0.0),
            )
        })
        .collect()
}

/// Server RSS and machine memory growth over the connections held, in KiB,
/// where at least 1% of the peak is connected (below, one-off costs dominate).
fn bytes_per_connection(sv: &crate::table::Table) -> Vec<Series> {
    let (Some(t), Some(c), Some(rss), Some(mem)) = (
        sv.col("t_s"),
        sv.col("server_connections"),
        sv.col("server_rss_kib"),
        sv.col("mem_used_kib"),
    ) else {
        return Vec::new();
    };
    let peak = c.iter().copied().fold(0.0, f64::max);
    let (rss0, mem0) = (
        rss.first().copied().unwrap_or(0.0),
        mem.first().copied().unwrap_or(0.0),
    );
    let idx: Vec<usize> = (0..t.len())
        .filter(|&i| c[i] > 0.0 && c[i] >= peak / 100.0)
        .collect();
    vec![
        Series::new(
            "server RSS",
            idx.iter()
                .map(|&i| (t[i], (rss[i] - rss0) / c[i]))
                .collect(),
        ),
        Series::new(
            "machine (kernel, server, load generator)",
            idx.iter()
                .map(|&i| (t[i], (mem[i] - mem0) / c[i]))
                .collect(),
        ),
    ]
}

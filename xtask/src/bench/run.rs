//! The run driver: one run of a suite's variant from preflight to record.
//! It starts every process (servers, Redis, the load generator) through the
//! `Placement`, watches them and the fault plan while sampling every second
//! and feeding the live page, stops them, and writes the record; what the
//! figures mean is `verdict.rs`'s, what is printed `console.rs`'s.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use rtbench_record::endpoint::expand_sources;
use rtbench_record::load::{partial_dir, read_summary as read_load_summary};

use crate::preflight::{self, Needs};
use crate::record;
use crate::sample::{self, Sample, Sampler};
use crate::server::{RedisProcess, ServerProcess};
use crate::subject::Subject;
use crate::suite::{self, Suite, Variant};
use crate::{dashboard, root, tuning};

use super::args::{Args, RunsOn};
use super::placement::{Placement, Side};
use super::{console, environment, record_dir, signals, verdict};

/// Connections a server process is given at most: its open-files capacity
/// less a margin.
fn connections_per_process() -> u64 {
    preflight::server_capacity() * 95 / 100
}

pub fn run_one(
    suite: &Suite,
    name: &str,
    variant: Option<&Variant>,
    a: &Args,
    state: &dashboard::State,
    side: &Side,
) -> Result<(PathBuf, bool), String> {
    let mut load = suite.load.clone();
    // A variant's own size first, then the user's over it.
    if let Some(n) = variant.and_then(|v| v.connections) {
        let size = suite::Overrides {
            connections: Some(n),
            ..Default::default()
        };
        suite::apply(&size, &mut load)?;
    }
    suite::apply(&a.overrides(), &mut load)?;
    let total = load.total_arrivals();
    let subject = Subject::parse(
        a.server
            .as_deref()
            .or(variant.and_then(|v| v.server.as_deref()))
            .or(suite.server.subject.as_deref())
            .unwrap_or("rtbench"),
    )?;
    if let Some(v) = variant {
        if let Some(p) = v.protocol {
            load.target.protocol = p;
        }
        if let Some(e) = v.echo_interval_s {
            load.session.echo_interval_s = e;
        }
        if let Some(r) = v.reconnect {
            load.session.reconnect = r;
        }
        if v.idle {
            load.publishers.clear();
        }
    }
    if let Some(p) = a.protocol {
        load.target.protocol = p;
    }
    if load.target.protocol == rtbench_record::scenario::Protocol::Raw
        && !load.publishers.is_empty()
    {
        eprintln!(
            "xtask: protocol raw: the suite's publishers are left out (they publish Appwrite events)"
        );
        load.publishers.clear();
    }
    if !subject.is_rtbench() {
        if a.runs_on() != RunsOn::Local {
            return Err(format!(
                "{}: a server other than rtbench runs locally only",
                subject.label()
            ));
        }
        let many = a.size.processes.is_some_and(|p| p > 1);
        if a.versus.is_some() || (many && matches!(subject, Subject::Url(_))) {
            return Err(format!(
                "{}: --versus is for rtbench-server, --processes for a server this run starts",
                subject.label()
            ));
        }
    }
    // A plan that kills servers gets as many spare processes, so the
    // survivors can hold every connection.
    let processes = if subject.is_rtbench() {
        a.size.processes.unwrap_or_else(|| {
            total.div_ceil(connections_per_process()).max(1) + crate::suite::spares(&suite.faults)
        })
    } else {
        // A command runs as one process unless told (a broker that scales out).
        a.size
            .processes
            .or(variant.and_then(|v| v.processes))
            .unwrap_or(1)
    };
    if (suite.server.shared_port || !suite.faults.is_empty())
        && (a.runs_on() != RunsOn::Local || !subject.is_rtbench())
    {
        return Err(
            "a shared port and a fault plan need rtbench-server processes started here (no --on containers, no --hosts, --server rtbench)"
                .into(),
        );
    }
    let mut server_args = suite.server.args.clone();
    // The server's cap as a whole, when the variant sets one.
    let mut cap: Option<u64> = None;
    if let Some(v) = variant {
        server_args.extend(v.server_args.iter().cloned());
        if let Some(p) = v.ping_interval_s {
            load.session.ping_interval_s = p;
        }
        cap = v.cap_fraction.map(|f| (total as f64 * f).ceil() as u64);
    }
    if cap.is_some() && !subject.is_rtbench() {
        return Err(
            "a connection cap is rtbench-server's --max-connections: run it with --server rtbench"
                .into(),
        );
    }
    let label = match variant {
        Some(v) => format!("{name} ({})", v.name),
        None => name.to_string(),
    };
    if let Ok(mut h) = state.lock() {
        h.reset();
    }
    eprintln!(
        "xtask: bench {label}: {total} connections, {processes} server process(es), server {}",
        subject.label()
    );

    // Several processes share events over Redis, as Appwrite's do; so do
    // publishers that publish straight to the bus.
    let bus = (subject.is_rtbench() && processes > 1)
        || subject.needs_bus()
        || load
            .publishers
            .iter()
            .any(|p| p.route(load.target.protocol) == rtbench_record::scenario::Via::Bus);
    if bus && a.runs_on() == RunsOn::Local {
        crate::setup::ensure(&[crate::setup::REDIS])?;
    }
    // Checked before anything starts: targets exist, restarts follow kills.
    let mut plan = crate::faults::Plan::new(
        suite.faults.clone(),
        processes,
        bus,
        suite.server.shared_port,
    )?;
    let (tuning, tune_errors) = tuning::run(&suite.tuning, a.tune);
    if !tune_errors.is_empty() {
        return Err(format!(
            "--tune could not apply:\n{}",
            tune_errors.join("\n")
        ));
    }
    // `--tune` runs here in a network namespace sized for the run.
    let namespaced = a.tune && !a.host_net && a.runs_on() == RunsOn::Local;
    let checks = preflight::run(&Needs {
        connections: total,
        sources: expand_sources(&load.target.sources)?.len(),
        server_processes: processes,
        namespace: namespaced,
    });
    preflight::verdict(&checks)?;
    // A run begins on a quiet machine, and says how busy it was: a large
    // run waits up to 3 minutes for the last one's sockets to be torn down,
    // a small one a few seconds.
    let patience = Duration::from_secs((total / 5_000).clamp(3, 180));
    let busy_before = sample::wait_until_quiet(20.0, patience);
    // Declared before every process of the run: dropped (removed) after them.
    let netns = if namespaced {
        let ns = crate::netns::Namespace::create(total, &suite.tuning)?;
        eprintln!(
            "xtask: network namespace {}: {} buckets in its socket hash",
            ns.name, ns.ehash_buckets
        );
        Some(ns)
    } else {
        None
    };
    // Before anything is written or started: an engine or host that does not
    // answer is one line. Declared before what it starts, so that it is
    // dropped (and removes what it made) after them.
    let placement = Placement::new(a, suite, bus)?;

    let dir = record_dir::choose(name, variant, &a.runs_on(), a.out.as_deref(), side);
    let tmp = record_dir::begin(&dir)?;
    placement.keep_logs_in(&tmp);
    record::write_json(&tmp.join("preflight.json"), &checks)?;

    let mut redis = if bus {
        Some(placement.start_redis()?)
    } else {
        None
    };
    if let Some(r) = &redis {
        server_args.extend(["--bus".into(), r.url()]);
        load.target.bus = Some(r.url());
    }
    if processes > 1 {
        server_args.extend(["--threads".into(), "1".into()]);
    }
    let mut servers = Vec::new();
    // One port for every process (SO_REUSEPORT) when the suite says so.
    let shared_port = if suite.server.shared_port {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        server_args.splice(
            0..0,
            [
                "--listen".to_string(),
                format!("127.0.0.1:{port}"),
                "--reuse-port".into(),
            ],
        );
        Some(port)
    } else {
        None
    };
    let mut args_of: Vec<Vec<String>> = Vec::new();
    let rtbench_processes = match &subject {
        Subject::Rtbench => processes,
        Subject::Command(line) => {
            let bus_url = redis.as_ref().map(RedisProcess::url);
            for (line, port) in crate::subject::command_lines(line, processes, bus_url.as_deref())?
            {
                servers.push(ServerProcess::start_command(&line, port)?);
            }
            0
        }
        Subject::Url(_) => 0,
    };
    for i in 0..rtbench_processes {
        let mut args = server_args.clone();
        if shared_port.is_some() {
            // Each process's own address for its /metrics: the shared port
            // answers from whichever process the kernel picks.
            let admin = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?;
            args.extend(["--admin-listen".into(), admin.to_string()]);
        }
        if let Some(cap) = cap {
            // Split exactly: the first `cap % processes` take one more.
            let share = cap / processes + u64::from(i < cap % processes);
            args.extend(["--max-connections".into(), share.to_string()]);
        }
        servers.push(placement.start_server(side, i, &args)?);
        args_of.push(args);
    }
    load.target.urls = match &subject {
        Subject::Url(url) => vec![url.clone()],
        _ if shared_port.is_some() => vec![format!("ws://{}", servers[0].addr)],
        _ => servers.iter().map(|s| format!("ws://{}", s.addr)).collect(),
    };
    let launch = placement.launch()?;
    if launch.is_some() {
        // Workers elsewhere connect from their own address.
        load.target.sources.clear();
    }
    let mut resolved = suite.clone();
    resolved.load = load.clone();
    resolved.server.args = servers.first().map(|s| s.args.clone()).unwrap_or_default();
    resolved.server.subject = Some(subject.label());
    std::fs::write(
        tmp.join("scenario.toml"),
        toml::to_string(&resolved).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let load_file = tmp.join("load.toml");
    std::fs::write(&load_file, load.to_toml()).map_err(|e| e.to_string())?;

    let launch_file = match &launch {
        Some(l) => {
            let f = tmp.join("launch.json");
            record::write_json(&f, l)?;
            Some(f)
        }
        None => None,
    };
    let server_args = servers.first().map(|s| s.args.clone()).unwrap_or_default();
    let mut env = environment::of_run(
        &tuning,
        a,
        &server_args,
        &subject,
        &suite.tuning,
        processes,
        side,
    );
    env.deployment = placement.deployment();
    env.machine_busy_before_pct = busy_before;
    env.roofline =
        rtbench_record::roofline::newest(&root().join("results"), &crate::record::host_id())
            .map(|(n, _)| n);
    env.network_namespace = netns.as_ref().map(|ns| rtbench_record::NetworkNamespace {
        name: ns.name.clone(),
        ehash_buckets: ns.ehash_buckets,
        sysctls: suite
            .tuning
            .keys()
            .chain(
                [
                    "net.core.somaxconn",
                    "net.ipv4.ip_local_port_range",
                    "net.ipv4.tcp_rmem",
                    "net.ipv4.tcp_wmem",
                ]
                .map(String::from)
                .iter(),
            )
            .filter(|k| k.starts_with("net.") && !k.starts_with("net.netfilter."))
            .map(|k| (k.clone(), ns.read(k)))
            .collect(),
    });
    record::write_json(&tmp.join("environment.json"), &env)?;

    let mut sampler = Sampler::new(
        servers.iter().map(|s| (s.pid(), s.metrics_addr)).collect(),
        redis.as_ref().map(RedisProcess::pid),
    );
    let mut samples: Vec<Sample> = vec![sampler.sample()];
    // The kernel's TCP counters where the servers' sockets live (their
    // network namespace when they run in one), before and after the load.
    // Redis first: a fault plan may kill any server, never Redis.
    let net_dir = redis
        .as_ref()
        .map(RedisProcess::pid)
        .into_iter()
        .chain(servers.iter().map(|s| s.pid()))
        .find(|&p| p != 0)
        .map_or("/proc/net".to_string(), |p| format!("/proc/{p}/net"));
    let tcp_before = rtbench_record::host::tcp_counters(&net_dir);
    let load_dir = tmp.join("loadgen");
    let mut loadgen = start_loadgen(&load_file, &load_dir, launch_file.as_deref())?;
    let load_started = Instant::now();
    let load_offset_s = samples[0].t_s;
    let mut forwarded = false;
    let mut exits: Vec<rtbench_record::ProcessExit> = Vec::new();
    let mut schedule_origin: Option<Instant> = None;
    let exit = loop {
        // Every process the run started is watched: one that ends early is
        // said at once and named in the record.
        let t_s = load_offset_s + load_started.elapsed().as_secs_f64();
        let mut ended: Vec<(String, u32, String)> = servers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((format!("server {i}"), s.pid(), s.poll_exit()?)))
            // A process the plan killed ended as planned.
            .filter(|(_, pid, _)| !plan.killed.contains(pid))
            .collect();
        if let Some(r) = redis.as_mut()
            && let Some(status) = r.poll_exit()
        {
            ended.push(("redis".into(), r.pid(), status));
        }
        for (role, pid, status) in ended {
            eprintln!(
                "xtask: FAULT at {t_s:.1} s: {role} (pid {pid}) ended: {status}; the run goes on without it and is not complete"
            );
            exits.push(rtbench_record::ProcessExit {
                t_s,
                role,
                pid,
                status,
            });
        }
        // The schedule's clock: from the load generator's first second on,
        // this process's own (a paused process must not stop the plan).
        if schedule_origin.is_none()
            && let Some(t) = schedule_second(&partial_dir(&load_dir))
        {
            schedule_origin = Some(Instant::now() - Duration::from_secs_f64(t));
        }
        if let Some(origin) = schedule_origin {
            let t = origin.elapsed().as_secs_f64();
            plan.step(t, t_s, &mut servers, redis.as_ref(), |i| {
                placement.start_server(side, i as u64, &args_of[i])
            })?;
            for (i, s) in servers.iter().enumerate() {
                sampler.set_server(i, s.pid(), s.metrics_addr, !plan.killed.contains(&s.pid()));
            }
        }
        std::thread::sleep(Duration::from_millis(250));
        let sig = signals::received();
        if sig != 0 && !forwarded {
            forwarded = true;
            eprintln!(
                "xtask: interrupted: stopping the load generator (it writes an incomplete record)"
            );
            // SAFETY: signalling our own child.
            unsafe { libc::kill(loadgen.id() as i32, libc::SIGINT) };
        }
        if let Some(status) = loadgen.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if samples
            .last()
            .is_none_or(|s| sampler_due(s, load_started, load_offset_s))
        {
            let s = sampler.sample();
            publish_state(state, &s, &partial_dir(&load_dir), &label, &exits);
            samples.push(s);
        }
    };
    plan.finish();
    samples.push(sampler.sample());
    let tcp_after = rtbench_record::host::tcp_counters(&net_dir);
    // The servers' work over the whole run, read once the load has stopped
    // (every process answers then): deliveries to set against what the
    // clients received, syscalls and wake-ups for the costs.
    let totals: Option<sample::Work> = servers
        .iter()
        .map(|s| {
            let v = crate::server::metrics_within(
                s.metrics_addr,
                &sample::WORK,
                Duration::from_secs(5),
            )
            .ok()?;
            let v: Option<Vec<u64>> = v.into_iter().collect();
            v?.try_into().ok()
        })
        .try_fold(
            [0u64; sample::WORK.len()],
            |acc, v: Option<sample::Work>| {
                let v = v?;
                Some(std::array::from_fn(|k| acc[k] + v[k]))
            },
        );
    let server_deliveries = totals.map(|t| t[3]);
    for s in &mut servers {
        s.stop(Duration::from_secs(15));
    }
    drop(servers);
    drop(redis);
    rtbench_record::series::write_csv(&tmp.join(record::SERVER_CSV), &samples)?;

    let interrupted = signals::received();
    let load_summary = read_load_summary(&load_dir).map_err(|e| {
        format!(
            "the load generator left no record ({exit}): {e}; see {}",
            partial_dir(&load_dir).display()
        )
    })?;
    // The hold on the sampler's clock: the load generator's schedule starts a
    // moment after it is launched, and it records exactly when.
    let schedule_s = load_summary
        .schedule_start_unix_ns
        .saturating_sub(sampler.start_unix_ns) as f64
        / 1e9;
    let hold_from = schedule_s + load.arrivals_end_s() + 1.0;
    let hold_to = schedule_s + load.hold_end_s() - 0.5;
    let mut summary = verdict::summarize(
        name,
        variant,
        suite,
        a,
        &load_summary,
        &samples,
        (hold_from, hold_to),
        interrupted,
        totals,
    );
    summary.errors.lost = server_deliveries.map(|d| d as i64 - load_summary.events.received as i64);
    summary.kernel_tcp = tcp_after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(tcp_before.get(k).copied().unwrap_or(*v));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect();
    verdict::judge_connecting(
        &mut summary,
        &samples,
        (schedule_s + 1.0, schedule_s + load.arrivals_end_s()),
        load_summary.connections.connect_rate,
    );
    if !plan.done.is_empty() {
        let rows: Vec<rtbench_record::load::TimeseriesRow> =
            rtbench_record::series::read_csv(&load_dir.join("timeseries.csv")).unwrap_or_default();
        summary.failover = crate::faults::failover(
            &plan.done,
            &rows,
            &samples,
            schedule_s,
            load.hold_end_s(),
            &load_summary,
        );
    }
    if !plan.killed.is_empty() {
        // A killed process's delivery count died with it: the servers'
        // deliveries against the clients' would be meaningless.
        summary.errors.lost = None;
    }
    summary.faults_injected = std::mem::take(&mut plan.done);
    summary.server_under_test = subject.label();
    summary.unmeasured = subject.unmeasured();
    let end_s = samples.last().map_or(0.0, |s| s.t_s);
    exits.extend(
        load_summary
            .worker_exits
            .iter()
            .map(|w| rtbench_record::ProcessExit {
                t_s: end_s,
                role: match w.host.as_str() {
                    "" | "localhost" => format!("worker {}", w.worker),
                    host => format!("worker {} on {host}", w.worker),
                },
                pid: w.pid,
                status: w.status.clone(),
            }),
    );
    if !exits.is_empty() {
        summary.complete = false;
    }
    summary.process_exits = exits;
    record::write_json(&tmp.join("summary.json"), &summary)?;
    record_dir::finish(&tmp, &dir)?;
    console::print_headline(&summary);
    Ok((dir, summary.complete))
}

fn sampler_due(last: &Sample, started: Instant, offset: f64) -> bool {
    started.elapsed().as_secs_f64() + offset >= last.t_s + 1.0
}

fn start_loadgen(scenario: &Path, out: &Path, launch: Option<&Path>) -> Result<Child, String> {
    let mut cmd = crate::loadgen_run(scenario, out);
    if let Some(l) = launch {
        cmd.arg("--launch").arg(l);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start the load generator: {e}"))
}

/// The load generator's current schedule second, from its live file.
/// The load generator's current schedule second, from its live file.
fn schedule_second(load_partial: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(load_partial.join("live.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["t"].as_f64()
}

/// Merges the load generator's latest second with the server sample and
/// the faults so far, for the live page.
fn publish_state(
    state: &dashboard::State,
    s: &Sample,
    load_partial: &Path,
    label: &str,
    exits: &[rtbench_record::ProcessExit],
) {
    let mut v: serde_json::Value = std::fs::read_to_string(load_partial.join("live.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let t = v.get("t").and_then(serde_json::Value::as_u64);
    if let (Some(obj), Ok(serde_json::Value::Object(sv))) =
        (v.as_object_mut(), serde_json::to_value(s))
    {
        obj.extend(sv);
        obj.insert("scenario".into(), label.into());
        obj.insert(
            "cores".into(),
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .into(),
        );
        let faults: Vec<String> = exits
            .iter()
            .map(|e| {
                format!(
                    "FAULT at {:.1} s: {} (pid {}) ended: {}",
                    e.t_s, e.role, e.pid, e.status
                )
            })
            .collect();
        obj.insert("faults".into(), faults.into());
    }
    if let Ok(mut g) = state.lock() {
        g.update(t, v.to_string());
    }
}

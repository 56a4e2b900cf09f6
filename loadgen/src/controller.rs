//! `rtbench-loadgen run`: checks the scenario, starts the workers, publishes,
//! merges what the workers report, judges itself, writes the run directory.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::publisher::{self, Published};
use crate::stats::{self, Counters, Hists, percentiles_ms};
use crate::sys::{self, now_ns};
use crate::wire::{Plan, Report, Start};
use rtbench_record::endpoint::{
    Endpoint, check_budget, expand_sources, local_port_range, port_search_warning,
};
use rtbench_record::launch::{Launch, WorkerLaunch};
use rtbench_record::load::{
    self as record, Bottleneck, Connections, Events, LoadgenSelf, Row, Summary,
};
use rtbench_record::scenario::{Protocol, Scenario};
use rtbench_record::series::HostSample;

/// Open files a worker keeps for itself beyond its connections.
const WORKER_FD_HEADROOM: u64 = 1000;
/// A worker this busy for this many seconds was the bottleneck.
const CPU_SATURATED_PCT: f64 = 90.0;
const CPU_SATURATED_SECONDS: usize = 3;
/// Arrivals or publishing this late mean the client fell behind its schedule.
const LAG_LIMIT_MS: f64 = 100.0;
/// How long every worker has to start, reach its targets and say `ready`
/// (a container's or a remote host's start included) before the run is
/// refused, naming the worker's host.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A worker silent this long once the schedule started (its heartbeat is
/// its tick line, once a second) is declared lost: it is killed, the run
/// goes on without it and is not complete.
const LOST_AFTER: Duration = Duration::from_secs(15);
/// Once the hold ends, a worker closes every connection in one go and may
/// be silent while it does (a million sockets closing at once stall the
/// machine for many seconds): it has the scenario's close timeout and
/// this much more before it is lost.
const CLOSING_GRACE: Duration = Duration::from_secs(60);

pub struct RunArgs {
    pub scenario: PathBuf,
    pub targets: Vec<String>,
    pub out: Option<PathBuf>,
    pub workers: Option<u64>,
    /// Where each worker runs (`launch.rs`); None: local processes.
    pub launch: Option<PathBuf>,
}

/// Runs a scenario; returns the run directory and whether it completed.
pub fn run(args: RunArgs) -> Result<(PathBuf, bool), String> {
    let mut sc = Scenario::load(&args.scenario).map_err(|e| e.to_string())?;
    if !args.targets.is_empty() {
        sc.target.urls = args.targets.clone();
    }
    let name = args
        .scenario
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
    // Re-check the resolved scenario (overrides included) as one file.
    let sc = Scenario::parse(
        &sc.to_toml(),
        &format!("{} (resolved)", args.scenario.display()),
    )
    .map_err(|e| e.to_string())?;
    let endpoints: Vec<Endpoint> = sc
        .target
        .urls
        .iter()
        .map(|u| Endpoint::parse(u, sc.target.protocol))
        .collect::<Result<_, _>>()?;
    let launch = args.launch.as_deref().map(Launch::read).transpose()?;
    // Each machine a worker runs on has its own ports, like a source address.
    let sources =
        expand_sources(&sc.target.sources)?.len().max(1) * launch.as_ref().map_or(1, Launch::hosts);
    let total = sc.total_arrivals();
    check_budget(total, &endpoints, sources, local_port_range())?;
    let port_warning = port_search_warning(total, endpoints.len(), sources, local_port_range());
    if let Some(w) = &port_warning {
        eprintln!("rtbench-loadgen: warning: {w}");
    }

    let nofile = sys::raise_open_files();
    let per_worker = nofile.saturating_sub(WORKER_FD_HEADROOM).max(100);
    let workers = match (&launch, args.workers) {
        (Some(l), Some(w)) if w != l.workers.len() as u64 => {
            return Err(format!(
                "--workers {w}, but --launch names {} workers",
                l.workers.len()
            ));
        }
        (Some(l), _) => l.workers.len() as u64,
        (None, w) => match w {
            Some(0) => return Err("--workers must be at least 1".into()),
            Some(w) if total.div_ceil(w) > per_worker => {
                return Err(format!(
                    "{w} workers would hold {} connections each, but a process may open {nofile} files here; use --workers {} or more",
                    total.div_ceil(w),
                    total.div_ceil(per_worker)
                ));
            }
            Some(w) => w,
            None => total.div_ceil(per_worker).max(1),
        },
    };
    let launch = launch.unwrap_or_else(|| local_launch(workers));
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{name}-{}",
            rtbench_protocol::time::compact_utc(now_ns())
        ))
    });
    if out.exists() {
        return Err(format!(
            "{} exists already: choose another --out",
            out.display()
        ));
    }
    let tmp = record::partial_dir(&out);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("workers")).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::write(tmp.join("scenario.toml"), sc.to_toml()).map_err(|e| e.to_string())?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(
        &rt,
        supervise(sc.clone(), name, launch, tmp.clone(), port_warning),
    )?;
    std::fs::rename(&tmp, &out).map_err(|e| format!("moving {} into place: {e}", tmp.display()))?;
    Ok((out, outcome))
}

/// Per-second rows, built as the workers report. A second's histograms are
/// merged as its lines arrive and dropped once every worker has reported it,
/// so the controller's work per line stays flat however long the run and
/// however many workers (it once re-merged every second for every line).
struct Merge {
    workers: u64,
    /// Seconds not yet reported by every worker.
    open: BTreeMap<u64, Second>,
    rows: Vec<Row>,
    /// Each worker's latest tick: (counters, connecting, RSS KiB).
    latest: BTreeMap<u64, (Counters, u64, u64)>,
    finals: BTreeMap<u64, Report>,
    bad_lines: u64,
    /// Seconds each worker spent at or above CPU_SATURATED_PCT.
    saturated: BTreeMap<u64, usize>,
    cpu_max: f64,
    /// Workers that will report no more (lost, or their output ended):
    /// seconds no longer wait for them.
    gone: std::collections::BTreeSet<u64>,
    /// The newest second each worker reported.
    last_t: BTreeMap<u64, u64>,
    /// Workers declared lost: their connections are gone with them.
    lost: std::collections::BTreeSet<u64>,
    /// Each worker's host, as the launch plan names it.
    hosts: Vec<String>,
    /// `hosts.csv`: each host's second, from the worker that samples it.
    host_rows: Vec<HostSample>,
}

struct Second {
    by_worker: BTreeMap<u64, (Counters, u64, u64)>,
    connect: stats::Hist,
    delivery: stats::Hist,
    lag_max_ms: f64,
    cpu_max: f64,
}

impl Merge {
    fn new(hosts: Vec<String>) -> Merge {
        Merge {
            workers: hosts.len() as u64,
            hosts,
            gone: Default::default(),
            last_t: BTreeMap::new(),
            lost: Default::default(),
            host_rows: Vec::new(),
            open: BTreeMap::new(),
            rows: Vec::new(),
            latest: BTreeMap::new(),
            finals: BTreeMap::new(),
            bad_lines: 0,
            saturated: BTreeMap::new(),
            cpu_max: 0.0,
        }
    }

    /// Takes one `tick` line; returns the newest row it completed, if any.
    fn tick(&mut self, w: u64, r: Report) -> Option<Row> {
        let Report::Tick {
            t,
            counters,
            connecting,
            lag_max_ms,
            cpu_pct,
            rss_kib,
            interval,
            host,
            ..
        } = r
        else {
            return None;
        };
        self.last_t.insert(w, t);
        if let Some(mut h) = host {
            h.host = self.hosts.get(w as usize).cloned().unwrap_or_default();
            self.host_rows.push(h);
        }
        self.cpu_max = self.cpu_max.max(cpu_pct);
        if cpu_pct >= CPU_SATURATED_PCT {
            *self.saturated.entry(w).or_default() += 1;
        }
        self.latest
            .insert(w, (counters.clone(), connecting, rss_kib));
        let sec = self.open.entry(t).or_insert_with(|| Second {
            by_worker: BTreeMap::new(),
            connect: stats::new_hist(),
            delivery: stats::new_hist(),
            lag_max_ms: 0.0,
            cpu_max: 0.0,
        });
        sec.by_worker.insert(w, (counters, connecting, rss_kib));
        sec.lag_max_ms = sec.lag_max_ms.max(lag_max_ms);
        sec.cpu_max = sec.cpu_max.max(cpu_pct);
        for (name, h) in [
            ("connect", &mut sec.connect),
            ("delivery", &mut sec.delivery),
        ] {
            if let Some(Ok(x)) = interval.get(name).map(|b| stats::decode(b)) {
                stats::merge(h, &x);
            }
        }
        self.close_seconds()
    }

    /// Completes every leading second each worker has reported or will
    /// never report; returns the newest.
    fn close_seconds(&mut self) -> Option<Row> {
        let mut done = None;
        while self.open.first_key_value().is_some_and(|(_, s)| {
            (0..self.workers).all(|w| s.by_worker.contains_key(&w) || self.gone.contains(&w))
        }) {
            let (t, sec) = self.open.pop_first().expect("checked");
            done = Some(self.complete(t, sec));
        }
        done
    }

    /// The newest second worker `w` reported (0: none yet).
    fn latest_second(&self, w: u64) -> u64 {
        self.last_t.get(&w).copied().unwrap_or(0)
    }

    /// Worker `w` reports no more: seconds stop waiting for it.
    fn gone(&mut self, w: u64) -> Option<Row> {
        self.gone.insert(w);
        self.close_seconds()
    }

    /// Completes the seconds some worker never reported (it ended first):
    /// its latest figures stand in for it.
    fn finish(&mut self) {
        while let Some((t, sec)) = self.open.pop_first() {
            self.complete(t, sec);
        }
    }

    fn complete(&mut self, t: u64, sec: Second) -> Row {
        let mut sum = Counters::default();
        let (mut connecting, mut rss_kib) = (0, 0);
        for w in 0..self.workers {
            if let Some((c, conn, rss)) = sec.by_worker.get(&w).or_else(|| self.latest.get(&w)) {
                if self.lost.contains(&w) {
                    // Killed: its counts stand, its connections and memory do not.
                    sum.add(&Counters {
                        open: 0,
                        ..c.clone()
                    });
                } else {
                    sum.add(c);
                    connecting += conn;
                    rss_kib += rss;
                }
            }
        }
        let row = Row {
            t,
            open: sum.open,
            connecting,
            attempted: sum.attempted,
            connected: sum.connected,
            failed: sum.failed_total(),
            closed_by_server: sum.closed_by_server.values().sum(),
            deliveries: sum.deliveries,
            bytes_in: sum.bytes_in,
            bytes_out: sum.bytes_out,
            connect: percentiles_ms(&sec.connect),
            delivery: percentiles_ms(&sec.delivery),
            lag_max_ms: sec.lag_max_ms,
            worker_cpu_max_pct: sec.cpu_max,
            rss_kib,
        };
        self.rows.push(row.clone());
        row
    }
}

/// Every worker a local process of this binary.
fn local_launch(workers: u64) -> Launch {
    let exe = std::env::current_exe().map_or("rtbench-loadgen".into(), |p| p.display().to_string());
    Launch {
        workers: (0..workers)
            .map(|_| WorkerLaunch {
                host: "localhost".into(),
                argv: vec![exe.clone(), "worker".into()],
                clock_offset_ns: 0,
            })
            .collect(),
    }
}

async fn supervise(
    sc: Scenario,
    name: String,
    launch: Launch,
    dir: PathBuf,
    port_warning: Option<String>,
) -> Result<bool, String> {
    let sc = Rc::new(sc);
    let started_at = rtbench_protocol::time::appwrite_timestamp(now_ns());
    let workers = launch.workers.len() as u64;
    // Lines from the workers; `None` when a worker's output ended.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Option<String>)>();
    let mut children: Vec<(Child, Option<ChildStdin>)> = Vec::new();
    let mut sampled_hosts = std::collections::BTreeSet::new();
    for (w, how) in (0u64..).zip(&launch.workers) {
        let log = std::fs::File::create(worker_log(&dir, w)).map_err(|e| e.to_string())?;
        let mut child = Command::new(&how.argv[0])
            .args(&how.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start worker {w} (`{}`): {e}", how.argv.join(" ")))?;
        let plan = Plan {
            scenario: (*sc).clone(),
            worker: w,
            workers,
            start_unix_ns: 0,
            clock_offset_ns: how.clock_offset_ns,
            sample_host: sampled_hosts.insert(how.host.clone()),
        };
        let mut stdin = child.stdin.take().expect("piped");
        let line = serde_json::to_string(&plan).expect("plan serializes") + "\n";
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("worker {w}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send((w, Some(l)));
            }
            let _ = tx.send((w, None));
        });
        children.push((child, Some(stdin)));
    }
    drop(tx);
    let hosts: Vec<String> = launch.workers.iter().map(|l| l.host.clone()).collect();

    // The ready barrier: the schedule starts only once every worker runs,
    // has reached its targets and says so.
    let mut ready = std::collections::BTreeSet::new();
    let ready_by = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut why_not: Option<(u64, String)> = None;
    while (ready.len() as u64) < workers && why_not.is_none() {
        tokio::select! {
            line = rx.recv() => match line {
                Some((w, Some(l))) => {
                    if matches!(serde_json::from_str::<Report>(&l), Ok(Report::Ready { .. })) {
                        ready.insert(w);
                    }
                }
                Some((w, None)) => why_not = Some((w, "ended before it was ready".into())),
                None => break,
            },
            _ = tokio::time::sleep_until(ready_by) => {
                let w = (0..workers).find(|w| !ready.contains(w)).unwrap_or(0);
                why_not = Some((w, format!("was not ready within {} s", READY_TIMEOUT.as_secs())));
            }
        }
    }
    if let Some((w, why)) = why_not {
        for (child, stdin) in &mut children {
            stdin.take();
            let _ = child.start_kill();
        }
        let log = log_tail(&worker_log(&dir, w));
        return Err(format!(
            "worker {w} on {} {why}; the run did not start{}",
            hosts[w as usize],
            if log.is_empty() {
                String::new()
            } else {
                format!(": {log}")
            }
        ));
    }
    // Every worker gets the start well before it is due.
    let start_ns = now_ns() + 300_000_000 + workers * 2_000_000;
    let start = serde_json::to_string(&Start {
        start_unix_ns: start_ns,
    })
    .expect("start serializes")
        + "\n";
    for (w, (_, stdin)) in children.iter_mut().enumerate() {
        if let Some(s) = stdin {
            s.write_all(start.as_bytes())
                .await
                .map_err(|e| format!("worker {w}: {e}"))?;
        }
    }

    let stop = Rc::new(Cell::new(false));
    let publishing = tokio::task::spawn_local(publisher::run(sc.clone(), start_ns, stop.clone()));
    let mut stopped_by: Option<String> = None;
    let mut merge = Merge::new(hosts.clone());
    let mut progress = crate::progress::Progress::new(sc.total_arrivals());
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| e.to_string())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    // Heartbeats: when each worker was last heard from (the first tick is
    // due a second after the start).
    let first_tick = tokio::time::Instant::now()
        + Duration::from_nanos(start_ns.saturating_sub(now_ns()))
        + Duration::from_secs(1);
    let mut heard = vec![first_tick; workers as usize];
    let hold_end = first_tick - Duration::from_secs(1) + Duration::from_secs_f64(sc.hold_end_s());
    let closing_silence =
        LOST_AFTER + CLOSING_GRACE + Duration::from_secs_f64(sc.hold.close_timeout_s);
    let mut lost: BTreeMap<u64, String> = BTreeMap::new();
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    let mut live = Live::default();
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                None => break,
                Some((w, line)) => hear(w, line, &mut merge, &mut heard, &mut progress, &mut live, &dir, &sc),
            },
            _ = watch.tick() => {
                // Lines already waiting are heard first: a controller that
                // was itself kept from running must not blame the workers.
                while let Ok((w, line)) = rx.try_recv() {
                    hear(w, line, &mut merge, &mut heard, &mut progress, &mut live, &dir, &sc);
                }
                let now = tokio::time::Instant::now();
                // Closing (after the hold, or stopped early) may be silent longer.
                let allowed = if now < hold_end && stopped_by.is_none() {
                    LOST_AFTER
                } else {
                    closing_silence
                };
                for w in 0..workers {
                    let silent = now.saturating_duration_since(heard[w as usize]);
                    if silent < allowed || merge.gone.contains(&w) || merge.finals.contains_key(&w) {
                        continue;
                    }
                    let last = merge.latest_second(w);
                    let status = format!(
                        "lost: no report for {} s after second {last} (killed)",
                        allowed.as_secs()
                    );
                    eprintln!("rtbench-loadgen: worker {w} on {}: {status}", hosts[w as usize]);
                    let (child, stdin) = &mut children[w as usize];
                    stdin.take();
                    let _ = child.start_kill();
                    lost.insert(w, status);
                    merge.lost.insert(w);
                    live.lost.push(format!("worker {w} on {} lost after second {last}", hosts[w as usize]));
                    if let Some(row) = merge.gone(w) {
                        live.update(&dir, &row, &sc, &merge);
                    }
                }
            }
            _ = sigint.recv(), if stopped_by.is_none() => stopped_by = Some("SIGINT".into()),
            _ = sigterm.recv(), if stopped_by.is_none() => stopped_by = Some("SIGTERM".into()),
        }
        if stopped_by.is_some() && !stop.get() {
            // Closing a worker's stdin is its stop signal.
            stop.set(true);
            for (_, stdin) in &mut children {
                stdin.take();
            }
        }
    }
    merge.finish();
    stop.set(true);
    let published = publishing.await.unwrap_or_default();
    let mut died = Vec::new();
    let mut worker_exits = Vec::new();
    for (w, (mut child, _)) in children.into_iter().enumerate() {
        let pid = child.id().unwrap_or(0);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        let status = match lost.remove(&(w as u64)) {
            Some(why) => why,
            None if matches!(status, Ok(Ok(s)) if s.success()) => continue,
            None => {
                let _ = child.kill().await;
                match status {
                    Ok(Ok(s)) => {
                        use std::os::unix::process::ExitStatusExt;
                        s.signal()
                            .map_or(s.to_string(), |sig| format!("signal {sig}"))
                    }
                    Ok(Err(e)) => format!("cannot be waited for: {e}"),
                    Err(_) => "still running 10 s after the end (killed)".into(),
                }
            }
        };
        died.push(format!(
            "worker {w} (pid {pid}, {}) ended: {status}",
            hosts[w]
        ));
        worker_exits.push(rtbench_record::load::WorkerExit {
            worker: w as u64,
            pid,
            host: hosts[w].clone(),
            status,
        });
    }
    progress.finish();
    let complete = stopped_by.is_none() && died.is_empty() && merge.finals.len() as u64 == workers;
    let client_limits: Vec<String> = died.into_iter().chain(port_warning).collect();
    let summary = summarize(
        &sc,
        &name,
        workers,
        &merge,
        &published,
        started_at,
        start_ns,
        complete,
        stopped_by,
        &client_limits,
    )?;
    let summary = Summary {
        worker_exits,
        ..summary
    };
    write(&dir, &merge, &summary)?;
    let _ = std::fs::remove_file(dir.join("live.json"));
    print_summary(&summary);
    Ok(summary.complete)
}

/// Takes one line from worker `w` (`None`: its output ended).
#[allow(clippy::too_many_arguments)]
fn hear(
    w: u64,
    line: Option<String>,
    merge: &mut Merge,
    heard: &mut [tokio::time::Instant],
    progress: &mut crate::progress::Progress,
    live: &mut Live,
    dir: &Path,
    sc: &Scenario,
) {
    heard[w as usize] = tokio::time::Instant::now();
    if merge.lost.contains(&w) {
        return; // killed as lost: whatever it still wrote is not counted
    }
    let row = match line.map(|l| serde_json::from_str::<Report>(&l)) {
        None => merge.gone(w),
        Some(Ok(r @ Report::Tick { .. })) => merge.tick(w, r),
        Some(Ok(r @ Report::Final { .. })) => {
            merge.finals.insert(w, r);
            None
        }
        Some(Ok(Report::Ready { .. })) => None,
        Some(Err(_)) => {
            merge.bad_lines += 1;
            None
        }
    };
    if let Some(row) = row {
        progress.update(&row);
        live.update(dir, &row, sc, merge);
    }
}

fn worker_log(dir: &Path, w: u64) -> PathBuf {
    dir.join(format!("workers/worker-{w}.log"))
}

/// The last lines of a worker's log, on one line, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// `live.json`: the latest second and the self-check's warnings so far,
/// replaced whole each second while the run goes on (for the live page;
/// gone from the finished record).
#[derive(Default)]
struct Live {
    /// Workers declared lost, as the live page says it.
    lost: Vec<String>,
    /// The latest arrival lag so far (ms).
    lag_max_ms: f64,
}

impl Live {
    fn update(&mut self, dir: &Path, r: &Row, sc: &Scenario, merge: &Merge) {
        self.lag_max_ms = self.lag_max_ms.max(r.lag_max_ms);
        let mut warnings = self.lost.clone();
        if self.lag_max_ms > LAG_LIMIT_MS {
            warnings.push(format!(
                "arrivals started up to {:.0} ms behind schedule (limit {LAG_LIMIT_MS} ms)",
                self.lag_max_ms
            ));
        }
        for (w, secs) in &merge.saturated {
            if *secs >= CPU_SATURATED_SECONDS {
                warnings.push(format!(
                    "worker {w} used >= {CPU_SATURATED_PCT}% of a core for {secs} s"
                ));
            }
        }
        let prev = merge.rows.iter().rev().nth(1);
        let per_s = |now: u64, before: Option<u64>| now.saturating_sub(before.unwrap_or(0));
        let live = serde_json::json!({
            "t": r.t, "target": sc.total_arrivals(), "open": r.open, "connecting": r.connecting,
            "attempted": r.attempted, "connected": r.connected, "failed": r.failed,
            "closed_by_server": r.closed_by_server, "deliveries": r.deliveries,
            "deliveries_per_s": per_s(r.deliveries, prev.map(|p| p.deliveries)),
            "received_bytes_per_s": per_s(r.bytes_in, prev.map(|p| p.bytes_in)),
            "sent_bytes_per_s": per_s(r.bytes_out, prev.map(|p| p.bytes_out)),
            "connect_p50_ms": r.connect.p50, "connect_p99_ms": r.connect.p99,
            "delivery_p50_ms": r.delivery.p50, "delivery_p99_ms": r.delivery.p99,
            "arrival_lag_max_ms": r.lag_max_ms,
            "worker_cpu_max_pct": r.worker_cpu_max_pct, "loadgen_rss_kib": r.rss_kib,
            "warnings": warnings,
        });
        let tmp = dir.join("live.json.tmp");
        if std::fs::write(&tmp, live.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join("live.json"));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    sc: &Scenario,
    name: &str,
    workers: u64,
    merge: &Merge,
    published: &Published,
    started_at: String,
    start_ns: u64,
    complete: bool,
    stopped_by: Option<String>,
    client_limits: &[String],
) -> Result<Summary, String> {
    let mut counters = Counters::default();
    let mut hists = Hists::default();
    let (mut cpu_s, mut start_rss_kib, mut peak_rss_kib, mut lag_max_ms) = (0.0, 0, 0, 0.0f64);
    let mut by_subscriber: BTreeMap<u32, u64> = BTreeMap::new();
    for r in merge.finals.values() {
        if let Report::Final {
            counters: c,
            hists: h,
            cpu_s: cs,
            rss_start_kib: rss0,
            peak_rss_kib: rss,
            lag_max_ms: lag,
            received_by_subscriber: by,
            ..
        } = r
        {
            for (k, n) in by {
                *by_subscriber.entry(*k).or_default() += n;
            }
            start_rss_kib += rss0;
            counters.add(c);
            hists.add_encoded(h)?;
            cpu_s += cs;
            peak_rss_kib += rss;
            lag_max_ms = lag_max_ms.max(*lag);
        }
    }
    let rows = &merge.rows;
    let target = sc.total_arrivals();
    let peak_open = rows.iter().map(|r| r.open).max().unwrap_or(0);
    // The last whole second before closing starts (closing begins at hold_end_s).
    let hold_end = (sc.hold_end_s() - 1.0).floor().max(0.0) as u64;
    let held = rows
        .iter()
        .rev()
        .find(|r| r.t <= hold_end)
        .map_or(0, |r| r.open);
    let time_to_target_s = rows
        .iter()
        .find(|r| r.open >= target && target > 0)
        .map(|r| r.t as f64);
    let mut reasons = Vec::new();
    let cpu_max = merge.cpu_max;
    for (w, secs) in &merge.saturated {
        if *secs >= CPU_SATURATED_SECONDS {
            reasons.push(format!(
                "worker {w} used >= {CPU_SATURATED_PCT}% of a core for {secs} s (max {cpu_max:.0}%)"
            ));
        }
    }
    if lag_max_ms > LAG_LIMIT_MS {
        reasons.push(format!(
            "arrivals started up to {lag_max_ms:.0} ms behind schedule (limit {LAG_LIMIT_MS} ms)"
        ));
    }
    let publish_lag_ms = published.lag_max_ns as f64 / 1e6;
    if publish_lag_ms > LAG_LIMIT_MS {
        reasons.push(format!(
            "events published up to {publish_lag_ms:.0} ms behind schedule (limit {LAG_LIMIT_MS} ms)"
        ));
    }
    let sent = published.events + published.errors.values().sum::<u64>();
    if complete && sent < published.scheduled {
        reasons.push(format!(
            "{sent} of {} scheduled events were sent",
            published.scheduled
        ));
    }
    if counters.pings_skipped > 0 {
        reasons.push(format!(
            "{} pings or echoes not sent: sockets would block",
            counters.pings_skipped
        ));
    }
    if merge.bad_lines > 0 {
        reasons.push(format!(
            "{} worker lines could not be read",
            merge.bad_lines
        ));
    }
    reasons.extend(client_limits.iter().cloned());
    let arrivals_s = sc.arrivals_end_s();
    let duration_s = now_ns().saturating_sub(start_ns) as f64 / 1e9;
    Ok(Summary {
        format_version: record::FORMAT_VERSION,
        complete,
        stopped_by,
        scenario: name.to_string(),
        description: sc.description.clone(),
        protocol: match sc.target.protocol {
            Protocol::Appwrite => "appwrite".into(),
            Protocol::Raw => "raw".into(),
        },
        targets: sc.target.urls.clone(),
        started_at,
        schedule_start_unix_ns: start_ns,
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
        events: Events {
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
            publish_lag_max_ms: publish_lag_ms,
            in_flight_max: published.in_flight_max,
            in_flight_cap: published.in_flight_cap,
            received_by_subscriber: by_subscriber,
        },
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
            arrival_lag_max_ms: lag_max_ms,
        },
        client_bottleneck: Bottleneck {
            bottleneck: !reasons.is_empty(),
            reasons,
        },
        counters,
        worker_exits: Vec::new(),
    })
}

fn write(dir: &Path, merge: &Merge, summary: &Summary) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(summary).expect("summary serializes"),
    )
    .map_err(io)?;
    rtbench_record::series::write_csv(
        &dir.join("timeseries.csv"),
        &record::timeseries(&merge.rows),
    )?;
    rtbench_record::series::write_csv(&dir.join(record::HOSTS_CSV), &merge.host_rows)?;
    let mut hists = Hists::default();
    for r in merge.finals.values() {
        if let Report::Final { hists: h, .. } = r {
            hists.add_encoded(h)?;
        }
    }
    crate::stats::write_histograms(dir, &hists).map_err(io)?;
    let errors = serde_json::json!({
        "failed": summary.counters.failed,
        "closed_by_server": summary.counters.closed_by_server,
        "error_frames": summary.counters.error_frames,
        "publish_errors": summary.events.publish_errors,
    });
    std::fs::write(
        dir.join("errors.json"),
        serde_json::to_string_pretty(&errors).expect("serializes"),
    )
    .map_err(io)?;
    Ok(())
}

fn print_summary(s: &Summary) {
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
    eprintln!(
        "rtbench-loadgen: load generator: {:.2} KiB/connection, peak worker CPU {:.0}%",
        s.loadgen.kib_per_connection, s.loadgen.worker_cpu_max_pct
    );
    for r in &s.client_bottleneck.reasons {
        eprintln!("rtbench-loadgen: CLIENT BOTTLENECK: {r}");
    }
}

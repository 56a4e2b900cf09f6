//! `rtbench-loadgen run`: checks the scenario, starts the workers, publishes,
//! merges what the workers report, judges itself, writes the run directory.
//!
//! This module is the sequence and nothing more: each step's work is in the
//! module named for it, so the order of a run reads here in one place.

mod heartbeat;
mod live;
mod merge;
mod processes;
mod run_dir;
mod selfcheck;
mod slo;
mod summary;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rtbench_record::endpoint::{Endpoint, check_budget, expand_sources, port_search_warning};
use rtbench_record::launch::{Launch, worker_capacity, workers_needed};
use rtbench_record::load::{StopCause, Summary};
use rtbench_record::scenario::Scenario;
use rtbench_sys::sysctl;

use crate::progress::Progress;
use crate::publisher;
use crate::sys::{self, now_ns};
use heartbeat::Heartbeats;
use live::Live;
use merge::Merge;
use processes::{Lines, Workers};

pub struct RunArgs {
    pub scenario: PathBuf,
    pub targets: Vec<String>,
    pub out: Option<PathBuf>,
    pub workers: Option<u64>,
    /// Where each worker runs (`rtbench_record::launch`); None: local processes.
    pub launch: Option<PathBuf>,
}

/// Runs a scenario; returns the run directory and whether it completed.
pub fn run(args: RunArgs) -> Result<(PathBuf, bool)> {
    let mut sc = Scenario::load(&args.scenario)?;
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
    )?;
    let endpoints: Vec<Endpoint> = sc
        .target
        .urls
        .iter()
        .map(|u| Endpoint::parse(u, sc.target.protocol))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    let launch = args.launch.as_deref().map(Launch::read).transpose()?;
    // Each machine a worker runs on has its own ports, like a source address.
    let sources = expand_sources(&sc.target.sources)
        .map_err(anyhow::Error::msg)?
        .len()
        .max(1)
        * launch.as_ref().map_or(1, Launch::hosts);
    // Open at once (a churn run's arrivals replace those that left).
    let total = sc.peak_connections();
    let ports = sysctl::local_port_range().unwrap_or(sysctl::LINUX_DEFAULT_PORT_RANGE);
    check_budget(total, &endpoints, sources, ports).map_err(anyhow::Error::msg)?;
    let port_warning = port_search_warning(total, endpoints.len(), sources, ports);
    if let Some(w) = &port_warning {
        eprintln!("rtbench-loadgen: warning: {w}");
    }

    let nofile = sys::raise_open_files().map_err(anyhow::Error::msg)?;
    let per_worker = worker_capacity(nofile).max(1);
    let workers = match (&launch, args.workers) {
        (Some(l), Some(w)) if w != l.workers.len() as u64 => {
            bail!(
                "--workers {w}, but --launch names {} workers",
                l.workers.len()
            );
        }
        (Some(l), _) => l.workers.len() as u64,
        (None, w) => match w {
            Some(0) => bail!("--workers must be at least 1"),
            Some(w) if total.div_ceil(w) > per_worker => {
                bail!(
                    "{w} workers would hold {} connections each, but a process may open {nofile} files here; use --workers {} or more",
                    total.div_ceil(w),
                    total.div_ceil(per_worker)
                );
            }
            Some(w) => w,
            None => workers_needed(total, nofile),
        },
    };
    let launch = launch.unwrap_or_else(|| processes::local_launch(workers));
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{name}-{}",
            rtbench_protocol::time::compact_utc(now_ns())
        ))
    });
    let tmp = run_dir::prepare(&out, &sc)?;
    crate::sys::raise_priority();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the controller's tokio runtime")?;
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(
        &rt,
        supervise(sc.clone(), name, launch, tmp.clone(), port_warning),
    )?;
    run_dir::finish(&tmp, &out)?;
    Ok((out, outcome))
}

/// The run itself: the workers started and past the ready barrier, the
/// publisher beside them, their lines merged and their heartbeats watched
/// until every worker's output ends, then the record written into `dir`.
/// Returns whether the run completed.
async fn supervise(
    sc: Scenario,
    name: String,
    launch: Launch,
    dir: PathBuf,
    port_warning: Option<String>,
) -> Result<bool> {
    let sc = Rc::new(sc);
    let started_at = rtbench_protocol::time::appwrite_timestamp(now_ns());
    let workers = launch.workers.len() as u64;
    let (mut procs, mut rx) = Workers::start(&launch, &sc, &dir).await?;
    procs.await_ready(&mut rx).await?;
    // Every worker gets the start well before it is due.
    let start_ns = now_ns() + 300_000_000 + workers * 2_000_000;
    procs.send_start(start_ns).await?;

    let stop = Rc::new(Cell::new(false));
    let publishing = tokio::task::spawn_local(publisher::run(sc.clone(), start_ns, stop.clone()));
    let mut stopped_by: Option<StopCause> = None;
    let mut merge = Merge::new(procs.hosts.clone(), &sc, &dir)?;
    let mut progress = Progress::new(sc.total_arrivals());
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("listening for SIGINT")?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let mut heartbeats = Heartbeats::new(workers, start_ns, &sc);
    let mut lost: BTreeMap<u64, String> = BTreeMap::new();
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    let mut live = Live::default();
    let mut so_far = RunSoFar {
        merge: &mut merge,
        heartbeats: &mut heartbeats,
        progress: &mut progress,
        live: &mut live,
        dir: &dir,
        sc: &sc,
    };
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                None => break,
                Some((w, line)) => so_far.hear(w, line),
            },
            _ = watch.tick() => {
                // Lines already waiting are heard first: a controller that
                // was itself kept from running must not blame the workers.
                hear_waiting(&mut rx, &mut so_far);
                let (allowed, overdue) = so_far.heartbeats.overdue(stopped_by.is_some(), |w| {
                    so_far.merge.gone.contains(&w) || so_far.merge.finals.contains_key(&w)
                });
                for w in overdue {
                    let last = so_far.merge.latest_second(w);
                    let status = heartbeat::lost_status(allowed, last);
                    let host = procs.hosts[w as usize].clone();
                    eprintln!("rtbench-loadgen: worker {w} on {host}: {status}");
                    procs.kill(w);
                    lost.insert(w, status);
                    so_far.merge.lost.insert(w);
                    so_far.live.lost.push(format!("worker {w} on {host} lost after second {last}"));
                    if let Some(row) = so_far.merge.gone(w) {
                        so_far.live.update(&dir, &row, &sc, so_far.merge);
                    }
                }
            }
            _ = sigint.recv(), if stopped_by.is_none() => stopped_by = Some(StopCause::Sigint),
            _ = sigterm.recv(), if stopped_by.is_none() => stopped_by = Some(StopCause::Sigterm),
        }
        if stopped_by.is_some() && !stop.get() {
            stop.set(true);
            procs.stop();
        }
    }
    merge.finish();
    stop.set(true);
    let published = publishing.await.unwrap_or_default();
    let (died, worker_exits) = procs.reap(lost, |w| merge.finals.contains_key(&w)).await;
    progress.finish();
    let complete = stopped_by.is_none() && died.is_empty() && merge.finals.len() as u64 == workers;
    let ending = summary::Ending {
        started_at,
        start_ns,
        complete,
        stopped_by,
        client_limits: died.into_iter().chain(port_warning).collect(),
    };
    let summary = summary::summarize(&sc, &name, workers, &merge, &published, ending)
        .map_err(anyhow::Error::msg)?;
    let summary = Summary {
        worker_exits,
        ..summary
    };
    run_dir::write(&dir, &mut merge, &summary)?;
    live::remove(&dir);
    summary::print_summary(&summary);
    Ok(summary.complete)
}

/// The run so far as the workers' lines move it on: their heartbeats, the
/// merged seconds and, when a second completes, the progress line and the
/// live file.
struct RunSoFar<'a> {
    merge: &'a mut Merge,
    heartbeats: &'a mut Heartbeats,
    progress: &'a mut Progress,
    live: &'a mut Live,
    dir: &'a Path,
    sc: &'a Scenario,
}

impl RunSoFar<'_> {
    /// Takes one line from worker `w` (`None`: its output ended).
    fn hear(&mut self, w: u64, line: Option<String>) {
        self.heartbeats.heard(w);
        if let Some(row) = self.merge.take_line(w, line) {
            self.progress.update(&row);
            self.live.update(self.dir, &row, self.sc, self.merge);
        }
    }
}

/// Hears every line already waiting, without waiting for more.
fn hear_waiting(rx: &mut Lines, so_far: &mut RunSoFar) {
    while let Ok((w, line)) = rx.try_recv() {
        so_far.hear(w, line);
    }
}

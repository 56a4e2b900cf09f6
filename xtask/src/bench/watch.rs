//! The third stage of a run: the load generator runs while the bench
//! watches every process it started (one that ends early is said at once
//! and named), carries out the fault plan on the schedule's clock, samples
//! the servers and the machine every second, feeds the live page and
//! forwards Ctrl-C. It returns what was measured; it judges nothing.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use rtbench_record::live::{LivePoint, LiveSecond};
use rtbench_record::load::partial_dir;
use rtbench_record::{ProcessExit, Role};

use crate::dashboard;
use crate::faults;
use crate::sample::{Sample, Sampler, Work};
use crate::server::RedisProcess;

use super::signals;
use super::start::Started;

/// What a run measured while it went on.
pub struct Watched {
    /// One a second, the first before the load, the last after it.
    pub samples: Vec<Sample>,
    /// Wall-clock time of the samples' t_s = 0.
    pub sampler_start_unix_ns: u64,
    /// Processes that ended on their own during the run.
    pub exits: Vec<ProcessExit>,
    /// How the load generator ended, and its pid.
    pub loadgen_exit: ExitStatus,
    pub loadgen_pid: u32,
    /// The servers' work over the whole run, read once the load stopped;
    /// None unless every server answered.
    pub work: Option<Work>,
    /// The kernel's TCP counters in the servers' namespace, before and after.
    pub tcp_before: std::collections::BTreeMap<String, u64>,
    pub tcp_after: std::collections::BTreeMap<String, u64>,
}

/// Where the load generator is told to go and what the live page shows.
pub struct Load<'a> {
    pub scenario: &'a Path,
    /// Its run directory inside the partial record.
    pub dir: &'a Path,
    pub launch: Option<&'a Path>,
    pub live: &'a dashboard::State,
    /// `suite (variant)`.
    pub label: &'a str,
}

/// Runs the load generator to its end while watching `started`; the
/// fault plan is carried out as it goes.
pub fn run(
    started: &mut Started,
    plan: &mut faults::Plan,
    side: &super::placement::Side,
    load: &Load,
) -> anyhow::Result<Watched> {
    let mut sampler = Sampler::new(
        started
            .servers
            .iter()
            .map(|s| (s.pid(), s.metrics_addr))
            .collect(),
        started.redis.as_ref().map(RedisProcess::pid),
    );
    let mut samples: Vec<Sample> = vec![sampler.sample()];
    // The kernel's TCP counters where the servers' sockets live (their
    // network namespace when they run in one), before and after the load.
    // Redis first: a fault plan may kill any server, never Redis.
    let net_dir = started
        .redis
        .as_ref()
        .map(RedisProcess::pid)
        .into_iter()
        .chain(started.servers.iter().map(|s| s.pid()))
        .find(|&p| p != 0)
        .map_or(
            rtbench_sys::host::NetNamespace::Current,
            rtbench_sys::host::NetNamespace::OfProcess,
        );
    let tcp_before = rtbench_sys::host::tcp_counters(net_dir);
    let mut loadgen = start_loadgen(load)?;
    sampler.set_loadgen(loadgen.id());
    let load_started = Instant::now();
    let load_offset_s = samples[0].t_s;
    let mut forwarded = false;
    let mut exits: Vec<ProcessExit> = Vec::new();
    let mut schedule_origin: Option<Instant> = None;
    let load_partial = partial_dir(load.dir);
    let loadgen_exit = loop {
        let t_s = load_offset_s + load_started.elapsed().as_secs_f64();
        exits.extend(ended(started, plan, t_s));
        exits.extend(started.placement.lost(t_s));
        // The schedule's clock: from the load generator's first second on,
        // this process's own (a paused process must not stop the plan).
        if schedule_origin.is_none()
            && let Some(second) = LiveSecond::read(&load_partial)
        {
            schedule_origin = Some(Instant::now() - Duration::from_secs(second.t));
        }
        if let Some(origin) = schedule_origin {
            step_faults(started, plan, side, origin.elapsed().as_secs_f64(), t_s)?;
            follow(&mut sampler, started, plan);
        }
        std::thread::sleep(Duration::from_millis(250));
        if signals::received() != 0 && !forwarded {
            forwarded = true;
            eprintln!(
                "xtask: interrupted: stopping the load generator (it writes an incomplete record)"
            );
            let _ =
                rtbench_sys::process::signal(loadgen.id(), rtbench_sys::process::Signal::Interrupt);
        }
        if let Some(status) = loadgen
            .try_wait()
            .map_err(|e| anyhow::anyhow!("waiting for the load generator: {e:#}"))?
        {
            break status;
        }
        if samples
            .last()
            .is_none_or(|s| load_started.elapsed().as_secs_f64() + load_offset_s >= s.t_s + 1.0)
        {
            let s = sampler.sample();
            publish(load, &s, &load_partial, &exits);
            samples.push(s);
        }
    };
    plan.finish();
    samples.push(sampler.sample());
    let tcp_after = rtbench_sys::host::tcp_counters(net_dir);
    // The servers' work over the whole run, read once the load has stopped
    // (every process answers then): deliveries to set against what the
    // clients received, syscalls and wake-ups for the costs.
    let each: Option<Vec<Work>> = started
        .servers
        .iter()
        .map(|s| Work::read(s.metrics_addr, Duration::from_secs(5)))
        .collect();
    Ok(Watched {
        samples,
        sampler_start_unix_ns: sampler.start_unix_ns,
        exits,
        loadgen_exit,
        loadgen_pid: loadgen.id(),
        work: each.map(|w| Work::total(&w)),
        tcp_before,
        tcp_after,
    })
}

/// The processes of the run that ended since the last look, said at once;
/// one the plan killed ended as planned and is not among them.
fn ended(started: &mut Started, plan: &faults::Plan, t_s: f64) -> Vec<ProcessExit> {
    let mut ended: Vec<(Role, u32, String)> = started
        .servers
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| Some((Role::Server(i as u64), s.pid(), s.poll_exit()?)))
        .filter(|(_, pid, _)| !plan.killed.contains(pid))
        .collect();
    if let Some(r) = started.redis.as_mut()
        && let Some(status) = r.poll_exit()
    {
        ended.push((Role::Redis, r.pid(), status));
    }
    ended
        .into_iter()
        .map(|(role, pid, status)| {
            eprintln!(
                "xtask: FAULT at {t_s:.1} s: {role} (pid {pid}) ended: {status}; the run goes on without it and is not complete"
            );
            ProcessExit {
                t_s,
                role,
                pid,
                status,
                cause: None,
            }
        })
        .collect()
}

/// The sampler follows the processes the fault plan restarted or killed.
fn follow(sampler: &mut Sampler, started: &Started, plan: &faults::Plan) {
    for (i, s) in started.servers.iter().enumerate() {
        sampler.set_server(i, s.pid(), s.metrics_addr, !plan.killed.contains(&s.pid()));
    }
    sampler.set_redis(started.redis.as_ref().map(RedisProcess::pid));
}

/// Does what the fault plan has due at schedule second `t`.
fn step_faults(
    started: &mut Started,
    plan: &mut faults::Plan,
    side: &super::placement::Side,
    t: f64,
    t_s: f64,
) -> anyhow::Result<()> {
    let Started {
        servers,
        redis,
        args_of,
        placement,
        ..
    } = started;
    plan.step(t, t_s, servers, redis, |i| {
        placement.start_server(side, i as u64, &args_of[i])
    })
}

fn start_loadgen(load: &Load) -> anyhow::Result<Child> {
    let mut cmd = crate::loadgen_run(load.scenario, load.dir);
    if let Some(l) = load.launch {
        cmd.arg("--launch").arg(l);
    }
    cmd.spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the load generator: {e:#}"))
}

/// The load generator's latest second joined with the server sample and
/// the faults so far, for the live page.
fn publish(load: &Load, s: &Sample, load_partial: &Path, exits: &[ProcessExit]) {
    let second = LiveSecond::read(load_partial);
    let t = second.as_ref().map(|l| l.t);
    let point = LivePoint {
        load: second,
        server: s.clone(),
        scenario: load.label.to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        faults: exits
            .iter()
            .map(|e| {
                format!(
                    "FAULT at {:.1} s: {} (pid {}) ended: {}",
                    e.t_s, e.role, e.pid, e.status
                )
            })
            .collect(),
    };
    let Ok(json) = serde_json::to_string(&point) else {
        return;
    };
    if let Ok(mut g) = load.live.lock() {
        g.update(t, json);
    }
}

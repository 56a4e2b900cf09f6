//! A worker process: makes its share of the arrivals, holds the connections,
//! and reports on stdout.
//!
//! A worker is a plain process that talks only through stdin and stdout (its
//! plan in, JSON lines out), so the same worker runs under the local
//! controller, over SSH or in a container. It is single-threaded on purpose:
//! scale comes from more workers (the open-files limit forces that anyway),
//! and one thread means no locks on the receive path and a CPU figure that
//! says plainly when the worker is saturated. Stdin closing, SIGINT or SIGTERM
//! stop it early: arrivals stop, connections close, the final report is still
//! written, marked incomplete.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::client::{self, Connecting, End, Extra, Held, Receiver, Step};
use crate::hold::{self, Holds, Key, Readiness};
use crate::stats::{self, Counters, Hist, Hists};
use crate::sys::now_ns;
use crate::users::Population;
use crate::wire::{Plan, Report, Start};
use crate::{schedule, sys};
use rtbench_protocol::frame;
use rtbench_record::endpoint::{Endpoint, expand_sources};
use rtbench_record::scenario::{Protocol, Reconnect, Scenario};

/// The controller's clock as this worker estimates it: schedules, stamps and
/// latencies all read it, so a worker on another machine measures what a
/// local one would.
static CLOCK_OFFSET_NS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn clock_ns() -> u64 {
    (now_ns() as i64 - CLOCK_OFFSET_NS.load(Ordering::Relaxed)) as u64
}

struct Worker {
    plan: Plan,
    targets: Vec<Endpoint>,
    sources: Vec<IpAddr>,
    next_source: Cell<usize>,
    counters: RefCell<Counters>,
    hists: RefCell<Hists>,
    /// This second's connect and delivery latencies.
    interval_connect: RefCell<Hist>,
    interval_delivery: RefCell<Hist>,
    lag_max_ns: Cell<u64>,
    lag_max_total_ns: Cell<u64>,
    connecting: Cell<u64>,
    holds: RefCell<Holds>,
    /// When each ping group (slot index mod the ping period in ticks) was
    /// last pinged: the start of its pongs' round trips.
    ping_sent_ns: RefCell<Vec<u64>>,
    /// Events received per subscriber (local arrival index), over the run.
    received_by_user: RefCell<Vec<u32>>,
    /// Attempts in progress by deadline (all share one timeout).
    deadlines: RefCell<std::collections::VecDeque<(u64, Key)>>,
    /// No new arrivals or reconnects.
    stopping: Cell<bool>,
    /// Connections are being closed.
    closing: Cell<bool>,
    interrupted: Arc<AtomicBool>,
}

/// `rtbench-loadgen worker`: reads the plan from stdin, gets ready, says so,
/// waits for the start time and runs the plan.
pub fn main() -> Result<(), String> {
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| format!("reading the plan: {e}"))?;
    let mut plan: Plan =
        serde_json::from_str(&line).map_err(|e| format!("the plan on stdin is not valid: {e}"))?;
    CLOCK_OFFSET_NS.store(plan.clock_offset_ns, Ordering::Relaxed);
    // The log names the process, so whoever reads it can check it is gone.
    eprintln!(
        "rtbench-loadgen worker {}: pid {}",
        plan.worker,
        std::process::id()
    );
    sys::raise_open_files();
    sys::raise_priority();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let _entered = rt.enter();
    let (holds, readiness) = hold::new(plan_capacity(&plan))
        .map_err(|e| format!("cannot make the hold reactor: {e}"))?;
    reach_targets(&plan.scenario)?;
    emit(&Report::Ready {
        worker: plan.worker,
    });
    line.clear();
    if stdin
        .read_line(&mut line)
        .map_err(|e| format!("reading the start: {e}"))?
        == 0
    {
        return Ok(()); // the controller gave up before the start
    }
    let start: Start =
        serde_json::from_str(&line).map_err(|e| format!("the start on stdin is not valid: {e}"))?;
    plan.start_unix_ns = start.start_unix_ns;
    drop(stdin);
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        // Stdin closing is the controller's stop signal.
        let flag = interrupted.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            flag.store(true, Ordering::Relaxed);
        });
    }
    let w = Rc::new(Worker::new(plan, holds, interrupted)?);
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(w, readiness));
    Ok(())
}

/// How long a worker tries to reach a target before it refuses to start.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The ready barrier's check: a TCP connection to every target address
/// (closed at once), so a worker that cannot reach the server says so
/// before the schedule starts rather than failing every arrival.
fn reach_targets(sc: &Scenario) -> Result<(), String> {
    let mut addrs: Vec<std::net::SocketAddr> = sc
        .target
        .urls
        .iter()
        .map(|u| Endpoint::parse(u, sc.target.protocol).map(|e| e.addr))
        .collect::<Result<_, _>>()?;
    addrs.sort();
    addrs.dedup();
    for a in addrs {
        std::net::TcpStream::connect_timeout(&a, REACH_TIMEOUT)
            .map_err(|e| format!("cannot reach the target {a} from {}: {e}", sys::hostname()))?;
    }
    Ok(())
}

/// The most connections this worker holds at once: its share of the arrivals.
fn plan_capacity(plan: &Plan) -> usize {
    (plan.scenario.total_arrivals().div_ceil(plan.workers.max(1)) as usize).min(1 << 22)
}

async fn run(w: Rc<Worker>, readiness: Readiness) {
    let rss_start_kib = sys::rss_kib();
    tokio::task::spawn_local(serve(w.clone(), readiness));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let flag = w.interrupted.clone();
        if let Ok(mut s) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(sig))
        {
            tokio::task::spawn_local(async move {
                s.recv().await;
                flag.store(true, Ordering::Relaxed);
            });
        }
    }
    tokio::task::spawn_local(arrivals(w.clone()));
    tokio::task::spawn_local(reporter(w.clone()));
    ticker(w.clone()).await;
    // Closing: wait for the server's closes and pending connects, within bounds.
    let sc = &w.plan.scenario;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(sc.hold.close_timeout_s);
    while (w.counters.borrow().open > 0 || w.connecting.get() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        expire_attempts(&w);
    }
    let aborted = w.holds.borrow_mut().abort_all();
    w.counters.borrow_mut().open -= aborted as u64;
    let complete = !w.interrupted.load(Ordering::Relaxed);
    emit(&Report::Final {
        worker: w.plan.worker,
        complete,
        counters: w.counters.borrow().clone(),
        hists: w.hists.borrow().encode(),
        cpu_s: sys::cpu_seconds(),
        rss_start_kib,
        peak_rss_kib: peak_rss_kib(),
        lag_max_ms: w.lag_max_total_ns.get() as f64 / 1e6,
        received_by_subscriber: received_by_subscriber(&w),
    });
}

/// This worker's subscribers (its arrivals: every `workers`-th from its
/// index) by the events each received.
fn received_by_subscriber(w: &Worker) -> Vec<(u32, u64)> {
    let by_user = w.received_by_user.borrow();
    let (total, n) = (w.plan.scenario.total_arrivals(), w.plan.workers.max(1));
    let mine = (total + n - 1 - w.plan.worker.min(n - 1)) / n;
    let mut out = BTreeMap::new();
    for &r in by_user.iter().take(mine as usize) {
        *out.entry(r).or_default() += 1;
    }
    out.into_iter().collect()
}

fn emit(r: &Report) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, r);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Starts this worker's arrivals at their scheduled times.
async fn arrivals(w: Rc<Worker>) {
    for a in schedule::arrivals(&w.plan.scenario.phases, w.plan.worker, w.plan.workers) {
        let due = w.plan.start_unix_ns + a.offset_ns;
        let now = clock_ns();
        if due > now {
            tokio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        if w.stopping.get() {
            return;
        }
        let lag = clock_ns().saturating_sub(due);
        w.lag_max_ns.set(w.lag_max_ns.get().max(lag));
        w.lag_max_total_ns.set(w.lag_max_total_ns.get().max(lag));
        attempt(&w, a.index, due, 0);
    }
}

/// One connection attempt: a nonblocking connect, then a slot in the hold
/// reactor that drives the handshake (`drive_connect`); no task of its own.
fn attempt(w: &Rc<Worker>, arrival: u64, scheduled_ns: u64, attempt: u32) {
    let sc = &w.plan.scenario;
    let pop = Population::new(sc);
    let user = pop.user_of(arrival);
    let t = &w.targets[(arrival % w.targets.len() as u64) as usize];
    let source = (!w.sources.is_empty()).then(|| {
        let i = w.next_source.get();
        w.next_source.set(i + 1);
        w.sources[i % w.sources.len()]
    });
    w.counters.borrow_mut().attempted += 1;
    let attempt_ns = clock_ns();
    let sock = match client::open(t.addr, source) {
        Ok(s) => s,
        // A retry's chain is timed from its loss (`scheduled_ns` then).
        Err(reason) => {
            return failed(
                w,
                arrival,
                attempt,
                reason,
                (attempt > 0).then_some(scheduled_ns),
            );
        }
    };
    let path = match sc.target.protocol {
        Protocol::Appwrite => format!("{}?{}", t.path, pop.query(user)),
        Protocol::Raw => t.path.clone(),
    };
    let connecting = Connecting::new(
        scheduled_ns,
        attempt_ns,
        &t.host,
        &path,
        arrival ^ attempt_ns,
    );
    let inserted = w
        .holds
        .borrow_mut()
        .insert(|generation| Held::new(sock, generation, user, arrival, attempt, Some(connecting)));
    match inserted {
        Ok(key) => {
            w.connecting.set(w.connecting.get() + 1);
            let deadline = attempt_ns + (sc.target.connect_timeout_s * 1e9) as u64;
            w.deadlines.borrow_mut().push_back((deadline, key));
        }
        Err(e) => failed(
            w,
            arrival,
            attempt,
            format!("io_{:?}", e.kind()).to_lowercase(),
            (attempt > 0).then_some(scheduled_ns),
        ),
    }
}

/// An attempt failed: count why, and reconnect if the scenario says so.
fn failed(w: &Rc<Worker>, arrival: u64, attempt: u32, reason: client::Failure, since: Option<u64>) {
    let fatal = reason == "error_frame_1008";
    w.counters.borrow_mut().fail(reason);
    reconnect_later(w, arrival, attempt, fatal, since);
}

/// When a failing retry's chain began (the loss it repairs), so a client's
/// wait is timed through every failed try, not from the last.
fn lost_at(held: &Held) -> Option<u64> {
    match held.extra.as_deref() {
        Some(Extra::Connecting(c)) if held.attempt > 0 => Some(c.scheduled_ns),
        _ => None,
    }
}

/// Moves a connecting slot on; when it opens, records the connect latency
/// and hands what came after the greeting to the receive path.
fn drive_connect(w: &Rc<Worker>, key: Key, buf: &mut [u8]) {
    let step = {
        let mut holds = w.holds.borrow_mut();
        let Some(held) = holds.get(key) else { return };
        let (Some(sock), Some(Extra::Connecting(c))) = (&held.sock, held.extra.as_deref_mut())
        else {
            return;
        };
        c.drive(
            sock,
            w.plan.scenario.target.protocol,
            &mut w.counters.borrow_mut(),
            buf,
        )
    };
    match step {
        Step::Wait => {}
        Step::Failed(reason) => {
            if let Some(held) = w.holds.borrow_mut().remove(key) {
                w.connecting.set(w.connecting.get() - 1);
                failed(
                    w,
                    u64::from(held.arrival),
                    held.attempt,
                    reason,
                    lost_at(&held),
                );
            }
        }
        Step::Open(leftover) => {
            let now = clock_ns();
            let c = {
                let mut holds = w.holds.borrow_mut();
                let Some(held) = holds.get(key) else { return };
                match held.extra.take().map(|e| *e) {
                    Some(Extra::Connecting(c)) => c,
                    _ => return,
                }
            };
            w.connecting.set(w.connecting.get() - 1);
            let retry = w.holds.borrow_mut().get(key).is_some_and(|h| h.attempt > 0);
            {
                let mut h = w.hists.borrow_mut();
                // An arrival's connect counts from its scheduled time; a
                // retry's wait counts from the loss it repairs.
                if retry {
                    stats::record_ns(&mut h.reconnect, now.saturating_sub(c.scheduled_ns));
                } else {
                    stats::record_ns(&mut h.connect, now.saturating_sub(c.scheduled_ns));
                    stats::record_ns(
                        &mut w.interval_connect.borrow_mut(),
                        now.saturating_sub(c.scheduled_ns),
                    );
                }
                stats::record_ns(&mut h.connect_attempt, now.saturating_sub(c.attempt_ns));
                let mut counters = w.counters.borrow_mut();
                counters.connected += 1;
                counters.open += 1;
            }
            if w.closing.get()
                && let Some(h) = w.holds.borrow_mut().get(key)
            {
                h.close(&mut w.counters.borrow_mut());
            }
            if !leftover.is_empty() {
                let mut leftover = leftover;
                if let Some(end) = receive(w, key, &mut leftover) {
                    finish(w, key, end);
                }
            }
        }
    }
}

/// Fails the attempts whose connect timeout passed (oldest first: every
/// attempt has the same timeout, so the queue is in deadline order).
fn expire_attempts(w: &Rc<Worker>) {
    let now = clock_ns();
    loop {
        let key = {
            let mut d = w.deadlines.borrow_mut();
            match d.front() {
                Some(&(deadline, key)) if deadline <= now => {
                    d.pop_front();
                    key
                }
                _ => return,
            }
        };
        let still = w
            .holds
            .borrow_mut()
            .get(key)
            .is_some_and(|h| h.is_connecting());
        if still && let Some(held) = w.holds.borrow_mut().remove(key) {
            w.connecting.set(w.connecting.get() - 1);
            failed(
                w,
                u64::from(held.arrival),
                held.attempt,
                "timeout".into(),
                lost_at(&held),
            );
        }
    }
}

/// Runs the frames in `bytes` (after any kept partial frame) through the
/// receive path; keeps an incomplete tail. `Some` when the connection ended.
fn receive(w: &Worker, key: Key, bytes: &mut [u8]) -> Option<End> {
    let mut holds = w.holds.borrow_mut();
    let held = holds.get(key)?;
    let pop = Population::new(&w.plan.scenario);
    let mut counters = w.counters.borrow_mut();
    let mut hists = w.hists.borrow_mut();
    let mut interval = w.interval_delivery.borrow_mut();
    let groups = w.ping_sent_ns.borrow();
    let ping_sent_ns = match groups.len() {
        0 => 0,
        k => groups[key.id as usize % k],
    };
    let mut by_user = w.received_by_user.borrow_mut();
    let mut r = Receiver {
        received: by_user.get_mut((u64::from(held.arrival) / w.plan.workers.max(1)) as usize),
        population: &pop,
        protocol: w.plan.scenario.target.protocol,
        counters: &mut counters,
        hists: &mut hists,
        delivery_interval: &mut interval,
        now_ns: clock_ns(),
        ping_sent_ns,
    };
    let result = match held.extra.take().map(|e| *e) {
        Some(Extra::Partial(mut p)) => {
            p.extend_from_slice(bytes);
            r.frames(held, &mut p).map(|used| {
                p.drain(..used);
                p
            })
        }
        other => {
            held.extra = other.map(Box::new);
            r.frames(held, bytes).map(|used| bytes[used..].to_vec())
        }
    };
    match result {
        Ok(rest) => {
            if !rest.is_empty() {
                held.extra = Some(Box::new(Extra::Partial(rest)));
            }
            None
        }
        Err(end) => Some(end),
    }
}

thread_local! {
    /// The worker's one read buffer.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// The hold reactor: reads every ready connection until its socket is
/// drained (edge-triggered readiness), for as long as the worker runs.
async fn serve(w: Rc<Worker>, mut readiness: Readiness) {
    let mut ready = Vec::new();
    loop {
        if readiness.next(&mut ready).await.is_err() {
            return;
        }
        w.counters.borrow_mut().wakeups += 1;
        for &key in &ready {
            let connecting = w.holds.borrow_mut().get(key).map(|h| h.is_connecting());
            match connecting {
                Some(true) => READ_BUF.with_borrow_mut(|buf| drive_connect(&w, key, buf)),
                Some(false) => {
                    if let Some(end) = drain(&w, key) {
                        finish(&w, key, end);
                    }
                }
                None => {}
            }
        }
    }
}

/// Reads one connection until a short read; `Some` when it ended.
fn drain(w: &Worker, key: Key) -> Option<End> {
    READ_BUF.with_borrow_mut(|buf| {
        loop {
            let read = {
                let mut holds = w.holds.borrow_mut();
                let sock = holds.get(key)?.sock.as_ref()?;
                w.counters.borrow_mut().reads += 1;
                std::io::Read::read(&mut &*sock, buf)
            };
            match read {
                Ok(0) => return Some(End::Closed),
                Ok(n) => {
                    if let Some(end) = receive(w, key, &mut buf[..n]) {
                        return Some(end);
                    }
                    if n < buf.len() {
                        // A short read drained the socket: the next byte
                        // brings a new edge.
                        return None;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Some(End::Broken),
            }
        }
    })
}

/// A held connection ended: count how, free its slot, reconnect if the
/// scenario says so.
fn finish(w: &Rc<Worker>, key: Key, end: End) {
    let Some(held) = w.holds.borrow_mut().remove(key) else {
        return;
    };
    let mut c = w.counters.borrow_mut();
    c.open -= 1;
    let lost = match end {
        End::ServerClosed(code) => {
            *c.closed_by_server.entry(code.to_string()).or_default() += 1;
            Some(code == frame::close::POLICY_VIOLATION)
        }
        End::Broken | End::Closed if !held.closing => {
            *c.closed_by_server
                .entry("no_close_frame".into())
                .or_default() += 1;
            Some(false)
        }
        _ => None,
    };
    drop(c);
    if let Some(fatal) = lost {
        reconnect_later(w, u64::from(held.arrival), held.attempt, fatal, None);
    }
}

/// The SDKs' reconnect schedule: 1 s (5 tries), 5 s (to 15), 10 s (to 100), then 60 s.
fn sdk_backoff(attempt: u32) -> Duration {
    Duration::from_secs(match attempt {
        0..=5 => 1,
        6..=15 => 5,
        16..=100 => 10,
        _ => 60,
    })
}

/// A draw in [0, 1) from (arrival, try): reproducible run to run.
fn unit(arrival: u64, tries: u32) -> f64 {
    // splitmix64's finalizer.
    let mut z = arrival.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(tries);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

fn reconnect_later(w: &Rc<Worker>, arrival: u64, tries: u32, fatal: bool, since: Option<u64>) {
    let wait = match w.plan.scenario.session.reconnect {
        _ if fatal || w.stopping.get() => return,
        Reconnect::None => return,
        Reconnect::Sdk => sdk_backoff(tries + 1),
        Reconnect::SdkJitter => sdk_backoff(tries + 1).mul_f64(2.0 * unit(arrival, tries)),
    };
    w.counters.borrow_mut().reconnects += 1;
    // The retry's wait is timed from the loss it repairs: now, or when a
    // chain of failed retries began.
    let lost_ns = since.unwrap_or_else(clock_ns);
    let w = w.clone();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(wait).await;
        if !w.stopping.get() {
            attempt(&w, arrival, lost_ns, tries + 1);
        }
    });
}

/// Every 100 ms: pings and echoes for the connections due, and the end of the hold.
async fn ticker(w: Rc<Worker>) {
    let sc = &w.plan.scenario;
    let hold_end_ns = w.plan.start_unix_ns + (sc.hold_end_s() * 1e9) as u64;
    let every = |s: f64| (s > 0.0).then(|| ((s * 10.0).round() as usize).max(1));
    let (ping_every, echo_every) = match sc.target.protocol {
        Protocol::Appwrite => (every(sc.session.ping_interval_s), None),
        Protocol::Raw => (None, every(sc.session.echo_interval_s)),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n: usize = 0;
    loop {
        tick.tick().await;
        n += 1;
        expire_attempts(&w);
        if clock_ns() >= hold_end_ns || w.interrupted.load(Ordering::Relaxed) {
            w.stopping.set(true);
            w.closing.set(true);
            let mut c = w.counters.borrow_mut();
            for held in w.holds.borrow_mut().iter_mut() {
                held.close(&mut c);
            }
            return;
        }
        let mut holds = w.holds.borrow_mut();
        let mut c = w.counters.borrow_mut();
        if let Some(k) = ping_every {
            let start = clock_ns();
            for held in holds.every_mut(n % k, k) {
                if held.try_send(frame::OP_TEXT, br#"{"type":"ping"}"#, &mut c) {
                    c.pings += 1;
                } else {
                    c.pings_skipped += 1;
                }
            }
            // The group's pings left over the loop: their round trips are
            // timed from its middle (no pong is read before the loop ends).
            let mut sent = w.ping_sent_ns.borrow_mut();
            sent.resize(k, 0);
            sent[n % k] = start + (clock_ns() - start) / 2;
        }
        if let Some(k) = echo_every {
            for held in holds.every_mut(n % k, k) {
                let msg = [client::ECHO_PREFIX, clock_ns().to_string().as_bytes()].concat();
                if held.try_send(frame::OP_TEXT, &msg, &mut c) {
                    c.echoes_sent += 1;
                } else {
                    c.pings_skipped += 1;
                }
            }
        }
    }
}

/// Every second (aligned to the run's start): one `tick` line.
async fn reporter(w: Rc<Worker>) {
    let mut t = 1u64;
    let mut host = w
        .plan
        .sample_host
        .then(rtbench_record::host::HostSampler::default);
    let mut cpu_before = sys::cpu_seconds();
    let mut wall_before = clock_ns();
    loop {
        let due = w.plan.start_unix_ns + t * 1_000_000_000;
        let now = clock_ns();
        if due > now {
            tokio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        let (cpu, wall) = (sys::cpu_seconds(), clock_ns());
        let cpu_pct = 100.0 * (cpu - cpu_before) / ((wall - wall_before) as f64 / 1e9).max(1e-3);
        (cpu_before, wall_before) = (cpu, wall);
        let interval = [
            ("connect", &w.interval_connect),
            ("delivery", &w.interval_delivery),
        ]
        .into_iter()
        .map(|(name, h)| {
            let mut h = h.borrow_mut();
            let enc = stats::encode(&h);
            h.reset();
            (name.to_string(), enc)
        })
        .collect();
        emit(&Report::Tick {
            worker: w.plan.worker,
            t,
            counters: w.counters.borrow().clone(),
            connecting: w.connecting.get(),
            lag_max_ms: w.lag_max_ns.replace(0) as f64 / 1e6,
            cpu_pct,
            rss_kib: sys::rss_kib(),
            interval,
            host: host.as_mut().map(|h| h.sample(t)),
        });
        t += 1;
    }
}

impl Worker {
    fn new(plan: Plan, holds: Holds, interrupted: Arc<AtomicBool>) -> Result<Worker, String> {
        let sc = &plan.scenario;
        let targets = sc
            .target
            .urls
            .iter()
            .map(|u| Endpoint::parse(u, sc.target.protocol))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = expand_sources(&sc.target.sources)?;
        // Only a scenario that publishes counts events per subscriber.
        let per_subscriber = if sc.publishers.is_empty() {
            0
        } else {
            sc.total_arrivals().div_ceil(plan.workers.max(1)) as usize
        };
        Ok(Worker {
            plan,
            targets,
            sources,
            next_source: Cell::new(0),
            counters: RefCell::default(),
            hists: RefCell::default(),
            interval_connect: RefCell::new(stats::new_hist()),
            interval_delivery: RefCell::new(stats::new_hist()),
            lag_max_ns: Cell::new(0),
            lag_max_total_ns: Cell::new(0),
            connecting: Cell::new(0),
            holds: RefCell::new(holds),
            deadlines: RefCell::default(),
            stopping: Cell::new(false),
            closing: Cell::new(false),
            interrupted,
            ping_sent_ns: RefCell::new(Vec::new()),
            // Only a scenario that publishes counts events per subscriber.
            received_by_user: RefCell::new(vec![0; per_subscriber]),
        })
    }
}

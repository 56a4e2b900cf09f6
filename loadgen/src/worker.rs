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

use rtbench_protocol::frame;
use serde::{Deserialize, Serialize};

use crate::client::{self, Attempt, Client, End, Receiver, SeqWindow};
use crate::scenario::{Protocol, Reconnect, Scenario};
use crate::stats::{self, Counters, Hist, Hists};
use crate::sys::now_ns;
use crate::target::{Endpoint, expand_sources};
use crate::users::Population;
use crate::{schedule, sys};

/// What the controller tells a worker (one JSON line on stdin).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: Scenario,
    pub worker: u64,
    pub workers: u64,
    /// When arrival offsets start counting (CLOCK_REALTIME ns).
    pub start_unix_ns: u64,
    /// This machine's clock minus the controller's: every time the worker
    /// takes is moved onto the controller's clock (`clock_ns`).
    #[serde(default)]
    pub clock_offset_ns: i64,
}

/// The controller's clock as this worker estimates it: schedules, stamps and
/// latencies all read it, so a worker on another machine measures what a
/// local one would.
static CLOCK_OFFSET_NS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn clock_ns() -> u64 {
    (now_ns() as i64 - CLOCK_OFFSET_NS.load(Ordering::Relaxed)) as u64
}

/// The JSON lines a worker writes on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Report {
    /// Every second: cumulative counters, the second's own latency histograms.
    Tick {
        worker: u64,
        t: u64,
        counters: Counters,
        connecting: u64,
        /// How late the latest-started arrival of this second was.
        lag_max_ms: f64,
        cpu_pct: f64,
        rss_kib: u64,
        interval: BTreeMap<String, String>,
    },
    /// Once, at the end: everything.
    Final {
        worker: u64,
        complete: bool,
        counters: Counters,
        hists: BTreeMap<String, String>,
        cpu_s: f64,
        /// RSS before the first arrival, and at its highest.
        rss_start_kib: u64,
        peak_rss_kib: u64,
        lag_max_ms: f64,
    },
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
    clients: RefCell<Vec<Option<Rc<Client>>>>,
    free: RefCell<Vec<usize>>,
    /// No new arrivals or reconnects.
    stopping: Cell<bool>,
    /// Connections are being closed.
    closing: Cell<bool>,
    interrupted: Arc<AtomicBool>,
}

/// `rtbench-loadgen worker`: reads the plan from stdin and runs it.
pub fn main() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the plan: {e}"))?;
    let plan: Plan =
        serde_json::from_str(&line).map_err(|e| format!("the plan on stdin is not valid: {e}"))?;
    CLOCK_OFFSET_NS.store(plan.clock_offset_ns, Ordering::Relaxed);
    sys::raise_open_files();
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        // Stdin closing is the controller's stop signal.
        let flag = interrupted.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            flag.store(true, Ordering::Relaxed);
        });
    }
    let w = Rc::new(Worker::new(plan, interrupted)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(w));
    Ok(())
}

async fn run(w: Rc<Worker>) {
    let rss_start_kib = sys::rss_kib();
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
    }
    for c in w.clients.borrow().iter().flatten() {
        c.abort();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
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
    });
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
        tokio::task::spawn_local(connect_and_hold(w.clone(), a.index, due, 0));
    }
}

/// One attempt: connect, then hold in a task of its own.
async fn connect_and_hold(w: Rc<Worker>, arrival: u64, scheduled_ns: u64, attempt: u32) {
    let sc = &w.plan.scenario;
    let pop = Population::new(sc);
    let user = pop.user_of(arrival);
    let t = &w.targets[(arrival % w.targets.len() as u64) as usize];
    let source = (!w.sources.is_empty()).then(|| {
        let i = w.next_source.get();
        w.next_source.set(i + 1);
        w.sources[i % w.sources.len()]
    });
    let target = match sc.target.protocol {
        Protocol::Appwrite => format!("{}?{}", t.path, pop.query(user)),
        Protocol::Raw => t.path.clone(),
    };
    w.counters.borrow_mut().attempted += 1;
    w.connecting.set(w.connecting.get() + 1);
    let attempt_ns = clock_ns();
    let a = Attempt {
        addr: t.addr,
        host: &t.host,
        target,
        source,
        protocol: sc.target.protocol,
        key_seed: arrival ^ attempt_ns,
    };
    let result = tokio::time::timeout(
        Duration::from_secs_f64(sc.target.connect_timeout_s),
        client::connect(a, &w.counters),
    )
    .await
    .unwrap_or_else(|_| Err("timeout".into()));
    w.connecting.set(w.connecting.get() - 1);
    let now = clock_ns();
    match result {
        Ok((stream, leftover)) => {
            {
                let mut h = w.hists.borrow_mut();
                stats::record_ns(&mut h.connect, now.saturating_sub(scheduled_ns));
                stats::record_ns(&mut h.connect_attempt, now.saturating_sub(attempt_ns));
                stats::record_ns(
                    &mut w.interval_connect.borrow_mut(),
                    now.saturating_sub(scheduled_ns),
                );
                let mut c = w.counters.borrow_mut();
                c.connected += 1;
                c.open += 1;
            }
            let client = Rc::new(Client::new(stream, user));
            if w.closing.get() {
                close(&client, &mut w.counters.borrow_mut());
            }
            let slot = w.insert(client.clone());
            tokio::task::spawn_local(hold(w.clone(), client, slot, leftover, arrival, attempt));
        }
        Err(reason) => {
            let fatal = reason == "error_frame_1008";
            w.counters.borrow_mut().fail(reason);
            reconnect_later(&w, arrival, attempt, fatal);
        }
    }
}

/// Holds a connection until it ends; small, since it lives as long as the connection.
async fn hold(
    w: Rc<Worker>,
    client: Rc<Client>,
    slot: usize,
    leftover: Vec<u8>,
    arrival: u64,
    attempt: u32,
) {
    let mut partial = leftover;
    let mut seqs = SeqWindow::default();
    let protocol = w.plan.scenario.target.protocol;
    let end = client::read_until_end(&client, &mut partial, |buf| {
        let pop = Population::new(&w.plan.scenario);
        Receiver {
            population: &pop,
            protocol,
            counters: &mut w.counters.borrow_mut(),
            hists: &mut w.hists.borrow_mut(),
            delivery_interval: &mut w.interval_delivery.borrow_mut(),
            now_ns: clock_ns(),
        }
        .frames(&client, &mut seqs, buf)
    })
    .await;
    w.remove(slot);
    let mut c = w.counters.borrow_mut();
    c.open -= 1;
    let lost = match end {
        End::ServerClosed(code) => {
            *c.closed_by_server.entry(code.to_string()).or_default() += 1;
            Some(code == frame::close::POLICY_VIOLATION)
        }
        End::Broken | End::Closed if !client.closing.get() => {
            *c.closed_by_server
                .entry("no_close_frame".into())
                .or_default() += 1;
            Some(false)
        }
        _ => None,
    };
    drop(c);
    if let Some(fatal) = lost {
        reconnect_later(&w, arrival, attempt, fatal);
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

fn reconnect_later(w: &Rc<Worker>, arrival: u64, attempt: u32, fatal: bool) {
    if w.plan.scenario.session.reconnect != Reconnect::Sdk || fatal || w.stopping.get() {
        return;
    }
    w.counters.borrow_mut().reconnects += 1;
    let w = w.clone();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(sdk_backoff(attempt + 1)).await;
        if !w.stopping.get() {
            connect_and_hold(w, arrival, clock_ns(), attempt + 1).await;
        }
    });
}

fn close(client: &Client, counters: &mut Counters) {
    if !client.closing.replace(true) {
        client.try_send(
            frame::OP_CLOSE,
            &frame::close::NORMAL.to_be_bytes(),
            counters,
        );
    }
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
        if clock_ns() >= hold_end_ns || w.interrupted.load(Ordering::Relaxed) {
            w.stopping.set(true);
            w.closing.set(true);
            let mut c = w.counters.borrow_mut();
            for client in w.clients.borrow().iter().flatten() {
                close(client, &mut c);
            }
            return;
        }
        let clients = w.clients.borrow();
        let mut c = w.counters.borrow_mut();
        if let Some(k) = ping_every {
            for client in clients.iter().skip(n % k).step_by(k).flatten() {
                if client.try_send(frame::OP_TEXT, br#"{"type":"ping"}"#, &mut c) {
                    c.pings += 1;
                } else {
                    c.pings_skipped += 1;
                }
            }
        }
        if let Some(k) = echo_every {
            for client in clients.iter().skip(n % k).step_by(k).flatten() {
                let msg = [client::ECHO_PREFIX, clock_ns().to_string().as_bytes()].concat();
                if !client.try_send(frame::OP_TEXT, &msg, &mut c) {
                    c.pings_skipped += 1;
                }
            }
        }
    }
}

/// Every second (aligned to the run's start): one `tick` line.
async fn reporter(w: Rc<Worker>) {
    let mut t = 1u64;
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
        });
        t += 1;
    }
}

impl Worker {
    fn new(plan: Plan, interrupted: Arc<AtomicBool>) -> Result<Worker, String> {
        let sc = &plan.scenario;
        let targets = sc
            .target
            .urls
            .iter()
            .map(|u| Endpoint::parse(u, sc.target.protocol))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = expand_sources(&sc.target.sources)?;
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
            clients: RefCell::default(),
            free: RefCell::default(),
            stopping: Cell::new(false),
            closing: Cell::new(false),
            interrupted,
        })
    }

    fn insert(&self, c: Rc<Client>) -> usize {
        let mut clients = self.clients.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(i) => {
                clients[i] = Some(c);
                i
            }
            None => {
                clients.push(Some(c));
                clients.len() - 1
            }
        }
    }

    fn remove(&self, slot: usize) {
        self.clients.borrow_mut()[slot] = None;
        self.free.borrow_mut().push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hold task is allocated once per connection for its whole life:
    /// whatever it keeps across an await is paid for by every connection.
    #[test]
    fn hold_task_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let src = "[target]\nurls=[\"ws://127.0.0.1:1\"]\n[[phases]]\nduration_s=1\nrate=1\n[session]\nchannels=[\"f\"]";
            let plan = Plan { scenario: Scenario::parse(src, "t.toml").unwrap(), worker: 0, workers: 1, start_unix_ns: 0, clock_offset_ns: 0 };
            let w = Rc::new(Worker::new(plan, Arc::default()).unwrap());
            let task = hold(w, Rc::new(Client::new(stream, 0)), 0, Vec::new(), 0, 0);
            let size = std::mem::size_of_val(&task);
            eprintln!("hold task: {size} bytes");
            assert!(size <= 384, "the hold task's future is {size} bytes");
        });
    }
}

//! What a worker tells the controller: the `tick` line each second (its
//! heartbeat too) and the `final` line's figures. Each line is written and
//! flushed whole, so the controller never reads half a report.

use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rtbench_record::load::Closing;

use super::clock::clock_ns;
use super::state::Worker;
use crate::stats;
use crate::sys;
use crate::wire::Report;

/// Where reports go: stdout unless `report_to` named the controller's
/// connection first.
static OUTPUT: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

/// Sends every report to `out` (called before the first report).
pub(super) fn report_to(out: Box<dyn Write + Send>) {
    let _ = OUTPUT.set(Mutex::new(out));
}

/// Writes one report as one line, flushed at once: the controller times
/// heartbeats by these lines.
pub(super) fn emit(r: &Report) {
    let mut line = serde_json::to_vec(r).expect("a report serializes");
    line.push(b'\n');
    let mut out = OUTPUT
        .get_or_init(|| Mutex::new(Box::new(std::io::stdout())))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let _ = out.write_all(&line).and_then(|()| out.flush());
}

/// Every second (aligned to the run's start): one `tick` line.
pub(super) async fn ticks(w: Rc<Worker>) {
    let mut t = 1u64;
    let mut host = w.plan.sample_host.then(super::host::HostSampler::default);
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

/// The `final` line: everything, over the whole run. Complete unless the
/// controller's side closed or a signal came first.
pub(super) fn final_report(w: &Worker, rss_start_kib: u64, closing: Closing) -> Report {
    let complete = !w.interrupted.load(Ordering::Relaxed);
    Report::Final {
        worker: w.plan.worker,
        complete,
        counters: w.counters.borrow().clone(),
        hists: w.hists.borrow().encode(),
        cpu_s: sys::cpu_seconds(),
        rss_start_kib,
        peak_rss_kib: peak_rss_kib(),
        received_by_subscriber: received_by_subscriber(w),
        events: w
            .spans
            .borrow()
            .iter()
            .filter(|s| s.received > 0)
            .copied()
            .collect(),
        closing,
    }
}

/// This worker's subscribers (its arrivals: every `workers`-th from its
/// index) by the events each received.
fn received_by_subscriber(w: &Worker) -> Vec<(u32, u64)> {
    let by_user = w.received_by_user.borrow();
    let (total, n) = (w.plan.scenario.all_arrivals(), w.plan.workers.max(1));
    let mine = (total + n - 1 - w.plan.worker.min(n - 1)) / n;
    let mut out = BTreeMap::new();
    for &r in by_user.iter().take(mine as usize) {
        *out.entry(r).or_default() += 1;
    }
    out.into_iter().collect()
}

/// The highest RSS this worker reached (KiB); 0 where /proc cannot be read.
fn peak_rss_kib() -> u64 {
    rtbench_sys::process::peak_rss_kib(rtbench_sys::process::Process::Current).unwrap_or(0)
}

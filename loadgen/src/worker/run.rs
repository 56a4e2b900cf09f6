//! A worker's run from the start time to its final report: the tasks that
//! make arrivals, serve the hold and report, stopped by the end of the hold,
//! the controller's side closing or a signal; then the close, within its
//! timeout.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::state::Worker;
use super::{connect, reactor, report, ticker};
use crate::hold::Readiness;
use crate::sys;

/// Runs the plan from its start time; returns once the final report is out.
pub(super) async fn run(w: Rc<Worker>, readiness: Readiness) {
    let rss_start_kib = sys::rss_kib();
    tokio::task::spawn_local(reactor::serve(w.clone(), readiness));
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
    tokio::task::spawn_local(connect::arrivals(w.clone()));
    tokio::task::spawn_local(report::ticks(w.clone()));
    ticker::run(w.clone()).await;
    // Closing: wait for the server's closes and pending connects, within bounds.
    let sc = &w.plan.scenario;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(sc.hold.close_timeout_s);
    while (w.counters.borrow().open > 0 || w.connecting.get() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        connect::expire_attempts(&w);
    }
    let aborted = w.holds.borrow_mut().abort_all();
    w.counters.borrow_mut().open -= aborted as u64;
    report::emit(&report::final_report(&w, rss_start_kib));
}

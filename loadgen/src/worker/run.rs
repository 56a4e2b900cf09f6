//! A worker's run from the start time to its final report: the tasks that
//! make arrivals, serve the hold and report, stopped by the end of the hold,
//! the controller's side closing or a signal; then the closing phase
//! (`closing.rs`) and the final report.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::state::Worker;
use super::{closing, connect, reactor, report, ticker};
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
    let closing = closing::close_all(&w).await;
    report::emit(&report::final_report(&w, rss_start_kib, closing));
}

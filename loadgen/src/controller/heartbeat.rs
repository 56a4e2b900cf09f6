//! The lost-worker watch. A worker's `tick` line each second is its
//! heartbeat; one silent too long is declared lost, so that a frozen host
//! or a stopped process ends in a named, incomplete record instead of a
//! run that waits for it forever. A closing worker keeps ticking (it closes
//! in slices, `worker/closing.rs`), but its ticks may come late on a
//! machine whose kernel is tearing a million sockets down: while closing it
//! may be silent longer.

use std::time::Duration;

use rtbench_record::scenario::Scenario;
use tokio::time::Instant;

use crate::sys::now_ns;

/// A worker silent this long once the schedule started (its heartbeat is
/// its tick line, once a second) is declared lost: it is killed, the run
/// goes on without it and is not complete.
const LOST_AFTER: Duration = Duration::from_secs(15);
/// Once the hold ends, a worker's ticks may be late while the machine
/// closes every connection (a million sockets closing at once load every
/// core for many seconds): it has the scenario's close timeout and this
/// much more before it is lost.
const CLOSING_GRACE: Duration = Duration::from_secs(60);

/// When each worker was last heard from, and how long it may be silent.
pub(super) struct Heartbeats {
    heard: Vec<Instant>,
    hold_end: Instant,
    closing_silence: Duration,
}

impl Heartbeats {
    /// Every worker counts as heard at its first tick, due a second after
    /// the schedule's start (`start_ns`, CLOCK_REALTIME).
    pub(super) fn new(workers: u64, start_ns: u64, sc: &Scenario) -> Heartbeats {
        let first_tick = Instant::now()
            + Duration::from_nanos(start_ns.saturating_sub(now_ns()))
            + Duration::from_secs(1);
        Heartbeats {
            heard: vec![first_tick; workers as usize],
            hold_end: first_tick - Duration::from_secs(1)
                + Duration::from_secs_f64(sc.hold_end_s()),
            closing_silence: LOST_AFTER
                + CLOSING_GRACE
                + Duration::from_secs_f64(sc.hold.close_timeout_s),
        }
    }

    /// Worker `w` wrote a line (or its output ended).
    pub(super) fn heard(&mut self, w: u64) {
        self.heard[w as usize] = Instant::now();
    }

    /// The silence allowed now, and the workers silent longer, except those
    /// `done` (their output ended, or their final report is in). `stopping`:
    /// the run was stopped early, so the workers are closing.
    pub(super) fn overdue(
        &self,
        stopping: bool,
        done: impl Fn(u64) -> bool,
    ) -> (Duration, Vec<u64>) {
        let now = Instant::now();
        // Closing (after the hold, or stopped early) may be silent longer.
        let allowed = if now < self.hold_end && !stopping {
            LOST_AFTER
        } else {
            self.closing_silence
        };
        let overdue = (0u64..)
            .zip(&self.heard)
            .filter(|&(w, heard)| now.saturating_duration_since(*heard) >= allowed && !done(w))
            .map(|(w, _)| w)
            .collect();
        (allowed, overdue)
    }
}

/// What the record says of a worker declared lost after `allowed` of
/// silence following its second `last`.
pub(super) fn lost_status(allowed: Duration, last: u64) -> String {
    format!(
        "lost: no report for {} s after second {last} (killed)",
        allowed.as_secs()
    )
}

//! Arrivals and attempts: each arrival at its scheduled time, a nonblocking
//! connect and a slot in the hold reactor (no task of its own), the upgrade
//! driven to `connected`, connect deadlines, and reconnects when a
//! connection is lost or an attempt fails. Latencies are taken here because
//! only here is it known whether a connect was an arrival or a retry.

use std::rc::Rc;
use std::time::Duration;

use super::clock::clock_ns;
use super::reconnect;
use super::state::Worker;
use crate::client::{Extra, Held};
use crate::handshake::{self, Connecting, Step};
use crate::hold::Key;
use crate::protocols::{self, Greeting, Hello};
use crate::schedule;
use crate::stats;
use crate::users::Population;

/// Arrivals started back to back, when behind schedule, before the worker's
/// other tasks get a turn.
const ARRIVALS_PER_TURN: u32 = 32;

/// Starts this worker's arrivals at their scheduled times.
pub(super) async fn arrivals(w: Rc<Worker>) {
    let mut without_yield = 0;
    let phases = w.plan.scenario.arrival_phases();
    for a in schedule::arrivals(&phases, w.plan.worker, w.plan.workers) {
        let due = w.plan.start_unix_ns + a.offset_ns;
        let now = clock_ns();
        if due > now {
            tokio::time::sleep(Duration::from_nanos(due - now)).await;
            without_yield = 0;
        } else if without_yield == ARRIVALS_PER_TURN {
            // Behind schedule, every arrival is due at once: the hold
            // reactor (handshakes under way) and the ticker (the heartbeat)
            // still get their turns, or a saturated machine makes the
            // worker silent for seconds and its connects slower still.
            tokio::task::yield_now().await;
            without_yield = 0;
        }
        without_yield += 1;
        if w.stopping.get() {
            return;
        }
        let lag = clock_ns().saturating_sub(due);
        w.lag_max_ns.set(w.lag_max_ns.get().max(lag));
        stats::record_ns(&mut w.hists.borrow_mut().arrival_lag, lag);
        attempt(&w, a.index, due, 0);
    }
    w.arrived.set(true);
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
    let sock = match handshake::open(t.addr, source) {
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
    let protocol = sc.target.protocol;
    let path = protocols::upgrade_path(protocol, &t.path, &pop, Some(user));
    let hello = Hello {
        channels: if protocol.subscribes() {
            pop.channels(user)
        } else {
            Vec::new()
        },
        client_id: format!("rtbench-{arrival}-{attempt}"),
        keepalive_s: sc.session.ping_interval_s,
    };
    let connecting = Connecting::new(
        scheduled_ns,
        attempt_ns,
        &t.host,
        &path,
        arrival ^ attempt_ns,
        Greeting::new(protocol, hello),
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
fn failed(
    w: &Rc<Worker>,
    arrival: u64,
    attempt: u32,
    reason: handshake::Failure,
    since: Option<u64>,
) {
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
/// and returns what came after the greeting, for the receive path (the
/// reactor's: so this module never calls back into it).
pub(super) fn drive_connect(w: &Rc<Worker>, key: Key, buf: &mut [u8]) -> Option<Vec<u8>> {
    let step = {
        let mut holds = w.holds.borrow_mut();
        let held = holds.get(key)?;
        let (Some(sock), Some(Extra::Connecting(c))) = (&held.sock, held.extra.as_deref_mut())
        else {
            return None;
        };
        c.drive(sock, &mut w.counters.borrow_mut(), buf)
    };
    match step {
        Step::Wait => None,
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
            None
        }
        Step::Open(leftover) => {
            let now = clock_ns();
            let c = {
                let mut holds = w.holds.borrow_mut();
                let held = holds.get(key)?;
                match held.extra.take().map(|e| *e) {
                    Some(Extra::Connecting(c)) => c,
                    _ => return None,
                }
            };
            w.connecting.set(w.connecting.get() - 1);
            let (retry, arrival) = match w.holds.borrow_mut().get(key) {
                Some(h) => (h.attempt > 0, u64::from(h.arrival)),
                None => return None,
            };
            super::churn::schedule_leave(w, key, arrival);
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
            Some(leftover)
        }
    }
}

/// Fails the attempts whose connect timeout passed (oldest first: every
/// attempt has the same timeout, so the queue is in deadline order).
pub(super) fn expire_attempts(w: &Rc<Worker>) {
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

/// A connection was lost or an attempt failed: try again after the
/// scenario's wait, unless it does not reconnect, the server refused the
/// client (1008), or the worker is stopping.
pub(super) fn reconnect_later(
    w: &Rc<Worker>,
    arrival: u64,
    tries: u32,
    fatal: bool,
    since: Option<u64>,
) {
    if fatal || w.stopping.get() {
        return;
    }
    let Some(wait) = reconnect::wait(w.plan.scenario.session.reconnect, arrival, tries) else {
        return;
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

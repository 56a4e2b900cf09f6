//! The hold reactor: reads every connection the poller says is ready, drives
//! handshakes on (`connect.rs`), runs held connections' frames through the
//! receive path (`client::Receiver`), and counts how each connection ended.
//! It owns the worker's one read buffer: nothing is allocated per frame.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rtbench_protocol::frame;
use rtbench_record::scenario::Reconnect;

use super::clock::{clock_ns, on_controller_clock};
use super::connect;
use super::state::Worker;
use crate::client::{End, Extra, Receiver};
use crate::hold::{Key, Readiness};
use crate::rx_time;
use crate::stats;
use crate::users::Population;

/// How long a holding worker lets deliveries gather before it reads them.
/// A worker that slept in epoll until each delivery came would be woken for
/// each one, in the server's own write (two context switches a delivery,
/// and the worker, at a higher priority, preempting the server). Reading at
/// most once a millisecond, it reads whatever arrived meanwhile in one
/// turn; the kernel's receive time (`rx_time.rs`) keeps the wait out of
/// every latency, and `read_wait` measures it. With `rtbench-roofline`'s
/// sink reading the same way, the sink's CPU per message fell from 5.1 to
/// 1.9 µs (9,000 connections, `rtbench-roofline` sink and spray with and without
/// the wait, three pairs, on a busy machine). While
/// connections are being opened the worker does not wait: a handshake's
/// answer is timed when read.
const READ_PACING: Duration = Duration::from_millis(1);

/// The longest a holding worker lets deliveries gather once its arrivals
/// are over. Spread thin, a millisecond gathers nothing: a broadcast to
/// 2,000,000 connections over 101 workers brings each about one delivery
/// a millisecond, so every delivery cost its worker a wake-up, an
/// `epoll_wait` and a sleep, and the workers read at p99 1.15 s late.
/// Each look that finds fewer than `GATHER.0` connections ready doubles the
/// wait up to this; one that finds more than `GATHER.1` halves it. Between
/// the two it stays: a burst of 100,000 over six workers (about 24 a
/// millisecond each) keeps the millisecond.
const READ_PACING_MAX: Duration = Duration::from_millis(8);
/// Ready connections one look should find: fewer, and the wait grows; more,
/// and it shrinks.
const GATHER: (usize, usize) = (8, 64);

/// The wait before the next look, from the last one's: longer while looks
/// find few ready connections and no arrival or reconnect can be due (a
/// blocking sleep holds every timer of the worker back by as much).
fn next_pacing(last: Duration, ready: usize, may_gather: bool) -> Duration {
    if !may_gather {
        READ_PACING
    } else if ready < GATHER.0 {
        (last * 2).min(READ_PACING_MAX)
    } else if ready > GATHER.1 {
        (last / 2).max(READ_PACING)
    } else {
        last
    }
}

/// The hold reactor: reads every ready connection until its socket is
/// drained (edge-triggered readiness), for as long as the worker runs.
pub(super) async fn serve(w: Rc<Worker>, mut readiness: Readiness) {
    let mut ready = Vec::new();
    let mut pacing = READ_PACING;
    // Reconnects are timers too, and a sleep would make them late.
    let reconnects = w.plan.scenario.session.reconnect != Reconnect::None;
    loop {
        if readiness.next(&mut ready).await.is_err() {
            return;
        }
        if w.connecting.get() == 0 {
            // Holding: let more arrive before this look (see `READ_PACING`).
            // A blocking sleep, not a timer: the runtime's epoll would wake
            // for each delivery in the meantime.
            std::thread::sleep(pacing);
        }
        pacing = next_pacing(pacing, ready.len(), w.arrived.get() && !reconnects);
        w.counters.borrow_mut().wakeups += 1;
        for &key in &ready {
            // A dropped client (churn) reads nothing more.
            let connecting = w
                .holds
                .borrow_mut()
                .get(key)
                .filter(|h| !h.dropped)
                .map(|h| h.is_connecting());
            match connecting {
                Some(true) => {
                    let leftover =
                        READ_BUF.with_borrow_mut(|buf| connect::drive_connect(&w, key, buf));
                    if let Some(mut leftover) = leftover.filter(|l| !l.is_empty())
                        && let Some(end) = receive(&w, key, &mut leftover, clock_ns())
                    {
                        finish(&w, key, end);
                    }
                }
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

/// Runs the frames in `bytes` (after any kept partial frame), which arrived
/// at `arrived_ns`, through the receive path; keeps an incomplete tail.
/// `Some` when the connection ended.
fn receive(w: &Worker, key: Key, bytes: &mut [u8], arrived_ns: u64) -> Option<End> {
    let mut holds = w.holds.borrow_mut();
    let (held, span) = holds.get_with_span(key)?;
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
    let mut spans = w.spans.borrow_mut();
    let mut r = Receiver {
        spans: w.plan.scenario.per_event.then_some(&mut *spans),
        received: by_user.get_mut((u64::from(held.arrival) / w.plan.workers.max(1)) as usize),
        span: w.counts_misses.then_some(span),
        population: &pop,
        protocol: w.plan.scenario.target.protocol,
        counters: &mut counters,
        hists: &mut hists,
        delivery_interval: &mut interval,
        now_ns: arrived_ns,
        ping_sent_ns,
    };
    let (mut partial, mut message) = match held.extra.take().map(|e| *e) {
        Some(Extra::Partial { frame, message }) => (frame, message),
        other => {
            held.extra = other.map(Box::new);
            (Vec::new(), Vec::new())
        }
    };
    let result = if partial.is_empty() {
        r.frames(held, bytes, &mut message)
            .map(|used| bytes[used..].to_vec())
    } else {
        partial.extend_from_slice(bytes);
        r.frames(held, &mut partial, &mut message).map(|used| {
            partial.drain(..used);
            partial
        })
    };
    match result {
        Ok(frame) => {
            if !frame.is_empty() || !message.is_empty() {
                held.extra = Some(Box::new(Extra::Partial { frame, message }));
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

/// Reads one connection until a short read; `Some` when it ended.
fn drain(w: &Worker, key: Key) -> Option<End> {
    READ_BUF.with_borrow_mut(|buf| {
        loop {
            let read = {
                let mut holds = w.holds.borrow_mut();
                let sock = holds.get(key)?.sock.as_ref()?;
                w.counters.borrow_mut().reads += 1;
                rx_time::read(sock, buf)
            };
            match read {
                Ok((0, _)) => return Some(End::Closed),
                Ok((n, stamped)) => {
                    let now = clock_ns();
                    let arrived = stamped.map_or(now, |t| on_controller_clock(t).min(now));
                    if stamped.is_some() {
                        stats::record_ns(&mut w.hists.borrow_mut().read_wait, now - arrived);
                    }
                    if let Some(end) = receive(w, key, &mut buf[..n], arrived) {
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
pub(super) fn finish(w: &Rc<Worker>, key: Key, end: End) {
    let (expected, missed) = w.holds.borrow_mut().settle_span(key.id as usize);
    let Some(held) = w.holds.borrow_mut().remove(key) else {
        return;
    };
    let mut c = w.counters.borrow_mut();
    c.span_expected += expected;
    c.span_missed += missed;
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
        connect::reconnect_later(w, u64::from(held.arrival), held.attempt, fatal, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_that_find_few_ready_wait_longer_up_to_the_max_and_full_ones_shorter() {
        let ms = Duration::from_millis;
        let mut p = READ_PACING;
        let mut seen = Vec::new();
        for _ in 0..5 {
            p = next_pacing(p, 1, true);
            seen.push(p);
        }
        assert_eq!(seen, [ms(2), ms(4), ms(8), ms(8), ms(8)]);
        // Between the bounds the wait stays; past the upper one it halves.
        assert_eq!(next_pacing(p, GATHER.0, true), ms(8));
        assert_eq!(next_pacing(p, GATHER.1, true), ms(8));
        assert_eq!(next_pacing(p, GATHER.1 + 1, true), ms(4));
        assert_eq!(next_pacing(ms(1), 1000, true), ms(1));
        // While arrivals or reconnects may be due, never longer.
        assert_eq!(next_pacing(ms(8), 1, false), ms(1));
    }
}

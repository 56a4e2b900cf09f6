//! The worker's 100 ms beat: connect deadlines, the pings and echoes due
//! (one group of connections each beat, so sends spread over the period),
//! and the end of the hold (or a stop), when closing begins.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rtbench_protocol::frame;
use rtbench_record::scenario::Protocol;

use super::clock::clock_ns;
use super::connect;
use super::state::Worker;
use crate::client;

/// Every 100 ms: pings and echoes for the connections due; returns at the
/// end of the hold or when the worker is stopped.
pub(super) async fn run(w: Rc<Worker>) {
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
        connect::expire_attempts(&w);
        if clock_ns() >= hold_end_ns || w.interrupted.load(Ordering::Relaxed) {
            // Closing is `closing.rs`'s.
            w.stopping.set(true);
            w.closing.set(true);
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

//! The worker's closing phase, measured on its own: every open connection
//! sends its close frame, the server's answers are awaited within the
//! scenario's close timeout, and what is left is closed without one.
//!
//! A worker closing tens of thousands of sockets on a loaded machine may
//! take minutes (each close is work for the kernel on both ends), and its
//! thread also writes its heartbeat, the `tick` line. So closing works in
//! slices of a few milliseconds and gives the thread back between them:
//! ticks keep going out, and a worker busy closing is never taken for a
//! lost one.

use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rtbench_record::load::Closing;

use super::clock::clock_ns;
use super::connect;
use super::state::Worker;
use crate::hold::Holds;
use crate::stats::Counters;

/// The longest the closing phase keeps the thread before yielding.
const SLICE: Duration = Duration::from_millis(10);

/// Closes every connection; returns how the closing went. Called once the
/// hold has ended or the worker was stopped (`w.closing` set).
pub(super) async fn close_all(w: &Rc<Worker>) -> Closing {
    let began_ns = clock_ns();
    let open = w.counters.borrow().open;
    in_slices(w, |holds, id, c| {
        if let Some(held) = holds.open_at(id) {
            held.close(c);
            pace();
        }
    })
    .await;
    // The server's answers (and the attempts still connecting), within the
    // close timeout.
    let timeout = Duration::from_secs_f64(w.plan.scenario.hold.close_timeout_s);
    let deadline = tokio::time::Instant::now() + timeout;
    while (w.counters.borrow().open > 0 || w.connecting.get() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        connect::expire_attempts(w);
    }
    let mut aborted = 0;
    in_slices(w, |holds, id, c| {
        let (expected, missed) = holds.settle_span(id);
        c.span_expected += expected;
        c.span_missed += missed;
        if let Some(was_open) = holds.abort_at(id) {
            if was_open {
                c.open -= 1;
                aborted += 1;
            }
            pace();
        }
    })
    .await;
    Closing {
        seconds: clock_ns().saturating_sub(began_ns) as f64 / 1e9,
        open,
        aborted,
    }
}

/// Runs `each` on every slot of the hold (by id), yielding the thread
/// whenever a slice's time is up.
async fn in_slices(w: &Worker, mut each: impl FnMut(&mut Holds, usize, &mut Counters)) {
    let mut next = 0;
    loop {
        let until = Instant::now() + SLICE;
        {
            let mut holds = w.holds.borrow_mut();
            let mut c = w.counters.borrow_mut();
            while next < holds.slots() {
                each(&mut holds, next, &mut c);
                next += 1;
                if Instant::now() >= until {
                    break;
                }
            }
            if next >= holds.slots() {
                return;
            }
        }
        // Timers (the tick among them) and the hold's readiness run here.
        tokio::task::yield_now().await;
    }
}

/// `RTBENCH_CLOSE_DELAY_MS` (tests only, read once): each socket the
/// closing phase touches holds the thread this long, as a kernel slow to
/// tear sockets down would.
fn pace() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        std::env::var("RTBENCH_CLOSE_DELAY_MS")
            .ok()?
            .parse()
            .ok()
            .map(Duration::from_millis)
    });
    if let Some(d) = delay {
        std::thread::sleep(*d);
    }
}

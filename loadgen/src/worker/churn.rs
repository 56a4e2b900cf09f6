//! Churn (`session.lifetime_s`): each connection leaves when its drawn
//! lifetime is up, with a close frame or by a silent drop, and the open
//! model's arrivals replace it (`Scenario::arrival_phases`). A dropped
//! client stops reading and writing and keeps its socket `drop_hold_s`, so
//! it is the server's timeout, not the client, that ends it; then it closes
//! the socket and notes whether the server had closed its side by then.

use std::rc::Rc;
use std::time::Duration;

use super::state::Worker;
use crate::hold::Key;

/// Once connection `key` (arrival `arrival`) is open: its leave, scheduled.
pub(super) fn schedule_leave(w: &Rc<Worker>, key: Key, arrival: u64) {
    let session = &w.plan.scenario.session;
    if !session.churns() {
        return;
    }
    let (life_s, drops) = session.leave_of(arrival);
    let w = w.clone();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(Duration::from_secs_f64(life_s)).await;
        if w.closing.get() {
            return; // the closing phase has every connection
        }
        if drops {
            drop_silently(&w, key).await;
        } else {
            let mut holds = w.holds.borrow_mut();
            if let Some(h) = holds.get(key).filter(|h| !h.closing) {
                let mut c = w.counters.borrow_mut();
                h.close(&mut c);
                c.left_closed += 1;
            }
        }
    });
}

/// A silent drop: no more reads or writes; after the hold, the socket is
/// closed without a close frame.
async fn drop_silently(w: &Rc<Worker>, key: Key) {
    {
        let mut holds = w.holds.borrow_mut();
        let Some(h) = holds.get(key).filter(|h| !h.closing) else {
            return;
        };
        h.dropped = true;
        let (expected, missed) = holds.settle_span(key.id as usize);
        let mut c = w.counters.borrow_mut();
        c.left_dropped += 1;
        c.open -= 1;
        c.span_expected += expected;
        c.span_missed += missed;
    }
    let hold_s = w.plan.scenario.session.drop_hold_s;
    tokio::time::sleep(Duration::from_secs_f64(hold_s)).await;
    let mut holds = w.holds.borrow_mut();
    let reaped = match holds.get(key).and_then(|h| h.sock.as_ref()) {
        Some(sock) => server_closed(sock),
        None => return, // the closing phase took it
    };
    if !reaped {
        w.counters.borrow_mut().drops_unreaped += 1;
    }
    holds.remove(key);
}

/// Whether the server closed its side: the socket reads its end (after
/// whatever was left unread) or fails, rather than having nothing more.
fn server_closed(sock: &std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match (&*sock).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

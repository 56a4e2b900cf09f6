//! What reaches a reactor from outside its thread: connections handed back
//! by `http.rs`, events to fan out, shutdown. Other threads push into the
//! inbox and send one eventfd wake-up per batch, however much was queued;
//! the reactor takes the whole inbox at the start of its next turn.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use mio::Waker;
use mio::unix::SourceFd;

use super::{Reactor, Reactors};
use crate::event::Event;
use crate::index::ConnId;
use crate::request::Incoming;
use rtbench_protocol::frame::close;

/// One reactor's inbox, filled by other threads.
#[derive(Default)]
pub(super) struct Inbox {
    /// A wake-up is on its way: further pushes need not send another.
    pub(super) notified: bool,
    pub(super) conns: Vec<Incoming>,
    pub(super) events: Vec<Delivery>,
    pub(super) close_all: bool,
    pub(super) stop: bool,
}

impl Inbox {
    pub(super) fn is_empty(&self) -> bool {
        !self.notified
            && self.conns.is_empty()
            && self.events.is_empty()
            && !self.close_all
            && !self.stop
    }
}

/// An event to fan out, and where to report how many received it.
pub(crate) struct Delivery {
    pub(crate) event: Arc<Event>,
    pub(crate) tally: Option<Arc<Tally>>,
}

/// Deliveries of one event summed over the reactors; the last reactor to
/// report sends the total.
pub(crate) struct Tally {
    pub(super) left: AtomicUsize,
    pub(super) delivered: AtomicU64,
    pub(super) done: Mutex<Option<tokio::sync::oneshot::Sender<u64>>>,
}

impl Tally {
    pub(super) fn report(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
        if self.left.fetch_sub(1, Relaxed) == 1
            && let Some(tx) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = tx.send(self.delivered.load(Relaxed));
        }
    }
}

pub(super) struct Handle {
    pub(super) inbox: Mutex<Inbox>,
    pub(super) waker: Waker,
    /// The reactor's state: its thread holds it for a whole turn and lets
    /// go while it sleeps in epoll, so an idle reactor's state can be
    /// borrowed by the bus reactor to write an event itself (see `share`).
    /// `None` before the thread starts and after it stopped.
    pub(super) state: Mutex<Option<Reactor>>,
}

impl Handle {
    pub(super) fn push(&self, f: impl FnOnce(&mut Inbox)) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inbox);
        if !std::mem::replace(&mut inbox.notified, true) {
            drop(inbox);
            let _ = self.waker.wake();
        }
    }
}

impl Reactors {
    /// Hands a connection (and what was read from it) to the next reactor,
    /// round robin: an upgrade that arrived on a plain HTTP connection.
    pub(crate) fn adopt(&self, a: Incoming) {
        let i = self.next.fetch_add(1, Relaxed) % self.handles.len();
        self.handles[i].push(|b| b.conns.push(a));
    }

    /// Fans `event` out on every reactor; the receiver gets how many
    /// connections received it.
    pub(crate) fn publish_counted(&self, event: Arc<Event>) -> tokio::sync::oneshot::Receiver<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tally = Arc::new(Tally {
            left: AtomicUsize::new(self.handles.len()),
            delivered: AtomicU64::new(0),
            done: Mutex::new(Some(tx)),
        });
        for h in &self.handles {
            let d = Delivery {
                event: event.clone(),
                tally: Some(tally.clone()),
            };
            h.push(|b| b.events.push(d));
        }
        rx
    }

    /// Starts closing every connection with 1001 (shutdown).
    pub(crate) fn close_all(&self) {
        for h in &self.handles {
            h.push(|b| b.close_all = true);
        }
    }

    /// Ends the threads; connections still held are dropped.
    pub(crate) fn stop(&self) {
        for h in &self.handles {
            h.push(|b| b.stop = true);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Reactor {
    /// Handles what other threads queued; true when told to stop.
    pub(super) fn take_inbox(&mut self) -> bool {
        let inbox = {
            let mut g = self.handle.inbox.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *g)
        };
        for inc in inbox.conns {
            self.take(inc);
        }
        if !inbox.events.is_empty() {
            self.fan_out(&inbox.events);
        }
        if inbox.close_all && !self.closing_all {
            self.closing_all = true;
            // Stop accepting: the listener closes once every reactor lets go.
            if let Some(l) = self.listener.take() {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&*l);
                let _ = self.registry.deregister(&mut SourceFd(&fd));
            }
            self.accept_more = false;
            self.accept_retry = None;
            for id in 0..self.conns.len() as ConnId {
                let c = &self.conns[id as usize];
                if c.sock.is_none() {
                    continue;
                }
                if c.flags.in_handshake() {
                    self.release(id);
                } else {
                    self.close(id, close::GOING_AWAY, "server shutting down");
                }
            }
        }
        inbox.stop
    }
}

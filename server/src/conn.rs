//! A connection's socket and its bounded outbound queue.
//!
//! Publishers write an event straight to the socket from whatever thread is
//! publishing, without waking the connection's task, whenever nothing is queued
//! ahead of it: at fan-out rates that saves a task wake-up per delivery. Only
//! what the kernel would not take is queued, and the queue is bounded in bytes:
//! a client that stops reading is closed with 1013 instead of growing memory.
//! Closing is one path for every reason (slow consumer, shutdown, protocol
//! error): clear what is queued, queue the close frame, let the task flush it.
//!
//! The task's waker lives in the outbox, under the lock publishers take anyway,
//! rather than in a `Notify`: a connection's task then holds no waiter of its
//! own, which keeps an idle connection small.

use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;

use rtbench_protocol::frame;

pub struct Conn {
    pub stream: TcpStream,
    out: Mutex<Outbox>,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    /// The front frame was partly written: it must be finished, whatever else
    /// is dropped, or the byte stream would be corrupt.
    front_started: bool,
    closing: bool,
    /// The connection's task, to wake when it has queued bytes or must close.
    waker: Option<Waker>,
    /// Set by `kick`, cleared when the task sees it.
    kicked: bool,
}

/// What happened to a frame handed to `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Written to the socket or queued behind earlier frames.
    Accepted,
    /// The connection is closing; the frame was dropped.
    Dropped,
    /// The queue limit was exceeded: the connection is now closing with 1013.
    Overflow,
}

/// Where the outbound side stands after a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything is written; the connection stays open.
    Idle,
    /// The kernel would not take more: wait until the socket is writable.
    /// `closing`: what waits is the close, which gets a deadline.
    Pending { closing: bool },
    /// Everything, the close frame included, is written: end the connection.
    Closed,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn { stream, out: Mutex::new(Outbox::default()) }
    }

    /// Ready once after every `kick`; otherwise registers the task's waker.
    pub fn poll_kicked(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut o = self.outbox();
        if std::mem::take(&mut o.kicked) {
            return Poll::Ready(());
        }
        if !o.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            o.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Ends the connection without ceremony once its deadline passes: reads
    /// and writes fail, so its task finishes.
    pub fn abort(&self) {
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Both);
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // A panic elsewhere while holding the lock leaves a consistent queue.
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `frame`, queueing what the socket does not take at once.
    pub fn send(&self, mut frame: Bytes, max_queued: usize) -> Sent {
        let mut o = self.outbox();
        if o.closing {
            return Sent::Dropped;
        }
        if o.queue.is_empty() {
            match self.stream.try_write(&frame) {
                Ok(n) if n == frame.len() => return Sent::Accepted,
                Ok(n) => {
                    frame.advance(n);
                    o.front_started = n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // The peer is gone; the task sees it on its next read.
                    o.closing = true;
                    kick(o);
                    return Sent::Dropped;
                }
            }
            o.queued_bytes += frame.len();
            o.queue.push_back(frame);
            kick(o);
            return Sent::Accepted;
        }
        if o.queued_bytes + frame.len() > max_queued {
            start_close(&mut o, frame::close::TRY_AGAIN_LATER, "slow consumer");
            kick(o);
            return Sent::Overflow;
        }
        o.queued_bytes += frame.len();
        o.queue.push_back(frame);
        Sent::Accepted
    }

    /// Starts closing with `code`: drops what is queued (bar a partly written
    /// frame) and queues the close frame. False when already closing.
    pub fn close(&self, code: u16, reason: &str) -> bool {
        let mut o = self.outbox();
        if o.closing {
            return false;
        }
        start_close(&mut o, code, reason);
        kick(o);
        true
    }

    pub fn is_closing(&self) -> bool {
        self.outbox().closing
    }

    /// Writes queued frames until done or the kernel pushes back.
    pub fn flush(&self) -> io::Result<Flush> {
        let mut o = self.outbox();
        while let Some(front) = o.queue.front_mut() {
            match self.stream.try_write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    front.advance(n);
                    let done = front.is_empty();
                    o.queued_bytes -= n;
                    o.front_started = !done;
                    if done {
                        o.queue.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Pending { closing: o.closing }),
                Err(e) => return Err(e),
            }
        }
        // Give back the queue's memory once it drains: idle connections hold none.
        o.queue = VecDeque::new();
        Ok(if o.closing { Flush::Closed } else { Flush::Idle })
    }
}

/// Wakes the connection's task (after the lock is released).
fn kick(mut o: std::sync::MutexGuard<'_, Outbox>) {
    o.kicked = true;
    let waker = o.waker.take();
    drop(o);
    if let Some(w) = waker {
        w.wake();
    }
}

fn start_close(o: &mut Outbox, code: u16, reason: &str) {
    let keep = if o.front_started { o.queue.pop_front() } else { None };
    o.queue.clear();
    o.queued_bytes = 0;
    o.closing = true;
    for f in keep.into_iter().chain([frame::close_frame(code, reason)]) {
        o.queued_bytes += f.len();
        o.queue.push_back(f);
    }
}

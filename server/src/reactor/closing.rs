//! How a connection ends: its close frame (or last HTTP answer) queued
//! behind nothing, its write side shut once that is out, a short linger
//! for the client's FIN, deadlines that end what does not finish, and the
//! slot freed. Leaving the index happens at the start of the close.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Reactor;
use crate::conn::{Conn, Flag};
use crate::index::ConnId;
use crate::wheel::Entry;
use rtbench_protocol::frame::{self, close};

/// How long a closing connection gets to take its close frame.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);
/// How long to wait for the client's side of the TCP close.
const LINGER: Duration = Duration::from_secs(1);

impl Reactor {
    /// Starts closing a connection with `code`: it leaves the index, its
    /// close frame goes out, then its write side is shut.
    pub(crate) fn close(&mut self, id: ConnId, code: u16, reason: &str) {
        self.close_with(id, frame::close_frame(code, reason));
    }

    /// Starts closing with `last` as the final bytes sent (a close frame, or
    /// an HTTP answer to a request that ends the connection).
    pub(crate) fn close_with(&mut self, id: ConnId, last: Bytes) {
        self.leave_handshake(id);
        let c = &mut self.conns[id as usize];
        let before = c.queued_bytes() as i64;
        let len = last.len() as u64;
        if c.sock.is_none() || !c.begin_close(last) {
            return;
        }
        self.stats.bytes_out += len;
        self.stats.queued += c.queued_bytes() as i64 - before;
        self.unfile(id);
        self.on_writable(id);
        // Written at once (the usual case), it lingers instead: no second
        // deadline left in the wheel.
        let c = &self.conns[id as usize];
        if c.sock.is_some() && !c.flags.fin_sent() {
            self.set_deadline(id, CLOSE_FLUSH);
        }
    }

    /// The close frame is out: half-close, then wait briefly for the client's
    /// FIN, so unread bytes do not turn the close into a reset.
    pub(super) fn finish_close(&mut self, id: ConnId) {
        let c = &mut self.conns[id as usize];
        c.flags.set(Flag::FinSent);
        if let Some(s) = &c.sock {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        self.set_deadline(id, LINGER);
    }

    pub(crate) fn clear_deadline(&mut self, id: ConnId) {
        self.conns[id as usize].deadline = 0;
    }

    pub(crate) fn set_deadline(&mut self, id: ConnId, after: Duration) {
        let due = self.wheel.tick_after(Instant::now(), after);
        let c = &mut self.conns[id as usize];
        c.deadline = due;
        self.wheel.insert(Entry {
            slot: id,
            generation: c.generation,
            due,
        });
    }

    /// Ends connections whose deadline passed.
    pub(super) fn expire(&mut self, now: Instant) {
        if self.wheel.is_empty() {
            return;
        }
        let mut due = Vec::new();
        self.wheel.expire(now, |e| due.push(e));
        for e in due {
            // A slot cut off the slab since is gone with its deadlines.
            let Some(c) = self.conns.get(e.slot as usize) else {
                continue;
            };
            let frame_late = c.extra.as_ref().is_some_and(|x| {
                x.frame_due == e.due && (!x.partial.is_empty() || x.message_opcode != 0)
            });
            if c.generation == e.generation && c.sock.is_some() && frame_late && c.deadline != e.due
            {
                self.shared.metrics.hit(crate::metrics::Limit::FrameTimeout);
                self.close(
                    e.slot,
                    close::POLICY_VIOLATION,
                    "frame not completed in time",
                );
                continue;
            }
            if c.generation == e.generation && c.sock.is_some() && c.deadline == e.due {
                if c.flags.in_handshake() {
                    self.shared
                        .metrics
                        .hit(crate::metrics::Limit::RequestTimeout);
                    let answer = crate::response::response_bytes(
                        408,
                        "text/plain",
                        b"request head timeout\n",
                        false,
                    );
                    self.close_with(e.slot, Bytes::from(answer));
                } else {
                    self.release(e.slot);
                }
            }
        }
    }

    /// Frees the slot: the socket is closed (which also takes it out of epoll).
    pub(crate) fn release(&mut self, id: ConnId) {
        if self.vacate(id).is_some() {
            crate::leak::on_close();
        }
    }

    /// Frees the slot and hands its socket out, still open (`None`: the
    /// slot was free).
    pub(crate) fn vacate(&mut self, id: ConnId) -> Option<std::net::TcpStream> {
        self.unfile(id);
        self.leave_handshake(id);
        let c = &mut self.conns[id as usize];
        let sock = c.sock.take()?;
        self.stats.queued -= c.queued_bytes() as i64;
        *c = Conn::free();
        // Cut off at the end of the turn: until then every slot number
        // handled in it stays valid.
        self.free.give(id);
        self.shared.live.fetch_sub(1, Relaxed);
        Some(sock)
    }
}

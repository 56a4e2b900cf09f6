//! Reading a connection: bytes from its socket into the reactor's buffer,
//! whole frames handled in place (`session.rs`), the tail of an incomplete
//! one kept with its deadline. A connection that floods gets one buffer a
//! turn, then waits for the others.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::Reactor;
use crate::index::ConnId;
use crate::wheel::Entry;

/// Full reads (of the whole buffer) of one connection before the others
/// get their turn: one, so a client that floods costs the others at most
/// one buffer's worth of handling per turn.
const READS_PER_TURN: usize = 1;

impl Reactor {
    pub(super) fn on_readable(&mut self, id: ConnId, buf: &mut [u8]) {
        let generation = self.conns[id as usize].generation;
        for _ in 0..READS_PER_TURN {
            let Some(sock) = &self.conns[id as usize].sock else {
                return;
            };
            self.stats.reads += 1;
            match (&*sock).read(buf) {
                Ok(0) => return self.release(id),
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    self.heard(id);
                    self.ingest(id, &mut buf[..n]);
                    if n < buf.len() || !self.current(id, generation) {
                        // A short read drained the socket: the next byte
                        // brings a new edge.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.release(id),
            }
        }
        // Still more: continue after the others had their turn.
        self.ready.push((id, generation));
    }

    /// Handles bytes read from a connection: whole frames now, the tail of an
    /// incomplete one kept for later.
    pub(crate) fn ingest(&mut self, id: ConnId, fresh: &mut [u8]) {
        if self.conns[id as usize].is_closing() {
            return; // only the close is left to send
        }
        if self.conns[id as usize].flags.in_handshake() {
            return self.handshake_bytes(id, fresh);
        }
        let partial = self.conns[id as usize]
            .extra
            .as_mut()
            .map(|e| std::mem::take(&mut e.partial));
        match partial {
            Some(mut p) if !p.is_empty() => {
                p.extend_from_slice(fresh);
                let used = self.consume(id, &mut p);
                p.drain(..used);
                self.keep_partial(id, p);
            }
            _ => {
                let used = self.consume(id, fresh);
                let rest = &fresh[used..];
                if !rest.is_empty() {
                    self.keep_partial(id, rest.to_vec());
                } else {
                    self.conns[id as usize].trim();
                }
            }
        }
        self.track_frame(id);
    }

    /// A frame or fragmented message in progress must arrive whole within
    /// `--frame-timeout-ms` of when it began: its bytes are held meanwhile.
    pub(super) fn track_frame(&mut self, id: ConnId) {
        let timeout = Duration::from_millis(self.shared.config.frame_timeout_ms);
        let c = &mut self.conns[id as usize];
        if c.sock.is_none() || c.is_closing() {
            return;
        }
        let generation = c.generation;
        let Some(e) = c.extra.as_mut() else { return };
        let in_progress = !e.partial.is_empty() || e.message_opcode != 0;
        if !in_progress {
            e.frame_due = 0;
        } else if e.frame_due == 0 {
            let due = self.wheel.tick_after(Instant::now(), timeout);
            e.frame_due = due;
            self.wheel.insert(Entry {
                slot: id,
                generation,
                due,
            });
        }
    }

    pub(super) fn keep_partial(&mut self, id: ConnId, p: Vec<u8>) {
        let c = &mut self.conns[id as usize];
        if c.sock.is_none() || c.is_closing() {
            return;
        }
        if p.is_empty() {
            if let Some(e) = &mut c.extra {
                e.partial = Vec::new();
            }
            c.trim();
        } else {
            c.extra().partial = p;
        }
    }
}

//! One synthetic client connection once it is open: hold, receive, close.
//!
//! Built like the server's connections, for the same reason: a load generator
//! heavier than the server measures itself. The handshake (`handshake.rs`)
//! keeps its buffers only while it runs; the connection is then a `Held` slot
//! of a few words in the worker's hold reactor (`hold.rs`), read into the
//! worker thread's buffer, keeping only an incomplete frame (and, for a
//! stream protocol, an incomplete message). The receive path (frame parse,
//! the protocol's messages, stamp, histogram) is `Receiver::frames`, which
//! the criterion benchmark measures.

use std::io::Write;

use rtbench_protocol::frame::{self, Sender};

use crate::handshake::{Connecting, MAX_FRAME};
use crate::protocols::{self, Msg};
use crate::stats::{self, Counters, Hists};
use crate::users::{Population, mix};
use rtbench_record::load::{EventSpan, UNMATCHED_SEEN};
use rtbench_record::scenario::Protocol;

/// A held connection: a slot in the worker's hold reactor.
pub struct Held {
    /// `None`: a free slot.
    pub sock: Option<std::net::TcpStream>,
    /// Bumped when the slot is reused, so stale readiness is recognised.
    pub generation: u32,
    /// The client sent its close frame.
    pub closing: bool,
    /// The client dropped silently (churn): it no longer reads or writes.
    pub dropped: bool,
    mask: u32,
    pub user: u32,
    /// The arrival it plays and its connection attempt (for reconnects).
    pub arrival: u32,
    pub attempt: u32,
    pub seqs: SeqWindow,
    /// What a connection holds only while it needs it.
    pub extra: Option<Box<Extra>>,
}

/// A held connection's passing state.
pub enum Extra {
    /// Still connecting.
    Connecting(Connecting),
    /// Bytes kept until the next read: the tail of a frame that has not
    /// fully arrived, and (NATS, MQTT, STOMP) a message its frame did not
    /// finish. Either may be empty.
    Partial { frame: Vec<u8>, message: Vec<u8> },
}

// The slot is paid per held connection: keep it small.
const _: () = assert!(std::mem::size_of::<Held>() <= 48);

/// Largest frame a client sends.
const MAX_SEND: usize = 125;

impl Held {
    pub fn free(generation: u32) -> Held {
        Held {
            sock: None,
            generation,
            closing: false,
            dropped: false,
            mask: 0,
            user: 0,
            arrival: 0,
            attempt: 0,
            seqs: SeqWindow::default(),
            extra: None,
        }
    }

    /// A slot for `sock`, still connecting (`connecting`) or connected.
    pub fn new(
        sock: std::net::TcpStream,
        generation: u32,
        user: u64,
        arrival: u64,
        attempt: u32,
        connecting: Option<Connecting>,
    ) -> Held {
        Held {
            sock: Some(sock),
            generation,
            closing: false,
            dropped: false,
            mask: mix(user) as u32 | 1,
            user: user as u32,
            arrival: arrival as u32,
            attempt,
            seqs: SeqWindow::default(),
            extra: connecting.map(|c| Box::new(Extra::Connecting(c))),
        }
    }

    pub fn is_connecting(&self) -> bool {
        matches!(self.extra.as_deref(), Some(Extra::Connecting(_)))
    }

    /// Sends a small masked frame without waiting; false if the socket would
    /// block (the caller counts it: the client did not keep up).
    pub fn try_send(&mut self, opcode: u8, payload: &[u8], counters: &mut Counters) -> bool {
        let Some(sock) = &self.sock else { return false };
        if payload.len() > MAX_SEND {
            return false;
        }
        let m = self.mask;
        let m = m ^ (m << 13) ^ (m >> 17) ^ (m << 5); // xorshift: a fresh mask per frame
        self.mask = m;
        let mut wire = [0u8; MAX_SEND + 6];
        let n = frame::encode_masked_into(opcode, payload, m.to_ne_bytes(), &mut wire);
        counters.writes += 1;
        match (&*sock).write(&wire[..n]) {
            Ok(k) if k == n => {
                counters.frames_out += 1;
                counters.bytes_out += n as u64;
                true
            }
            // A partial write of a tiny frame into an idle socket does not
            // happen in practice; treat it like a blocked one.
            _ => false,
        }
    }

    /// Sends the close frame once.
    pub fn close(&mut self, counters: &mut Counters) {
        if !self.closing {
            self.closing = true;
            self.try_send(
                frame::OP_CLOSE,
                &frame::close::NORMAL.to_be_bytes(),
                counters,
            );
        }
    }
}

/// How a held connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server sent a close frame with this code, unasked.
    ServerClosed(u16),
    /// The client closed and the server answered, or the socket ended.
    Closed,
    /// The socket failed or the server broke the protocol.
    Broken,
}

/// What the receive path needs to judge and time one connection's frames.
pub struct Receiver<'a> {
    pub population: &'a Population<'a>,
    pub protocol: Protocol,
    pub counters: &'a mut Counters,
    pub hists: &'a mut Hists,
    /// Per-second copies of the delivery histogram.
    pub delivery_interval: &'a mut stats::Hist,
    pub now_ns: u64,
    /// When this connection's last ping was sent (0: none): a pong's round
    /// trip is measured from it. Pings go out by slot group on a fixed
    /// tick, so the worker keeps one time per group, not one per slot.
    pub ping_sent_ns: u64,
    /// Events this connection's subscriber has received over the run (all
    /// its connections), when the scenario publishes.
    pub received: Option<&'a mut u32>,
    /// This connection's received range (`ConnSpan`).
    pub span: Option<&'a mut ConnSpan>,
    /// Each event's first and last arrival, by sequence, when the scenario
    /// times events one by one (`per_event`).
    pub spans: Option<&'a mut Vec<EventSpan>>,
}

/// The highest sequence a worker times one by one: a bound on the table,
/// whatever sequence a frame claims.
const MAX_TIMED_EVENTS: u64 = 1 << 20;

/// Notes one arrival of event `seq` at `at_ns` in its span. The table grows
/// with the sequence, not with each frame.
fn note_span(spans: &mut Vec<EventSpan>, seq: u64, published_ns: u64, at_ns: u64) {
    if seq >= MAX_TIMED_EVENTS {
        return;
    }
    let i = seq as usize;
    if i >= spans.len() {
        spans.resize(i + 1, EventSpan::default());
    }
    spans[i].add(&EventSpan {
        seq,
        published_ns,
        received: 1,
        first_ns: at_ns,
        last_ns: at_ns,
    });
}

/// Duplicate detection: the highest sequence seen and a bitmap of the 64
/// below it (events may arrive slightly out of order when publishers have
/// several requests in flight). Sequences are below 2^32 per run; the
/// bitmap is kept as two words so the window stays 12 bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqWindow {
    max: u32,
    seen: [u32; 2],
}

/// What a connection received of the run's numbered events: its lowest
/// sequence (+1; 0: none yet) and how many distinct ones. With its
/// `SeqWindow`'s highest, every accepted event in between should be among
/// them (`ConnSpan::settle`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnSpan {
    lowest: u32,
    count: u32,
}

impl ConnSpan {
    fn note(&mut self, seq: u64) {
        let s = (seq as u32).wrapping_add(1);
        if self.lowest == 0 || s < self.lowest {
            self.lowest = s;
        }
        self.count += 1;
    }

    /// (events expected inside the range, events missing from it), given
    /// the connection's window; the span is emptied.
    pub fn settle(&mut self, seqs: &SeqWindow) -> (u64, u64) {
        let taken = std::mem::take(self);
        if taken.lowest == 0 || seqs.max < taken.lowest {
            return (0, 0);
        }
        let expected = u64::from(seqs.max - taken.lowest) + 1;
        (expected, expected.saturating_sub(u64::from(taken.count)))
    }
}

/// The most sequences one jump is noted missing one by one: a stamp that
/// claims a far sequence must not make the worker loop.
const MAX_GAP: u64 = 4096;

/// Events come in publishing order on one connection (one publisher
/// request at a time, one bus subscription per server process): a jump
/// past the highest seen means the ones between were missed. One that
/// comes late after all is taken back.
fn note_gap(missed: &mut std::collections::BTreeMap<u64, u64>, highest: Option<u64>, seq: u64) {
    match highest {
        Some(h) if seq > h + 1 => {
            for g in (h + 1..seq).take(MAX_GAP as usize) {
                *missed.entry(g).or_default() += 1;
            }
        }
        Some(h) if seq < h => {
            if let Some(n) = missed.get_mut(&seq) {
                *n -= 1;
                if *n == 0 {
                    missed.remove(&seq);
                }
            }
        }
        _ => {}
    }
}

impl SeqWindow {
    /// The highest sequence seen, if any.
    pub fn highest(&self) -> Option<u64> {
        self.max.checked_sub(1).map(u64::from)
    }

    /// True if `seq` was seen before.
    pub fn duplicate(&mut self, seq: u64) -> bool {
        let seq = (seq as u32).wrapping_add(1); // 0 means "none yet"
        let mut seen = u64::from(self.seen[0]) | u64::from(self.seen[1]) << 32;
        let dup = if seq > self.max {
            let shift = seq - self.max;
            seen = if shift >= 64 { 0 } else { seen << shift };
            seen |= 1;
            self.max = seq;
            false
        } else {
            let back = self.max - seq;
            if back >= 64 {
                return false; // too old to tell
            }
            let bit = 1u64 << back;
            let dup = seen & bit != 0;
            seen |= bit;
            dup
        };
        self.seen = [seen as u32, (seen >> 32) as u32];
        dup
    }
}

impl Receiver<'_> {
    /// Handles every whole frame at the start of `buf`; `message` is what a
    /// stream protocol carried from earlier frames, and keeps what this
    /// read leaves unfinished. Returns the bytes used, or how the
    /// connection ended.
    pub fn frames(
        &mut self,
        held: &mut Held,
        buf: &mut [u8],
        message: &mut Vec<u8>,
    ) -> Result<usize, End> {
        let mut at = 0;
        loop {
            let f = match frame::parse(&mut buf[at..], MAX_FRAME, Sender::Server) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(at),
                Err(_) => return Err(End::Broken),
            };
            let payload = &buf[at + f.payload_start..at + f.end()];
            self.counters.frames_in += 1;
            self.counters.bytes_in += f.end() as u64;
            match f.opcode {
                frame::OP_TEXT | frame::OP_BINARY => self.data(held, f.opcode, payload, message)?,
                frame::OP_PING => {
                    let p = payload.to_vec();
                    held.try_send(frame::OP_PONG, &p, self.counters);
                }
                frame::OP_CLOSE => {
                    return Err(if held.closing {
                        End::Closed
                    } else {
                        End::ServerClosed(frame::close_code(payload))
                    });
                }
                _ => {}
            }
            at += f.end();
        }
    }

    /// A data frame's messages, after what was carried; keeps what is left
    /// unfinished.
    fn data(
        &mut self,
        held: &mut Held,
        opcode: u8,
        payload: &[u8],
        message: &mut Vec<u8>,
    ) -> Result<(), End> {
        let protocol = self.protocol;
        if message.is_empty() {
            let used = protocols::read(protocol, opcode, payload, &mut |m| self.message(held, m))
                .map_err(|_| End::Broken)?;
            message.extend_from_slice(&payload[used..]);
        } else {
            message.extend_from_slice(payload);
            let used = protocols::read(protocol, opcode, message, &mut |m| self.message(held, m))
                .map_err(|_| End::Broken)?;
            message.drain(..used);
        }
        if message.len() > protocols::MAX_CARRY {
            return Err(End::Broken);
        }
        Ok(())
    }

    fn message(&mut self, held: &mut Held, msg: Msg<'_>) {
        match msg {
            Msg::Event { channel, body } => self.event(held, channel, body),
            Msg::Pong => {
                self.counters.pongs += 1;
                if self.ping_sent_ns > 0 {
                    stats::record_ns(
                        &mut self.hists.echo,
                        self.now_ns.saturating_sub(self.ping_sent_ns),
                    );
                }
            }
            Msg::Answer(opcode, answer) => {
                self.counters.server_pings += 1;
                held.try_send(opcode, answer, self.counters);
            }
            Msg::Error(key) => {
                *self
                    .counters
                    .error_frames
                    .entry(key.to_string())
                    .or_default() += 1;
            }
            Msg::Echo(ts) => {
                self.counters.echoes += 1;
                stats::record_ns(&mut self.hists.echo, self.now_ns.saturating_sub(ts));
            }
            Msg::Unmatched { opcode, payload } => {
                self.counters.unmatched += 1;
                // Described only while few were: the path stays free of
                // allocations when a server answers everything unexpectedly.
                if self.counters.unmatched <= 4 * UNMATCHED_SEEN as u64 {
                    let kind = if opcode == frame::OP_BINARY {
                        "binary"
                    } else {
                        "text"
                    };
                    self.counters.saw_unmatched(&format!(
                        "{kind} frame of {} bytes: {}",
                        payload.len(),
                        protocols::preview(payload)
                    ));
                }
            }
            Msg::Other => {}
        }
    }

    fn event(&mut self, held: &mut Held, channel: &str, body: &[u8]) {
        let Some(s) = crate::stamp::read(body) else {
            return;
        };
        let highest = held.seqs.highest();
        if held.seqs.duplicate(s.seq) {
            self.counters.duplicates += 1;
            return;
        }
        if self.span.is_some() {
            note_gap(&mut self.counters.missed_by_seq, highest, s.seq);
        }
        self.counters.deliveries += 1;
        if let Some(r) = self.received.as_deref_mut() {
            *r += 1;
        }
        if let Some(span) = self.span.as_deref_mut() {
            span.note(s.seq);
        }
        if let Some(spans) = self.spans.as_deref_mut() {
            note_span(spans, s.seq, s.ts_ns, self.now_ns);
        }
        if !self
            .population
            .may_read(u64::from(held.user), channel, s.to)
        {
            self.counters.misdelivered += 1;
        }
        let latency = self.now_ns.saturating_sub(s.ts_ns);
        stats::record_ns(&mut self.hists.delivery, latency);
        stats::record_ns(self.delivery_interval, latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_window_finds_duplicates_in_and_out_of_order() {
        let mut w = SeqWindow::default();
        assert!(!w.duplicate(0));
        assert!(!w.duplicate(5));
        assert!(!w.duplicate(3));
        assert!(w.duplicate(3));
        assert!(w.duplicate(5));
        assert!(!w.duplicate(200));
        assert!(w.duplicate(200));
        assert!(!w.duplicate(199));
        assert!(!w.duplicate(5), "too old to tell is not a duplicate");
    }

    #[test]
    fn a_span_counts_the_events_missing_between_its_first_and_last() {
        let (mut w, mut span) = (SeqWindow::default(), ConnSpan::default());
        for seq in [10, 11, 13, 12, 16] {
            assert!(!w.duplicate(seq));
            span.note(seq);
        }
        // 10..=16 is 7 events; 14 and 15 never came.
        assert_eq!(span.settle(&w), (7, 2));
        let mut missed = std::collections::BTreeMap::new();
        let mut w = SeqWindow::default();
        for seq in [10, 11, 13, 16, 12] {
            note_gap(&mut missed, w.highest(), seq);
            w.duplicate(seq);
        }
        assert_eq!(
            missed.into_iter().collect::<Vec<_>>(),
            vec![(14, 1), (15, 1)]
        );
        assert_eq!(span.settle(&w), (0, 0), "settled once");
    }
}

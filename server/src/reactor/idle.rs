//! Closing connections that have gone silent.
//!
//! A client can vanish without a FIN: a phone out of signal, a laptop shut,
//! a process stopped. Its socket, slot, index entries and interned names
//! would be held until the kernel noticed, which on an idle connection is
//! never. The SDKs ping every 20 s, so a connection that sent nothing for
//! `--idle-timeout-s` (90 s) is gone: it is closed with 1001 (going away, so
//! a live client reconnects) and counted as
//! `rtbench_limit_hits_total{limit="idle_timeout"}`.
//!
//! No timer per connection: each slot keeps the reactor second it was last
//! heard from (4 bytes of the slot's padding), and the reactor walks its
//! slab in slices, a whole pass every quarter of the timeout (between 1 and
//! 15 s), so a silent connection is closed between one timeout and one and a
//! quarter (plus two seconds: `heard` is a whole second) after its last
//! byte. A pass over a million slots reads 64 MB, every 15 s by default.

use std::time::{Duration, Instant};

use super::Reactor;
use crate::index::ConnId;
use rtbench_protocol::frame::close;

/// How often a slice of the slab is looked at.
const SLICE_EVERY: Duration = Duration::from_millis(250);

/// Where the walk over the slab stands.
pub(super) struct IdleScan {
    /// The reactor's clock: `heard` values are seconds since this.
    born: Instant,
    /// The second the current turn began in (set each turn: one clock read
    /// a turn, not one a read).
    pub(super) now: u32,
    /// When the last turn began.
    last: Instant,
    /// The next slot to look at.
    cursor: usize,
    /// When the next slice is due.
    next: Instant,
}

impl Default for IdleScan {
    fn default() -> IdleScan {
        let now = Instant::now();
        IdleScan {
            born: now,
            now: 0,
            last: now,
            cursor: 0,
            next: now + SLICE_EVERY,
        }
    }
}

/// A gap between turns this long is a stopped reactor, not a quiet one
/// (with the timeout on, a reactor wakes every `SLICE_EVERY`).
const STALL: Duration = Duration::from_secs(2);

impl IdleScan {
    /// The reactor second `now` falls in: what a slot's `heard` holds.
    fn second(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.born).as_secs() as u32
    }

    /// Starts a turn at `now`. A reactor stopped meanwhile (SIGSTOP, a
    /// stalled machine) heard no one: the gap is taken off its clock, so
    /// pings still unread in the kernel do not count as silence.
    pub(super) fn turn(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last);
        if gap > STALL {
            self.born += gap;
        }
        self.last = now;
        self.now = self.second(now);
    }
}

/// Slices in one pass over the slab for a timeout of `timeout_s`.
fn slices_per_pass(timeout_s: u64) -> usize {
    let pass =
        Duration::from_secs(timeout_s / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
    (pass.as_millis() / SLICE_EVERY.as_millis()).max(1) as usize
}

impl Reactor {
    /// When the next slice is due (`None`: the timeout is off).
    pub(super) fn idle_due(&self) -> Option<Instant> {
        (self.shared.config.idle_timeout_s > 0).then_some(self.idle.next)
    }

    /// Records that `id` was heard from in this turn.
    pub(super) fn heard(&mut self, id: ConnId) {
        self.conns[id as usize].heard = self.idle.now;
    }

    /// Closes the silent connections in the slice that is due, if one is.
    pub(super) fn close_idle(&mut self, now: Instant) {
        let timeout_s = self.shared.config.idle_timeout_s;
        if timeout_s == 0 || now < self.idle.next {
            return;
        }
        self.idle.next = now + SLICE_EVERY;
        let len = self.conns.len();
        if len == 0 {
            return;
        }
        let slice = len.div_ceil(slices_per_pass(timeout_s));
        let second = self.idle.now;
        let limit = u32::try_from(timeout_s).unwrap_or(u32::MAX);
        let start = self.idle.cursor.min(len);
        let end = (start + slice).min(len);
        self.idle.cursor = if end == len { 0 } else { end };
        for id in start..end {
            let c = &self.conns[id];
            // Handshakes have their own deadline; closing ones are on theirs.
            let silent = c.sock.is_some()
                && !c.is_closing()
                && !c.flags.in_handshake()
                // `heard` is a whole second: more than `limit` of them
                // apart is at least `limit` seconds of silence.
                && second.saturating_sub(c.heard) > limit;
            if silent {
                self.shared.metrics.hit(crate::metrics::Limit::IdleTimeout);
                self.close(id as ConnId, close::GOING_AWAY, "idle timeout");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_takes_a_quarter_of_the_timeout_between_one_and_fifteen_seconds() {
        assert_eq!(slices_per_pass(90), 60); // 15 s of 250 ms slices
        assert_eq!(slices_per_pass(40), 40); // 10 s
        assert_eq!(slices_per_pass(8), 8); // 2 s
        assert_eq!(slices_per_pass(1), 4); // at least 1 s
    }

    #[test]
    fn a_stopped_reactor_does_not_count_its_stop_as_silence() {
        let t0 = Instant::now();
        let mut scan = IdleScan {
            born: t0,
            now: 0,
            last: t0,
            cursor: 0,
            next: t0,
        };
        scan.turn(t0 + Duration::from_millis(1_500));
        assert_eq!(scan.now, 1);
        // Stopped 100 s: the clock resumes where it was.
        scan.turn(t0 + Duration::from_millis(101_500));
        assert_eq!(scan.now, 1);
        scan.turn(t0 + Duration::from_millis(102_600));
        assert_eq!(scan.now, 2);
    }
}

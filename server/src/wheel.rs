//! Deadlines without a timer per connection: a hashed timer wheel.
//!
//! Only connections that are closing (or, later, stalling mid-frame) have a
//! deadline, and none needs better than a tenth of a second, so a reactor
//! keeps one wheel of 100 ms ticks. An entry names the connection slot, its
//! generation and the tick it is due; a connection that ended or moved its
//! deadline in the meantime is recognised when the entry fires (lazy
//! cancellation), so nothing is ever searched or removed early.

use std::time::{Duration, Instant};

/// One tick of the wheel.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Buckets: entries further out than this many ticks go round again.
const SPOKES: usize = 512;

/// A deadline: the connection slot, its generation, and the tick it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) due: u32,
}

pub(crate) struct Wheel {
    start: Instant,
    /// The next tick to expire.
    next: u32,
    spokes: Vec<Vec<Entry>>,
    len: usize,
}

impl Default for Wheel {
    fn default() -> Wheel {
        Wheel::new(Instant::now())
    }
}

impl Wheel {
    pub(crate) fn new(start: Instant) -> Wheel {
        Wheel {
            start,
            next: 1,
            spokes: vec![Vec::new(); SPOKES],
            len: 0,
        }
    }

    /// The tick `after` from `now` falls in (never earlier than the next one).
    pub(crate) fn tick_after(&self, now: Instant, after: Duration) -> u32 {
        let t = (now + after).saturating_duration_since(self.start);
        let tick = t.as_millis().div_ceil(TICK.as_millis()) as u32;
        tick.max(self.next)
    }

    pub(crate) fn insert(&mut self, e: Entry) {
        self.spokes[e.due as usize % SPOKES].push(e);
        self.len += 1;
    }

    /// How long the reactor may sleep: until the next tick, or for ever
    /// when nothing is pending.
    pub(crate) fn timeout(&self, now: Instant) -> Option<Duration> {
        (self.len > 0).then(|| {
            let due = self.start + TICK * self.next;
            due.saturating_duration_since(now)
        })
    }

    /// Hands every entry due by `now` to `fire`.
    pub(crate) fn expire(&mut self, now: Instant, mut fire: impl FnMut(Entry)) {
        let current =
            (now.saturating_duration_since(self.start).as_millis() / TICK.as_millis()) as u32;
        while self.next <= current {
            if self.len > 0 {
                let spoke = &mut self.spokes[self.next as usize % SPOKES];
                let mut i = 0;
                while i < spoke.len() {
                    if spoke[i].due <= self.next {
                        let e = spoke.swap_remove(i);
                        self.len -= 1;
                        fire(e);
                    } else {
                        i += 1;
                    }
                }
                // Memory a burst of deadlines took comes back with them:
                // a spoke is used once per turn of the wheel (51.2 s), so
                // allocating it again costs nothing that matters.
                if spoke.is_empty() {
                    *spoke = Vec::new();
                } else if spoke.len() < spoke.capacity() / 4 {
                    spoke.shrink_to(spoke.len() * 2);
                }
            }
            self.next += 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_fire_at_their_tick_and_not_before() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        assert_eq!(w.timeout(t0), None);
        let due = w.tick_after(t0, Duration::from_millis(250));
        assert_eq!(due, 3);
        w.insert(Entry {
            slot: 7,
            generation: 1,
            due,
        });
        // A deadline a whole turn of the wheel later shares the spoke.
        let far = w.tick_after(t0, TICK * (SPOKES as u32 + 3));
        w.insert(Entry {
            slot: 8,
            generation: 1,
            due: far,
        });
        assert!(w.timeout(t0).unwrap() <= TICK);
        let mut fired = Vec::new();
        w.expire(t0 + Duration::from_millis(299), |e| fired.push(e.slot));
        assert!(fired.is_empty(), "{fired:?}");
        w.expire(t0 + Duration::from_millis(300), |e| fired.push(e.slot));
        assert_eq!(fired, vec![7]);
        w.expire(t0 + TICK * (SPOKES as u32 + 2), |e| fired.push(e.slot));
        assert_eq!(fired, vec![7]);
        w.expire(t0 + TICK * (SPOKES as u32 + 3), |e| fired.push(e.slot));
        assert_eq!(fired, vec![7, 8]);
        assert!(w.is_empty());
    }
}

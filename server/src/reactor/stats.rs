//! A reactor's counters, kept in plain fields during a turn and added to
//! the shared atomic metrics once at its end: no atomic per syscall.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::Reactor;

/// Counters a reactor keeps locally and adds to the shared metrics once per turn.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) reads: u64,
    pub(crate) writes: u64,
    pub(crate) wakeups: u64,
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) deliveries: u64,
    pub(crate) slow_consumers: u64,
    pub(crate) pongs: u64,
    /// Change of the bytes queued for slow connections.
    pub(crate) queued: i64,
    /// Bus events this reactor wrote on an idle reactor's behalf.
    pub(crate) on_behalf: u64,
    /// Bus events this reactor queued on another reactor's inbox.
    pub(crate) handed_over: u64,
}

impl Reactor {
    /// Moves the `metrics::Held` gauges by this reactor's change since
    /// the last turn.
    pub(super) fn flush_held(&mut self) {
        use crate::metrics::Held;
        for h in Held::ALL {
            let now = match h {
                Held::InternedNames => self.names.len(),
                Held::WheelEntries => self.wheel.len(),
                Held::IndexEntries => self.index.entries(),
                Held::RoleSets => self.sessions.len(),
            };
            let (was, gauge) = (self.held[h as usize], &self.shared.metrics.held[h as usize]);
            if now > was {
                gauge.fetch_add((now - was) as u64, Relaxed);
            } else if now < was {
                gauge.fetch_sub((was - now) as u64, Relaxed);
            }
            self.held[h as usize] = now;
        }
    }

    pub(crate) fn flush_stats(&mut self) {
        let s = std::mem::take(&mut self.stats);
        let m = &self.shared.metrics;
        let add = |a: &AtomicU64, v: u64| {
            if v > 0 {
                a.fetch_add(v, Relaxed);
            }
        };
        add(&m.read_syscalls, s.reads);
        add(&m.write_syscalls, s.writes);
        add(&m.wakeups, s.wakeups);
        add(&m.fanout_on_behalf, s.on_behalf);
        add(&m.fanout_handed_over, s.handed_over);
        add(&m.frames_in, s.frames_in);
        add(&m.frames_out, s.frames_out);
        add(&m.bytes_out, s.bytes_out);
        add(&m.bytes_in, s.bytes_in);
        add(&m.deliveries, s.deliveries);
        add(&m.slow_consumers_closed, s.slow_consumers);
        add(&m.pongs, s.pongs);
        match s.queued {
            q if q > 0 => add(&m.queued_bytes, q as u64),
            q if q < 0 => {
                m.queued_bytes.fetch_sub(q.unsigned_abs(), Relaxed);
            }
            _ => {}
        }
    }
}

//! How busy a reactor thread has been of late: whether the bus reactor may
//! write an idle reactor's share of an event itself (`fanout.rs`).

use std::time::{Duration, Instant};

/// How busy a reactor thread has been over its last window: the share of
/// wall time it spent in turns rather than asleep in epoll.
pub(super) struct Load {
    window_start: Instant,
    awake_since: Instant,
    busy_in_window: Duration,
    busy: bool,
}

impl Load {
    /// The window over which busyness is judged.
    const WINDOW: Duration = Duration::from_millis(100);
    /// Busier than this, a reactor leaves other reactors' writes to them.
    const BUSY_SHARE: f64 = 0.5;

    pub(super) fn awake(&mut self) {
        self.awake_since = Instant::now();
    }

    pub(super) fn asleep(&mut self) {
        let now = Instant::now();
        self.busy_in_window += now - self.awake_since;
        let window = now - self.window_start;
        if window >= Self::WINDOW {
            self.busy = self.busy_in_window.as_secs_f64() > Self::BUSY_SHARE * window.as_secs_f64();
            self.window_start = now;
            self.busy_in_window = Duration::ZERO;
        }
    }

    pub(super) fn busy(&self) -> bool {
        self.busy
    }
}

impl Default for Load {
    fn default() -> Load {
        let now = Instant::now();
        Load {
            window_start: now,
            awake_since: now,
            busy_in_window: Duration::ZERO,
            busy: false,
        }
    }
}

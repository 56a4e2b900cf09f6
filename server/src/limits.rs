//! Process and abuse limits: the open-files ceiling and Appwrite's rate limits.
//!
//! Every connection is a descriptor, so the open-files limit caps connections
//! per process; the server raises its soft limit to the hard one at start and
//! says how many connections that allows. The rate limits copy Appwrite's abuse
//! protection (connects per IP per minute, messages per connection per minute);
//! a benchmark runs with them off, which is the default.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use rtbench_sys::limits::OpenFiles;

/// Descriptors kept for the listener, logs, /proc reads and HTTP clients.
pub const RESERVED_FDS: u64 = 64;

/// How many connections a process with these open-files limits can hold.
pub fn connection_capacity(open_files: &OpenFiles) -> u64 {
    open_files.soft.saturating_sub(RESERVED_FDS)
}

/// A fixed one-minute window counter.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    minute: u32,
    count: u32,
}

impl Window {
    /// Messages counted in the current minute.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Counts one more and says whether it is within `per_minute`.
    pub(crate) fn allow(&mut self, now_secs: u64, per_minute: u32) -> bool {
        let minute = (now_secs / 60) as u32;
        if minute != self.minute {
            *self = Window { minute, count: 0 };
        }
        self.count = self.count.saturating_add(1);
        self.count <= per_minute
    }
}

/// Connection attempts per source IP per minute.
pub(crate) struct ConnectLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl ConnectLimiter {
    pub(crate) fn new(per_minute: u32) -> ConnectLimiter {
        ConnectLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn allow(&self, ip: IpAddr, now_secs: u64) -> bool {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() > 100_000 {
            // Forget windows that have ended so many source IPs cannot grow the map.
            w.retain(|_, win| win.minute == (now_secs / 60) as u32);
        }
        w.entry(ip).or_default().allow(now_secs, self.per_minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_resets_each_minute() {
        let mut w = Window::default();
        assert!((0..3).all(|_| w.allow(120, 3)));
        assert!(!w.allow(121, 3));
        assert!(w.allow(180, 3));
    }

    #[test]
    fn capacity_is_the_soft_limit_less_what_is_reserved() {
        let l = OpenFiles {
            soft_before: 1024,
            soft: 20_000,
            hard: 20_000,
        };
        assert_eq!(connection_capacity(&l), 20_000 - 64);
        assert_eq!(connection_capacity(&OpenFiles { soft: 10, ..l }), 0);
    }
}

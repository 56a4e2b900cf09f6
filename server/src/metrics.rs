//! Counters the server keeps, and their Prometheus text rendering.
//!
//! A benchmark judges the server by these, so each counter is bumped where the
//! thing happens (fan-out adds a whole batch at once, to keep a shared cache
//! line off the per-delivery path) and `/metrics` reads them without locking.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a connection was refused after the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Full,
    ConnectRate,
    Project,
    Channels,
}

impl Rejected {
    const ALL: [Rejected; 4] = [Rejected::Full, Rejected::ConnectRate, Rejected::Project, Rejected::Channels];

    fn label(self) -> &'static str {
        match self {
            Rejected::Full => "full",
            Rejected::ConnectRate => "connect_rate",
            Rejected::Project => "project",
            Rejected::Channels => "channels",
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    pub connections_total: AtomicU64,
    rejected: [AtomicU64; 4],
    /// Upgrade requests refused before the WebSocket existed (bad handshake).
    pub bad_handshakes: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub events_in: AtomicU64,
    pub events_invalid: AtomicU64,
    pub deliveries: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
    /// accept() failures, e.g. out of descriptors (EMFILE).
    pub accept_errors: AtomicU64,
    /// Connections that did not send a whole request head in time (408).
    pub head_timeouts: AtomicU64,
    /// The Redis bus: 1 while subscribed.
    pub bus_up: AtomicU64,
    pub bus_outages: AtomicU64,
    pub bus_events_in: AtomicU64,
    /// Events published on the bus while this process was not subscribed.
    pub bus_events_missed: AtomicU64,
    pub bus_publish_failed: AtomicU64,
    /// The reactors' syscalls and wake-ups: a record divides them by
    /// deliveries and pings.
    pub read_syscalls: AtomicU64,
    pub write_syscalls: AtomicU64,
    pub wakeups: AtomicU64,
    /// `{"type":"ping"}` messages answered.
    pub pongs: AtomicU64,
}

impl Metrics {
    pub fn reject(&self, why: Rejected) {
        self.rejected[why as usize].fetch_add(1, Relaxed);
    }

    pub fn rejected(&self, why: Rejected) -> u64 {
        self.rejected[why as usize].load(Relaxed)
    }

    /// Counts `frames` frames of `bytes` bytes in all handed to sockets.
    pub fn sent(&self, frames: u64, bytes: u64) {
        self.frames_out.fetch_add(frames, Relaxed);
        self.bytes_out.fetch_add(bytes, Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, connections: usize) -> String {
        let mut s = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
        };
        let c = |a: &AtomicU64| a.load(Relaxed);
        one("rtbench_connections", "gauge", "Open WebSocket connections.", connections as u64);
        one("rtbench_connections_total", "counter", "WebSocket connections accepted.", c(&self.connections_total));
        one(
            "rtbench_bad_handshakes_total",
            "counter",
            "Upgrade requests refused before the WebSocket opened.",
            c(&self.bad_handshakes),
        );
        one("rtbench_frames_in_total", "counter", "WebSocket frames received.", c(&self.frames_in));
        one("rtbench_frames_out_total", "counter", "WebSocket frames sent or queued.", c(&self.frames_out));
        one("rtbench_bytes_out_total", "counter", "WebSocket bytes sent or queued.", c(&self.bytes_out));
        one("rtbench_events_in_total", "counter", "Events accepted for fan-out.", c(&self.events_in));
        one(
            "rtbench_events_invalid_total",
            "counter",
            "Event documents refused as malformed.",
            c(&self.events_invalid),
        );
        one("rtbench_deliveries_total", "counter", "Event frames handed to receivers.", c(&self.deliveries));
        one(
            "rtbench_slow_consumers_closed_total",
            "counter",
            "Connections closed with 1013 because their outbound queue overflowed.",
            c(&self.slow_consumers_closed),
        );
        one(
            "rtbench_accept_errors_total",
            "counter",
            "accept() failures, e.g. the open-files limit reached.",
            c(&self.accept_errors),
        );
        one(
            "rtbench_head_timeouts_total",
            "counter",
            "Connections closed with 408: no whole request head within the timeout.",
            c(&self.head_timeouts),
        );
        one("rtbench_bus_up", "gauge", "1 while subscribed to the Redis bus.", c(&self.bus_up));
        one(
            "rtbench_bus_outages_total",
            "counter",
            "Times the Redis bus was lost or could not be reached.",
            c(&self.bus_outages),
        );
        one("rtbench_bus_events_in_total", "counter", "Events received from the Redis bus.", c(&self.bus_events_in));
        one(
            "rtbench_bus_events_missed_total",
            "counter",
            "Bus events published while this process was not subscribed.",
            c(&self.bus_events_missed),
        );
        one(
            "rtbench_bus_publish_failed_total",
            "counter",
            "POST /v1/events refused because the bus was unavailable.",
            c(&self.bus_publish_failed),
        );
        one("rtbench_read_syscalls_total", "counter", "read() calls on WebSocket connections.", c(&self.read_syscalls));
        one(
            "rtbench_write_syscalls_total",
            "counter",
            "write()/writev() calls on WebSocket connections.",
            c(&self.write_syscalls),
        );
        one("rtbench_wakeups_total", "counter", "Reactor wake-ups (epoll_wait returns).", c(&self.wakeups));
        one("rtbench_pongs_total", "counter", "Ping messages answered with pong.", c(&self.pongs));
        one("rtbench_process_resident_memory_bytes", "gauge", "Resident set size of the server process.", rss_bytes());
        one(
            "rtbench_process_cpu_milliseconds_total",
            "counter",
            "CPU time (user + system) the server process has used.",
            cpu_ms(),
        );
        s.push_str("# HELP rtbench_connections_rejected_total Connections refused after the upgrade, by reason.\n");
        s.push_str("# TYPE rtbench_connections_rejected_total counter\n");
        for why in Rejected::ALL {
            let _ =
                writeln!(s, "rtbench_connections_rejected_total{{reason=\"{}\"}} {}", why.label(), self.rejected(why));
        }
        s
    }
}

/// CPU time this process has used (user + system), from getrusage.
pub fn cpu_ms() -> u64 {
    // SAFETY: rusage is plain integers (all-zero is valid); getrusage fills it.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(u.ru_utime) + ms(u.ru_stime)
}

/// Resident set size of this process, from /proc/self/statm (0 elsewhere).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

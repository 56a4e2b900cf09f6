//! Counters the server keeps, and their Prometheus text rendering.
//!
//! A benchmark judges the server by these, so each counter is bumped where the
//! thing happens (fan-out adds a whole batch at once, to keep a shared cache
//! line off the per-delivery path) and `/metrics` reads them without locking.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a connection was refused after the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Full,
    ConnectRate,
    Project,
    Channels,
}

impl Rejected {
    const ALL: [Rejected; 4] = [
        Rejected::Full,
        Rejected::ConnectRate,
        Rejected::Project,
        Rejected::Channels,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejected::Full => "full",
            Rejected::ConnectRate => "connect_rate",
            Rejected::Project => "project",
            Rejected::Channels => "channels",
        }
    }
}

/// A limit that bit: the client was refused, answered with an error or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Subscriptions,
    Channels,
    ChannelBytes,
    SubscriptionIdBytes,
    SubscriptionBytes,
    Handshakes,
    HttpConnections,
    RequestTimeout,
    FrameTimeout,
    IdleTimeout,
    EventBytes,
    MessageBytes,
    MessageRate,
}

impl Limit {
    const ALL: [Limit; 13] = [
        Limit::Subscriptions,
        Limit::Channels,
        Limit::ChannelBytes,
        Limit::SubscriptionIdBytes,
        Limit::SubscriptionBytes,
        Limit::Handshakes,
        Limit::HttpConnections,
        Limit::RequestTimeout,
        Limit::FrameTimeout,
        Limit::IdleTimeout,
        Limit::EventBytes,
        Limit::MessageBytes,
        Limit::MessageRate,
    ];

    fn label(self) -> &'static str {
        match self {
            Limit::Subscriptions => "subscriptions",
            Limit::Channels => "channels",
            Limit::ChannelBytes => "channel_bytes",
            Limit::SubscriptionIdBytes => "subscription_id_bytes",
            Limit::SubscriptionBytes => "subscription_bytes",
            Limit::Handshakes => "handshakes",
            Limit::HttpConnections => "http_connections",
            Limit::RequestTimeout => "request_timeout",
            Limit::FrameTimeout => "frame_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::EventBytes => "event_bytes",
            Limit::MessageBytes => "message_bytes",
            Limit::MessageRate => "message_rate",
        }
    }
}

impl From<crate::subs::Over> for Limit {
    fn from(o: crate::subs::Over) -> Limit {
        use crate::subs::Over;
        match o {
            Over::Subscriptions => Limit::Subscriptions,
            Over::Channels => Limit::Channels,
            Over::ChannelBytes => Limit::ChannelBytes,
            Over::IdBytes => Limit::SubscriptionIdBytes,
            Over::Bytes => Limit::SubscriptionBytes,
        }
    }
}

/// A table the reactors hold entries in, exported as a gauge: one that
/// only grows under churn is a leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    InternedNames,
    WheelEntries,
    IndexEntries,
    RoleSets,
}

impl Held {
    pub(crate) const ALL: [Held; 4] = [
        Held::InternedNames,
        Held::WheelEntries,
        Held::IndexEntries,
        Held::RoleSets,
    ];

    fn metric(self) -> (&'static str, &'static str) {
        match self {
            Held::InternedNames => (
                "rtbench_interned_names",
                "Names (projects, channels, roles) interned.",
            ),
            Held::WheelEntries => (
                "rtbench_wheel_entries",
                "Deadlines in the timer wheels, cancelled ones included.",
            ),
            Held::IndexEntries => (
                "rtbench_index_entries",
                "(project, channel, role) entries filed in the subscription index.",
            ),
            Held::RoleSets => (
                "rtbench_role_sets",
                "Role sets shared by signed-in sessions.",
            ),
        }
    }
}

#[derive(Default)]
pub(crate) struct Metrics {
    limits: [AtomicU64; Limit::ALL.len()],
    /// Connections in their HTTP handshake, and plain HTTP connections
    /// served, now (gauges: the limits on them read these).
    pub(crate) handshakes: AtomicU64,
    pub(crate) http_connections: AtomicU64,
    /// Bytes queued for slow connections, now (a gauge).
    pub(crate) queued_bytes: AtomicU64,
    /// What the reactors hold now, summed (gauges a soak fits for leaks):
    /// interned names, timer-wheel deadlines, index entries, role sets.
    pub(crate) held: [AtomicU64; Held::ALL.len()],
    pub(crate) connections_total: AtomicU64,
    rejected: [AtomicU64; 4],
    /// Upgrade requests refused before the WebSocket existed (bad handshake).
    pub(crate) bad_handshakes: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    /// Bytes read from connections (request heads and frames).
    pub(crate) bytes_in: AtomicU64,
    pub(crate) events_in: AtomicU64,
    pub(crate) events_invalid: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) slow_consumers_closed: AtomicU64,
    /// accept() failures, e.g. out of descriptors (EMFILE).
    pub(crate) accept_errors: AtomicU64,
    /// The Redis bus: 1 while subscribed.
    pub(crate) bus_up: AtomicU64,
    pub(crate) bus_outages: AtomicU64,
    pub(crate) bus_events_in: AtomicU64,
    /// Events published on the bus while this process was not subscribed.
    pub(crate) bus_events_missed: AtomicU64,
    pub(crate) bus_publish_failed: AtomicU64,
    /// The reactors' syscalls and wake-ups: a record divides them by
    /// deliveries and pings.
    pub(crate) read_syscalls: AtomicU64,
    pub(crate) write_syscalls: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    /// Bus events a reactor wrote to an idle reactor's connections itself.
    pub(crate) fanout_on_behalf: AtomicU64,
    /// Bus events queued on another reactor's inbox (it was busy, or this one was).
    pub(crate) fanout_handed_over: AtomicU64,
    /// `{"type":"ping"}` messages answered.
    pub(crate) pongs: AtomicU64,
}

impl Metrics {
    pub(crate) fn reject(&self, why: Rejected) {
        self.rejected[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self, why: Rejected) -> u64 {
        self.rejected[why as usize].load(Relaxed)
    }

    /// Counts a limit that bit.
    pub(crate) fn hit(&self, limit: Limit) {
        self.limits[limit as usize].fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub(crate) fn render(&self, connections: usize) -> String {
        let mut s = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        let c = |a: &AtomicU64| a.load(Relaxed);
        one(
            "rtbench_connections",
            "gauge",
            "Open WebSocket connections.",
            connections as u64,
        );
        one(
            "rtbench_connections_total",
            "counter",
            "WebSocket connections accepted.",
            c(&self.connections_total),
        );
        one(
            "rtbench_bad_handshakes_total",
            "counter",
            "Upgrade requests refused before the WebSocket opened.",
            c(&self.bad_handshakes),
        );
        one(
            "rtbench_frames_in_total",
            "counter",
            "WebSocket frames received.",
            c(&self.frames_in),
        );
        one(
            "rtbench_frames_out_total",
            "counter",
            "WebSocket frames sent or queued.",
            c(&self.frames_out),
        );
        one(
            "rtbench_bytes_out_total",
            "counter",
            "Bytes written or queued to connections (upgrade answers, frames, closes).",
            c(&self.bytes_out),
        );
        one(
            "rtbench_bytes_in_total",
            "counter",
            "Bytes read from connections.",
            c(&self.bytes_in),
        );
        one(
            "rtbench_events_in_total",
            "counter",
            "Events accepted for fan-out.",
            c(&self.events_in),
        );
        one(
            "rtbench_events_invalid_total",
            "counter",
            "Event documents refused as malformed.",
            c(&self.events_invalid),
        );
        one(
            "rtbench_deliveries_total",
            "counter",
            "Event frames handed to receivers.",
            c(&self.deliveries),
        );
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
            "rtbench_bus_up",
            "gauge",
            "1 while subscribed to the Redis bus.",
            c(&self.bus_up),
        );
        one(
            "rtbench_bus_outages_total",
            "counter",
            "Times the Redis bus was lost or could not be reached.",
            c(&self.bus_outages),
        );
        one(
            "rtbench_bus_events_in_total",
            "counter",
            "Events received from the Redis bus.",
            c(&self.bus_events_in),
        );
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
        one(
            "rtbench_read_syscalls_total",
            "counter",
            "read() calls on WebSocket connections.",
            c(&self.read_syscalls),
        );
        one(
            "rtbench_write_syscalls_total",
            "counter",
            "write()/writev() calls on WebSocket connections.",
            c(&self.write_syscalls),
        );
        one(
            "rtbench_wakeups_total",
            "counter",
            "Reactor wake-ups (epoll_wait returns).",
            c(&self.wakeups),
        );
        one(
            "rtbench_fanout_on_behalf_total",
            "counter",
            "Bus events fanned out on an idle reactor's connections by the bus reactor, without waking it.",
            c(&self.fanout_on_behalf),
        );
        one(
            "rtbench_fanout_handed_over_total",
            "counter",
            "Bus events queued on another reactor's inbox: it was busy, or the bus reactor was.",
            c(&self.fanout_handed_over),
        );
        one(
            "rtbench_pongs_total",
            "counter",
            "Ping messages answered with pong.",
            c(&self.pongs),
        );
        one(
            "rtbench_panics_total",
            "counter",
            "Panics in this process (each is a bug).",
            PANICS.load(Relaxed),
        );
        // A figure that cannot be read is 0: a scrape never fails for one figure.
        let rss =
            rtbench_sys::process::rss_bytes(rtbench_sys::process::Process::Current).unwrap_or(0);
        one(
            "rtbench_process_resident_memory_bytes",
            "gauge",
            "Resident set size of the server process.",
            rss,
        );
        one(
            "rtbench_process_cpu_milliseconds_total",
            "counter",
            "CPU time (user + system) the server process has used.",
            rtbench_sys::process::cpu_time().map_or(0, |t| t.millis()),
        );
        one(
            "rtbench_handshakes",
            "gauge",
            "Connections in their HTTP handshake.",
            c(&self.handshakes),
        );
        one(
            "rtbench_http_connections",
            "gauge",
            "Plain HTTP connections being served.",
            c(&self.http_connections),
        );
        one(
            "rtbench_queued_bytes",
            "gauge",
            "Bytes queued for connections the kernel would not take.",
            c(&self.queued_bytes),
        );
        for h in Held::ALL {
            let (name, help) = h.metric();
            one(name, "gauge", help, c(&self.held[h as usize]));
        }
        s.push_str("# HELP rtbench_limit_hits_total Requests refused or connections closed by a limit, by limit.\n");
        s.push_str("# TYPE rtbench_limit_hits_total counter\n");
        for l in Limit::ALL {
            let _ = writeln!(
                s,
                "rtbench_limit_hits_total{{limit=\"{}\"}} {}",
                l.label(),
                c(&self.limits[l as usize])
            );
        }
        s.push_str("# HELP rtbench_connections_rejected_total Connections refused after the upgrade, by reason.\n");
        s.push_str("# TYPE rtbench_connections_rejected_total counter\n");
        for why in Rejected::ALL {
            let _ = writeln!(
                s,
                "rtbench_connections_rejected_total{{reason=\"{}\"}} {}",
                why.label(),
                self.rejected(why)
            );
        }
        s
    }
}

/// Panics anywhere in this process, counted by a panic hook: the abuse
/// tests assert it stays 0, and `/metrics` shows it.
pub(crate) static PANICS: AtomicU64 = AtomicU64::new(0);

/// Installs (once) the hook that counts panics before the default report.
pub(crate) fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Relaxed);
            previous(info);
        }));
    });
}

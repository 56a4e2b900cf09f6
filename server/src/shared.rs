//! What the reactors, the HTTP tasks and the bus share: configuration,
//! metrics, limits and counters. The reactors themselves are not in it
//! (`Reactors`, held beside it): nothing here depends on how connections
//! are held.

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::bus::Bus;
use crate::config::Config;
use crate::limits::ConnectLimiter;
use crate::metrics::Metrics;

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) metrics: Metrics,
    pub(crate) connect_limiter: Option<ConnectLimiter>,
    pub(crate) bus: Option<Bus>,
    /// WebSocket connections admitted and not closing: the
    /// `rtbench_connections` gauge, held under `--max-connections`.
    pub(crate) open: AtomicUsize,
    /// Sockets the reactors hold, in their handshake or closing ones
    /// included: shutdown waits for these, so no close becomes a reset.
    pub(crate) live: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(config: Config) -> io::Result<Shared> {
        let bus = config
            .bus
            .as_deref()
            .map(Bus::new)
            .transpose()
            .map_err(io::Error::other)?;
        Ok(Shared {
            metrics: Metrics::default(),
            connect_limiter: config.connect_rate.map(ConnectLimiter::new),
            bus,
            open: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            config,
        })
    }

    /// Reactor threads: `--threads`, or one per core.
    pub(crate) fn threads(&self) -> usize {
        self.config
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub(crate) fn jwt_secret(&self) -> &[u8] {
        self.config.jwt_secret.as_bytes()
    }

    /// Takes a place for a new connection, unless the server is full.
    pub(crate) fn reserve(&self) -> bool {
        let max = self.config.max_connections;
        self.open
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    /// Open WebSocket connections.
    pub(crate) fn connections(&self) -> usize {
        self.open.load(Relaxed)
    }
}

//! What the accept loop, the handshakes, the bus and the reactors share.

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::bus::Bus;
use crate::config::Config;
use crate::limits::ConnectLimiter;
use crate::metrics::Metrics;
use crate::reactor::Reactors;

pub struct Shared {
    pub config: Config,
    pub metrics: Metrics,
    pub connect_limiter: Option<ConnectLimiter>,
    pub bus: Option<Bus>,
    pub reactors: Reactors,
    /// WebSocket connections admitted and not closing: the
    /// `rtbench_connections` gauge, held under `--max-connections`.
    pub open: AtomicUsize,
    /// Sockets admitted and not yet released, closing ones included:
    /// shutdown waits for these, so no close becomes a reset.
    pub live: AtomicUsize,
}

impl Shared {
    pub fn new(config: Config) -> io::Result<Shared> {
        let bus = config.bus.as_deref().map(Bus::new).transpose().map_err(io::Error::other)?;
        let threads = config.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Ok(Shared {
            metrics: Metrics::default(),
            connect_limiter: config.connect_rate.map(ConnectLimiter::new),
            bus,
            reactors: Reactors::new(threads)?,
            open: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            config,
        })
    }

    pub fn jwt_secret(&self) -> &[u8] {
        self.config.jwt_secret.as_bytes()
    }

    /// Takes a place for a new connection, unless the server is full.
    pub fn reserve(&self) -> bool {
        let max = self.config.max_connections;
        let ok = self.open.fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1)).is_ok();
        if ok {
            self.live.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Gives back a place whose connection never reached a reactor.
    pub fn unreserve(&self) {
        self.open.fetch_sub(1, Relaxed);
        self.live.fetch_sub(1, Relaxed);
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.open.load(Relaxed)
    }
}

//! Reactors: the threads that hold the WebSocket connections.
//!
//! A connection costs no task, no future and no runtime registration: it
//! lives in one of a few reactor threads from accept to close (its handshake
//! in `handshake.rs`, its messages in `session.rs`), each an epoll loop over a slab of `Conn` slots
//! (`conn.rs`), with its own subscription index and name table, and a timer
//! wheel for the few connections that have a deadline. Nothing on the
//! per-connection path takes a lock but the reactor's own state lock, taken
//! once per turn and uncontended but for the case below.
//!
//! Everything else reaches a reactor through its inbox: admitted connections,
//! events to fan out, shutdown. One eventfd wake-up per batch, however much
//! was queued. Events that queue up while a reactor is busy are fanned out
//! together, and the frames one connection gets from a batch go out in one
//! `writev`: under load the reactor does fewer syscalls per delivery, not more.
//!
//! At low load the opposite holds: waking a sleeping reactor for a bus event
//! with a handful of receivers (an eventfd write, two context switches) costs
//! more than writing the frames. So the bus reactor, while not busy itself,
//! borrows an idle reactor's state (it sleeps without holding it) and writes
//! that reactor's share of the event in its place (`Reactors::share`).
//!
//! This module holds the threads and the turn loop; each concern of a
//! reactor is a module beside it, adding to `impl Reactor`: `inbox.rs`
//! (what other threads send), `fanout.rs` (events to receivers, `share`),
//! `reading.rs`, `closing.rs` (close frames, FIN, deadlines, freeing a
//! slot), `filing.rs` (the index and names), `bus.rs`, `stats.rs`,
//! `load.rs`, `panics.rs` (what a panic leaves), and `handshake.rs` and
//! `session.rs`.

use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::conn::Conn;
use crate::freeids::FreeIds;
use crate::index::{ConnId, Index};
use crate::intern::Interner;
use crate::request::Incoming;
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::subscriber::Subscriber;
use crate::wheel::Wheel;

mod bus;
mod closing;
mod fanout;
mod filing;
pub mod handshake;
mod idle;
mod inbox;
mod load;
mod panics;
mod reading;
mod session;
mod stats;

use inbox::Handle;
use load::Load;
use stats::Stats;

/// The reactor's read buffer: a whole largest frame plus its header fits.
pub(crate) const READ_BUF: usize = crate::messages::MAX_MESSAGE + 16;
const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
const BUS: Token = Token(usize::MAX - 2);

/// The reactor threads of a server.
pub(crate) struct Reactors {
    handles: Vec<Arc<Handle>>,
    /// Polls made with their handles, waiting for `spawn`.
    polls: Mutex<Vec<Poll>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicUsize,
    /// Where connections whose request is not an upgrade go (`http.rs`
    /// serves them): a channel, so the reactors never call the HTTP side.
    pub(crate) plain_http: tokio::sync::mpsc::UnboundedSender<Incoming>,
}

impl Reactors {
    /// `n` reactors; plain HTTP requests they read go to `plain_http`.
    pub(crate) fn new(
        n: usize,
        plain_http: tokio::sync::mpsc::UnboundedSender<Incoming>,
    ) -> io::Result<Reactors> {
        let mut handles = Vec::new();
        let mut polls = Vec::new();
        for _ in 0..n.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            handles.push(Arc::new(Handle {
                inbox: Mutex::default(),
                waker,
                state: Mutex::default(),
            }));
            polls.push(poll);
        }
        Ok(Reactors {
            handles,
            polls: Mutex::new(polls),
            threads: Mutex::default(),
            next: AtomicUsize::new(0),
            plain_http,
        })
    }

    /// Starts the threads, each accepting from `listener`; they hold
    /// `shared` until `stop`.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        listener: Arc<std::net::TcpListener>,
    ) -> io::Result<()> {
        let polls = std::mem::take(&mut *self.polls.lock().unwrap_or_else(|e| e.into_inner()));
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (poll, handle)) in polls.into_iter().zip(&self.handles).enumerate() {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&*listener);
            poll.registry()
                .register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
            let mut r = Reactor::new(
                shared.clone(),
                self.clone(),
                handle.clone(),
                poll.registry().try_clone()?,
            );
            r.listener = Some(listener.clone());
            r.number = i;
            if i == 0
                && let Some(url) = &shared.config.bus
            {
                r.subscriber = Some(Subscriber::new(url).map_err(io::Error::other)?);
            }
            *handle.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            let handle = handle.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("reactor-{i}"))
                    .spawn(move || {
                        panics::or_abort(&format!("reactor-{i}"), || run(&handle, poll))
                    })?,
            );
        }
        Ok(())
    }
}

/// One reactor thread's state.
pub(crate) struct Reactor {
    pub(crate) shared: Arc<Shared>,
    /// The process's reactors, this one among them: the bus reactor fans
    /// events out to the others through them.
    reactors: Arc<Reactors>,
    handle: Arc<Handle>,
    /// Registers this reactor's sockets with its epoll (the thread holds
    /// the `Poll` itself: it sleeps in it without the state).
    pub(crate) registry: Registry,
    /// How busy the thread was of late: whether it may take on an idle
    /// reactor's writes.
    load: Load,
    /// The slab: slots are reused lowest first and its free end is cut
    /// off, so it shrinks back after a peak.
    pub(crate) conns: Vec<Conn>,
    pub(crate) free: FreeIds,
    /// The generation the next slot taken gets: one counter for the whole
    /// slab, so a slot cut off and made again never repeats a generation.
    pub(crate) generations: u32,
    /// The listening socket, until shutdown.
    pub(crate) listener: Option<Arc<std::net::TcpListener>>,
    /// More connections may wait to be accepted (a turn took its share).
    accept_more: bool,
    /// Accepting failed: try again then.
    pub(crate) accept_retry: Option<Instant>,
    /// Which reactor of the process this is.
    number: usize,
    /// The bus subscription (the first reactor of a process with `--bus`).
    subscriber: Option<Subscriber>,
    pub(crate) index: Index,
    pub(crate) names: Interner,
    /// The role sets of signed-in sessions.
    pub(crate) sessions: Sessions,
    /// Its load (connections and deadlines) since memory was last given back.
    peak: crate::memory::Peak,
    wheel: Wheel,
    /// The walk that closes silent connections (`idle.rs`).
    idle: idle::IdleScan,
    pub(crate) stats: Stats,
    /// This reactor's share of the `metrics::Held` gauges as last added.
    held: [usize; crate::metrics::Held::ALL.len()],
    /// Connections with more to read than one turn took.
    ready: Vec<(ConnId, u32)>,
    /// Scratch for fan-out.
    receivers: Vec<ConnId>,
    keys: Vec<u64>,
    pub(crate) closing_all: bool,
}

pub(crate) fn token(id: ConnId, generation: u32) -> Token {
    Token((u64::from(generation) << 32 | u64::from(id)) as usize)
}

/// A reactor thread: sleeps in epoll without its state, and holds the
/// state for each turn.
fn run(handle: &Handle, mut poll: Poll) {
    let lock = || handle.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUF];
    let mut timeout = {
        let mut state = lock();
        let Some(r) = state.as_mut() else { return };
        r.bus_connect();
        r.timeout()
    };
    loop {
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("rtbench-server: reactor: epoll failed: {e}");
            break;
        }
        let mut state = lock();
        let Some(r) = state.as_mut() else { return };
        r.load.awake();
        if r.turn(&events, &mut buf) {
            break;
        }
        timeout = r.timeout();
        r.load.asleep();
    }
    if let Some(r) = lock().take() {
        r.finish();
    }
}

impl Reactor {
    /// Reactor 0 of `reactors`, with no thread: driven by its caller (the
    /// fuzz harness).
    pub(crate) fn standalone(shared: Arc<Shared>, reactors: Arc<Reactors>) -> io::Result<Reactor> {
        let poll = reactors
            .polls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .swap_remove(0);
        let handle = reactors.handles[0].clone();
        let registry = poll.registry().try_clone()?;
        Ok(Reactor::new(shared, reactors, handle, registry))
    }

    fn new(
        shared: Arc<Shared>,
        reactors: Arc<Reactors>,
        handle: Arc<Handle>,
        registry: Registry,
    ) -> Reactor {
        Reactor {
            shared,
            reactors,
            handle,
            registry,
            load: Load::default(),
            conns: Vec::new(),
            free: FreeIds::default(),
            generations: 0,
            listener: None,
            accept_more: false,
            accept_retry: None,
            number: 0,
            subscriber: None,
            index: Index::default(),
            names: Interner::default(),
            sessions: Sessions::default(),
            peak: crate::memory::Peak::default(),
            wheel: Wheel::default(),
            idle: idle::IdleScan::default(),
            stats: Stats::default(),
            held: [0; crate::metrics::Held::ALL.len()],
            ready: Vec::new(),
            receivers: Vec::new(),
            keys: Vec::new(),
            closing_all: false,
        }
    }

    /// How long the thread may sleep in epoll before it has work.
    fn timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        if !self.ready.is_empty() || self.accept_more {
            return Some(Duration::ZERO);
        }
        let due = [
            self.accept_retry,
            self.subscriber.as_ref().and_then(|s| s.due),
            self.idle_due(),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.saturating_duration_since(now))
        .min();
        match (self.wheel.timeout(now), due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One turn: handles what epoll reported and what is due; true when
    /// told to stop.
    fn turn(&mut self, events: &Events, buf: &mut [u8]) -> bool {
        self.stats.wakeups += 1;
        self.idle.turn(Instant::now());
        // Queued events first: an event published before a client's
        // message was read goes out before the answer to it.
        if events.iter().any(|ev| ev.token() == WAKER) && self.take_inbox() {
            return true;
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            if ev.token() == LISTENER {
                self.accept_more = true;
                continue;
            }
            if ev.token() == BUS {
                self.on_bus(buf);
                continue;
            }
            let (id, generation) = (ev.token().0 as u32, (ev.token().0 >> 32) as u32);
            let (writable, readable) = (
                ev.is_writable(),
                ev.is_readable() || ev.is_read_closed() || ev.is_error(),
            );
            self.guarded(id, |r| {
                if writable && r.current(id, generation) {
                    r.on_writable(id);
                }
                if readable && r.current(id, generation) {
                    r.on_readable(id, buf);
                }
            });
        }
        for (id, generation) in std::mem::take(&mut self.ready) {
            self.guarded(id, |r| {
                if r.current(id, generation) {
                    r.on_readable(id, buf);
                }
            });
        }
        if self.accept_retry.is_some_and(|t| t <= Instant::now()) {
            self.accept_retry = None;
            self.accept_more = true;
        }
        if self.accept_more {
            self.accept_more = self.accept_all();
        }
        if self
            .subscriber
            .as_ref()
            .and_then(|s| s.due)
            .is_some_and(|t| t <= Instant::now())
        {
            // Reconnect, or give up a connect that hangs.
            if self.subscriber.as_ref().is_some_and(|s| s.sock.is_some()) {
                self.bus_lost("subscribing timed out".into());
            } else {
                self.bus_connect();
            }
        }
        self.expire(Instant::now());
        self.close_idle(Instant::now());
        self.free.trim(&mut self.conns);
        // Pending deadlines count: a peak's closes leave theirs behind.
        if self
            .peak
            .fallen(self.conns.len() - self.free.len() + self.wheel.len())
        {
            crate::memory::give_back();
        }
        self.flush_stats();
        self.flush_held();
        false
    }

    /// Stopped: drops every socket.
    fn finish(mut self) {
        let held = self.conns.iter().filter(|c| c.sock.is_some()).count();
        self.conns.clear();
        self.shared.live.fetch_sub(held, Relaxed);
        self.flush_stats();
    }

    fn current(&self, id: ConnId, generation: u32) -> bool {
        self.conns
            .get(id as usize)
            .is_some_and(|c| c.generation == generation && c.sock.is_some())
    }
}

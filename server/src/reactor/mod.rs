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

use std::io::{self, Read};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::conn::{Conn, FIN_SENT, Flush, HANDSHAKE, Ids, Sent};
use crate::event::Event;
use crate::freeids::FreeIds;
use crate::index::{ConnId, Index};
use crate::intern::{Id, Interner};
use crate::request::Incoming;
use crate::sessions::{Session, Sessions};
use crate::shared::Shared;
use crate::subscriber::{Got, Subscriber};
use crate::wheel::{Entry, Wheel};
use rtbench_protocol::frame::{self, close};

pub mod handshake;
mod session;

/// How long a closing connection gets to take its close frame.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);
/// How long to wait for the client's side of the TCP close.
const LINGER: Duration = Duration::from_secs(1);
/// The reactor's read buffer: a whole largest frame plus its header fits.
pub(crate) const READ_BUF: usize = crate::messages::MAX_MESSAGE + 16;
/// Full reads (of the whole buffer) of one connection before the others
/// get their turn: one, so a client that floods costs the others at most
/// one buffer's worth of handling per turn.
const READS_PER_TURN: usize = 1;
const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
const BUS: Token = Token(usize::MAX - 2);

/// One reactor's inbox, filled by other threads.
#[derive(Default)]
struct Inbox {
    /// A wake-up is on its way: further pushes need not send another.
    notified: bool,
    conns: Vec<Incoming>,
    events: Vec<Delivery>,
    close_all: bool,
    stop: bool,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        !self.notified && self.conns.is_empty() && self.events.is_empty() && !self.close_all && !self.stop
    }
}

/// An event to fan out, and where to report how many received it.
pub(crate) struct Delivery {
    pub(crate) event: Arc<Event>,
    pub(crate) tally: Option<Arc<Tally>>,
}

/// Deliveries of one event summed over the reactors; the last reactor to
/// report sends the total.
pub(crate) struct Tally {
    left: AtomicUsize,
    delivered: AtomicU64,
    done: Mutex<Option<tokio::sync::oneshot::Sender<u64>>>,
}

impl Tally {
    fn report(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
        if self.left.fetch_sub(1, Relaxed) == 1
            && let Some(tx) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = tx.send(self.delivered.load(Relaxed));
        }
    }
}

struct Handle {
    inbox: Mutex<Inbox>,
    waker: Waker,
    /// The reactor's state: its thread holds it for a whole turn and lets
    /// go while it sleeps in epoll, so an idle reactor's state can be
    /// borrowed by the bus reactor to write an event itself (see `share`).
    /// `None` before the thread starts and after it stopped.
    state: Mutex<Option<Reactor>>,
}

impl Handle {
    fn push(&self, f: impl FnOnce(&mut Inbox)) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inbox);
        if !std::mem::replace(&mut inbox.notified, true) {
            drop(inbox);
            let _ = self.waker.wake();
        }
    }
}

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
    pub(crate) fn new(n: usize, plain_http: tokio::sync::mpsc::UnboundedSender<Incoming>) -> io::Result<Reactors> {
        let mut handles = Vec::new();
        let mut polls = Vec::new();
        for _ in 0..n.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            handles.push(Arc::new(Handle { inbox: Mutex::default(), waker, state: Mutex::default() }));
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
            poll.registry().register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
            let mut r = Reactor::new(shared.clone(), self.clone(), handle.clone(), poll.registry().try_clone()?);
            r.listener = Some(listener.clone());
            r.number = i;
            if i == 0
                && let Some(url) = &shared.config.bus
            {
                r.subscriber = Some(Subscriber::new(url).map_err(io::Error::other)?);
            }
            *handle.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            let handle = handle.clone();
            threads.push(std::thread::Builder::new().name(format!("reactor-{i}")).spawn(move || run(&handle, poll))?);
        }
        Ok(())
    }

    /// Hands a connection (and what was read from it) to the next reactor,
    /// round robin: an upgrade that arrived on a plain HTTP connection.
    pub(crate) fn adopt(&self, a: Incoming) {
        let i = self.next.fetch_add(1, Relaxed) % self.handles.len();
        self.handles[i].push(|b| b.conns.push(a));
    }

    /// Fans `batch` out on every reactor but `from` (the caller, which
    /// fans it out itself). An idle reactor (asleep in epoll, nothing in
    /// its inbox) is not woken: unless `from` is busy itself, it writes
    /// the frames to that reactor's connections in its place, as one thread
    /// would. Waking a sleeping thread for a few writes costs more than the
    /// writes (two context switches and an eventfd write per event); a
    /// busy caller hands the work over, so under load every reactor does
    /// its own share.
    fn share(&self, batch: &[Delivery], from: &mut Reactor) {
        let help = !from.load.busy();
        for (i, h) in self.handles.iter().enumerate() {
            if i == from.number {
                continue;
            }
            if help
                && let Ok(mut state) = h.state.try_lock()
                && let Some(other) = state.as_mut()
                && h.inbox.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
            {
                // Nothing queued before these: publishing order holds.
                let deadlines = other.wheel.len();
                other.fan_out(batch);
                other.flush_stats();
                from.stats.on_behalf += batch.len() as u64;
                if other.wheel.len() > deadlines {
                    // A deadline its sleep did not count on (a slow
                    // consumer closed): let it set its timeout again.
                    let _ = h.waker.wake();
                }
                continue;
            }
            let copies: Vec<Delivery> =
                batch.iter().map(|d| Delivery { event: d.event.clone(), tally: None }).collect();
            h.push(|b| b.events.extend(copies));
            from.stats.handed_over += batch.len() as u64;
        }
    }

    /// Fans `event` out on every reactor; the receiver gets how many
    /// connections received it.
    pub(crate) fn publish_counted(&self, event: Arc<Event>) -> tokio::sync::oneshot::Receiver<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tally = Arc::new(Tally {
            left: AtomicUsize::new(self.handles.len()),
            delivered: AtomicU64::new(0),
            done: Mutex::new(Some(tx)),
        });
        for h in &self.handles {
            let d = Delivery { event: event.clone(), tally: Some(tally.clone()) };
            h.push(|b| b.events.push(d));
        }
        rx
    }

    /// Starts closing every connection with 1001 (shutdown).
    pub(crate) fn close_all(&self) {
        for h in &self.handles {
            h.push(|b| b.close_all = true);
        }
    }

    /// Ends the threads; connections still held are dropped.
    pub(crate) fn stop(&self) {
        for h in &self.handles {
            h.push(|b| b.stop = true);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

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

/// How busy a reactor thread has been over its last window: the share of
/// wall time it spent in turns rather than asleep in epoll.
struct Load {
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

    fn awake(&mut self) {
        self.awake_since = Instant::now();
    }

    fn asleep(&mut self) {
        let now = Instant::now();
        self.busy_in_window += now - self.awake_since;
        let window = now - self.window_start;
        if window >= Self::WINDOW {
            self.busy = self.busy_in_window.as_secs_f64() > Self::BUSY_SHARE * window.as_secs_f64();
            self.window_start = now;
            self.busy_in_window = Duration::ZERO;
        }
    }

    fn busy(&self) -> bool {
        self.busy
    }
}

impl Default for Load {
    fn default() -> Load {
        let now = Instant::now();
        Load { window_start: now, awake_since: now, busy_in_window: Duration::ZERO, busy: false }
    }
}

impl Reactor {
    /// Reactor 0 of `reactors`, with no thread: driven by its caller (the
    /// fuzz harness).
    pub(crate) fn standalone(shared: Arc<Shared>, reactors: Arc<Reactors>) -> io::Result<Reactor> {
        let poll = reactors.polls.lock().unwrap_or_else(|e| e.into_inner()).swap_remove(0);
        let handle = reactors.handles[0].clone();
        let registry = poll.registry().try_clone()?;
        Ok(Reactor::new(shared, reactors, handle, registry))
    }

    fn new(shared: Arc<Shared>, reactors: Arc<Reactors>, handle: Arc<Handle>, registry: Registry) -> Reactor {
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
        let due = [self.accept_retry, self.subscriber.as_ref().and_then(|s| s.due)]
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
            let (writable, readable) = (ev.is_writable(), ev.is_readable() || ev.is_read_closed() || ev.is_error());
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
        if self.subscriber.as_ref().and_then(|s| s.due).is_some_and(|t| t <= Instant::now()) {
            // Reconnect, or give up a connect that hangs.
            if self.subscriber.as_ref().is_some_and(|s| s.sock.is_some()) {
                self.bus_lost("subscribing timed out".into());
            } else {
                self.bus_connect();
            }
        }
        self.expire(Instant::now());
        self.free.trim(&mut self.conns);
        // Pending deadlines count: a peak's closes leave theirs behind.
        if self.peak.fallen(self.conns.len() - self.free.len() + self.wheel.len()) {
            crate::memory::give_back();
        }
        self.flush_stats();
        self.flush_held();
        false
    }

    /// Moves the `metrics::Held` gauges by this reactor's change since
    /// the last turn.
    fn flush_held(&mut self) {
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

    /// Stopped: drops every socket.
    fn finish(mut self) {
        let held = self.conns.iter().filter(|c| c.sock.is_some()).count();
        self.conns.clear();
        self.shared.live.fetch_sub(held, Relaxed);
        self.flush_stats();
    }

    /// Runs one connection's handling; a panic in it (a bug, counted by the
    /// panic hook) ends that connection, not the reactor and its others.
    fn guarded(&mut self, id: ConnId, f: impl FnOnce(&mut Reactor)) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if outcome.is_err() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.release(id)));
        }
    }

    fn current(&self, id: ConnId, generation: u32) -> bool {
        self.conns.get(id as usize).is_some_and(|c| c.generation == generation && c.sock.is_some())
    }

    /// Handles what other threads queued; true when told to stop.
    fn take_inbox(&mut self) -> bool {
        let inbox = {
            let mut g = self.handle.inbox.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *g)
        };
        for inc in inbox.conns {
            self.take(inc);
        }
        if !inbox.events.is_empty() {
            self.fan_out(&inbox.events);
        }
        if inbox.close_all && !self.closing_all {
            self.closing_all = true;
            // Stop accepting: the listener closes once every reactor lets go.
            if let Some(l) = self.listener.take() {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&*l);
                let _ = self.registry.deregister(&mut SourceFd(&fd));
            }
            self.accept_more = false;
            self.accept_retry = None;
            for id in 0..self.conns.len() as ConnId {
                let c = &self.conns[id as usize];
                if c.sock.is_none() {
                    continue;
                }
                if c.flags & HANDSHAKE != 0 {
                    self.release(id);
                } else {
                    self.close(id, close::GOING_AWAY, "server shutting down");
                }
            }
        }
        inbox.stop
    }

    /// Sends frames to one connection, closing it if its queue overflows.
    pub(crate) fn send(&mut self, id: ConnId, frames: &[&Bytes]) -> bool {
        let limit = self.shared.config.max_outbound_bytes;
        let c = &mut self.conns[id as usize];
        let before = c.queued_bytes() as i64;
        let sent = c.send(frames, limit, &mut self.stats.writes);
        self.stats.queued += c.queued_bytes() as i64 - before;
        match sent {
            Sent::Accepted => {
                self.stats.frames_out += frames.len() as u64;
                self.stats.bytes_out += frames.iter().map(|f| f.len() as u64).sum::<u64>();
                true
            }
            Sent::Dropped => false,
            Sent::Overflow => {
                self.stats.slow_consumers += 1;
                self.close(id, close::TRY_AGAIN_LATER, "slow consumer");
                false
            }
        }
    }

    /// Delivers a batch of events: receivers found per event, then each
    /// connection's frames written together, in publishing order.
    fn fan_out(&mut self, batch: &[Delivery]) {
        let mut counts = vec![0u64; batch.len()];
        if batch.len() == 1 {
            let mut receivers = std::mem::take(&mut self.receivers);
            receivers.clear();
            self.match_event(&batch[0].event, &mut receivers);
            let frame = &batch[0].event.frame;
            for &id in &receivers {
                if self.send(id, &[frame]) {
                    counts[0] += 1;
                }
            }
            self.receivers = receivers;
        } else {
            let mut keys = std::mem::take(&mut self.keys);
            let mut receivers = std::mem::take(&mut self.receivers);
            keys.clear();
            for (i, d) in batch.iter().enumerate() {
                receivers.clear();
                self.match_event(&d.event, &mut receivers);
                keys.extend(receivers.iter().map(|&id| u64::from(id) << 32 | i as u64));
            }
            keys.sort_unstable();
            let mut at = 0;
            let mut frames: Vec<&Bytes> = Vec::new();
            while at < keys.len() {
                let id = (keys[at] >> 32) as ConnId;
                let end = at + keys[at..].iter().take_while(|&&k| (k >> 32) as ConnId == id).count();
                frames.clear();
                frames.extend(keys[at..end].iter().map(|&k| &batch[k as u32 as usize].event.frame));
                if self.send(id, &frames) {
                    for &k in &keys[at..end] {
                        counts[k as u32 as usize] += 1;
                    }
                }
                at = end;
            }
            self.keys = keys;
            self.receivers = receivers;
        }
        for (d, n) in batch.iter().zip(counts) {
            self.stats.deliveries += n;
            if let Some(t) = &d.tally {
                t.report(n);
            }
        }
    }

    /// Appends the connections of this reactor that may receive `ev`.
    fn match_event(&self, ev: &Event, out: &mut Vec<ConnId>) {
        self.index.matches_names(&self.names, &ev.project, &ev.channels, &ev.roles, out);
    }

    fn on_writable(&mut self, id: ConnId) {
        let c = &mut self.conns[id as usize];
        let before = c.queued_bytes() as i64;
        let flushed = c.flush(&mut self.stats.writes);
        self.stats.queued += c.queued_bytes() as i64 - before;
        match flushed {
            Ok(Flush::Done) if c.is_closing() && c.flags & FIN_SENT == 0 => self.finish_close(id),
            Ok(_) => {}
            Err(_) => self.release(id),
        }
    }

    fn on_readable(&mut self, id: ConnId, buf: &mut [u8]) {
        let generation = self.conns[id as usize].generation;
        for _ in 0..READS_PER_TURN {
            let Some(sock) = &self.conns[id as usize].sock else { return };
            self.stats.reads += 1;
            match (&*sock).read(buf) {
                Ok(0) => return self.release(id),
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    self.ingest(id, &mut buf[..n]);
                    if n < buf.len() || !self.current(id, generation) {
                        // A short read drained the socket: the next byte
                        // brings a new edge.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.release(id),
            }
        }
        // Still more: continue after the others had their turn.
        self.ready.push((id, generation));
    }

    /// Handles bytes read from a connection: whole frames now, the tail of an
    /// incomplete one kept for later.
    pub(crate) fn ingest(&mut self, id: ConnId, fresh: &mut [u8]) {
        if self.conns[id as usize].is_closing() {
            return; // only the close is left to send
        }
        if self.conns[id as usize].flags & HANDSHAKE != 0 {
            return self.handshake_bytes(id, fresh);
        }
        let partial = self.conns[id as usize].extra.as_mut().map(|e| std::mem::take(&mut e.partial));
        match partial {
            Some(mut p) if !p.is_empty() => {
                p.extend_from_slice(fresh);
                let used = self.consume(id, &mut p);
                p.drain(..used);
                self.keep_partial(id, p);
            }
            _ => {
                let used = self.consume(id, fresh);
                let rest = &fresh[used..];
                if !rest.is_empty() {
                    self.keep_partial(id, rest.to_vec());
                } else {
                    self.conns[id as usize].trim();
                }
            }
        }
        self.track_frame(id);
    }

    /// A frame or fragmented message in progress must arrive whole within
    /// `--frame-timeout-ms` of when it began: its bytes are held meanwhile.
    fn track_frame(&mut self, id: ConnId) {
        let timeout = Duration::from_millis(self.shared.config.frame_timeout_ms);
        let c = &mut self.conns[id as usize];
        if c.sock.is_none() || c.is_closing() {
            return;
        }
        let generation = c.generation;
        let Some(e) = c.extra.as_mut() else { return };
        let in_progress = !e.partial.is_empty() || e.message_opcode != 0;
        if !in_progress {
            e.frame_due = 0;
        } else if e.frame_due == 0 {
            let due = self.wheel.tick_after(Instant::now(), timeout);
            e.frame_due = due;
            self.wheel.insert(Entry { slot: id, generation, due });
        }
    }

    fn keep_partial(&mut self, id: ConnId, p: Vec<u8>) {
        let c = &mut self.conns[id as usize];
        if c.sock.is_none() || c.is_closing() {
            return;
        }
        if p.is_empty() {
            if let Some(e) = &mut c.extra {
                e.partial = Vec::new();
            }
            c.trim();
        } else {
            c.extra().partial = p;
        }
    }

    /// Starts closing a connection with `code`: it leaves the index, its
    /// close frame goes out, then its write side is shut.
    pub(crate) fn close(&mut self, id: ConnId, code: u16, reason: &str) {
        self.close_with(id, frame::close_frame(code, reason));
    }

    /// Starts closing with `last` as the final bytes sent (a close frame, or
    /// an HTTP answer to a request that ends the connection).
    pub(crate) fn close_with(&mut self, id: ConnId, last: Bytes) {
        self.leave_handshake(id);
        let c = &mut self.conns[id as usize];
        let before = c.queued_bytes() as i64;
        let len = last.len() as u64;
        if c.sock.is_none() || !c.begin_close(last) {
            return;
        }
        self.stats.bytes_out += len;
        self.stats.queued += c.queued_bytes() as i64 - before;
        self.unfile(id);
        self.on_writable(id);
        // Written at once (the usual case), it lingers instead: no second
        // deadline left in the wheel.
        let c = &self.conns[id as usize];
        if c.sock.is_some() && c.flags & FIN_SENT == 0 {
            self.set_deadline(id, CLOSE_FLUSH);
        }
    }

    /// The close frame is out: half-close, then wait briefly for the client's
    /// FIN, so unread bytes do not turn the close into a reset.
    fn finish_close(&mut self, id: ConnId) {
        let c = &mut self.conns[id as usize];
        c.flags |= FIN_SENT;
        if let Some(s) = &c.sock {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        self.set_deadline(id, LINGER);
    }

    pub(crate) fn clear_deadline(&mut self, id: ConnId) {
        self.conns[id as usize].deadline = 0;
    }

    pub(crate) fn set_deadline(&mut self, id: ConnId, after: Duration) {
        let due = self.wheel.tick_after(Instant::now(), after);
        let c = &mut self.conns[id as usize];
        c.deadline = due;
        self.wheel.insert(Entry { slot: id, generation: c.generation, due });
    }

    /// Ends connections whose deadline passed.
    fn expire(&mut self, now: Instant) {
        if self.wheel.is_empty() {
            return;
        }
        let mut due = Vec::new();
        self.wheel.expire(now, |e| due.push(e));
        for e in due {
            // A slot cut off the slab since is gone with its deadlines.
            let Some(c) = self.conns.get(e.slot as usize) else { continue };
            let frame_late = c
                .extra
                .as_ref()
                .is_some_and(|x| x.frame_due == e.due && (!x.partial.is_empty() || x.message_opcode != 0));
            if c.generation == e.generation && c.sock.is_some() && frame_late && c.deadline != e.due {
                self.shared.metrics.hit(crate::metrics::Limit::FrameTimeout);
                self.close(e.slot, close::POLICY_VIOLATION, "frame not completed in time");
                continue;
            }
            if c.generation == e.generation && c.sock.is_some() && c.deadline == e.due {
                if c.flags & HANDSHAKE != 0 {
                    self.shared.metrics.hit(crate::metrics::Limit::RequestTimeout);
                    let answer = crate::response::response_bytes(408, "text/plain", b"request head timeout\n", false);
                    self.close_with(e.slot, Bytes::from(answer));
                } else {
                    self.release(e.slot);
                }
            }
        }
    }

    /// Takes the connection out of the index and gives back its names.
    fn unfile(&mut self, id: ConnId) {
        let c = &mut self.conns[id as usize];
        if c.flags & crate::conn::FILED == 0 {
            return;
        }
        c.flags &= !crate::conn::FILED;
        let channels = std::mem::take(&mut c.channels);
        let session = std::mem::replace(&mut c.session, crate::sessions::GUEST);
        let project = c.project;
        let roles = self.sessions.roles_of(session);
        self.index.remove(id, project, channels.as_slice(), &roles);
        for &ch in channels.as_slice() {
            self.names.release(ch);
        }
        self.sessions.release(&mut self.names, session);
        self.names.release(project);
        self.shared.open.fetch_sub(1, Relaxed);
    }

    /// Re-files a connection under new channels and, after authentication,
    /// a new session: the new names are taken before the old are given
    /// back, so nothing shared is forgotten between.
    pub(crate) fn refile(&mut self, id: ConnId, channels: &[String], session: Option<Session>) {
        let new_channels: Vec<Id> = channels.iter().map(|c| self.names.acquire(c)).collect();
        let c = &mut self.conns[id as usize];
        let old_channels = std::mem::replace(&mut c.channels, Ids::from_slice(&new_channels));
        let old_session = c.session;
        if let Some(s) = session {
            c.session = s;
        }
        let new_session = c.session;
        let project = c.project;
        let old_roles = self.sessions.roles_of(old_session);
        let new_roles = self.sessions.roles_of(new_session);
        self.index.remove(id, project, old_channels.as_slice(), &old_roles);
        self.index.insert(id, project, &new_channels, &new_roles);
        for &ch in old_channels.as_slice() {
            self.names.release(ch);
        }
        if session.is_some() {
            self.sessions.release(&mut self.names, old_session);
        }
    }

    /// Files and unfiles the channels a subscription change changed: the
    /// cost follows the change, not the channels the connection holds.
    pub(crate) fn refile_change(&mut self, id: ConnId, change: &crate::subs::Change) {
        if change.added.is_empty() && change.removed.is_empty() {
            return;
        }
        let added: Vec<Id> = change.added.iter().map(|c| self.names.acquire(c)).collect();
        let removed: Vec<Id> = change.removed.iter().filter_map(|c| self.names.get(c)).collect();
        let roles = self.sessions.roles_of(self.conns[id as usize].session);
        let c = &mut self.conns[id as usize];
        let project = c.project;
        let mut channels: Vec<Id> = c.channels.as_slice().iter().copied().filter(|ch| !removed.contains(ch)).collect();
        channels.extend_from_slice(&added);
        c.channels = Ids::from_slice(&channels);
        self.index.remove(id, project, &removed, &roles);
        self.index.insert(id, project, &added, &roles);
        for ch in removed {
            self.names.release(ch);
        }
    }

    /// Frees the slot: the socket is closed (which also takes it out of epoll).
    pub(crate) fn release(&mut self, id: ConnId) {
        if self.vacate(id).is_some() {
            crate::leak::on_close();
        }
    }

    /// Frees the slot and hands its socket out, still open (`None`: the
    /// slot was free).
    pub(crate) fn vacate(&mut self, id: ConnId) -> Option<std::net::TcpStream> {
        self.unfile(id);
        self.leave_handshake(id);
        let c = &mut self.conns[id as usize];
        let sock = c.sock.take()?;
        self.stats.queued -= c.queued_bytes() as i64;
        *c = Conn::free();
        // Cut off at the end of the turn: until then every slot number
        // handled in it stays valid.
        self.free.give(id);
        self.shared.live.fetch_sub(1, Relaxed);
        Some(sock)
    }

    /// Starts (re)connecting the bus subscription, if this reactor has one.
    fn bus_connect(&mut self) {
        let Some(sub) = &mut self.subscriber else { return };
        let registered = sub.connect().and_then(|sock| {
            let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
            self.registry.register(&mut SourceFd(&fd), BUS, Interest::READABLE | Interest::WRITABLE)
        });
        if let Err(e) = registered {
            self.bus_lost(format!("cannot connect: {e}"));
        }
    }

    /// The bus connection failed: count the outage once, retry with back-off.
    fn bus_lost(&mut self, why: String) {
        let Some(sub) = &mut self.subscriber else { return };
        let m = &self.shared.metrics;
        if sub.down_since.is_none() {
            if m.bus_up.swap(0, Relaxed) == 1 {
                eprintln!("rtbench-server: bus: lost {} ({why}); connections stay, reconnecting", sub.url());
            } else {
                eprintln!("rtbench-server: bus: cannot subscribe on {}: {why}", sub.url());
            }
            m.bus_outages.fetch_add(1, Relaxed);
        }
        sub.disconnect();
    }

    /// Reads the bus: each event parsed once, fanned out here and queued on
    /// the process's other reactors.
    fn on_bus(&mut self, buf: &mut [u8]) {
        let Some(sub) = &mut self.subscriber else { return };
        let mut docs: Vec<Result<Event, String>> = Vec::new();
        let mut subscribed = false;
        let result = sub.ready(buf, |got| match got {
            Got::Subscribed => subscribed = true,
            Got::Message(doc) => docs.push(crate::event::parse(doc)),
        });
        let m = &self.shared.metrics;
        if subscribed {
            m.bus_up.store(1, Relaxed);
            match sub.down_since.take() {
                Some(t) => {
                    eprintln!("rtbench-server: bus: back on {} after {:.1} s", sub.url(), t.elapsed().as_secs_f64())
                }
                None => eprintln!("rtbench-server: bus: subscribed to `{}` on {}", crate::bus::CHANNEL, sub.url()),
            }
        }
        let mut batch = Vec::with_capacity(docs.len());
        for doc in docs {
            match doc {
                Ok(ev) => {
                    if let (Some(seq), Some(last)) = (ev.seq, sub.last_seq)
                        && seq > last + 1
                    {
                        m.bus_events_missed.fetch_add(seq - last - 1, Relaxed);
                    }
                    if ev.seq.is_some() {
                        sub.last_seq = ev.seq.max(sub.last_seq);
                    }
                    let ev = Arc::new(ev);
                    m.bus_events_in.fetch_add(1, Relaxed);
                    m.events_in.fetch_add(1, Relaxed);
                    batch.push(Delivery { event: ev, tally: None });
                }
                Err(e) => {
                    if m.events_invalid.fetch_add(1, Relaxed).is_power_of_two() {
                        eprintln!("rtbench-server: bus: ignoring a message: {e}");
                    }
                }
            }
        }
        if let Err(why) = result {
            self.bus_lost(why);
        }
        if !batch.is_empty() {
            let reactors = self.reactors.clone();
            reactors.share(&batch, self);
            self.fan_out(&batch);
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

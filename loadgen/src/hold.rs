//! The connections a worker holds: a slab of `Held` slots under one epoll.
//!
//! A held connection costs no task and no runtime registration: its socket
//! is registered (edge-triggered) with the worker's own `mio::Poll`, whose
//! descriptor the worker's single tokio thread waits on like any other
//! (`AsyncFd`). One wake-up then serves every connection that has data, and
//! the slot is all a connection keeps (`client.rs`).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use tokio::io::unix::AsyncFd;

use crate::client::{ConnSpan, Held};

/// The worker's held connections.
pub struct Holds {
    registry: Registry,
    slots: Vec<Held>,
    /// Each slot's received range, beside it so the slot stays small.
    spans: Vec<ConnSpan>,
    free: Vec<u32>,
}

/// A slot and the generation of the connection in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub id: u32,
    pub generation: u32,
}

impl Key {
    fn token(self) -> Token {
        Token((u64::from(self.generation) << 32 | u64::from(self.id)) as usize)
    }

    fn of(t: Token) -> Key {
        Key {
            id: t.0 as u32,
            generation: (t.0 as u64 >> 32) as u32,
        }
    }
}

/// Readiness of the held connections, waited for on the worker's runtime.
pub struct Readiness {
    poll: AsyncFd<PollFd>,
    events: Events,
}

/// `mio::Poll` as a descriptor tokio can wait on.
struct PollFd(Poll);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// Events taken per look at the poll.
const EVENTS: usize = 1024;

/// Makes the slab and its readiness; call inside the worker's runtime.
pub fn new(capacity: usize) -> io::Result<(Holds, Readiness)> {
    let poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    // SAFETY: `PollFd` owns the epoll descriptor for as long as the AsyncFd
    // holds it and always reports that same descriptor.
    let registered =
        unsafe { AsyncFd::register_with_interest(PollFd(poll), tokio::io::Interest::READABLE) };
    let readiness = Readiness {
        poll: registered.map_err(io::Error::from)?,
        events: Events::with_capacity(EVENTS),
    };
    Ok((
        Holds {
            registry,
            // Untouched capacity costs address space, not memory.
            slots: Vec::with_capacity(capacity),
            spans: Vec::new(),
            free: Vec::new(),
        },
        readiness,
    ))
}

impl Readiness {
    /// Waits until some held connection is ready; returns the ready ones.
    /// Ends its wait when the poll itself fails.
    pub async fn next(&mut self, out: &mut Vec<Key>) -> io::Result<()> {
        out.clear();
        loop {
            let mut guard = self.poll.readable_mut().await?;
            let poll = &mut guard.get_inner_mut().0;
            poll.poll(&mut self.events, Some(Duration::ZERO))?;
            let n = self.events.iter().count();
            out.extend(self.events.iter().map(|e| Key::of(e.token())));
            if n < EVENTS {
                // Drained: the next event on any connection wakes us again.
                guard.clear_ready();
            }
            if !out.is_empty() {
                return Ok(());
            }
        }
    }
}

impl Holds {
    /// Takes a connected socket into a slot.
    pub fn insert(&mut self, make: impl FnOnce(u32) -> Held) -> io::Result<Key> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Held::free(0));
                self.spans.push(ConnSpan::default());
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[id as usize].generation;
        let held = make(generation);
        let key = Key { id, generation };
        let fd = held.sock.as_ref().map(|s| s.as_raw_fd()).unwrap_or(-1);
        if let Err(e) = self.registry.register(
            &mut SourceFd(&fd),
            key.token(),
            // Writable: a connect completes (edge-triggered, so an open
            // connection is not woken for it again).
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.free.push(id);
            return Err(e);
        }
        self.slots[id as usize] = held;
        Ok(key)
    }

    /// The connection at `key`, if it is still the one that was there.
    pub fn get(&mut self, key: Key) -> Option<&mut Held> {
        self.slots
            .get_mut(key.id as usize)
            .filter(|h| h.generation == key.generation && h.sock.is_some())
    }

    /// The connection at `key` and its received range.
    pub fn get_with_span(&mut self, key: Key) -> Option<(&mut Held, &mut ConnSpan)> {
        let span = self.spans.get_mut(key.id as usize)?;
        let held = self
            .slots
            .get_mut(key.id as usize)
            .filter(|h| h.generation == key.generation && h.sock.is_some())?;
        Some((held, span))
    }

    /// Settles slot `id`'s received range (`ConnSpan::settle`) before it
    /// is freed: (expected, missed).
    pub fn settle_span(&mut self, id: usize) -> (u64, u64) {
        match (self.spans.get_mut(id), self.slots.get(id)) {
            (Some(span), Some(h)) => span.settle(&h.seqs),
            _ => (0, 0),
        }
    }

    /// Frees the slot; the socket closes (and leaves the poll) with it.
    pub fn remove(&mut self, key: Key) -> Option<Held> {
        let h = self.get(key)?;
        let next = Held::free(h.generation.wrapping_add(1));
        let held = std::mem::replace(h, next);
        self.free.push(key.id);
        Some(held)
    }

    /// Every `k`th slot from `from`, open ones only: pings spread over ticks.
    pub fn every_mut(&mut self, from: usize, k: usize) -> impl Iterator<Item = &mut Held> {
        self.slots
            .iter_mut()
            .skip(from)
            .step_by(k.max(1))
            .filter(|h| h.sock.is_some() && !h.is_connecting() && !h.dropped)
    }

    /// How many slots there are (free ones included): slot ids run below it.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The open connection (connected, not still connecting) in slot `id`.
    pub fn open_at(&mut self, id: usize) -> Option<&mut Held> {
        self.slots
            .get_mut(id)
            .filter(|h| h.sock.is_some() && !h.is_connecting() && !h.dropped)
    }

    /// Closes the socket in slot `id` without more ado and frees the slot;
    /// `Some(true)` when it was an open connection, `Some(false)` an attempt
    /// still connecting, `None` a free slot.
    pub fn abort_at(&mut self, id: usize) -> Option<bool> {
        let h = self.slots.get_mut(id).filter(|h| h.sock.is_some())?;
        let was_open = !h.is_connecting() && !h.dropped;
        *h = Held::free(h.generation.wrapping_add(1));
        self.free.push(id as u32);
        Some(was_open)
    }
}

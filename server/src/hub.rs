//! The hub: every open connection, its subscriptions, and event fan-out.
//!
//! One lock guards the connection slots and the subscription index together,
//! so a connection is never in one without the other. Publishing holds the lock
//! only to find the receivers; the writes happen after it is released, so a
//! large fan-out does not stall connects.

use std::sync::{Arc, RwLock};

use crate::conn::{Conn, Sent};
use crate::event::Event;
use crate::index::{ConnId, Index};
use crate::metrics::Metrics;

pub struct Hub {
    inner: RwLock<Inner>,
    pub metrics: Metrics,
    max_connections: usize,
    max_outbound_bytes: usize,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Option<Entry>>,
    free: Vec<ConnId>,
    len: usize,
    index: Index,
}

/// What the hub keeps per connection: its socket and what it is filed under.
struct Entry {
    conn: Arc<Conn>,
    project: Box<str>,
    channels: Vec<Box<str>>,
    roles: Vec<Box<str>>,
}

/// The server holds `max_connections` already.
#[derive(Debug)]
pub struct Full;

impl Hub {
    pub fn new(max_connections: usize, max_outbound_bytes: usize) -> Hub {
        Hub { inner: RwLock::default(), metrics: Metrics::default(), max_connections, max_outbound_bytes }
    }

    pub fn max_outbound_bytes(&self) -> usize {
        self.max_outbound_bytes
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a connection with its subscriptions, unless the server is full.
    /// `greet` runs under the lock, so what it sends precedes every event.
    pub fn register(
        &self,
        conn: Arc<Conn>,
        project: &str,
        channels: Vec<Box<str>>,
        roles: Vec<Box<str>>,
        greet: impl FnOnce(),
    ) -> Result<ConnId, Full> {
        let mut g = self.write();
        if g.len >= self.max_connections {
            return Err(Full);
        }
        let id = match g.free.pop() {
            Some(id) => id,
            None => {
                g.slots.push(None);
                (g.slots.len() - 1) as ConnId
            }
        };
        g.index.insert(id, project, &channels, &roles);
        g.slots[id as usize] = Some(Entry { conn, project: project.into(), channels, roles });
        g.len += 1;
        greet();
        Ok(id)
    }

    /// Replaces a connection's channels and roles (after authentication or a
    /// subscribe message).
    pub fn update(&self, id: ConnId, channels: Vec<Box<str>>, roles: Vec<Box<str>>) {
        let mut g = self.write();
        let Inner { slots, index, .. } = &mut *g;
        let Some(Some(e)) = slots.get_mut(id as usize) else {
            return;
        };
        index.remove(id, &e.project, &e.channels, &e.roles);
        index.insert(id, &e.project, &channels, &roles);
        e.channels = channels;
        e.roles = roles;
    }

    pub fn unregister(&self, id: ConnId) {
        let mut g = self.write();
        let Some(e) = g.slots.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        g.index.remove(id, &e.project, &e.channels, &e.roles);
        g.free.push(id);
        g.len -= 1;
    }

    /// Delivers `event` to every permitted subscriber once; returns how many
    /// received it.
    pub fn publish(&self, event: &Event) -> usize {
        self.metrics.events_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let receivers: Vec<Arc<Conn>> = {
            let g = self.read();
            let mut ids = Vec::new();
            g.index.matches(&event.project, &event.channels, &event.roles, &mut ids);
            ids.iter().filter_map(|&id| g.slots[id as usize].as_ref().map(|e| e.conn.clone())).collect()
        };
        let (mut delivered, mut overflowed) = (0u64, 0u64);
        for conn in &receivers {
            match conn.send(event.frame.clone(), self.max_outbound_bytes) {
                Sent::Accepted => delivered += 1,
                Sent::Overflow => overflowed += 1,
                Sent::Dropped => {}
            }
        }
        let m = &self.metrics;
        m.deliveries.fetch_add(delivered, std::sync::atomic::Ordering::Relaxed);
        m.slow_consumers_closed.fetch_add(overflowed, std::sync::atomic::Ordering::Relaxed);
        m.sent(delivered, delivered * event.frame.len() as u64);
        delivered as usize
    }

    /// Starts closing every connection with `code` (shutdown: 1001).
    pub fn close_all(&self, code: u16, reason: &str) {
        let conns: Vec<Arc<Conn>> = self.read().slots.iter().flatten().map(|e| e.conn.clone()).collect();
        for c in conns {
            c.close(code, reason);
        }
    }
}

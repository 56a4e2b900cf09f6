//! A new TCP connection in its reactor, until it is a WebSocket.
//!
//! Reactors accept from the listener themselves: the request head is read
//! into the slot the connection will keep, and the upgrade is answered with
//! the 101 and the `connected` greeting in one `writev`. A connection never
//! touches tokio on its way in: one accept, one epoll registration, one read,
//! one write. Requests that are not upgrades (`POST /v1/events`, `/metrics`,
//! `/health`) go to a tokio task (`http.rs`), with the bytes read so far,
//! over a channel: the reactors never call into the HTTP side.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use mio::Interest;
use mio::unix::SourceFd;

use super::{Reactor, token};
use crate::admission;
use crate::conn::{Conn, Flag, Flags, Ids};
use crate::index::ConnId;
use crate::intern::Id;
use crate::metrics::Limit;
use crate::request::{Head, Incoming, Request, parse_head};
use crate::response::{json_error, response_bytes};

/// Connections accepted per turn before the others get theirs.
const ACCEPTS_PER_TURN: usize = 64;
/// After an accept failure (out of descriptors), wait this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Checks an upgrade request as RFC 6455 4.2.1 has it; returns the
/// `Sec-WebSocket-Accept` value.
pub fn upgrade_accept(req: &Request) -> Result<String, (u16, &'static str)> {
    if req.is_http10() {
        return Err((400, "a WebSocket upgrade needs HTTP/1.1"));
    }
    match req.framing() {
        Ok(body) if !body.is_some() => {}
        Ok(_) => return Err((400, "an upgrade request has no body")),
        Err(e) => return Err(e),
    }
    if !req.header_has_token("upgrade", "websocket") {
        return Err((
            426,
            "this endpoint speaks WebSocket: send Upgrade: websocket",
        ));
    }
    if !req.header_has_token("connection", "upgrade") {
        return Err((400, "missing Connection: Upgrade"));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err((426, "unsupported Sec-WebSocket-Version (13 is supported)"));
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or((400, "missing Sec-WebSocket-Key"))?
        .trim();
    if !rtbench_protocol::handshake::is_valid_key(key) {
        return Err((400, "Sec-WebSocket-Key is not 16 bytes of base64"));
    }
    Ok(rtbench_protocol::handshake::accept_key(key))
}

fn switching(accept: &str) -> Bytes {
    Bytes::from(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    ))
}

impl Reactor {
    /// Accepts what the listener has (up to a turn's share); true when more
    /// may be waiting.
    pub(crate) fn accept_all(&mut self) -> bool {
        let Some(listener) = self.listener.clone() else {
            return false;
        };
        for _ in 0..ACCEPTS_PER_TURN {
            match listener.accept() {
                Ok((stream, peer)) => self.take(Incoming {
                    stream,
                    peer,
                    bytes: Vec::new(),
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors (EMFILE) or memory: back off instead
                    // of spinning; the connection waits in the backlog.
                    let m = &self.shared.metrics;
                    if m.accept_errors.fetch_add(1, Relaxed).is_power_of_two() {
                        eprintln!("rtbench-server: accept failed: {e}");
                    }
                    self.accept_after(ACCEPT_BACKOFF);
                    return false;
                }
            }
        }
        true
    }

    /// Takes a connection into a slot and handles what it sent so far.
    pub(crate) fn take(&mut self, inc: Incoming) {
        let _ = inc.stream.set_nonblocking(true);
        let _ = inc.stream.set_nodelay(true);
        let m = &self.shared.metrics;
        if m.handshakes.load(Relaxed) >= self.shared.config.max_handshakes as u64 {
            // Too many clients mid-handshake: answer without a slot.
            m.hit(Limit::Handshakes);
            let answer = response_bytes(
                503,
                "application/json",
                &json_error("too many handshakes in progress"),
                false,
            );
            let _ = (&inc.stream).write(&answer);
            return;
        }
        let Some(id) = self.slot_for(inc.stream) else {
            return;
        };
        self.shared.live.fetch_add(1, Relaxed);
        self.shared.metrics.handshakes.fetch_add(1, Relaxed);
        let c = &mut self.conns[id as usize];
        c.flags = Flags::HANDSHAKE;
        c.extra().peer = Some(inc.peer);
        self.set_deadline(
            id,
            Duration::from_millis(self.shared.config.request_timeout_ms),
        );
        if !inc.bytes.is_empty() {
            let mut bytes = inc.bytes;
            self.ingest(id, &mut bytes);
        }
    }

    /// Puts `stream` in a free slot, registered for readiness.
    fn slot_for(&mut self, stream: std::net::TcpStream) -> Option<ConnId> {
        let id = match self.free.take() {
            Some(id) => id,
            None => {
                self.conns.push(Conn::free());
                (self.conns.len() - 1) as ConnId
            }
        };
        let c = &mut self.conns[id as usize];
        c.generation = self.generations;
        self.generations = self.generations.wrapping_add(1);
        let token = token(id, c.generation);
        let fd = stream.as_raw_fd();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.registry.register(&mut SourceFd(&fd), token, interest) {
            eprintln!("rtbench-server: reactor: cannot watch a connection: {e}");
            self.free.give(id);
            return None;
        }
        c.sock = Some(stream);
        self.heard(id);
        Some(id)
    }

    /// Bytes of a connection still in its handshake: the request head so
    /// far, then, once whole, its route.
    pub(crate) fn handshake_bytes(&mut self, id: ConnId, fresh: &[u8]) {
        let e = self.conns[id as usize].extra();
        e.partial.extend_from_slice(fresh);
        let (req, len) = match parse_head(&e.partial) {
            Head::Partial => return,
            Head::Bad(status, msg) => return self.reply_and_close(id, status, msg),
            Head::Complete(req, len) => (req, len),
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/realtime") => {
                let bytes = std::mem::take(&mut self.conns[id as usize].extra().partial);
                self.upgrade(id, &req, bytes[len..].to_vec());
            }
            _ => self.hand_to_http(id),
        }
    }

    /// Answers the upgrade: 101 and greeting together, or 101 and a refusal.
    fn upgrade(&mut self, id: ConnId, req: &Request, mut leftover: Vec<u8>) {
        let accept = match upgrade_accept(req) {
            Ok(a) => a,
            Err((status, msg)) => {
                self.shared.metrics.bad_handshakes.fetch_add(1, Relaxed);
                return self.reply_and_close(id, status, msg);
            }
        };
        let peer = self.conns[id as usize]
            .extra
            .as_ref()
            .and_then(|e| e.peer)
            .map(|p| p.ip());
        let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.leave_handshake(id);
        let c = &mut self.conns[id as usize];
        c.extra().peer = None;
        c.trim();
        let head = switching(&accept);
        match admission::decide(&self.shared, peer, req) {
            Ok(admit) => {
                let project = self.names.acquire(&admit.project);
                let channels: Vec<Id> = admit
                    .channels
                    .iter()
                    .map(|ch| self.names.acquire(ch))
                    .collect();
                // The claims end here: the session is its interned roles.
                let session = self
                    .sessions
                    .acquire(&mut self.names, admit.user.as_deref());
                let c = &mut self.conns[id as usize];
                c.project = project;
                c.channels = Ids::from_slice(&channels);
                c.session = session;
                c.flags.set(Flag::Filed);
                if admit.account {
                    c.flags.set(Flag::UrlAccount);
                }
                if let Some(subs) = admit.subs {
                    let user = admit.user.as_deref().map(|claims| claims.sub.as_str());
                    c.extra().subs = Some(crate::subs::Subs::new(subs, user));
                }
                let roles = self.sessions.roles_of(session);
                self.index.insert(id, project, &channels, &roles);
                self.clear_deadline(id);
                let mut frames: Vec<&Bytes> = vec![&head];
                frames.extend(admit.greeting.iter());
                self.send(id, &frames);
                if self.closing_all {
                    self.close(
                        id,
                        rtbench_protocol::frame::close::GOING_AWAY,
                        "server shutting down",
                    );
                } else if !leftover.is_empty() {
                    self.ingest(id, &mut leftover);
                }
            }
            Err(refused) => {
                let (last, first) = refused
                    .frames
                    .split_last()
                    .expect("a refusal ends with its close");
                let mut frames: Vec<&Bytes> = vec![&head];
                frames.extend(first.iter());
                self.send(id, &frames);
                self.close_with(id, last.clone());
            }
        }
    }

    /// An HTTP error answer, then the connection closes.
    fn reply_and_close(&mut self, id: ConnId, status: u16, msg: &str) {
        let body = json_error(msg);
        self.close_with(
            id,
            Bytes::from(response_bytes(status, "application/json", &body, false)),
        );
    }

    /// Gives a plain HTTP request, with the bytes read so far, to a tokio task.
    fn hand_to_http(&mut self, id: ConnId) {
        let m = &self.shared.metrics;
        if m.http_connections.load(Relaxed) >= self.shared.config.max_http_connections as u64 {
            m.hit(Limit::HttpConnections);
            return self.reply_and_close(id, 503, "too many HTTP connections");
        }
        m.http_connections.fetch_add(1, Relaxed);
        let c = &mut self.conns[id as usize];
        let (peer, bytes) = match c.extra.as_mut() {
            Some(e) => (e.peer, std::mem::take(&mut e.partial)),
            None => (None, Vec::new()),
        };
        if let Some(s) = &c.sock {
            let fd = s.as_raw_fd();
            let _ = self.registry.deregister(&mut SourceFd(&fd));
        }
        let Some(stream) = self.vacate(id) else {
            return;
        };
        let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        // This turn's counts first: a /metrics request then counts its own
        // head's read, whichever thread answers it first.
        self.flush_stats();
        if self
            .reactors
            .plain_http
            .send(Incoming {
                stream,
                peer,
                bytes,
            })
            .is_err()
        {
            // Nobody serves plain HTTP (the fuzz harness): the connection closes.
            self.shared.metrics.http_connections.fetch_sub(1, Relaxed);
        }
    }

    /// The connection is past its request head (upgraded, answered or gone).
    pub(crate) fn leave_handshake(&mut self, id: ConnId) {
        let c = &mut self.conns[id as usize];
        if c.flags.take(Flag::Handshake) {
            self.shared.metrics.handshakes.fetch_sub(1, Relaxed);
        }
    }

    /// The listener is tried again after `d` (accept failed).
    fn accept_after(&mut self, d: Duration) {
        self.accept_retry = Some(std::time::Instant::now() + d);
    }
}

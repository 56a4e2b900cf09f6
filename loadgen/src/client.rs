//! One synthetic client connection: connect, hold, receive, close.
//!
//! Built like the server's connections, for the same reason: a load generator
//! heavier than the server measures itself. The handshake runs in a short
//! tokio task with its own buffers; the connection is then a `Held` slot of a
//! few words in the worker's hold reactor (`hold.rs`), read into the worker
//! thread's buffer, keeping only an incomplete frame. The receive path (frame
//! parse, stamp, histogram) is `Receiver::frames`, which the criterion
//! benchmark measures.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

use rtbench_protocol::frame::{self, Sender};

use crate::stats::{self, Counters, Hists};
use crate::users::{Population, mix};
use rtbench_record::load::EventSpan;
use rtbench_record::scenario::Protocol;

/// Largest server frame a client accepts.
const MAX_FRAME: usize = 16 << 20;

/// A held connection: a slot in the worker's hold reactor.
pub struct Held {
    /// `None`: a free slot.
    pub sock: Option<std::net::TcpStream>,
    /// Bumped when the slot is reused, so stale readiness is recognised.
    pub generation: u32,
    /// The client sent its close frame.
    pub closing: bool,
    mask: u32,
    pub user: u32,
    /// The arrival it plays and its connection attempt (for reconnects).
    pub arrival: u32,
    pub attempt: u32,
    pub seqs: SeqWindow,
    /// What a connection holds only while it needs it.
    pub extra: Option<Box<Extra>>,
}

/// A held connection's passing state.
pub enum Extra {
    /// Still connecting.
    Connecting(Connecting),
    /// The tail of a frame that has not fully arrived.
    Partial(Vec<u8>),
}

// The slot is paid per held connection: keep it small.
const _: () = assert!(std::mem::size_of::<Held>() <= 48);

/// Largest frame a client sends.
const MAX_SEND: usize = 125;

impl Held {
    pub fn free(generation: u32) -> Held {
        Held {
            sock: None,
            generation,
            closing: false,
            mask: 0,
            user: 0,
            arrival: 0,
            attempt: 0,
            seqs: SeqWindow::default(),
            extra: None,
        }
    }

    /// A slot for `sock`, still connecting (`connecting`) or connected.
    pub fn new(
        sock: std::net::TcpStream,
        generation: u32,
        user: u64,
        arrival: u64,
        attempt: u32,
        connecting: Option<Connecting>,
    ) -> Held {
        Held {
            sock: Some(sock),
            generation,
            closing: false,
            mask: mix(user) as u32 | 1,
            user: user as u32,
            arrival: arrival as u32,
            attempt,
            seqs: SeqWindow::default(),
            extra: connecting.map(|c| Box::new(Extra::Connecting(c))),
        }
    }

    pub fn is_connecting(&self) -> bool {
        matches!(self.extra.as_deref(), Some(Extra::Connecting(_)))
    }

    /// Sends a small masked frame without waiting; false if the socket would
    /// block (the caller counts it: the client did not keep up).
    pub fn try_send(&mut self, opcode: u8, payload: &[u8], counters: &mut Counters) -> bool {
        let Some(sock) = &self.sock else { return false };
        if payload.len() > MAX_SEND {
            return false;
        }
        let m = self.mask;
        let m = m ^ (m << 13) ^ (m >> 17) ^ (m << 5); // xorshift: a fresh mask per frame
        self.mask = m;
        let mut wire = [0u8; MAX_SEND + 6];
        let n = frame::encode_masked_into(opcode, payload, m.to_ne_bytes(), &mut wire);
        counters.writes += 1;
        match (&*sock).write(&wire[..n]) {
            Ok(k) if k == n => {
                counters.frames_out += 1;
                counters.bytes_out += n as u64;
                true
            }
            // A partial write of a tiny frame into an idle socket does not
            // happen in practice; treat it like a blocked one.
            _ => false,
        }
    }

    /// Sends the close frame once.
    pub fn close(&mut self, counters: &mut Counters) {
        if !self.closing {
            self.closing = true;
            self.try_send(
                frame::OP_CLOSE,
                &frame::close::NORMAL.to_be_bytes(),
                counters,
            );
        }
    }
}

/// Why a connection attempt failed: the key it is counted under.
pub type Failure = String;

fn io_failure(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::AddrNotAvailable => "ports_exhausted".into(),
        io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        io::ErrorKind::UnexpectedEof => "closed_during_handshake".into(),
        _ => match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => "open_files_limit".into(),
            _ => format!("io_{:?}", e.kind()).to_lowercase(),
        },
    }
}

/// A connection attempt in progress: kept in its slot from `connect()` to
/// the server's `connected` frame, then dropped.
pub struct Connecting {
    /// When the arrival was due (connect latency counts from here: a late
    /// client cannot make itself look good) and when the attempt began.
    pub scheduled_ns: u64,
    pub attempt_ns: u64,
    key: String,
    /// The upgrade request; emptied once written.
    request: Vec<u8>,
    /// What the server has sent so far.
    response: Vec<u8>,
    /// Length of the response head, once it is whole.
    head_len: Option<usize>,
    /// An `error` frame's code, when one came before the close.
    last_error: Option<u64>,
}

/// Where an attempt stands after the socket moved.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the socket.
    Wait,
    /// Connected (for Appwrite: `connected` received); what came after it.
    Open(Vec<u8>),
    Failed(Failure),
}

enum Greeting {
    Connected,
    Error(u64),
    Other,
}

/// What a frame before `connected` is: by its first bytes when the server
/// writes `type` first (as Appwrite does), else by parsing it.
fn greeting_type(payload: &[u8]) -> Greeting {
    if payload.starts_with(br#"{"type":"connected""#) {
        return Greeting::Connected;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Greeting::Other;
    };
    match v["type"].as_str() {
        Some("connected") => Greeting::Connected,
        Some("error") => Greeting::Error(v["data"]["code"].as_u64().unwrap_or(0)),
        _ => Greeting::Other,
    }
}

/// Opens a nonblocking socket towards `addr` from `source` and starts
/// connecting; the attempt goes on in the hold reactor.
pub fn open(addr: SocketAddr, source: Option<IpAddr>) -> Result<std::net::TcpStream, Failure> {
    use socket2::{Domain, Protocol as IpProto, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(IpProto::TCP),
    )
    .map_err(|e| io_failure(&e))?;
    let _ = socket.set_tcp_nodelay(true);
    // Deliveries are timed by when the kernel received them (`rx_time.rs`).
    let _ = crate::rx_time::enable(&socket);
    if let Some(src) = source {
        rtbench_sys::socket::bind_address_no_port(&socket)
            .map_err(|_| Failure::from("bind_address_no_port"))?;
        socket
            .bind(&SocketAddr::new(src, 0).into())
            .map_err(|e| io_failure(&e))?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(io_failure(&e)),
    }
    Ok(socket.into())
}

impl Connecting {
    /// An attempt to upgrade `path_and_query` on `host`.
    pub fn new(
        scheduled_ns: u64,
        attempt_ns: u64,
        host: &str,
        path_and_query: &str,
        key_seed: u64,
    ) -> Connecting {
        let key = {
            use base64::Engine;
            let raw = [
                mix(key_seed).to_ne_bytes(),
                mix(key_seed ^ 0x9e37).to_ne_bytes(),
            ]
            .concat();
            base64::engine::general_purpose::STANDARD.encode(raw)
        };
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        Connecting {
            scheduled_ns,
            attempt_ns,
            key,
            request,
            response: Vec::new(),
            head_len: None,
            last_error: None,
        }
    }

    /// Moves the attempt on: sends the request once the socket is
    /// connected, reads what the server sent, until `connected` or failure.
    pub fn drive(
        &mut self,
        sock: &std::net::TcpStream,
        protocol: Protocol,
        counters: &mut Counters,
        buf: &mut [u8],
    ) -> Step {
        match sock.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return Step::Failed(io_failure(&e)),
        }
        if !self.request.is_empty() {
            counters.writes += 1;
            match (&*sock).write(&self.request) {
                Ok(n) => {
                    counters.bytes_out += n as u64;
                    self.request.drain(..n);
                    if !self.request.is_empty() {
                        return Step::Wait;
                    }
                    self.request = Vec::new();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
                    ) =>
                {
                    return Step::Wait;
                }
                Err(e) => return Step::Failed(io_failure(&e)),
            }
        }
        loop {
            counters.reads += 1;
            match (&*sock).read(buf) {
                Ok(0) => {
                    return Step::Failed(match self.last_error {
                        Some(code) => format!("error_frame_{code}"),
                        None => "closed_during_handshake".into(),
                    });
                }
                Ok(n) => {
                    self.response.extend_from_slice(&buf[..n]);
                    match self.parse(protocol, counters) {
                        Step::Wait if n == buf.len() => {}
                        step => return step,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(io_failure(&e)),
            }
        }
    }

    /// Reads the response so far: the 101, then (Appwrite) frames until
    /// `connected`; an `error` frame first is counted.
    fn parse(&mut self, protocol: Protocol, counters: &mut Counters) -> Step {
        let head_len = match self.head_len {
            Some(n) => n,
            None => {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.response) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        if status != 101 {
                            return Step::Failed(format!("http_{status}"));
                        }
                        let accept = resp
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"));
                        if accept.map(|h| h.value)
                            != Some(rtbench_protocol::handshake::accept_key(&self.key).as_bytes())
                        {
                            return Step::Failed("bad_accept_key".into());
                        }
                        counters.bytes_in += n as u64;
                        self.head_len = Some(n);
                        n
                    }
                    Ok(httparse::Status::Partial) if self.response.len() < 16 * 1024 => {
                        return Step::Wait;
                    }
                    _ => return Step::Failed("bad_http_response".into()),
                }
            }
        };
        if protocol == Protocol::Raw {
            return Step::Open(self.response.split_off(head_len));
        }
        let mut at = head_len;
        loop {
            let f = match frame::parse(&mut self.response[at..], MAX_FRAME, Sender::Server) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    // Keep only what is not yet understood.
                    self.response.drain(head_len..at);
                    return Step::Wait;
                }
                Err(_) => return Step::Failed("protocol_error".into()),
            };
            let payload = &self.response[at + f.payload_start..at + f.end()];
            counters.frames_in += 1;
            counters.bytes_in += f.end() as u64;
            match f.opcode {
                frame::OP_TEXT => match greeting_type(payload) {
                    Greeting::Connected => {
                        return Step::Open(self.response.split_off(at + f.end()));
                    }
                    Greeting::Error(code) => {
                        *counters.error_frames.entry(code.to_string()).or_default() += 1;
                        self.last_error = Some(code);
                    }
                    Greeting::Other => {}
                },
                frame::OP_CLOSE => {
                    return Step::Failed(match self.last_error {
                        Some(code) => format!("error_frame_{code}"),
                        None => format!("closed_{}", frame::close_code(payload)),
                    });
                }
                _ => {}
            }
            at += f.end();
        }
    }
}

/// How a held connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server sent a close frame with this code, unasked.
    ServerClosed(u16),
    /// The client closed and the server answered, or the socket ended.
    Closed,
    /// The socket failed or the server broke the protocol.
    Broken,
}

/// What the receive path needs to judge and time one connection's frames.
pub struct Receiver<'a> {
    pub population: &'a Population<'a>,
    pub protocol: Protocol,
    pub counters: &'a mut Counters,
    pub hists: &'a mut Hists,
    /// Per-second copies of the delivery histogram.
    pub delivery_interval: &'a mut stats::Hist,
    pub now_ns: u64,
    /// When this connection's last ping was sent (0: none): a pong's round
    /// trip is measured from it. Pings go out by slot group on a fixed
    /// tick, so the worker keeps one time per group, not one per slot.
    pub ping_sent_ns: u64,
    /// Events this connection's subscriber has received over the run (all
    /// its connections), when the scenario publishes.
    pub received: Option<&'a mut u32>,
    /// Each event's first and last arrival, by sequence, when the scenario
    /// times events one by one (`per_event`).
    pub spans: Option<&'a mut Vec<EventSpan>>,
}

/// The highest sequence a worker times one by one: a bound on the table,
/// whatever sequence a frame claims.
const MAX_TIMED_EVENTS: u64 = 1 << 20;

/// Notes one arrival of event `seq` at `at_ns` in its span. The table grows
/// with the sequence, not with each frame.
fn note_span(spans: &mut Vec<EventSpan>, seq: u64, published_ns: u64, at_ns: u64) {
    if seq >= MAX_TIMED_EVENTS {
        return;
    }
    let i = seq as usize;
    if i >= spans.len() {
        spans.resize(i + 1, EventSpan::default());
    }
    spans[i].add(&EventSpan {
        seq,
        published_ns,
        received: 1,
        first_ns: at_ns,
        last_ns: at_ns,
    });
}

/// Duplicate detection: the highest sequence seen and a bitmap of the 64
/// below it (events may arrive slightly out of order when publishers have
/// several requests in flight). Sequences are below 2^32 per run; the
/// bitmap is kept as two words so the window stays 12 bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqWindow {
    max: u32,
    seen: [u32; 2],
}

impl SeqWindow {
    /// True if `seq` was seen before.
    pub fn duplicate(&mut self, seq: u64) -> bool {
        let seq = (seq as u32).wrapping_add(1); // 0 means "none yet"
        let mut seen = u64::from(self.seen[0]) | u64::from(self.seen[1]) << 32;
        let dup = if seq > self.max {
            let shift = seq - self.max;
            seen = if shift >= 64 { 0 } else { seen << shift };
            seen |= 1;
            self.max = seq;
            false
        } else {
            let back = self.max - seq;
            if back >= 64 {
                return false; // too old to tell
            }
            let bit = 1u64 << back;
            let dup = seen & bit != 0;
            seen |= bit;
            dup
        };
        self.seen = [seen as u32, (seen >> 32) as u32];
        dup
    }
}

impl Receiver<'_> {
    /// Handles every whole frame at the start of `buf`. Returns the bytes
    /// used, or how the connection ended.
    pub fn frames(&mut self, held: &mut Held, buf: &mut [u8]) -> Result<usize, End> {
        let mut at = 0;
        loop {
            let f = match frame::parse(&mut buf[at..], MAX_FRAME, Sender::Server) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(at),
                Err(_) => return Err(End::Broken),
            };
            let payload = &buf[at + f.payload_start..at + f.end()];
            self.counters.frames_in += 1;
            self.counters.bytes_in += f.end() as u64;
            match f.opcode {
                frame::OP_TEXT => self.text(held, payload),
                frame::OP_PING => {
                    let p = payload.to_vec();
                    held.try_send(frame::OP_PONG, &p, self.counters);
                }
                frame::OP_CLOSE => {
                    return Err(if held.closing {
                        End::Closed
                    } else {
                        End::ServerClosed(frame::close_code(payload))
                    });
                }
                _ => {}
            }
            at += f.end();
        }
    }

    fn text(&mut self, held: &mut Held, payload: &[u8]) {
        if self.protocol == Protocol::Raw {
            if let Some(ts) = payload
                .strip_prefix(ECHO_PREFIX)
                .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok())
            {
                self.counters.echoes += 1;
                stats::record_ns(&mut self.hists.echo, self.now_ns.saturating_sub(ts));
            }
            return;
        }
        if let Some(s) = crate::stamp::read(payload) {
            if held.seqs.duplicate(s.seq) {
                self.counters.duplicates += 1;
                return;
            }
            self.counters.deliveries += 1;
            if let Some(r) = self.received.as_deref_mut() {
                *r += 1;
            }
            if let Some(spans) = self.spans.as_deref_mut() {
                note_span(spans, s.seq, s.ts_ns, self.now_ns);
            }
            if !self
                .population
                .may_read(u64::from(held.user), s.channel, s.to)
            {
                self.counters.misdelivered += 1;
            }
            let latency = self.now_ns.saturating_sub(s.ts_ns);
            stats::record_ns(&mut self.hists.delivery, latency);
            stats::record_ns(self.delivery_interval, latency);
        } else if payload == br#"{"type":"pong"}"# {
            self.counters.pongs += 1;
            if self.ping_sent_ns > 0 {
                stats::record_ns(
                    &mut self.hists.echo,
                    self.now_ns.saturating_sub(self.ping_sent_ns),
                );
            }
        } else if payload.starts_with(br#"{"type":"error""#) {
            let code = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v["data"]["code"].as_u64())
                .unwrap_or(0);
            *self
                .counters
                .error_frames
                .entry(code.to_string())
                .or_default() += 1;
        }
    }
}

/// Raw protocol echo messages: this prefix, then the send time in ns.
pub const ECHO_PREFIX: &[u8] = b"rtbench-echo:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_window_finds_duplicates_in_and_out_of_order() {
        let mut w = SeqWindow::default();
        assert!(!w.duplicate(0));
        assert!(!w.duplicate(5));
        assert!(!w.duplicate(3));
        assert!(w.duplicate(3));
        assert!(w.duplicate(5));
        assert!(!w.duplicate(200));
        assert!(w.duplicate(200));
        assert!(!w.duplicate(199));
        assert!(!w.duplicate(5), "too old to tell is not a duplicate");
    }
}

//! A connection's way in: a nonblocking connect (`open`), the WebSocket
//! upgrade, then the protocol's own handshake (`protocols::Greeting`) until
//! the connection is open, which for a subscriber means subscribed.
//!
//! `Connecting` lives in its slot only while it runs (the hold reactor
//! drives it on the socket, `drive`) and is dropped once open; the
//! publisher drives the same handshake over its own connection (`feed`,
//! `take_outgoing`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

use rtbench_protocol::frame::{self, Sender};

use crate::protocols::{ErrorKey, Greet, Greeting, Outbox};
use crate::stats::Counters;
use crate::users::mix;

/// Largest server frame a client accepts.
pub const MAX_FRAME: usize = 16 << 20;

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
/// the protocol's handshake being done, then dropped.
pub struct Connecting {
    /// When the arrival was due (connect latency counts from here: a late
    /// client cannot make itself look good) and when the attempt began.
    pub scheduled_ns: u64,
    pub attempt_ns: u64,
    key: String,
    /// What is still to be written: the upgrade request, then the
    /// handshake's frames.
    outgoing: Vec<u8>,
    mask: u32,
    greeting: Greeting,
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
    /// Open (the protocol's handshake done); the bytes after it, for the
    /// receive path.
    Open(Vec<u8>),
    Failed(Failure),
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
    /// An attempt to upgrade `path_and_query` on `host`, then to greet as
    /// `greeting` says.
    pub fn new(
        scheduled_ns: u64,
        attempt_ns: u64,
        host: &str,
        path_and_query: &str,
        key_seed: u64,
        greeting: Greeting,
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
        let subprotocol = greeting.subprotocol().map_or(String::new(), |p| {
            format!("Sec-WebSocket-Protocol: {p}\r\n")
        });
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{subprotocol}\r\n"
        )
        .into_bytes();
        Connecting {
            scheduled_ns,
            attempt_ns,
            key,
            outgoing: request,
            mask: mix(key_seed ^ 0x5a5a) as u32 | 1,
            greeting,
            response: Vec::new(),
            head_len: None,
            last_error: None,
        }
    }

    /// Moves the attempt on: writes what is due once the socket is
    /// connected, reads what the server sent, until open or failed.
    pub fn drive(
        &mut self,
        sock: &std::net::TcpStream,
        counters: &mut Counters,
        buf: &mut [u8],
    ) -> Step {
        match sock.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return Step::Failed(io_failure(&e)),
        }
        loop {
            if let Some(step) = self.flush(sock, counters) {
                return step;
            }
            counters.reads += 1;
            match (&*sock).read(buf) {
                Ok(0) => return self.ended(),
                Ok(n) => match self.feed(&buf[..n], counters) {
                    // More to read, or handshake frames to write first.
                    Step::Wait if n == buf.len() || !self.outgoing.is_empty() => {}
                    Step::Open(rest) => {
                        // The handshake's last frames are small: they leave
                        // now (a pong, nothing the server waits for).
                        let _ = self.flush(sock, counters);
                        return Step::Open(rest);
                    }
                    step => return step,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(io_failure(&e)),
            }
        }
    }

    /// Writes what is due; `Some` when the attempt cannot go on now.
    fn flush(&mut self, sock: &std::net::TcpStream, counters: &mut Counters) -> Option<Step> {
        if self.outgoing.is_empty() {
            return None;
        }
        counters.writes += 1;
        match (&*sock).write(&self.outgoing) {
            Ok(n) => {
                counters.bytes_out += n as u64;
                self.outgoing.drain(..n);
                (!self.outgoing.is_empty()).then_some(Step::Wait)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
                ) =>
            {
                Some(Step::Wait)
            }
            Err(e) => Some(Step::Failed(io_failure(&e))),
        }
    }

    /// The server closed the connection before the handshake was done.
    pub fn ended(&self) -> Step {
        Step::Failed(match self.last_error {
            Some(code) => format!("error_frame_{code}"),
            None => "closed_during_handshake".into(),
        })
    }

    /// What is due to be written: the upgrade request, handshake frames.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    /// Takes what the server sent, and says where the attempt stands.
    pub fn feed(&mut self, bytes: &[u8], counters: &mut Counters) -> Step {
        self.response.extend_from_slice(bytes);
        self.parse(counters)
    }

    /// Reads the response so far: the 101, then frames through the
    /// protocol's handshake until it is open.
    fn parse(&mut self, counters: &mut Counters) -> Step {
        let head_len = match self.head_len {
            Some(n) => n,
            None => match self.head(counters) {
                Ok(n) => n,
                Err(step) => return step,
            },
        };
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
            let mut out = Outbox {
                wire: &mut self.outgoing,
                mask: &mut self.mask,
            };
            match f.opcode {
                frame::OP_TEXT | frame::OP_BINARY => {
                    match self.greeting.frame(f.opcode, payload, &mut out) {
                        Greet::Wait => {}
                        Greet::Open { rest } => {
                            // What the receive path reads: the rest of this
                            // frame (as a frame of its own), then the others.
                            let mut open = Vec::new();
                            if rest < payload.len() {
                                open.extend_from_slice(&frame::encode(f.opcode, &payload[rest..]));
                            }
                            open.extend_from_slice(&self.response[at + f.end()..]);
                            return Step::Open(open);
                        }
                        Greet::Error(key) => {
                            *counters.error_frames.entry(key.to_string()).or_default() += 1;
                            if let ErrorKey::Code(code) = key {
                                self.last_error = Some(code);
                            }
                        }
                        Greet::Failed(reason) => return Step::Failed(reason),
                    }
                }
                frame::OP_PING => out.send(frame::OP_PONG, payload),
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

    /// The response head: a 101 with the right accept key, then what the
    /// protocol says first. Its length, or how the attempt ended.
    fn head(&mut self, counters: &mut Counters) -> Result<usize, Step> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(&self.response) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.response.len() < 16 * 1024 => {
                return Err(Step::Wait);
            }
            _ => return Err(Step::Failed("bad_http_response".into())),
        };
        let status = resp.code.unwrap_or(0);
        if status != 101 {
            return Err(Step::Failed(format!("http_{status}")));
        }
        let accept = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"));
        if accept.map(|h| h.value)
            != Some(rtbench_protocol::handshake::accept_key(&self.key).as_bytes())
        {
            return Err(Step::Failed("bad_accept_key".into()));
        }
        counters.bytes_in += n as u64;
        self.head_len = Some(n);
        let mut out = Outbox {
            wire: &mut self.outgoing,
            mask: &mut self.mask,
        };
        if let Greet::Open { .. } = self.greeting.upgraded(&mut out) {
            return Err(Step::Open(self.response.split_off(n)));
        }
        Ok(n)
    }
}

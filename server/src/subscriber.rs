//! The bus subscription, held by the first reactor itself.
//!
//! Events from the bus are the hot path of a multi-process run: Redis sends
//! each one to every server process, and each process fans it out. Read by a
//! tokio task, an event would cross threads (and wait for a thread a busy
//! machine does not schedule) before a reactor saw it. Here the first
//! reactor keeps the Redis connection in its own epoll: it reads the RESP
//! messages, parses each event once, fans it out itself and queues it for
//! the process's other reactors. Losing Redis never takes the server down:
//! connections stay, and the subscription comes back with back-off.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::bus::CHANNEL;

/// The first wait before reconnecting; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A subscription that does not answer within this is given up and retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Connect in progress: SUBSCRIBE goes out once it completes.
    Connecting,
    /// SUBSCRIBE sent, its confirmation not yet read.
    Subscribing,
    Subscribed,
}

/// What a read of the subscription brought.
pub(crate) enum Got<'a> {
    /// The subscription is confirmed (again).
    Subscribed,
    /// An event document.
    Message(&'a [u8]),
}

pub(crate) struct Subscriber {
    url: String,
    addr: SocketAddr,
    pub(crate) sock: Option<TcpStream>,
    state: State,
    /// RESP bytes not yet parsed.
    buf: Vec<u8>,
    backoff: Duration,
    /// When to try again (disconnected), or give up connecting.
    pub(crate) due: Option<Instant>,
    /// Since when the bus has been unavailable (`None`: never was, or back).
    pub(crate) down_since: Option<Instant>,
    /// The highest event number seen (numbered events: `bus.rs`).
    pub(crate) last_seq: Option<u64>,
}

impl Subscriber {
    /// A subscriber for `redis://HOST:PORT`; it connects on `connect`.
    pub(crate) fn new(url: &str) -> Result<Subscriber, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("--bus {url}: not a redis:// URL"))?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
        let with_port = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("--bus {url}: {e}"))?
            .next()
            .ok_or_else(|| format!("--bus {url}: no address"))?;
        Ok(Subscriber {
            url: url.to_string(),
            addr,
            sock: None,
            state: State::Connecting,
            buf: Vec::new(),
            backoff: FIRST_BACKOFF,
            due: None,
            down_since: None,
            last_seq: None,
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Starts a nonblocking connect; the caller registers the socket.
    pub(crate) fn connect(&mut self) -> io::Result<&TcpStream> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        let _ = s.set_tcp_nodelay(true);
        match s.connect(&self.addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        self.buf.clear();
        self.state = State::Connecting;
        self.due = Some(Instant::now() + CONNECT_TIMEOUT);
        self.sock = Some(s.into());
        Ok(self.sock.as_ref().expect("just set"))
    }

    /// Drops the connection and schedules the next attempt.
    pub(crate) fn disconnect(&mut self) {
        self.sock = None;
        self.state = State::Connecting;
        self.due = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.down_since.get_or_insert_with(Instant::now);
    }

    /// Moves the connection on after readiness: sends SUBSCRIBE once
    /// connected, reads what arrived and hands each message to `on`.
    /// `Err` means the connection is lost.
    pub(crate) fn ready(
        &mut self,
        read_buf: &mut [u8],
        mut on: impl FnMut(Got<'_>),
    ) -> Result<(), String> {
        let Some(sock) = &self.sock else {
            return Ok(());
        };
        if self.state == State::Connecting {
            // A connect that failed shows here; once connected, a failure
            // shows as a read's error (one syscall less per message).
            if let Ok(Some(e)) | Err(e) = sock.take_error() {
                return Err(e.to_string());
            }
            let cmd = format!(
                "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{CHANNEL}\r\n",
                CHANNEL.len()
            );
            match (&*sock).write(cmd.as_bytes()) {
                Ok(n) if n == cmd.len() => self.state = State::Subscribing,
                Ok(_) => return Err("short write of SUBSCRIBE".into()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        loop {
            let Some(sock) = &self.sock else {
                return Ok(());
            };
            match (&*sock).read(read_buf) {
                Ok(0) => return Err("the bus closed the connection".into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&read_buf[..n]);
                    let used = self.parse(&mut on)?;
                    self.buf.drain(..used);
                    if n < read_buf.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Handles every whole pub/sub message in the buffer; returns bytes used.
    fn parse(&mut self, on: &mut impl FnMut(Got<'_>)) -> Result<usize, String> {
        let mut at = 0;
        while let Some((parts, end)) = resp_array(&self.buf[at..])? {
            match parts.first().map(|p| &self.buf[at + p.0..at + p.1]) {
                Some(b"message") if parts.len() == 3 => {
                    let (s, e) = parts[2];
                    on(Got::Message(&self.buf[at + s..at + e]));
                }
                Some(b"subscribe") => {
                    self.state = State::Subscribed;
                    self.due = None;
                    self.backoff = FIRST_BACKOFF;
                    on(Got::Subscribed);
                }
                _ => {}
            }
            at += end;
        }
        Ok(at)
    }
}

/// A parsed array: where each element's bytes are, and the array's length.
type Array = (Vec<(usize, usize)>, usize);

/// Reads one RESP2 array of bulk strings and integers at the start of
/// `buf`: the (start, end) of each element's bytes and the array's length,
/// or `None` if it has not fully arrived. An error reply is an error.
fn resp_array(buf: &[u8]) -> Result<Option<Array>, String> {
    fn line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
        let end = memchr_crlf(&buf[from..])?;
        Some((from, from + end))
    }
    fn number(b: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad number in a bus reply: {}", String::from_utf8_lossy(b)))
    }
    let Some((s, e)) = line(buf, 0) else {
        return Ok(None);
    };
    match buf.first() {
        Some(b'-') => {
            return Err(format!(
                "the bus answered: {}",
                String::from_utf8_lossy(&buf[s + 1..e])
            ));
        }
        Some(b'*') => {}
        Some(_) => {
            // Something other than a push (not expected): skip the line.
            return Ok(Some((Vec::new(), e + 2)));
        }
        None => return Ok(None),
    }
    let n = number(&buf[s + 1..e])?.max(0) as usize;
    let mut at = e + 2;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let Some((s, e)) = line(buf, at) else {
            return Ok(None);
        };
        match buf[s] {
            b'$' => {
                let len = number(&buf[s + 1..e])?;
                if len < 0 {
                    parts.push((e + 2, e + 2));
                    at = e + 2;
                    continue;
                }
                let start = e + 2;
                let end = start + len as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                parts.push((start, end));
                at = end + 2;
            }
            b':' | b'+' => {
                parts.push((s + 1, e));
                at = e + 2;
            }
            _ => return Err("unexpected element in a bus reply".into()),
        }
    }
    Ok(Some((parts, at)))
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_parse_whole_or_wait_for_more() {
        let wire = b"*3\r\n$9\r\nsubscribe\r\n$8\r\nrealtime\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$8\r\nrealtime\r\n$5\r\nhello\r\n";
        let (parts, used) = resp_array(wire).unwrap().unwrap();
        assert_eq!(&wire[parts[0].0..parts[0].1], b"subscribe");
        assert_eq!(&wire[parts[2].0..parts[2].1], b"1");
        let rest = &wire[used..];
        let (parts, used2) = resp_array(rest).unwrap().unwrap();
        assert_eq!(&rest[parts[2].0..parts[2].1], b"hello");
        assert_eq!(used + used2, wire.len());
        for cut in 0..rest.len() {
            assert!(resp_array(&rest[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert!(
            resp_array(b"-ERR nope\r\n")
                .unwrap_err()
                .contains("ERR nope")
        );
    }
}

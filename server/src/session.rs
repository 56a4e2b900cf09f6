//! One WebSocket connection's life: admission, the Realtime protocol, closing.
//!
//! Memory is the point of this module. A connection holds no read buffer:
//! sockets are read into a buffer owned by the worker thread, frames are handled
//! right there, and only the tail of a frame that has not fully arrived is
//! copied into the session. An idle connection is its socket, its outbox, this
//! session's few fields and its index entries: about 1 KiB.

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::auth;
use crate::conn::{Conn, Flush};
use crate::http::Request;
use crate::index::ConnId;
use crate::limits::Window;
use crate::metrics::Rejected;
use crate::server::Shared;
use rtbench_protocol::frame::{self, close};
use rtbench_protocol::jwt::{self, Claims};

/// Largest client message, as in Appwrite.
pub const MAX_MESSAGE: usize = 64_000;
/// Channels one connection may hold across its subscriptions.
pub const MAX_CHANNELS: usize = 1_000;
/// The subscription id of the channels given in the connect URL.
pub const URL_SUBSCRIPTION: &str = "default";
/// How long a closing connection gets to take its close frame.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);
/// How long to wait for the client's side of the TCP close.
const LINGER: Duration = Duration::from_secs(1);
/// Reads per wake-up before letting other connections run.
const READS_PER_WAKE: usize = 16;

thread_local! {
    /// The one read buffer of each worker thread: a whole frame plus header fits.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_MESSAGE + 16]);
}

struct Session {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    id: Option<ConnId>,
    user: Option<Box<Claims>>,
    subscriptions: Vec<Subscription>,
    /// Bytes of a frame that has not fully arrived; empty (unallocated) when idle.
    partial: Vec<u8>,
    /// A fragmented message being assembled, and its opcode (0: none).
    message: Vec<u8>,
    message_opcode: u8,
    rate: Window,
}

struct Subscription {
    id: Box<str>,
    channels: Vec<Box<str>>,
}

/// Sends the 101 response and admits the connection (or queues its refusal),
/// then spawns its task. The handshake's buffers end here: the spawned task is
/// sized for the session alone, and every byte of it counts a million times.
pub async fn start(
    mut stream: TcpStream,
    peer: IpAddr,
    req: Request,
    accept: &str,
    leftover: Vec<u8>,
    shared: Arc<Shared>,
) {
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut s = Session::new(Conn::new(stream), shared, leftover);
    if s.admit(peer, &req) {
        s.process_partial();
    }
    tokio::spawn(s.run());
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.live_sessions.fetch_sub(1, Relaxed);
    }
}

impl Session {
    fn new(conn: Conn, shared: Arc<Shared>, leftover: Vec<u8>) -> Session {
        shared.live_sessions.fetch_add(1, Relaxed);
        Session {
            conn: Arc::new(conn),
            shared,
            id: None,
            user: None,
            subscriptions: Vec::new(),
            // Keep the handshake buffer only if a frame followed the request in it.
            partial: if leftover.is_empty() { Vec::new() } else { leftover },
            message: Vec::new(),
            message_opcode: 0,
            rate: Window::default(),
        }
    }

    async fn run(mut self) {
        self.serve().await;
        if let Some(id) = self.id {
            self.shared.hub.unregister(id);
        }
        self.linger().await;
    }

    fn send(&self, f: Bytes) {
        self.shared.hub.metrics.sent(1, f.len() as u64);
        if self.conn.send(f, self.shared.hub.max_outbound_bytes()) == crate::conn::Sent::Overflow {
            self.shared.hub.metrics.slow_consumers_closed.fetch_add(1, Relaxed);
        }
    }

    fn send_json(&self, v: &Value) {
        self.send(frame::text(v.to_string().as_bytes()));
    }

    fn send_error(&self, code: u16, message: &str) {
        self.send_json(&json!({"type": "error", "data": {"code": code, "message": message}}));
    }

    /// Appwrite sends the code in an error frame; beyond Appwrite, the close
    /// frame carries it too.
    fn fail(&self, code: u16, message: &str) {
        self.send_error(code, message);
        self.conn.close(code, message);
    }

    fn refuse(&self, why: Rejected, code: u16, message: &str) -> bool {
        self.shared.hub.metrics.reject(why);
        self.fail(code, message);
        false
    }

    /// Decides whether the connection may stay; registers it and greets it.
    fn admit(&mut self, peer: IpAddr, req: &Request) -> bool {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        if let Some(l) = &shared.connect_limiter
            && !l.allow(peer, jwt::now_secs())
        {
            return self.refuse(Rejected::ConnectRate, close::TRY_AGAIN_LATER, "Too many requests");
        }
        let project =
            req.query_values("project").next().or_else(|| req.header("x-appwrite-project").map(str::to_owned));
        let Some(project) = project.filter(|p| cfg.project_allowed(p)) else {
            return self.refuse(Rejected::Project, close::POLICY_VIOLATION, "Missing or unknown project ID");
        };
        let token = req.header("x-appwrite-jwt").map(str::to_owned).or_else(|| req.query_values("jwt").next());
        if let Some(token) = token {
            match jwt::verify(&token, shared.jwt_secret(), jwt::now_secs()) {
                Ok(c) => self.user = Some(Box::new(c)),
                // A bad token on connect leaves a guest, as in Appwrite.
                Err(e) => self.send_error(close::POLICY_VIOLATION, &e.to_string()),
            }
        }
        let channels = req.channels();
        if channels.is_empty() && cfg.require_channels {
            return self.refuse(Rejected::Channels, close::POLICY_VIOLATION, "Missing channels");
        }
        if channels.len() > MAX_CHANNELS {
            return self.refuse(Rejected::Channels, close::POLICY_VIOLATION, "Too many channels");
        }
        if !channels.is_empty() {
            self.subscriptions.push(Subscription { id: URL_SUBSCRIPTION.into(), channels });
        }
        let channels = self.channels();
        let greeting = json!({"type": "connected", "data": {"channels": channels, "user": self.user_json()}});
        let greeting = frame::text(greeting.to_string().as_bytes());
        let max_out = shared.hub.max_outbound_bytes();
        let registered = shared.hub.register(self.conn.clone(), &project, channels, self.roles(), || {
            // Sent under the hub's lock: no event can overtake the greeting.
            self.conn.send(greeting.clone(), max_out);
        });
        match registered {
            Ok(id) => {
                shared.hub.metrics.sent(1, greeting.len() as u64);
                shared.hub.metrics.connections_total.fetch_add(1, Relaxed);
                self.id = Some(id);
                true
            }
            Err(_) => self.refuse(Rejected::Full, close::TRY_AGAIN_LATER, "Server is full"),
        }
    }

    /// The connection's channels: its subscriptions' channels, each once, with
    /// `account` rewritten to `account.<userId>` (and dropped for a guest).
    fn channels(&self) -> Vec<Box<str>> {
        let mut out: Vec<Box<str>> = Vec::new();
        for c in self.subscriptions.iter().flat_map(|s| &s.channels) {
            let c = match (&**c, &self.user) {
                ("account", Some(u)) => format!("account.{}", u.sub).into(),
                ("account", None) => continue,
                _ => c.clone(),
            };
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    fn roles(&self) -> Vec<Box<str>> {
        auth::roles_for(self.user.as_deref())
    }

    fn user_json(&self) -> Value {
        match &self.user {
            Some(u) => json!({"$id": u.sub, "labels": u.labels}),
            None => Value::Null,
        }
    }

    /// Re-files the connection after its user or subscriptions changed.
    fn refile(&self) {
        if let Some(id) = self.id {
            self.shared.hub.update(id, self.channels(), self.roles());
        }
    }

    async fn serve(&mut self) {
        let mut deadline_set = false;
        loop {
            // One look at the outbox per wake-up: write what is queued, and
            // learn whether a close is waiting to go out (it gets a deadline).
            let pending = match self.conn.flush() {
                Ok(Flush::Closed) | Err(_) => return,
                Ok(Flush::Pending { closing }) => {
                    if closing && !deadline_set {
                        deadline_set = true;
                        self.abort_after(CLOSE_FLUSH);
                    }
                    true
                }
                Ok(Flush::Idle) => false,
            };
            // Readiness wakers live in tokio's per-socket state and the kick
            // waker in the outbox, so this wait adds nothing to the task's size.
            let conn = &*self.conn;
            let woke = std::future::poll_fn(|cx| {
                if conn.poll_kicked(cx).is_ready() {
                    return Poll::Ready(Ok(false));
                }
                if pending && let Poll::Ready(r) = conn.stream.poll_write_ready(cx) {
                    return Poll::Ready(r.map(|()| false));
                }
                conn.stream.poll_read_ready(cx).map(|r| r.map(|()| true))
            })
            .await;
            match woke {
                Err(_) => return,
                Ok(true) if self.read_ready().is_err() => return,
                Ok(_) => {}
            }
        }
    }

    /// Aborts the connection after `d` unless it has ended by then. Only
    /// closing connections pay for the timer.
    fn abort_after(&self, d: Duration) {
        let conn = Arc::downgrade(&self.conn);
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            if let Some(c) = conn.upgrade() {
                c.abort();
            }
        });
    }

    /// Reads what the socket has into the thread's buffer and handles it.
    /// `Err` means the peer is gone.
    fn read_ready(&mut self) -> io::Result<()> {
        READ_BUF.with_borrow_mut(|buf| {
            for _ in 0..READS_PER_WAKE {
                match self.conn.stream.try_read(buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => self.ingest(&mut buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Handles the bytes that arrived together with the upgrade request.
    fn process_partial(&mut self) {
        let mut bytes = std::mem::take(&mut self.partial);
        if !bytes.is_empty() {
            let used = self.consume(&mut bytes);
            bytes.drain(..used);
            self.partial = bytes;
        }
    }

    fn ingest(&mut self, fresh: &mut [u8]) {
        if self.partial.is_empty() {
            let used = self.consume(fresh);
            self.partial.extend_from_slice(&fresh[used..]);
        } else {
            self.partial.extend_from_slice(fresh);
            self.process_partial();
            if self.partial.is_empty() {
                self.partial = Vec::new(); // give the memory back
            }
        }
    }

    /// Handles every whole frame at the start of `buf`; returns bytes used.
    fn consume(&mut self, buf: &mut [u8]) -> usize {
        let mut at = 0;
        while !self.conn.is_closing() {
            match frame::parse(&mut buf[at..], MAX_MESSAGE, frame::Sender::Client) {
                Ok(Some(f)) => {
                    let start = at + f.payload_start;
                    self.on_frame(f, &buf[start..start + f.payload_len]);
                    at += f.end();
                }
                Ok(None) => return at,
                Err(e) => {
                    self.conn.close(e.code, e.reason);
                    break;
                }
            }
        }
        buf.len() // closing: the rest is discarded
    }

    fn on_frame(&mut self, f: frame::Frame, payload: &[u8]) {
        self.shared.hub.metrics.frames_in.fetch_add(1, Relaxed);
        match f.opcode {
            frame::OP_PING => self.send(frame::encode(frame::OP_PONG, payload)),
            frame::OP_PONG => {}
            frame::OP_CLOSE => {
                let code = frame::close_code(payload);
                self.conn.close(if code == 1005 { close::NORMAL } else { code.min(4999) }, "");
            }
            frame::OP_CONTINUATION => {
                if self.message_opcode == 0 {
                    return self.fail_protocol("continuation without a message");
                }
                if self.message.len() + payload.len() > MAX_MESSAGE {
                    self.conn.close(close::MESSAGE_TOO_BIG, "message exceeds 64000 bytes");
                    return;
                }
                self.message.extend_from_slice(payload);
                if f.fin {
                    let message = std::mem::take(&mut self.message);
                    let opcode = std::mem::replace(&mut self.message_opcode, 0);
                    self.on_message(opcode, &message);
                }
            }
            opcode => {
                if self.message_opcode != 0 {
                    return self.fail_protocol("new message inside a fragmented one");
                }
                if f.fin {
                    self.on_message(opcode, payload);
                } else {
                    self.message_opcode = opcode;
                    self.message = payload.to_vec();
                }
            }
        }
    }

    fn fail_protocol(&self, reason: &str) {
        self.conn.close(close::PROTOCOL_ERROR, reason);
    }

    fn on_message(&mut self, opcode: u8, payload: &[u8]) {
        if self.id.is_none() {
            return; // refused: only the close is left to send
        }
        if let Some(limit) = self.shared.config.message_rate
            && !self.rate.allow(jwt::now_secs(), limit)
        {
            return self.send_error(close::TRY_AGAIN_LATER, "Too many messages");
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            if opcode == frame::OP_TEXT {
                self.conn.close(close::INVALID_PAYLOAD, "text frame is not UTF-8");
                return;
            }
            return self.send_error(close::UNSUPPORTED_DATA, "message format invalid");
        };
        #[derive(Deserialize)]
        struct Message {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            data: Value,
        }
        let msg = match serde_json::from_str::<Message>(text) {
            Ok(m) if opcode == frame::OP_TEXT => m,
            _ => return self.send_error(close::UNSUPPORTED_DATA, "message format invalid"),
        };
        match msg.kind.as_str() {
            "ping" => self.send(pong_frame()),
            "authentication" => self.authenticate(&msg.data),
            "subscribe" => self.subscribe(&msg.data),
            "unsubscribe" => self.unsubscribe(&msg.data),
            _ => self.send_error(close::UNSUPPORTED_DATA, "message format invalid"),
        }
    }

    fn authenticate(&mut self, data: &Value) {
        let Some(token) = data.get("session").and_then(Value::as_str) else {
            return self.send_error(close::UNSUPPORTED_DATA, "message format invalid: data.session is missing");
        };
        match jwt::verify(token, self.shared.jwt_secret(), jwt::now_secs()) {
            Ok(c) => {
                self.user = Some(Box::new(c));
                self.refile();
                let user = self.user_json();
                self.send_json(
                    &json!({"type": "response", "data": {"to": "authentication", "success": true, "user": user}}),
                );
            }
            Err(e) => self.fail(close::POLICY_VIOLATION, &e.to_string()),
        }
    }

    fn subscribe(&mut self, data: &Value) {
        #[derive(Deserialize)]
        struct Sub {
            #[serde(rename = "subscriptionId")]
            id: String,
            channels: Vec<String>,
        }
        let subs: Vec<Sub> = match one_or_many(data) {
            Some(s) => s,
            None => {
                return self.send_error(
                    close::UNSUPPORTED_DATA,
                    "message format invalid: subscribe takes [{subscriptionId, channels}]",
                );
            }
        };
        let replaced = |s: &Subscription| subs.iter().any(|n| *n.id == *s.id);
        let kept: usize = self.subscriptions.iter().filter(|s| !replaced(s)).map(|s| s.channels.len()).sum();
        if kept + subs.iter().map(|s| s.channels.len()).sum::<usize>() > MAX_CHANNELS {
            return self.send_error(close::POLICY_VIOLATION, "Too many channels");
        }
        self.subscriptions.retain(|s| !replaced(s));
        self.subscriptions.extend(subs.iter().map(|s| Subscription {
            id: s.id.as_str().into(),
            channels: s.channels.iter().map(|c| c.as_str().into()).collect(),
        }));
        self.refile();
        let listed: Vec<Value> = subs.iter().map(|s| json!({"subscriptionId": s.id, "channels": s.channels})).collect();
        self.send_json(
            &json!({"type": "response", "data": {"to": "subscribe", "success": true, "subscriptions": listed}}),
        );
    }

    fn unsubscribe(&mut self, data: &Value) {
        #[derive(Deserialize)]
        struct Unsub {
            #[serde(rename = "subscriptionId")]
            id: String,
        }
        let Some(gone): Option<Vec<Unsub>> = one_or_many(data) else {
            return self
                .send_error(close::UNSUPPORTED_DATA, "message format invalid: unsubscribe takes [{subscriptionId}]");
        };
        self.subscriptions.retain(|s| !gone.iter().any(|g| *g.id == *s.id));
        self.refile();
        let ids: Vec<&str> = gone.iter().map(|g| g.id.as_str()).collect();
        self.send_json(
            &json!({"type": "response", "data": {"to": "unsubscribe", "success": true, "subscriptions": ids}}),
        );
    }

    /// After the close frame is out: half-close, then wait briefly for the
    /// client's FIN, so unread bytes do not turn the close into a reset.
    async fn linger(&self) {
        let _ = socket2::SockRef::from(&self.conn.stream).shutdown(std::net::Shutdown::Write);
        self.abort_after(LINGER);
        loop {
            if std::future::poll_fn(|cx| self.conn.stream.poll_read_ready(cx)).await.is_err() {
                return;
            }
            let gone = READ_BUF.with_borrow_mut(|buf| match self.conn.stream.try_read(buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            });
            if gone {
                return;
            }
        }
    }
}

/// A list of `T`, or one `T` alone.
fn one_or_many<T: for<'de> Deserialize<'de>>(data: &Value) -> Option<Vec<T>> {
    match data {
        Value::Array(_) => serde_json::from_value(data.clone()).ok(),
        Value::Object(_) => serde_json::from_value(data.clone()).ok().map(|one| vec![one]),
        _ => None,
    }
}

fn pong_frame() -> Bytes {
    frame::text(br#"{"type":"pong"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spawned task is allocated once per connection for its whole life:
    /// a future that grows (a waiter, a timer or a buffer held across an
    /// await) shows up a million times in RSS. `cargo xtask memprobe` measures
    /// the whole cost; this catches the regression at its source.
    #[tokio::test]
    async fn connection_task_stays_small() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let session = Session::new(
            Conn::new(stream),
            Arc::new(Shared::new(crate::Config::for_listen(addr)).unwrap()),
            Vec::new(),
        );
        let task = session.run();
        let size = std::mem::size_of_val(&task);
        assert!(size <= 512, "the connection task's future is {size} bytes");
    }
}

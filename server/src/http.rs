//! The HTTP/1.1 side: one listener serves the WebSocket upgrade and the plain
//! endpoints (`POST /v1/events`, `/health`, `/metrics`).
//!
//! A hand-written request reader instead of a framework keeps the build small
//! and the per-connection state tiny: the head is read into a buffer that is
//! freed as soon as the request is routed, so a WebSocket connection carries
//! nothing from its handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admission::{self, Admitted};
use crate::event;
use crate::request::Request;
use crate::shared::Shared;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1 << 20;
const MAX_HEADERS: usize = 48;
/// A client gets this long to send a request head (slow-loris guard).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused connection waits for the client's side of the close.
const LINGER: Duration = Duration::from_secs(1);

enum HeadError {
    /// The peer closed or the socket failed: nothing to answer.
    Gone,
    /// Answer with this status and message, then close.
    Bad(u16, &'static str),
}

/// Reads one request head; `buf` keeps whatever follows it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Request, HeadError> {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let target = req.path.unwrap_or("/");
                    let (path, query) = target.split_once('?').unwrap_or((target, ""));
                    let request = Request {
                        method: req.method.unwrap_or("").to_owned(),
                        path: path.to_owned(),
                        query: query.to_owned(),
                        headers: req
                            .headers
                            .iter()
                            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                            .collect(),
                        http10: req.version == Some(0),
                    };
                    buf.drain(..n);
                    return Ok(request);
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => return Err(HeadError::Bad(431, "too many headers")),
                Err(_) => return Err(HeadError::Bad(400, "malformed request")),
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::Bad(431, "request head too large"));
        }
        buf.reserve(2048);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(_) => {}
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> bool {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let extra = if status == 426 { "Sec-WebSocket-Version: 13\r\n" } else { "" };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {conn}\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.is_ok() && stream.write_all(body).await.is_ok()
}

fn json_error(message: &str) -> Vec<u8> {
    serde_json::json!({ "message": message }).to_string().into_bytes()
}

/// Serves one TCP connection: plain requests until it closes, or an upgrade.
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    loop {
        let req = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut buf)).await {
            Err(_) => {
                respond(&mut stream, 408, "text/plain", b"request head timeout\n", false).await;
                return;
            }
            Ok(Err(HeadError::Gone)) => return,
            Ok(Err(HeadError::Bad(status, msg))) => {
                respond(&mut stream, status, "application/json", &json_error(msg), false).await;
                return;
            }
            Ok(Ok(req)) => req,
        };
        let keep_alive = req.keep_alive();
        let ok = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/realtime") => match upgrade_accept(&req) {
                Ok(accept) => {
                    return Box::pin(upgrade(stream, peer, req, &accept, std::mem::take(&mut buf), shared)).await;
                }
                Err((status, msg)) => {
                    shared.metrics.bad_handshakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    respond(&mut stream, status, "application/json", &json_error(msg), false).await;
                    return;
                }
            },
            ("POST", "/v1/events") => publish(&mut stream, &req, &mut buf, &shared, keep_alive).await,
            ("GET", "/health") => {
                respond(&mut stream, 200, "application/json", br#"{"status":"pass"}"#, keep_alive).await
            }
            ("GET", "/metrics") => {
                let text = shared.metrics.render(shared.connections());
                respond(&mut stream, 200, "text/plain; version=0.0.4", text.as_bytes(), keep_alive).await
            }
            (_, "/v1/realtime" | "/v1/events" | "/health" | "/metrics") => {
                respond(&mut stream, 405, "application/json", &json_error("method not allowed"), keep_alive).await
            }
            _ => respond(&mut stream, 404, "application/json", &json_error("not found"), keep_alive).await,
        };
        if !ok || !keep_alive {
            return;
        }
    }
}

/// Answers 101, then admits the connection to a reactor, or refuses it with
/// an `error` frame and a close carrying the same code.
async fn upgrade(
    mut stream: TcpStream,
    peer: SocketAddr,
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
    match admission::decide(&shared, peer.ip(), &req) {
        Ok(a) => match stream.into_std() {
            Ok(stream) => shared.reactors.adopt(Admitted {
                stream,
                project: a.project,
                user: a.user,
                channels: a.channels,
                subs: a.subs,
                greeting: a.greeting,
                leftover,
            }),
            Err(_) => shared.unreserve(),
        },
        Err(refused) => {
            for f in &refused.frames {
                if stream.write_all(f).await.is_err() {
                    return;
                }
            }
            // Half-close, then let the client's close and FIN arrive, so the
            // close does not become a reset.
            let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
            let mut sink = [0u8; 1024];
            let _ =
                tokio::time::timeout(LINGER, async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} })
                    .await;
        }
    }
}

/// Checks an upgrade request; returns the `Sec-WebSocket-Accept` value.
fn upgrade_accept(req: &Request) -> Result<String, (u16, &'static str)> {
    if !req.header_has_token("upgrade", "websocket") {
        return Err((426, "this endpoint speaks WebSocket: send Upgrade: websocket"));
    }
    if !req.header_has_token("connection", "upgrade") {
        return Err((400, "missing Connection: Upgrade"));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err((426, "unsupported Sec-WebSocket-Version (13 is supported)"));
    }
    let key = req.header("sec-websocket-key").ok_or((400, "missing Sec-WebSocket-Key"))?;
    Ok(rtbench_protocol::handshake::accept_key(key.trim()))
}

/// `POST /v1/events`: checks the admin key, reads the body, fans out.
async fn publish(stream: &mut TcpStream, req: &Request, buf: &mut Vec<u8>, shared: &Shared, keep_alive: bool) -> bool {
    let key_ok = req
        .header("x-appwrite-key")
        .is_some_and(|k| constant_time_eq(k.as_bytes(), shared.config.admin_key.as_bytes()));
    let Some(len) = req.header("content-length") else {
        return respond(stream, 411, "application/json", &json_error("Content-Length is required"), false).await;
    };
    let Ok(len) = len.trim().parse::<usize>() else {
        return respond(stream, 400, "application/json", &json_error("Content-Length is not a number"), false).await;
    };
    if len > MAX_BODY {
        return respond(stream, 413, "application/json", &json_error("event document exceeds 1 MiB"), false).await;
    }
    while buf.len() < len {
        buf.reserve(len - buf.len());
        match tokio::time::timeout(HEAD_TIMEOUT, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
    let body: Vec<u8> = buf.drain(..len).collect();
    if !key_ok {
        return respond(stream, 401, "application/json", &json_error("missing or wrong x-appwrite-key"), keep_alive)
            .await;
    }
    match event::parse(&body) {
        Ok(ev) => match &shared.bus {
            // Through the bus every process, this one included, fans it out.
            // Boxed: inlined, the publish future would enlarge every
            // connection's handshake task.
            Some(bus) => match Box::pin(bus.publish(&body)).await {
                Ok(n) => {
                    let body = format!(r#"{{"published":true,"subscribers":{n}}}"#);
                    respond(stream, 200, "application/json", body.as_bytes(), keep_alive).await
                }
                Err(e) => {
                    shared.metrics.bus_publish_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    respond(stream, 503, "application/json", &json_error(&e), keep_alive).await
                }
            },
            None => {
                shared.metrics.events_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let n = shared.reactors.publish_counted(std::sync::Arc::new(ev)).await.unwrap_or(0);
                let body = format!(r#"{{"deliveries":{n}}}"#);
                respond(stream, 200, "application/json", body.as_bytes(), keep_alive).await
            }
        },
        Err(msg) => {
            shared.metrics.events_invalid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            respond(stream, 400, "application/json", &json_error(&msg), keep_alive).await
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's handshake runs in this task; its size is paid per
    /// connection as heap churn (see the boxed publish above).
    #[tokio::test]
    async fn handshake_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let shared = Arc::new(Shared::new(crate::Config::for_listen(addr)).unwrap());
        let task = serve(stream, addr, shared);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "the handshake task's future is {size} bytes");
    }
}

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

use crate::server::Shared;
use crate::{event, session};

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1 << 20;
const MAX_HEADERS: usize = 48;
/// A client gets this long to send a request head (slow-loris guard).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    headers: Vec<(String, String)>,
    http10: bool,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// Percent-decoded values of query parameter `key`, in order.
    pub fn query_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = String> + 'a {
        self.query.split('&').filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
    }

    /// `channels[]=a&channels[]=b` (PHP also accepts `channels[0]=a`).
    pub fn channels(&self) -> Vec<Box<str>> {
        self.query
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                let k = percent_decode(k);
                let is_channel = k == "channels" || (k.starts_with("channels[") && k.ends_with(']'));
                (is_channel && !v.is_empty()).then(|| percent_decode(v).into())
            })
            .collect()
    }

    fn keep_alive(&self) -> bool {
        !self.http10 && !self.header_has_token("connection", "close")
    }
}

/// Decodes `%XX` escapes and `+` (form encoding); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
                    let leftover = std::mem::take(&mut buf);
                    return session::start(stream, peer.ip(), req, &accept, leftover, shared).await;
                }
                Err((status, msg)) => {
                    shared.hub.metrics.bad_handshakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    respond(&mut stream, status, "application/json", &json_error(msg), false).await;
                    return;
                }
            },
            ("POST", "/v1/events") => publish(&mut stream, &req, &mut buf, &shared, keep_alive).await,
            ("GET", "/health") => {
                respond(&mut stream, 200, "application/json", br#"{"status":"pass"}"#, keep_alive).await
            }
            ("GET", "/metrics") => {
                let text = shared.hub.metrics.render(shared.hub.len());
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
            // connection's handshake task, and that left heap holes worth
            // 0.45 KiB per held connection (memprobe: 2.10 -> 1.67 KiB).
            Some(bus) => match Box::pin(bus.publish(&body)).await {
                Ok(n) => {
                    let body = format!(r#"{{"published":true,"subscribers":{n}}}"#);
                    respond(stream, 200, "application/json", body.as_bytes(), keep_alive).await
                }
                Err(e) => {
                    shared.hub.metrics.bus_publish_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    respond(stream, 503, "application/json", &json_error(&e), keep_alive).await
                }
            },
            None => {
                let n = shared.hub.publish(&ev);
                let body = format!(r#"{{"deliveries":{n}}}"#);
                respond(stream, 200, "application/json", body.as_bytes(), keep_alive).await
            }
        },
        Err(msg) => {
            shared.hub.metrics.events_invalid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("channels%5B%5D"), "channels[]");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
    }

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

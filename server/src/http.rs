//! The HTTP/1.1 side: one listener serves the WebSocket upgrade and the plain
//! endpoints (`POST /v1/events`, `/health`, `/metrics`).
//!
//! New connections start in a reactor (`handshake.rs`), which answers
//! upgrades itself; a plain request comes here, to a tokio task, with the
//! bytes read so far. A hand-written reader instead of a framework keeps the
//! build small.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::event;
use crate::handshake::Incoming;
use crate::request::{Head, Request, parse_head};
use crate::shared::Shared;

const MAX_BODY: usize = 1 << 20;
/// A client gets this long to send a request head or body (slow-loris guard).
const HEAD_TIMEOUT: Duration = crate::handshake::HEAD_TIMEOUT;

/// The status line and headers of an answer.
pub fn response_head(status: u16, content_type: &str, len: usize, keep_alive: bool) -> String {
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
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: {conn}\r\n{extra}\r\n"
    )
}

/// A whole answer: head and body.
pub fn response_bytes(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = response_head(status, content_type, body.len(), keep_alive).into_bytes();
    out.extend_from_slice(body);
    out
}

async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> bool {
    stream.write_all(&response_bytes(status, content_type, body, keep_alive)).await.is_ok()
}

pub fn json_error(message: &str) -> Vec<u8> {
    serde_json::json!({ "message": message }).to_string().into_bytes()
}

/// Serves plain requests on one connection until it closes, starting with
/// the bytes a reactor read from it. An upgrade goes back to a reactor.
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, mut buf: Vec<u8>) {
    loop {
        let head = tokio::time::timeout(HEAD_TIMEOUT, async {
            loop {
                match parse_head(&buf) {
                    Head::Partial => {}
                    head => return Some(head),
                }
                buf.reserve(2048);
                match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await;
        let (req, len) = match head {
            Err(_) => {
                respond(&mut stream, 408, "text/plain", b"request head timeout\n", false).await;
                return;
            }
            Ok(None) => return,
            Ok(Some(Head::Bad(status, msg))) => {
                respond(&mut stream, status, "application/json", &json_error(msg), false).await;
                return;
            }
            Ok(Some(Head::Complete(req, len))) => (req, len),
            Ok(Some(Head::Partial)) => unreachable!("returned only when whole"),
        };
        if (req.method.as_str(), req.path.as_str()) == ("GET", "/v1/realtime") {
            // The reactors answer upgrades: hand the connection back, head included.
            if let Ok(stream) = stream.into_std() {
                shared.reactors.adopt(Incoming { stream, peer, bytes: buf });
            }
            return;
        }
        buf.drain(..len);
        let keep_alive = req.keep_alive();
        let ok = match (req.method.as_str(), req.path.as_str()) {
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

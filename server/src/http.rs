//! The HTTP/1.1 side: one listener serves the WebSocket upgrade and the plain
//! endpoints (`POST /v1/events`, `/health`, `/metrics`).
//!
//! New connections start in a reactor (`reactor/handshake.rs`), which answers
//! upgrades itself; a plain request comes here, to a tokio task, with the
//! bytes read so far. A hand-written reader instead of a framework keeps the
//! build small.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::chunked::{ChunkError, Chunked};
use crate::event;
use crate::metrics::Limit;
use crate::reactor::Reactors;
use crate::request::{Body, Head, Incoming, Request, parse_head};
use crate::response::{json_error, response_head};
use crate::shared::Shared;

/// An answer to one request.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// Header lines beyond the usual ones.
    extra: String,
    /// The connection ends after it, whatever the client asked: after any
    /// refusal the rest of the stream cannot be trusted to be a request.
    close: bool,
    /// HEAD: the head only.
    head_only: bool,
}

impl Answer {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer {
            status: 200,
            content_type,
            body,
            extra: String::new(),
            close: false,
            head_only: false,
        }
    }

    fn error(status: u16, message: &str) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: json_error(message),
            extra: String::new(),
            close: status != 401 && status != 404 && status != 503,
            head_only: false,
        }
    }

    fn closing(mut self) -> Answer {
        self.close = true;
        self
    }

    fn bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = response_head(
            self.status,
            self.content_type,
            self.body.len(),
            keep_alive && !self.close,
            &self.extra,
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Serves every plain HTTP connection the reactors hand over, each in a
/// task of its own, until the reactors are gone.
pub(crate) async fn serve_handed_over(
    mut from_reactors: tokio::sync::mpsc::UnboundedReceiver<Incoming>,
    shared: Arc<Shared>,
    reactors: std::sync::Weak<Reactors>,
) {
    while let Some(Incoming {
        stream,
        peer,
        bytes,
    }) = from_reactors.recv().await
    {
        // Counted by the reactor that handed it over: served, or uncounted
        // here when it cannot be (the server is shutting down).
        let Some(reactors) = reactors.upgrade() else {
            shared.metrics.http_connections.fetch_sub(1, Relaxed);
            continue;
        };
        let shared = shared.clone();
        // Registered with tokio in its own task: the hand-over stays one
        // channel read per connection.
        tokio::spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream, peer, shared, reactors, bytes).await,
                Err(_) => {
                    shared.metrics.http_connections.fetch_sub(1, Relaxed);
                }
            }
        });
    }
}

/// Counts a plain HTTP connection for as long as its task serves it.
struct Served<'a>(&'a Shared);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.metrics.http_connections.fetch_sub(1, Relaxed);
    }
}

/// Serves plain requests on one connection until it closes, starting with
/// the bytes a reactor read from it (which counted it in
/// `metrics.http_connections`). An upgrade goes back to a reactor.
pub(crate) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    reactors: Arc<Reactors>,
    mut buf: Vec<u8>,
) {
    let _served = Served(&shared);
    let timeout = Duration::from_millis(shared.config.request_timeout_ms);
    loop {
        let head = tokio::time::timeout(timeout, async {
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
                shared.metrics.hit(Limit::RequestTimeout);
                let a = Answer::error(408, "request head timeout").closing();
                let _ = stream.write_all(&a.bytes(false)).await;
                return;
            }
            Ok(None) => return,
            Ok(Some(Head::Bad(status, msg))) => {
                let _ = stream
                    .write_all(&Answer::error(status, msg).closing().bytes(false))
                    .await;
                return;
            }
            Ok(Some(Head::Complete(req, len))) => (req, len),
            Ok(Some(Head::Partial)) => unreachable!("returned only when whole"),
        };
        if (req.method.as_str(), req.path.as_str()) == ("GET", "/v1/realtime") {
            // The reactors answer upgrades: hand the connection back, head included.
            if let Ok(stream) = stream.into_std() {
                reactors.adopt(Incoming {
                    stream,
                    peer,
                    bytes: buf,
                });
            }
            return;
        }
        buf.drain(..len);
        let deadline = tokio::time::Instant::now() + timeout;
        let answer = match req.framing() {
            Err((status, msg)) => Answer::error(status, msg).closing(),
            Ok(body) => {
                route(
                    &mut stream,
                    &req,
                    body,
                    &mut buf,
                    &shared,
                    &reactors,
                    deadline,
                )
                .await
            }
        };
        let keep_alive = req.keep_alive() && !answer.close;
        if stream.write_all(&answer.bytes(keep_alive)).await.is_err() || !keep_alive {
            return;
        }
    }
}

/// What each path allows, for 405's `Allow`.
fn allowed(path: &str) -> Option<&'static str> {
    match path {
        "/v1/realtime" | "/health" | "/metrics" => Some("GET, HEAD"),
        "/v1/events" => Some("POST"),
        _ => None,
    }
}

async fn route(
    stream: &mut TcpStream,
    req: &Request,
    body: Body,
    buf: &mut Vec<u8>,
    shared: &Shared,
    reactors: &Reactors,
    deadline: tokio::time::Instant,
) -> Answer {
    let head_only = req.method == "HEAD";
    let method = if head_only {
        "GET"
    } else {
        req.method.as_str()
    };
    let mut answer = match (method, req.path.as_str()) {
        ("POST", "/v1/events") => {
            return publish(stream, req, body, buf, shared, reactors, deadline).await;
        }
        ("GET", "/health") => Answer::ok("application/json", br#"{"status":"pass"}"#.to_vec()),
        ("GET", "/metrics") => Answer::ok(
            "text/plain; version=0.0.4",
            shared.metrics.render(shared.connections()).into_bytes(),
        ),
        ("GET", "/v1/realtime") => Answer::error(
            426,
            "this endpoint speaks WebSocket: send Upgrade: websocket",
        ),
        (_, path) => match allowed(path) {
            Some(allow) => {
                let mut a = Answer::error(405, "method not allowed");
                a.extra = format!("Allow: {allow}\r\n");
                a
            }
            None => Answer::error(404, "not found"),
        },
    };
    // A body this server does not read ends the connection after the answer.
    if body.is_some() {
        answer.close = true;
    }
    answer.head_only = head_only;
    answer
}

/// `POST /v1/events`: the key is checked before the body is read; the body
/// (Content-Length or chunked) must arrive whole by `deadline` (counted from
/// the head, never restarted) and within `--max-event-bytes`.
async fn publish(
    stream: &mut TcpStream,
    req: &Request,
    body: Body,
    buf: &mut Vec<u8>,
    shared: &Shared,
    reactors: &Reactors,
    deadline: tokio::time::Instant,
) -> Answer {
    let key_ok = req
        .header("x-appwrite-key")
        .is_some_and(|k| constant_time_eq(k.as_bytes(), shared.config.admin_key.as_bytes()));
    if !key_ok {
        // The unread body makes the connection unusable: close it.
        let a = Answer::error(401, "missing or wrong x-appwrite-key");
        return if body.is_some() { a.closing() } else { a };
    }
    let read = match body {
        Body::Length(_) if req.headers_named("content-length").next().is_none() => {
            return Answer::error(
                411,
                "Content-Length or Transfer-Encoding: chunked is required",
            );
        }
        Body::Length(len) => read_length(stream, len, buf, shared, deadline).await,
        Body::Chunked => read_chunked(stream, buf, shared, deadline).await,
    };
    let body = match read {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    match event::parse(&body) {
        Ok(ev) => match &shared.bus {
            // Through the bus every process, this one included, fans it out.
            Some(bus) => match Box::pin(bus.publish(&body)).await {
                Ok(n) => Answer::ok(
                    "application/json",
                    format!(r#"{{"published":true,"subscribers":{n}}}"#).into_bytes(),
                ),
                Err(e) => {
                    shared.metrics.bus_publish_failed.fetch_add(1, Relaxed);
                    // The body was read whole: the connection may go on.
                    let mut a = Answer::error(503, &e.to_string());
                    a.body = serde_json::json!({"message": e.to_string(), "reason": e.reason()})
                        .to_string()
                        .into_bytes();
                    a.extra = "Retry-After: 1\r\n".into();
                    a
                }
            },
            None => {
                shared.metrics.events_in.fetch_add(1, Relaxed);
                let n = reactors.publish_counted(Arc::new(ev)).await.unwrap_or(0);
                Answer::ok(
                    "application/json",
                    format!(r#"{{"deliveries":{n}}}"#).into_bytes(),
                )
            }
        },
        Err(msg) => {
            shared.metrics.events_invalid.fetch_add(1, Relaxed);
            // The body was read whole: the connection may go on.
            let mut a = Answer::error(400, &msg);
            a.close = false;
            a
        }
    }
}

/// Reads more of the body into `buf`, by `deadline`; the refusal when the
/// connection ends or the time is up.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> Result<(), Answer> {
    match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(_) => Err(Answer::error(400, "the connection ended inside the body").closing()),
        Err(_) => {
            shared.metrics.hit(Limit::RequestTimeout);
            Err(Answer::error(408, "request body timeout").closing())
        }
    }
}

fn too_large(shared: &Shared) -> Answer {
    shared.metrics.hit(Limit::EventBytes);
    Answer::error(
        413,
        &format!(
            "event document exceeds {} bytes",
            shared.config.max_event_bytes
        ),
    )
    .closing()
}

/// A Content-Length body.
async fn read_length(
    stream: &mut TcpStream,
    len: usize,
    buf: &mut Vec<u8>,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> Result<Vec<u8>, Answer> {
    if len > shared.config.max_event_bytes {
        return Err(too_large(shared));
    }
    while buf.len() < len {
        // Grows as bytes arrive: a client announcing 1 MiB pays for what it sends.
        buf.reserve((len - buf.len()).min(64 * 1024));
        read_more(stream, buf, shared, deadline).await?;
    }
    Ok(buf.drain(..len).collect())
}

/// A chunked body (`chunked.rs`), decoded as it arrives; what follows its
/// end stays in `buf` for the next request.
async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> Result<Vec<u8>, Answer> {
    let mut decoder = Chunked::new(shared.config.max_event_bytes);
    loop {
        match decoder.feed(buf) {
            Ok((used, done)) => {
                buf.drain(..used);
                if done {
                    return Ok(decoder.into_body());
                }
            }
            Err(ChunkError::TooLarge) => return Err(too_large(shared)),
            Err(ChunkError::Malformed(why)) => {
                return Err(
                    Answer::error(400, &format!("malformed chunked body: {why}")).closing(),
                );
            }
        }
        buf.reserve(16 * 1024);
        read_more(stream, buf, shared, deadline).await?;
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

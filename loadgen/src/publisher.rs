//! Publishing stamped events on an open-model schedule.
//!
//! Event i of a publisher is due at start + i / rate and is sent when due,
//! whatever happened to the events before it: a slow response never holds
//! back the next event. Three ways out (`Publisher::route`):
//!
//! - `via = "http"`: `POST /v1/events` on keep-alive connections, one request
//!   in flight per connection, as many connections as the schedule needs up
//!   to `max_in_flight`. At the cap an event waits for a free connection, and
//!   that lateness is recorded (and judged: the record flags a publisher that
//!   fell behind).
//! - `via = "bus"`: `PUBLISH realtime <document>` straight to the Redis bus
//!   the servers subscribe to, as Appwrite's own workers publish, pipelined on
//!   one connection (so events keep their order), every event numbered so the
//!   servers can count what they missed.
//! - `via = "broker"` (a broker protocol's default): the protocol's own
//!   publish (NATS `PUB`, MQTT `PUBLISH`, STOMP `SEND`, a Socket.IO emit)
//!   on one WebSocket connection to the first target, after the protocol's
//!   handshake; events that fell due together go out in one write. No
//!   broker says how many received an event, so none is reported.
//!
//! Each payload carries the wall-clock time it was sent (the stamp receivers
//! subtract), a run-wide sequence number (duplicates), and the role it was
//! published for (misdeliveries).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::handshake::{Connecting, Step};
use crate::protocols::{self, Greeting, Hello, Outbox};
use crate::stamp;
use crate::stats::Counters;
use crate::sys::now_ns;
use crate::users::{Population, mix};
use rtbench_protocol::frame::{self, Sender};
use rtbench_record::endpoint::Endpoint;
use rtbench_record::scenario::{Publisher, ReadRole, Scenario, Via};

#[derive(Debug, Default, Clone)]
pub struct Published {
    /// Events the schedules called for, up to the end of the hold.
    pub scheduled: u64,
    /// Events sent whose request or command succeeded.
    pub events: u64,
    /// Sum of the deliveries the server reported for the events.
    pub server_deliveries: u64,
    /// Events whose answer did not say how many received them (through a
    /// shared bus nobody can know).
    pub unreported: u64,
    pub errors: BTreeMap<String, u64>,
    /// Events the server refused with 503 (its bus down), also among
    /// `errors` by reason; with `max_in_flight = 1` each one's sequence is
    /// given back, so accepted events stay consecutive.
    pub refused: u64,
    /// Sequences whose request failed without a clear answer (the
    /// connection closed, a timeout): the event may or may not be out.
    pub uncertain: Vec<u64>,
    /// How late the latest event was sent, against its due time.
    pub lag_max_ns: u64,
    /// Most requests in flight at once, and the cap (HTTP publishing).
    pub in_flight_max: u64,
    pub in_flight_cap: u64,
}

/// Shared by a run's publishers.
struct Run {
    sc: Rc<Scenario>,
    channels: Vec<String>,
    out: RefCell<Published>,
    seq: Cell<u64>,
    stop: Rc<Cell<bool>>,
}

impl Run {
    fn lag(&self, due: u64) {
        let mut o = self.out.borrow_mut();
        o.lag_max_ns = o.lag_max_ns.max(now_ns().saturating_sub(due));
    }

    fn error(&self, e: String) {
        *self.out.borrow_mut().errors.entry(e).or_default() += 1;
    }

    /// The next event's Appwrite document, with its sequence.
    fn document(&self, p: &Publisher, i: u64) -> (u64, String) {
        let e = self.event(p, i);
        let sc = &self.sc;
        let doc = serde_json::json!({
            "project": sc.target.project,
            "roles": [e.to],
            "permissionsChanged": false,
            "userId": null,
            "data": {"events": ["rtbench.event"], "channels": [e.channel], "payload": serde_json::value::RawValue::from_string(e.payload).expect("stamp is JSON")}
        });
        (e.seq, doc.to_string())
    }

    /// The next event: its sequence, who may read it, its channel, its
    /// stamped payload.
    fn event(&self, p: &Publisher, i: u64) -> Event<'_> {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let sc = &self.sc;
        let pick = mix(seq.wrapping_add(0x5eed));
        let total: f64 = p.roles.iter().map(|r| r.weight).sum();
        let mut x = (pick % 1_000_000) as f64 / 1_000_000.0 * total;
        let role = p.roles.iter().find(|r| {
            x -= r.weight;
            x < 0.0
        });
        let users = if sc.session.users > 0 {
            sc.session.users
        } else {
            sc.total_arrivals().max(1)
        };
        let to = match role.map_or(ReadRole::Any, |r| r.role) {
            ReadRole::Any => "any".to_string(),
            ReadRole::Guests => "guests".to_string(),
            ReadRole::Users => "users".to_string(),
            ReadRole::Team => format!("team:t{}", mix(pick) % sc.session.teams.max(1)),
            ReadRole::User => format!("user:u{}", mix(pick) % users),
        };
        let channel = if p.per_channel {
            &self.channels[(i % self.channels.len() as u64) as usize]
        } else {
            &self.channels[(mix(pick ^ 0xc4a1) % self.channels.len() as u64) as usize]
        };
        let payload = stamp::payload(now_ns(), seq, &to, p.payload_bytes);
        Event {
            seq,
            to,
            channel,
            payload,
        }
    }
}

/// One event as published.
struct Event<'a> {
    seq: u64,
    to: String,
    channel: &'a str,
    payload: String,
}

/// A publisher's schedule: when event i is due, and how many there are.
struct Schedule {
    first_ns: u64,
    end_ns: u64,
    rate: f64,
}

impl Schedule {
    fn due(&self, i: u64) -> Option<u64> {
        let due = self.first_ns + (i as f64 / self.rate * 1e9) as u64;
        (due < self.end_ns).then_some(due)
    }

    fn count(&self) -> u64 {
        let span = self.end_ns.saturating_sub(self.first_ns) as f64 / 1e9;
        (span * self.rate).ceil() as u64
    }
}

/// Sleeps until `due` (CLOCK_REALTIME ns).
async fn until(due: u64) {
    let now = now_ns();
    if due > now {
        tokio::time::sleep(Duration::from_nanos(due - now)).await;
    }
}

/// Runs every publisher of `sc` until the hold ends or `stop` is set.
pub async fn run(sc: Rc<Scenario>, start_ns: u64, stop: Rc<Cell<bool>>) -> Published {
    let run = Rc::new(Run {
        channels: Population::new(&sc).all_channels(),
        sc: sc.clone(),
        out: RefCell::default(),
        seq: Cell::new(0),
        stop,
    });
    let mut tasks = Vec::new();
    let end_ns = start_ns + (sc.hold_end_s() * 1e9) as u64;
    for (pi, p) in sc.publishers.iter().enumerate() {
        let rate = if p.per_channel {
            p.rate * run.channels.len() as f64
        } else {
            p.rate
        };
        let begin_s = p.start_s.unwrap_or_else(|| sc.arrivals_end_s());
        let stop_s = p.stop_s.unwrap_or(f64::INFINITY).min(sc.hold_end_s());
        let schedule = Schedule {
            first_ns: start_ns + (begin_s * 1e9) as u64,
            end_ns: end_ns.min(start_ns + (stop_s * 1e9) as u64),
            rate,
        };
        run.out.borrow_mut().scheduled += schedule.count();
        let task = match p.route(sc.target.protocol) {
            Via::Http => tokio::task::spawn_local(http(run.clone(), pi, schedule)),
            Via::Bus => tokio::task::spawn_local(bus(run.clone(), pi, schedule)),
            Via::Broker => tokio::task::spawn_local(broker(run.clone(), pi, schedule)),
        };
        tasks.push(task);
    }
    for t in tasks {
        let _ = t.await;
    }
    run.out.take()
}

/// `POST /v1/events` per event, when due, on as many keep-alive connections
/// as needed up to the publisher's `max_in_flight`.
async fn http(run: Rc<Run>, pi: usize, schedule: Schedule) {
    let sc = &run.sc;
    let p = &sc.publishers[pi];
    let endpoints: Vec<Endpoint> = match sc
        .target
        .urls
        .iter()
        .map(|u| Endpoint::parse(u, sc.target.protocol))
        .collect()
    {
        Ok(e) => e,
        Err(e) => return run.error(e),
    };
    let cap = p.max_in_flight;
    {
        let mut o = run.out.borrow_mut();
        o.in_flight_cap = o.in_flight_cap.max(cap);
    }
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(cap as usize));
    // Idle keep-alive connections, by endpoint.
    let idle: Rc<RefCell<Vec<Vec<TcpStream>>>> =
        Rc::new(RefCell::new(endpoints.iter().map(|_| Vec::new()).collect()));
    let in_flight = Rc::new(Cell::new(0u64));
    let mut i = 0;
    while let Some(due) = schedule.due(i) {
        until(due).await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        run.lag(due);
        if run.stop.get() {
            break;
        }
        // Requests spread over the targets, as publishers would over a cluster.
        let target = i as usize % endpoints.len();
        let endpoint = endpoints[target].clone();
        in_flight.set(in_flight.get() + 1);
        {
            let mut o = run.out.borrow_mut();
            o.in_flight_max = o.in_flight_max.max(in_flight.get());
        }
        let (seq, body) = run.document(p, i);
        let (task_run, idle, in_flight) = (run.clone(), idle.clone(), in_flight.clone());
        tokio::task::spawn_local(async move {
            let run = task_run;
            let conn = idle.borrow_mut()[target].pop();
            match post(conn, &endpoint, &run.sc.target.admin_key, &body).await {
                Ok((conn, n)) => {
                    idle.borrow_mut()[target].push(conn);
                    let mut o = run.out.borrow_mut();
                    o.events += 1;
                    match n {
                        Some(n) => o.server_deliveries += n,
                        None => o.unreported += 1,
                    }
                }
                Err(e) => {
                    let mut o = run.out.borrow_mut();
                    if e.starts_with("http_503") {
                        o.refused += 1;
                    }
                    if not_published(&e) {
                        // Alone in flight (the permit is still held), no later
                        // event took a sequence: the next one takes this one.
                        if cap == 1 {
                            run.seq.set(seq);
                        }
                    } else {
                        // Closed, timed out, or a bus that did not answer in
                        // time (Redis may still take it): maybe out.
                        o.uncertain.push(seq);
                    }
                    drop(o);
                    run.error(e)
                }
            }
            in_flight.set(in_flight.get() - 1);
            drop(permit);
        });
        i += 1;
    }
    // Let the requests in flight finish.
    let _ = slots.acquire_many(cap as u32).await;
}

/// Whether a failed publish says the event did not go out: a request
/// refused (4xx), or the server's 503 for a bus it could not reach or that
/// no process listens on (not a timeout: Redis may take the event when it
/// resumes).
fn not_published(error: &str) -> bool {
    error.starts_with("http_4")
        || ["http_503: bus_unreachable", "http_503: no_subscribers"].contains(&error)
}

/// How long one publishing request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One POST on `conn` (or a new connection), within `REQUEST_TIMEOUT`.
async fn post(
    conn: Option<TcpStream>,
    endpoint: &Endpoint,
    key: &str,
    body: &str,
) -> Result<(TcpStream, Option<u64>), String> {
    tokio::time::timeout(REQUEST_TIMEOUT, post_now(conn, endpoint, key, body))
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

/// One POST on `conn` (or a new connection); returns the connection for
/// reuse and the deliveries the server reports, if it does.
async fn post_now(
    conn: Option<TcpStream>,
    endpoint: &Endpoint,
    key: &str,
    body: &str,
) -> Result<(TcpStream, Option<u64>), String> {
    let mut s = match conn {
        Some(s) => s,
        None => {
            let s = TcpStream::connect(endpoint.addr)
                .await
                .map_err(|e| format!("connect: {}", e.kind()))?;
            let _ = s.set_nodelay(true);
            s
        }
    };
    let req = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nx-appwrite-key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        endpoint.host,
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {}", e.kind()))?;
    let mut buf = Vec::with_capacity(256);
    loop {
        if s.read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {}", e.kind()))?
            == 0
        {
            return Err("server closed the publishing connection".into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = resp.parse(&buf) {
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            let status = resp.code.unwrap_or(0);
            while buf.len() < n + len {
                if s.read_buf(&mut buf)
                    .await
                    .map_err(|e| format!("read: {}", e.kind()))?
                    == 0
                {
                    return Err("server closed mid-response".into());
                }
            }
            if status != 200 {
                // The reason the server gives (a 503's bus state), if any.
                let reason = serde_json::from_slice::<serde_json::Value>(&buf[n..n + len])
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_string));
                return Err(match reason {
                    Some(r) => format!("http_{status}: {r}"),
                    None => format!("http_{status}"),
                });
            }
            let v: serde_json::Value = serde_json::from_slice(&buf[n..n + len])
                .map_err(|_| "bad response body".to_string())?;
            return Ok((s, v["deliveries"].as_u64()));
        }
    }
}

/// The Redis channel the servers subscribe to.
const BUS_CHANNEL: &str = "realtime";

/// `PUBLISH realtime <document>` when due, pipelined on one connection;
/// events that fell due together go out in one write.
async fn bus(run: Rc<Run>, pi: usize, schedule: Schedule) {
    let Some(url) = run.sc.target.bus.clone() else {
        return run.error("via = \"bus\" needs target.bus (redis://HOST:PORT)".into());
    };
    let addr = match url
        .strip_prefix("redis://")
        .map(|a| a.trim_end_matches('/'))
    {
        Some(a) => a.to_string(),
        None => {
            return run.error(format!(
                "target.bus `{url}`: only redis://HOST:PORT is supported"
            ));
        }
    };
    let stream = match TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => return run.error(format!("bus connect: {}", e.kind())),
    };
    let _ = stream.set_nodelay(true);
    let (rx, mut tx) = stream.into_split();
    let sent = Rc::new(Cell::new(0u64));
    let done = Rc::new(Cell::new(false));
    let replies =
        tokio::task::spawn_local(read_replies(run.clone(), rx, sent.clone(), done.clone()));
    let p = &run.sc.publishers[pi];
    let mut i = 0;
    let mut wire = Vec::new();
    while let Some(due) = schedule.due(i) {
        until(due).await;
        if run.stop.get() {
            break;
        }
        wire.clear();
        let now = now_ns();
        // Everything due by now, in one write.
        while let Some(d) = schedule.due(i) {
            if d > now && !wire.is_empty() {
                break;
            }
            run.lag(d);
            let (seq, doc) = run.document(p, i);
            // Numbered as the server's own bus publishing numbers events, so
            // each server process counts events it missed.
            let numbered = format!("{{\"rtbenchSeq\":{},{}", seq + 1, &doc[1..]);
            resp_command(&mut wire, &["PUBLISH", BUS_CHANNEL, &numbered]);
            i += 1;
        }
        if let Err(e) = tx.write_all(&wire).await {
            run.error(format!("bus write: {}", e.kind()));
            break;
        }
        sent.set(i);
    }
    done.set(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), replies).await;
}

/// Counts the servers' answers to PUBLISH (`:<subscribers>`) and errors.
async fn read_replies(
    run: Rc<Run>,
    mut rx: tokio::net::tcp::OwnedReadHalf,
    sent: Rc<Cell<u64>>,
    done: Rc<Cell<bool>>,
) {
    let mut buf = Vec::with_capacity(4096);
    let mut answered = 0u64;
    loop {
        if done.get() && answered >= sent.get() {
            return;
        }
        let read = tokio::time::timeout(Duration::from_millis(200), rx.read_buf(&mut buf)).await;
        match read {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => {
                if answered < sent.get() {
                    run.error("bus closed the publishing connection".into());
                }
                return;
            }
            Ok(Ok(_)) => {}
        }
        let mut at = 0;
        while let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") {
            let line = &buf[at..at + end];
            match line.first() {
                Some(b':') => {
                    let mut o = run.out.borrow_mut();
                    o.events += 1;
                    o.unreported += 1;
                }
                Some(b'-') => run.error(format!("bus: {}", String::from_utf8_lossy(&line[1..]))),
                _ => run.error("bus: unexpected reply".into()),
            }
            answered += 1;
            at += end + 2;
        }
        buf.drain(..at);
    }
}

/// The time a broker has for the publisher's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the publisher keeps its connection alive: the session's ping
/// interval, or this when the session has none. It connects when the run
/// starts and may wait long for its first event: a broker's idle timeout
/// (RabbitMQ's Web-MQTT and Web-STOMP close a WebSocket silent for 60 s)
/// must not end it.
const PUBLISHER_KEEPALIVE: Duration = Duration::from_secs(20);

fn publisher_keepalive(sc: &Scenario) -> Duration {
    match sc.session.ping_interval_s {
        s if s > 0.0 => Duration::from_secs_f64(s),
        _ => PUBLISHER_KEEPALIVE,
    }
}

/// The protocol's own publish, when due, on one WebSocket connection to the
/// first target; the server's keepalives are answered, the protocol's own
/// sent while it is idle, and its errors counted while it goes on. A
/// connection that ends stops the publisher: the events not sent make the
/// record say fewer were sent than scheduled.
async fn broker(run: Rc<Run>, pi: usize, schedule: Schedule) {
    let sc = &run.sc;
    let protocol = sc.target.protocol;
    let endpoint = match sc.target.urls.first().map(|u| Endpoint::parse(u, protocol)) {
        Some(Ok(e)) => e,
        Some(Err(e)) => return run.error(e),
        None => return run.error("no target to publish through".into()),
    };
    let (stream, mut inbox) = match open_broker(&run, &endpoint, pi).await {
        Ok(s) => s,
        Err(e) => return run.error(format!("broker handshake: {e}")),
    };
    let (mut rx, mut tx) = stream.into_split();
    let p = &sc.publishers[pi];
    let mut mask = mix(pi as u64 ^ now_ns()) as u32 | 1;
    let (mut wire, mut message) = (Vec::new(), Vec::new());
    let keepalive = publisher_keepalive(sc);
    let mut quiet_until = tokio::time::Instant::now() + keepalive;
    let mut i = 0;
    while let Some(due) = schedule.due(i) {
        if tokio::time::Instant::now() >= quiet_until {
            if let Some((opcode, ping)) = protocols::keepalive(protocol) {
                Outbox {
                    wire: &mut wire,
                    mask: &mut mask,
                }
                .send(opcode, ping);
            }
            quiet_until = tokio::time::Instant::now() + keepalive;
        }
        if let Err(e) = answer(protocol, &mut inbox, &mut message, &mut wire, &mut mask) {
            run.error(e);
            break;
        }
        if !wire.is_empty() && tx.write_all(&std::mem::take(&mut wire)).await.is_err() {
            run.error("broker closed the publishing connection".into());
            break;
        }
        tokio::select! {
            _ = until(due) => {}
            _ = tokio::time::sleep_until(quiet_until) => continue,
            read = rx.read_buf(&mut inbox) => {
                if !matches!(read, Ok(n) if n > 0) {
                    run.error("broker closed the publishing connection".into());
                    break;
                }
                continue;
            }
        }
        if run.stop.get() {
            break;
        }
        let now = now_ns();
        let mut events = 0;
        // Everything due by now, in one write.
        while let Some(d) = schedule.due(i) {
            if d > now && events > 0 {
                break;
            }
            run.lag(d);
            let e = run.event(p, i);
            let (opcode, bytes) = protocols::publish(protocol, e.channel, &e.payload)
                .expect("a broker protocol publishes");
            Outbox {
                wire: &mut wire,
                mask: &mut mask,
            }
            .send(opcode, &bytes);
            events += 1;
            i += 1;
        }
        if tx.write_all(&std::mem::take(&mut wire)).await.is_err() {
            run.error("broker closed the publishing connection".into());
            break;
        }
        quiet_until = tokio::time::Instant::now() + keepalive;
        let mut o = run.out.borrow_mut();
        o.events += events;
        o.unreported += events;
    }
}

/// The publisher's connection to a broker, through the protocol's
/// handshake as a client without channels; returns it and what came after.
async fn open_broker(
    run: &Run,
    endpoint: &Endpoint,
    pi: usize,
) -> Result<(TcpStream, Vec<u8>), String> {
    let protocol = run.sc.target.protocol;
    let mut s = TcpStream::connect(endpoint.addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = s.set_nodelay(true);
    let hello = Hello {
        channels: Vec::new(),
        client_id: format!("rtbench-publisher-{}-{pi}", std::process::id()),
        keepalive_s: publisher_keepalive(&run.sc).as_secs_f64(),
    };
    let path = protocols::upgrade_path(protocol, &endpoint.path, &Population::new(&run.sc), None);
    let mut c = Connecting::new(
        0,
        0,
        &endpoint.host,
        &path,
        now_ns(),
        Greeting::new(protocol, hello),
    );
    let mut counters = Counters::default();
    let mut buf = vec![0u8; 16 * 1024];
    let handshake = async {
        loop {
            let out = c.take_outgoing();
            s.write_all(&out)
                .await
                .map_err(|e| format!("write: {}", e.kind()))?;
            let n = s
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {}", e.kind()))?;
            let step = if n == 0 {
                c.ended()
            } else {
                c.feed(&buf[..n], &mut counters)
            };
            match step {
                Step::Wait => {}
                Step::Open(rest) => {
                    let out = c.take_outgoing();
                    s.write_all(&out)
                        .await
                        .map_err(|e| format!("write: {}", e.kind()))?;
                    return Ok(rest);
                }
                Step::Failed(reason) => return Err(reason),
            }
        }
    };
    let rest = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))?;
    Ok((s, rest))
}

/// Reads the whole frames of `inbox` (a stream protocol's unfinished
/// message kept in `message`): the server's keepalives are answered into
/// `wire`; its errors and its close are the error returned.
fn answer(
    protocol: rtbench_record::scenario::Protocol,
    inbox: &mut Vec<u8>,
    message: &mut Vec<u8>,
    wire: &mut Vec<u8>,
    mask: &mut u32,
) -> Result<(), String> {
    let mut at = 0;
    let mut out = Outbox { wire, mask };
    let mut error = None;
    while let Some(f) = frame::parse(
        &mut inbox[at..],
        crate::handshake::MAX_FRAME,
        Sender::Server,
    )
    .map_err(|_| "broker broke the WebSocket framing".to_string())?
    {
        let payload = &inbox[at + f.payload_start..at + f.end()];
        match f.opcode {
            frame::OP_CLOSE => {
                return Err(format!(
                    "broker closed the publishing connection ({})",
                    frame::close_code(payload)
                ));
            }
            frame::OP_PING => out.send(frame::OP_PONG, payload),
            frame::OP_TEXT | frame::OP_BINARY => {
                message.extend_from_slice(payload);
                let used = protocols::read(protocol, f.opcode, message, &mut |m| match m {
                    protocols::Msg::Answer(opcode, answer) => out.send(opcode, answer),
                    protocols::Msg::Error(key) => error = Some(format!("broker: {key}")),
                    _ => {}
                })
                .map_err(|_| "broker broke its protocol".to_string())?;
                message.drain(..used);
            }
            _ => {}
        }
        at += f.end();
    }
    inbox.drain(..at);
    error.map_or(Ok(()), Err)
}

/// Appends one command in RESP (what redis-cli sends).
fn resp_command(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clear_refusal_gives_its_sequence_back() {
        assert!(not_published("http_503: no_subscribers"));
        assert!(not_published("http_503: bus_unreachable"));
        assert!(not_published("http_401"));
        assert!(!not_published("http_503: bus_timeout"));
        assert!(!not_published("server closed the publishing connection"));
        assert!(!not_published("timeout"));
    }

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        resp_command(&mut out, &["PUBLISH", "realtime", "{}"]);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$8\r\nrealtime\r\n$2\r\n{}\r\n"
        );
    }

    #[test]
    fn a_schedule_counts_what_falls_before_its_end() {
        let s = Schedule {
            first_ns: 0,
            end_ns: 2_000_000_000,
            rate: 100.0,
        };
        assert_eq!(s.count(), 200);
        assert_eq!(s.due(199), Some(1_990_000_000));
        assert_eq!(s.due(200), None);
    }
}

//! Helpers for tests that start the real server on loopback and talk to it
//! as a WebSocket client would.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rtbench_protocol::jwt::{Claims, Team, mint};
use rtbench_server::{Config, Server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const SECRET: &str = "test-secret";
pub const KEY: &str = "test-key";
/// Bound on any single wait: generous, since a failure, not a timing, is tested.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts a server on an ephemeral loopback port with test settings, adjusted by `f`.
pub async fn start(f: impl FnOnce(&mut Config)) -> Server {
    let mut c = Config::for_listen("127.0.0.1:0".parse().unwrap());
    c.projects = vec!["p1".into(), "p2".into()];
    c.jwt_secret = SECRET.into();
    c.admin_key = KEY.into();
    f(&mut c);
    Server::start(c).await.expect("server starts")
}

pub fn token(sub: &str, teams: &[(&str, &[&str])], labels: &[&str], exp_in: i64) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp: (rtbench_protocol::jwt::now_secs() as i64 + exp_in) as u64,
        teams: teams
            .iter()
            .map(|(id, roles)| Team {
                id: (*id).into(),
                roles: roles.iter().map(|r| (*r).into()).collect(),
            })
            .collect(),
        labels: labels.iter().map(|l| (*l).into()).collect(),
    };
    mint(&claims, SECRET.as_bytes())
}

/// Opens `/v1/realtime?{query}` with extra headers.
pub async fn connect_with(addr: SocketAddr, query: &str, headers: &[(&'static str, &str)]) -> Ws {
    let mut req = format!("ws://{addr}/v1/realtime?{query}")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

pub async fn connect(addr: SocketAddr, query: &str) -> Ws {
    connect_with(addr, query, &[]).await
}

/// Connects and checks the `connected` frame; returns it with the socket.
pub async fn connect_ok(addr: SocketAddr, query: &str) -> (Ws, Value) {
    let mut ws = connect(addr, query).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connected", "{hello}");
    (ws, hello)
}

/// The next text frame as JSON (WebSocket pings are answered by the client).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within the wait")
            .expect("open");
        match msg.expect("no error") {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Reads until the server's close frame; returns its code.
pub async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close within the wait")
        {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) => return u16::from(CloseCode::Status),
            Some(Ok(_)) => continue,
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => {
                panic!("closed without a close frame")
            }
            Some(Err(e)) => panic!("error before the close frame: {e}"),
        }
    }
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Every frame before the answer to a `ping` message: since the server answers
/// in order, that is everything delivered before the ping was sent.
pub async fn drain(ws: &mut Ws) -> Vec<Value> {
    send_json(ws, json!({"type": "ping"})).await;
    let mut got = Vec::new();
    loop {
        let v = next_json(ws).await;
        if v["type"] == "pong" {
            return got;
        }
        got.push(v);
    }
}

/// A minimal HTTP/1.1 request; returns (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Publishes an event; returns how many connections received it.
pub async fn publish(
    addr: SocketAddr,
    project: &str,
    channels: &[&str],
    roles: &[&str],
    payload: Value,
) -> u64 {
    let doc = json!({
        "project": project, "roles": roles, "permissionsChanged": false, "userId": null,
        "data": {"events": ["test.event"], "channels": channels, "timestamp": "2026-11-28T00:00:00.000+00:00", "payload": payload}
    });
    let (status, body) = http(
        addr,
        "POST",
        "/v1/events",
        &[("x-appwrite-key", KEY)],
        &doc.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["deliveries"]
        .as_u64()
        .unwrap()
}

/// One value of the server's /metrics, by its full name with labels.
pub async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (_, text) = http(addr, "GET", "/metrics", &[], "").await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("/metrics has no {name}:\n{text}"))
}

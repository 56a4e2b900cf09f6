//! Several server processes sharing events over a real Redis: exactly-once
//! delivery wherever an event is published, and surviving Redis going away.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rtbench_server::Server;
use serde_json::{Value, json};

/// Debian's redis-server on a loopback port of its own, without persistence.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// On a port free when chosen; should another process take it first,
    /// that redis-server exits and the next port is tried.
    fn start() -> Redis {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(r) = Redis::start_on(port) {
                return r;
            }
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    /// On `port` (a restart: the port it had); `None` if it did not come up.
    fn start_on(port: u16) -> Option<Redis> {
        use std::io::{Read, Write};
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (cargo xtask ci installs it)");
        let t0 = Instant::now();
        while t0.elapsed() < WAIT {
            if child.try_wait().unwrap().is_some() {
                return None; // it could not bind
            }
            // Our redis answers PING, not whatever else may hold the port.
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut pong = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut pong).is_ok()
                    && &pong == b"+PONG\r\n"
                {
                    return Some(Redis { child, port });
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` to redis-server: SIGSTOP leaves it holding its
    /// sockets and answering nothing (a hung Redis), SIGCONT resumes it.
    fn signal(&self, signal: rtbench_sys::process::Signal) {
        rtbench_sys::process::signal(self.child.id(), signal).unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn servers(n: usize, bus: &str) -> Vec<Server> {
    let mut out = Vec::new();
    for _ in 0..n {
        let bus = bus.to_string();
        out.push(start(move |c| c.bus = Some(bus)).await);
    }
    for s in &out {
        wait_for(s.local_addr(), "rtbench_bus_up", 1).await;
    }
    out
}

async fn wait_for(addr: SocketAddr, metric_name: &str, value: u64) {
    let t0 = Instant::now();
    while metric(addr, metric_name).await != value {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{metric_name} never became {value} at {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_event(
    addr: SocketAddr,
    channels: &[&str],
    roles: &[&str],
    payload: Value,
) -> (u16, Value) {
    let doc = json!({"project": "p1", "roles": roles, "permissionsChanged": false, "userId": null,
        "data": {"events": ["test.event"], "channels": channels, "payload": payload}});
    let (status, body) = http(
        addr,
        "POST",
        "/v1/events",
        &[("x-appwrite-key", KEY)],
        &doc.to_string(),
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_anywhere_reaches_every_permitted_subscriber_once() {
    let redis = Redis::start();
    let servers = servers(3, &redis.url()).await;
    // On each process: a guest on `files`, a user on `files`, and a guest elsewhere.
    let mut clients = Vec::new();
    for s in &servers {
        let a = s.local_addr();
        clients.push((
            "guest",
            connect_ok(a, "project=p1&channels[]=files").await.0,
        ));
        clients.push((
            "user",
            connect_ok(
                a,
                &format!(
                    "project=p1&channels[]=files&jwt={}",
                    token("u1", &[], &[], 3600)
                ),
            )
            .await
            .0,
        ));
        clients.push(("other", connect_ok(a, "project=p1&channels[]=docs").await.0));
    }
    let cases: &[(&[&str], &str)] = &[
        (&["files"], "any"),
        (&["files"], "users"),
        (&["files"], "guests"),
        (&["docs"], "any"),
    ];
    for (i, (channels, role)) in cases.iter().enumerate() {
        // Publish each event at a different process.
        let (status, body) = post_event(
            servers[i % 3].local_addr(),
            channels,
            &[role],
            json!({"i": i}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"published": true, "subscribers": 3}));
    }
    // Every process has taken every event off the bus before the clients
    // ask what they got (a publish is answered once Redis has it).
    for s in &servers {
        wait_for(s.local_addr(), "rtbench_bus_events_in_total", 4).await;
    }
    for (kind, ws) in &mut clients {
        let got: Vec<u64> = drain(ws)
            .await
            .iter()
            .map(|e| e["data"]["payload"]["i"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = match *kind {
            "guest" => vec![0, 2],
            "user" => vec![0, 1],
            _ => vec![3],
        };
        assert_eq!(got, want, "{kind}");
    }
    for s in &servers {
        assert_eq!(
            metric(s.local_addr(), "rtbench_bus_events_in_total").await,
            4
        );
        assert_eq!(
            metric(s.local_addr(), "rtbench_bus_events_missed_total").await,
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_keeps_connections_and_delivery_resumes() {
    let mut redis = Redis::start();
    let port = redis.port;
    let servers = servers(3, &redis.url()).await;
    let mut clients = Vec::new();
    for s in &servers {
        clients.push(
            connect_ok(s.local_addr(), "project=p1&channels[]=files")
                .await
                .0,
        );
    }
    drop(redis);
    for s in &servers {
        wait_for(s.local_addr(), "rtbench_bus_up", 0).await;
    }
    // While Redis is away: publishing is refused with a reason, connections stay.
    let (status, body) = post_event(
        servers[0].local_addr(),
        &["files"],
        &["any"],
        json!({"lost": true}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["message"].as_str().unwrap().contains("bus"), "{body}");
    assert_eq!(
        metric(servers[0].local_addr(), "rtbench_bus_publish_failed_total").await,
        1
    );
    for ws in &mut clients {
        assert!(drain(ws).await.is_empty());
    }
    // Redis returns: every process resubscribes, events flow again.
    redis = Redis::start_on(port).expect("redis-server comes back on its port");
    for s in &servers {
        wait_for(s.local_addr(), "rtbench_bus_up", 1).await;
        assert_eq!(metric(s.local_addr(), "rtbench_bus_outages_total").await, 1);
        assert_eq!(metric(s.local_addr(), "rtbench_connections").await, 1);
    }
    let (status, _) = post_event(
        servers[1].local_addr(),
        &["files"],
        &["any"],
        json!({"back": true}),
    )
    .await;
    assert_eq!(status, 200);
    for ws in &mut clients {
        assert_eq!(next_json(ws).await["data"]["payload"]["back"], true);
    }
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbered_events_that_never_arrived_are_counted() {
    let redis = Redis::start();
    let servers = servers(1, &redis.url()).await;
    let addr = servers[0].local_addr();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for seq in [1u64, 2, 6] {
        let doc = json!({"rtbenchSeq": seq, "project": "p1", "roles": ["any"],
            "data": {"events": [], "channels": ["files"], "payload": {}}});
        let _: u64 = redis::cmd("PUBLISH")
            .arg("realtime")
            .arg(doc.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Appwrite's own documents carry no number and are taken as they are.
    let appwrite = json!({"project": "p1", "roles": ["any"], "permissionsChanged": false, "userId": null,
        "data": {"events": ["x"], "channels": ["files"], "timestamp": "2026-11-28T00:00:00.000+00:00", "payload": {}}});
    let _: u64 = redis::cmd("PUBLISH")
        .arg("realtime")
        .arg(appwrite.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_for(addr, "rtbench_bus_events_in_total", 4).await;
    assert_eq!(metric(addr, "rtbench_bus_events_missed_total").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_events_reach_every_reactors_clients_once_in_order_whoever_writes_them() {
    // Four reactors: the bus reactor writes an idle one's share itself or
    // queues it on that reactor's inbox; either way every client gets every
    // event once, in publishing order.
    let redis = Redis::start();
    let bus = redis.url();
    let server = start(move |c| {
        c.bus = Some(bus);
        c.threads = Some(4);
    })
    .await;
    let addr = server.local_addr();
    wait_for(addr, "rtbench_bus_up", 1).await;
    let mut clients = Vec::new();
    for _ in 0..24 {
        clients.push(connect_ok(addr, "project=p1&channels[]=files").await.0);
    }
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    const EVENTS: u64 = 300;
    for seq in 1..=EVENTS {
        let doc = json!({"rtbenchSeq": seq, "project": "p1", "roles": ["any"],
            "data": {"events": [], "channels": ["files"], "payload": {"i": seq}}});
        let _: u64 = redis::cmd("PUBLISH")
            .arg("realtime")
            .arg(doc.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        if seq % 100 == 0 {
            // Pauses let the reactors fall asleep: the next events find
            // them idle and are written on their behalf.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    wait_for(addr, "rtbench_bus_events_in_total", EVENTS).await;
    let want: Vec<u64> = (1..=EVENTS).collect();
    for ws in &mut clients {
        let got: Vec<u64> = drain(ws)
            .await
            .iter()
            .map(|e| e["data"]["payload"]["i"].as_u64().unwrap())
            .collect();
        assert_eq!(got, want);
    }
    // Each event went to each of the three other reactors one way or the other.
    let on_behalf = metric(addr, "rtbench_fanout_on_behalf_total").await;
    let handed = metric(addr, "rtbench_fanout_handed_over_total").await;
    assert_eq!(
        on_behalf + handed,
        EVENTS * 3,
        "on behalf {on_behalf}, handed over {handed}"
    );
    assert_eq!(metric(addr, "rtbench_deliveries_total").await, EVENTS * 24);
}

/// A publisher is never answered with silence: while Redis is down (stopped
/// and hung, or gone) `POST /v1/events` is a 503 that names the reason, in
/// bounded time, and the event reaches nobody; so is an event no server
/// process is subscribed to receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_while_redis_is_down_is_a_503_naming_the_reason() {
    let redis = Redis::start();
    let port = redis.port;
    let servers = servers(1, &redis.url()).await;
    let addr = servers[0].local_addr();
    let mut ws = connect_ok(addr, "project=p1&channels[]=files").await.0;
    // Up: published; the publishing connection to Redis is made and kept.
    let (status, body) = post_event(addr, &["files"], &["any"], json!({"n": 1})).await;
    assert_eq!(
        (status, &body),
        (200, &json!({"published": true, "subscribers": 1}))
    );
    assert_eq!(next_json(&mut ws).await["data"]["payload"]["n"], 1);

    // Stopped mid-test: it holds its sockets and answers nothing.
    redis.signal(rtbench_sys::process::Signal::Stop);
    let t0 = Instant::now();
    let (status, body) = post_event(addr, &["files"], &["any"], json!({"n": 2})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "bus_timeout", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 2 s"),
        "{body}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        t0.elapsed()
    );

    // Gone: connections to it are refused.
    redis.signal(rtbench_sys::process::Signal::Continue);
    drop(redis);
    wait_for(addr, "rtbench_bus_up", 0).await;
    let (status, body) = post_event(addr, &["files"], &["any"], json!({"n": 3})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "bus_unreachable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{body}"
    );
    assert_eq!(metric(addr, "rtbench_bus_publish_failed_total").await, 2);

    // Back: published again once this process has subscribed again.
    let redis = Redis::start_on(port).expect("redis-server comes back on its port");
    wait_for(addr, "rtbench_bus_up", 1).await;
    let (status, body) = post_event(addr, &["files"], &["any"], json!({"n": 4})).await;
    assert_eq!(
        (status, &body),
        (200, &json!({"published": true, "subscribers": 1}))
    );

    // No process subscribed (its subscription cut, not yet made again: it
    // retries after 100 ms): nobody would receive the event, and the
    // publisher is told so, never answered 200 for it.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (mut refused, mut published) = (0, vec![4]);
    for n in 10..30 {
        wait_for(addr, "rtbench_bus_up", 1).await;
        let _: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut conn)
            .await
            .unwrap();
        let (status, body) = post_event(addr, &["files"], &["any"], json!({"n": n})).await;
        match status {
            200 => {
                assert_eq!(body, json!({"published": true, "subscribers": 1}));
                published.push(n);
            }
            503 => {
                assert_eq!(body["reason"], "no_subscribers", "{body}");
                refused += 1;
                break;
            }
            _ => panic!("{status} {body}"),
        }
    }
    assert_eq!(
        refused, 1,
        "the subscription was back before every one of 20 publishes"
    );
    // Exactly the events published reached the subscriber; none refused as
    // unreachable or unsubscribed did. The one sent to the stopped Redis
    // (2) may have been taken when it resumed, as its 503 said.
    // A last event, once the subscription is back: the bus keeps order, so
    // once it is in, all are.
    let t0 = Instant::now();
    loop {
        let (status, body) = post_event(addr, &["files"], &["any"], json!({"n": 99})).await;
        if status == 200 {
            assert_eq!(body, json!({"published": true, "subscribers": 1}));
            break;
        }
        assert_eq!(
            (status, &body["reason"]),
            (503, &json!("no_subscribers")),
            "{body}"
        );
        assert!(t0.elapsed() < WAIT, "the subscription never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = Vec::new();
    loop {
        let n = next_json(&mut ws).await["data"]["payload"]["n"]
            .as_u64()
            .unwrap();
        if n == 99 {
            break;
        }
        if n != 2 {
            got.push(n);
        }
    }
    assert_eq!(got, published);
}

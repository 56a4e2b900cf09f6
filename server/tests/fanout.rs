//! Fan-out over real sockets: exactly-once delivery to exactly the permitted
//! subscribers, slow consumers, and shutdown.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A connection the property test opens: project, channels, user (with teams
/// and labels) or guest.
#[derive(Debug, Clone)]
struct Client {
    project: u8,
    channels: Vec<u8>,
    user: Option<(u8, Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone)]
struct Ev {
    project: u8,
    channels: Vec<u8>,
    roles: Vec<String>,
}

fn roles_of(c: &Client) -> Vec<String> {
    let mut r = vec!["any".to_string()];
    match &c.user {
        None => r.push("guests".into()),
        Some((u, teams, labels)) => {
            r.extend([
                format!("user:u{u}"),
                "users".into(),
                format!("user:u{u}/verified"),
                "users/verified".into(),
            ]);
            for t in teams {
                r.extend([format!("team:t{t}"), format!("team:t{t}/member")]);
            }
            r.extend(labels.iter().map(|l| format!("label:l{l}")));
        }
    }
    r
}

fn client() -> impl Strategy<Value = Client> {
    (
        0..2u8,
        prop::collection::vec(0..5u8, 1..4),
        prop::option::of((
            0..4u8,
            prop::collection::vec(0..3u8, 0..3),
            prop::collection::vec(0..2u8, 0..2),
        )),
    )
        .prop_map(|(project, channels, user)| Client {
            project,
            channels,
            user,
        })
}

fn event() -> impl Strategy<Value = Ev> {
    let role = prop_oneof![
        Just("any".to_string()),
        Just("guests".to_string()),
        Just("users".to_string()),
        (0..4u8).prop_map(|u| format!("user:u{u}")),
        (0..3u8).prop_map(|t| format!("team:t{t}")),
        (0..3u8).prop_map(|t| format!("team:t{t}/member")),
        (0..2u8).prop_map(|l| format!("label:l{l}")),
    ];
    (
        0..2u8,
        prop::collection::vec(0..5u8, 1..3),
        prop::collection::vec(role, 1..3),
    )
        .prop_map(|(project, channels, roles)| Ev {
            project,
            channels,
            roles,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random connections and events: the deliveries each client sees equal a
    /// brute-force model of the permission rules, each event once.
    #[test]
    fn deliveries_equal_the_brute_force_model(
        clients in prop::collection::vec(client(), 1..25),
        events in prop::collection::vec(event(), 1..25),
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let server = start(|_| {}).await;
            let addr = server.local_addr();
            let mut sockets = Vec::new();
            for c in &clients {
                let mut q = format!("project=p{}", c.project + 1);
                for ch in &c.channels {
                    q.push_str(&format!("&channels[]=c{ch}"));
                }
                if let Some((u, teams, labels)) = &c.user {
                    let teams: Vec<(String, Vec<&str>)> = teams.iter().map(|t| (format!("t{t}"), vec!["member"])).collect();
                    let teams: Vec<(&str, &[&str])> = teams.iter().map(|(t, r)| (t.as_str(), r.as_slice())).collect();
                    let labels: Vec<String> = labels.iter().map(|l| format!("l{l}")).collect();
                    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                    q.push_str(&format!("&jwt={}", token(&format!("u{u}"), &teams, &labels, 3600)));
                }
                sockets.push(connect_ok(addr, &q).await.0);
            }
            for (i, e) in events.iter().enumerate() {
                let channels: Vec<String> = e.channels.iter().map(|c| format!("c{c}")).collect();
                let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
                let roles: Vec<&str> = e.roles.iter().map(String::as_str).collect();
                publish(addr, &format!("p{}", e.project + 1), &channels, &roles, json!({"i": i})).await;
            }
            for (c, ws) in clients.iter().zip(sockets.iter_mut()) {
                let got: Vec<u64> = drain(ws).await.iter().map(|v| v["data"]["payload"]["i"].as_u64().unwrap()).collect();
                let mine = roles_of(c);
                let want: Vec<u64> = events.iter().enumerate().filter(|(_, e)| {
                    e.project == c.project
                        && e.channels.iter().any(|ch| c.channels.contains(ch))
                        && (e.roles.iter().any(|r| r == "any") || e.roles.iter().any(|r| mine.contains(r)))
                }).map(|(i, _)| i as u64).collect();
                assert_eq!(got, want, "client {c:?}");
            }
        });
    }
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1013_and_its_queue_stays_bounded() {
    let server = start(|c| c.max_outbound_bytes = 256 * 1024).await;
    let addr = server.local_addr();
    let (mut slow, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    let (mut reader, _) = connect_ok(addr, "project=p1&channels[]=other").await;
    let payload = json!({"blob": "x".repeat(16 * 1024)});
    // The slow client never reads: kernel buffers fill, then its queue, then it is closed.
    let mut sent = 0;
    let mut queued_max = 0;
    while metric(addr, "rtbench_slow_consumers_closed_total").await == 0 {
        for _ in 0..10 {
            publish(addr, "p1", &["files"], &["any"], payload.clone()).await;
            queued_max = queued_max.max(metric(addr, "rtbench_queued_bytes").await);
        }
        sent += 10;
        assert!(
            sent < 20_000,
            "no slow consumer was closed after {sent} events of 16 KiB"
        );
    }
    // The queue grew to its limit and never past it (one event frame over,
    // at most: the one that overflowed is refused, not queued).
    let frame = 16 * 1024 + 256;
    assert!(
        queued_max > 256 * 1024 - frame && queued_max <= 256 * 1024,
        "queued at most {queued_max} bytes"
    );
    assert_eq!(
        metric(addr, "rtbench_limit_hits_total{limit=\"message_bytes\"}").await,
        0
    );
    // Closed: nothing more is queued for it, however much is published.
    for _ in 0..100 {
        assert_eq!(
            publish(addr, "p1", &["files"], &["any"], payload.clone()).await,
            0
        );
    }
    // When it finally reads: events, then the 1013 close; nothing stays queued.
    assert_eq!(close_code(&mut slow).await, 1013);
    let t0 = std::time::Instant::now();
    while metric(addr, "rtbench_queued_bytes").await != 0 {
        assert!(
            t0.elapsed() < WAIT,
            "bytes stay queued for a closed connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Others are unaffected.
    publish(addr, "p1", &["other"], &["any"], json!({"ok": true})).await;
    assert_eq!(next_json(&mut reader).await["data"]["payload"]["ok"], true);
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(connect_ok(addr, "project=p1&channels[]=files").await.0);
    }
    let left = tokio::spawn(server.shutdown());
    for ws in &mut clients {
        assert_eq!(close_code(ws).await, 1001);
    }
    assert_eq!(left.await.unwrap(), 0);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn the_binary_exits_on_sigterm_after_closing_with_1001() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtbench-server"))
        .args(["--listen", "127.0.0.1:0", "--projects", "p1"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("a listening line");
        if let Some(rest) = line.strip_prefix("rtbench-server: listening on ") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let (mut a, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    let (mut b, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    rtbench_sys::process::signal(child.id().unwrap(), rtbench_sys::process::Signal::Terminate)
        .unwrap();
    assert_eq!(close_code(&mut a).await, 1001);
    assert_eq!(close_code(&mut b).await, 1001);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits in time")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut rest = BTreeSet::new();
    while let Ok(Some(l)) = lines.next_line().await {
        rest.insert(l);
    }
    assert!(
        rest.iter()
            .any(|l| l.contains("stopped (0 connections did not close in time)")),
        "{rest:?}"
    );
}

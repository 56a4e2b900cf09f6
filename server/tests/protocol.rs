//! The Realtime protocol against the real server: connecting, tokens, roles,
//! messages, errors and limits.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connected_frame_lists_channels_and_guest() {
    let server = start(|_| {}).await;
    let (_ws, hello) = connect_ok(
        server.local_addr(),
        "project=p1&channels[]=files&channels%5B%5D=buckets.b1.files",
    )
    .await;
    assert_eq!(
        hello["data"]["channels"],
        json!(["files", "buckets.b1.files"])
    );
    assert_eq!(hello["data"]["user"], json!(null));
}

#[tokio::test]
async fn project_from_header_works_and_unknown_project_is_1008() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut ws = connect_with(addr, "channels[]=files", &[("x-appwrite-project", "p2")]).await;
    assert_eq!(next_json(&mut ws).await["type"], "connected");

    for query in ["project=nope&channels[]=files", "channels[]=files"] {
        let mut ws = connect(addr, query).await;
        let err = next_json(&mut ws).await;
        assert_eq!(
            err,
            json!({"type": "error", "data": {"code": 1008, "message": "Missing or unknown project ID"}})
        );
        assert_eq!(close_code(&mut ws).await, 1008);
    }
    assert_eq!(
        metric(
            addr,
            "rtbench_connections_rejected_total{reason=\"project\"}"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn missing_channels_is_1008_unless_allowed() {
    let server = start(|_| {}).await;
    let mut ws = connect(server.local_addr(), "project=p1").await;
    assert_eq!(
        next_json(&mut ws).await["data"]["message"],
        "Missing channels"
    );
    assert_eq!(close_code(&mut ws).await, 1008);

    // Newer Appwrite: connect bare, subscribe by message.
    let server = start(|c| c.require_channels = false).await;
    let addr = server.local_addr();
    let (mut ws, hello) = connect_ok(addr, "project=p1").await;
    assert_eq!(hello["data"]["channels"], json!([]));
    send_json(
        &mut ws,
        json!({"type": "subscribe", "data": [{"subscriptionId": "s1", "channels": ["files"]}]}),
    )
    .await;
    let resp = next_json(&mut ws).await;
    assert_eq!(resp["data"]["to"], "subscribe");
    assert_eq!(resp["data"]["success"], true);
    assert_eq!(
        publish(addr, "p1", &["files"], &["any"], json!({"n": 1})).await,
        1
    );
    assert_eq!(next_json(&mut ws).await["data"]["payload"]["n"], 1);
    send_json(
        &mut ws,
        json!({"type": "unsubscribe", "data": [{"subscriptionId": "s1"}]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["data"]["to"], "unsubscribe");
    assert_eq!(
        publish(addr, "p1", &["files"], &["any"], json!({"n": 2})).await,
        0
    );
    assert!(drain(&mut ws).await.is_empty());
}

#[tokio::test]
async fn jwt_by_header_query_and_message() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let t = token("u1", &[], &["vip"], 3600);

    let mut ws = connect_with(
        addr,
        "project=p1&channels[]=account",
        &[("x-appwrite-jwt", &t)],
    )
    .await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["data"]["user"]["$id"], "u1");
    assert_eq!(hello["data"]["channels"], json!(["account.u1"]));

    let (_ws, hello) = connect_ok(addr, &format!("project=p1&channels[]=files&jwt={t}")).await;
    assert_eq!(hello["data"]["user"]["$id"], "u1");

    // A guest signs in by message: its `account` channel appears, its roles change.
    let t9 = token("u9", &[], &["vip"], 3600);
    let (mut ws, hello) = connect_ok(addr, "project=p1&channels[]=account&channels[]=files").await;
    assert_eq!(hello["data"]["channels"], json!(["files"]));
    assert_eq!(
        publish(addr, "p1", &["account.u9"], &["user:u9"], json!({})).await,
        0
    );
    assert_eq!(
        publish(addr, "p1", &["files"], &["users"], json!({})).await,
        1,
        "only the u1 connection on files"
    );
    send_json(
        &mut ws,
        json!({"type": "authentication", "data": {"session": t9}}),
    )
    .await;
    let resp = next_json(&mut ws).await;
    assert_eq!(
        resp,
        json!({"type": "response", "data": {"to": "authentication", "success": true, "user": {"$id": "u9", "labels": ["vip"]}}})
    );
    assert_eq!(
        publish(
            addr,
            "p1",
            &["account.u9"],
            &["user:u9"],
            json!({"who": "u9"})
        )
        .await,
        1
    );
    assert_eq!(next_json(&mut ws).await["data"]["payload"]["who"], "u9");
}

#[tokio::test]
async fn bad_and_expired_tokens() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let expired = token("u1", &[], &[], -10);
    let forged = {
        let t = token("u1", &[], &[], 3600);
        format!("{}x", &t[..t.len() - 1])
    };
    // On connect: an error frame, then the connection stays, as a guest.
    for bad in [&expired, &forged, &"garbage".to_string()] {
        let mut ws = connect_with(
            addr,
            "project=p1&channels[]=files",
            &[("x-appwrite-jwt", bad)],
        )
        .await;
        let err = next_json(&mut ws).await;
        assert_eq!(err["type"], "error");
        assert_eq!(err["data"]["code"], 1008);
        let hello = next_json(&mut ws).await;
        assert_eq!(hello["data"]["user"], json!(null));
    }
    // By message: an error frame and the connection is closed with 1008.
    let (mut ws, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    send_json(
        &mut ws,
        json!({"type": "authentication", "data": {"session": expired}}),
    )
    .await;
    let err = next_json(&mut ws).await;
    assert_eq!(err["data"]["code"], 1008);
    assert!(
        err["data"]["message"].as_str().unwrap().contains("expired"),
        "{err}"
    );
    assert_eq!(close_code(&mut ws).await, 1008);
}

#[tokio::test]
async fn permission_matrix() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let q = "project=p1&channels[]=files&channels[]=account";
    let (mut guest, hello) = connect_ok(addr, q).await;
    assert_eq!(hello["data"]["channels"], json!(["files"]));
    let (mut u1, hello) =
        connect_ok(addr, &format!("{q}&jwt={}", token("u1", &[], &[], 3600))).await;
    assert_eq!(hello["data"]["channels"], json!(["files", "account.u1"]));
    let (mut u2, _) = connect_ok(
        addr,
        &format!("{q}&jwt={}", token("u2", &[("t1", &["owner"])], &[], 3600)),
    )
    .await;
    let (mut u3, _) = connect_ok(
        addr,
        &format!("{q}&jwt={}", token("u3", &[], &["vip"], 3600)),
    )
    .await;
    let (mut other, _) = connect_ok(addr, "project=p2&channels[]=files").await;

    let cases: &[(&[&str], &[&str], [bool; 4])] = &[
        (&["files"], &["any"], [true, true, true, true]),
        (&["files"], &["guests"], [true, false, false, false]),
        (&["files"], &["users"], [false, true, true, true]),
        (&["files"], &["users/verified"], [false, true, true, true]),
        (&["files"], &["user:u1"], [false, true, false, false]),
        (
            &["files"],
            &["user:u1/verified"],
            [false, true, false, false],
        ),
        (&["files"], &["team:t1"], [false, false, true, false]),
        (&["files"], &["team:t1/owner"], [false, false, true, false]),
        (&["files"], &["team:t1/member"], [false; 4]),
        (&["files"], &["label:vip"], [false, false, false, true]),
        (
            &["files"],
            &["guests", "label:vip", "user:u1"],
            [true, true, false, true],
        ),
        (&["account.u1"], &["user:u1"], [false, true, false, false]),
        (&["account.u1"], &["any"], [false, true, false, false]),
        (&["account"], &["any"], [false; 4]),
        (&["documents"], &["any"], [false; 4]),
        (
            &["files", "account.u1", "files"],
            &["any", "users"],
            [true, true, true, true],
        ),
    ];
    for (i, (channels, roles, want)) in cases.iter().enumerate() {
        let n = publish(addr, "p1", channels, roles, json!({"case": i})).await;
        assert_eq!(
            n as usize,
            want.iter().filter(|w| **w).count(),
            "case {i}: {channels:?} {roles:?}"
        );
    }
    for (who, ws) in [&mut guest, &mut u1, &mut u2, &mut u3]
        .into_iter()
        .enumerate()
    {
        let got: Vec<u64> = drain(ws)
            .await
            .iter()
            .map(|e| e["data"]["payload"]["case"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.2[who])
            .map(|(i, _)| i as u64)
            .collect();
        assert_eq!(got, want, "connection {who}");
    }
    assert!(
        drain(&mut other).await.is_empty(),
        "another project's connection received p1's events"
    );
}

#[tokio::test]
async fn event_frame_is_the_documents_data() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let (mut ws, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    publish(
        addr,
        "p1",
        &["files", "buckets.b1.files"],
        &["any"],
        json!({"$id": "f1", "size": 3}),
    )
    .await;
    let ev = next_json(&mut ws).await;
    assert_eq!(
        ev,
        json!({"type": "event", "data": {"events": ["test.event"], "channels": ["files", "buckets.b1.files"],
            "timestamp": "2026-11-28T00:00:00.000+00:00", "payload": {"$id": "f1", "size": 3}}})
    );
}

#[tokio::test]
async fn ping_pong_and_websocket_ping() {
    let server = start(|_| {}).await;
    let (mut ws, _) = connect_ok(server.local_addr(), "project=p1&channels[]=files").await;
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "pong"}));
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    match futures_util::StreamExt::next(&mut ws)
        .await
        .unwrap()
        .unwrap()
    {
        Message::Pong(p) => assert_eq!(&p[..], b"hi"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn each_ping_costs_one_read_and_one_write_and_the_counters_show_it() {
    let server = start(|c| c.threads = Some(1)).await;
    let addr = server.local_addr();
    let (mut ws, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    let counters = |text: String| -> [u64; 3] {
        [
            "rtbench_read_syscalls_total",
            "rtbench_write_syscalls_total",
            "rtbench_pongs_total",
        ]
        .map(|name| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap()
        })
    };
    let before = counters(http(addr, "GET", "/metrics", &[], "").await.1);
    for _ in 0..10 {
        send_json(&mut ws, json!({"type": "ping"})).await;
        assert_eq!(next_json(&mut ws).await, json!({"type": "pong"}));
    }
    let after = counters(http(addr, "GET", "/metrics", &[], "").await.1);
    // Ten pings: ten reads and ten writes, plus one read for the second
    // /metrics request's head (a reactor reads it before handing it on).
    assert_eq!(
        [
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2]
        ],
        [11, 10, 10]
    );
}

#[tokio::test]
async fn malformed_messages_are_1003_and_the_connection_stays() {
    let server = start(|_| {}).await;
    let (mut ws, _) = connect_ok(server.local_addr(), "project=p1&channels[]=files").await;
    for bad in [
        "{not json",
        "[]",
        r#"{"type":"dance"}"#,
        r#"{"data":{}}"#,
        r#"{"type":"subscribe","data":7}"#,
    ] {
        ws.send(Message::text(bad)).await.unwrap();
        let err = next_json(&mut ws).await;
        assert_eq!(err["type"], "error", "{bad}");
        assert_eq!(err["data"]["code"], 1003, "{bad}");
    }
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["data"]["code"], 1003);
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
}

#[tokio::test]
async fn fragmented_messages_are_assembled() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
    let server = start(|_| {}).await;
    let (mut ws, _) = connect_ok(server.local_addr(), "project=p1&channels[]=files").await;
    let part = |fin: bool, opcode: OpCode, data: &'static [u8]| {
        let header = FrameHeader {
            is_final: fin,
            opcode,
            ..FrameHeader::default()
        };
        Message::Frame(Frame::from_payload(header, data.to_vec().into()))
    };
    ws.send(part(false, OpCode::Data(Data::Text), b"{\"type\":"))
        .await
        .unwrap();
    ws.send(part(false, OpCode::Data(Data::Continue), b"\"pi"))
        .await
        .unwrap();
    ws.send(part(true, OpCode::Data(Data::Continue), b"ng\"}"))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"type": "pong"}));
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let (mut ws, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    ws.send(Message::text("x".repeat(64_001))).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1009);
    // The server is unharmed.
    let (mut ws, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
}

#[tokio::test]
async fn message_rate_limit_is_1013_and_keeps_the_connection() {
    let server = start(|c| c.message_rate = Some(3)).await;
    let (mut ws, _) = connect_ok(server.local_addr(), "project=p1&channels[]=files").await;
    for _ in 0..3 {
        send_json(&mut ws, json!({"type": "ping"})).await;
        assert_eq!(next_json(&mut ws).await["type"], "pong");
    }
    send_json(&mut ws, json!({"type": "ping"})).await;
    let err = next_json(&mut ws).await;
    assert_eq!(
        err["data"],
        json!({"code": 1013, "message": "Too many messages"})
    );
    // Kept while under twice the allowance (messages 5 and 6), closed past it.
    for _ in 0..2 {
        send_json(&mut ws, json!({"type": "ping"})).await;
        assert_eq!(next_json(&mut ws).await["data"]["code"], 1013);
    }
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await["data"]["code"], 1013);
    assert_eq!(close_code(&mut ws).await, 1013);
}

#[tokio::test]
async fn connect_rate_limit_and_full_server_are_1013() {
    let server = start(|c| c.connect_rate = Some(2)).await;
    let addr = server.local_addr();
    let _a = connect_ok(addr, "project=p1&channels[]=files").await;
    let _b = connect_ok(addr, "project=p1&channels[]=files").await;
    let mut ws = connect(addr, "project=p1&channels[]=files").await;
    assert_eq!(next_json(&mut ws).await["data"]["code"], 1013);
    assert_eq!(close_code(&mut ws).await, 1013);
    assert_eq!(
        metric(
            addr,
            "rtbench_connections_rejected_total{reason=\"connect_rate\"}"
        )
        .await,
        1
    );

    let server = start(|c| c.max_connections = 2).await;
    let addr = server.local_addr();
    let (a, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    let _b = connect_ok(addr, "project=p1&channels[]=files").await;
    let mut ws = connect(addr, "project=p1&channels[]=files").await;
    assert_eq!(
        next_json(&mut ws).await["data"],
        json!({"code": 1013, "message": "Server is full"})
    );
    assert_eq!(close_code(&mut ws).await, 1013);
    assert_eq!(
        metric(addr, "rtbench_connections_rejected_total{reason=\"full\"}").await,
        1
    );
    // A slot freed is a slot to take.
    drop(a);
    let mut tries = 0;
    loop {
        let mut ws = connect(addr, "project=p1&channels[]=files").await;
        if next_json(&mut ws).await["type"] == "connected" {
            break;
        }
        tries += 1;
        assert!(tries < 50, "the freed slot never came back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_endpoint_checks_key_and_document() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let doc = r#"{"project":"p1","roles":["any"],"data":{"events":[],"channels":["files"],"payload":{}}}"#;
    assert_eq!(http(addr, "POST", "/v1/events", &[], doc).await.0, 401);
    assert_eq!(
        http(
            addr,
            "POST",
            "/v1/events",
            &[("x-appwrite-key", "wrong")],
            doc
        )
        .await
        .0,
        401
    );
    let (status, body) = http(
        addr,
        "POST",
        "/v1/events",
        &[("x-appwrite-key", KEY)],
        "{\"project\":",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid event document"), "{body}");
    let (status, body) = http(
        addr,
        "POST",
        "/v1/events",
        &[("x-appwrite-key", KEY)],
        r#"{"project":"p1","roles":[],"data":{}}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("missing field `events`"), "{body}");
    assert_eq!(
        http(addr, "POST", "/v1/events", &[("x-appwrite-key", KEY)], doc).await,
        (200, r#"{"deliveries":0}"#.into())
    );
    assert_eq!(metric(addr, "rtbench_events_invalid_total").await, 2);
}

#[tokio::test]
async fn health_metrics_and_unknown_paths() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    assert_eq!(
        http(addr, "GET", "/health", &[], "").await,
        (200, r#"{"status":"pass"}"#.into())
    );
    assert_eq!(http(addr, "GET", "/nope", &[], "").await.0, 404);
    assert_eq!(
        http(addr, "GET", "/v1/realtime?project=p1", &[], "")
            .await
            .0,
        426
    );
    let _c = connect_ok(addr, "project=p1&channels[]=files").await;
    assert_eq!(metric(addr, "rtbench_connections").await, 1);
    assert!(metric(addr, "rtbench_process_resident_memory_bytes").await > 0);
    assert!(metric(addr, "rtbench_frames_out_total").await >= 1);
}

#[tokio::test]
async fn garbage_on_the_socket_never_takes_the_server_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    // Each input, and the status line it must be answered with before the
    // server ends the connection (read to the end: the server has handled it).
    let inputs: &[(&[u8], &str)] = &[
        (b"\x00\x01\x02\xff\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", "HTTP/1.1 404 "),
        (b"GET /v1/realtime?project=p1&channels[]=files HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400 "),
        (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: test-key\r\nContent-Length: 99999999999\r\n\r\n", "HTTP/1.1 413 "),
        (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400 "),
    ];
    for (input, status) in inputs {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(input).await.unwrap();
        if input.ends_with(b"GET") {
            s.shutdown().await.unwrap(); // the unfinished second request ends here
        }
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
            .await
            .expect("the server ends the connection")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(status), "{input:?} => {answer}");
    }
    // Raw WebSocket garbage after a good handshake: 101, `connected`, then a
    // close for the broken frame (reserved bits: 1002).
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/realtime?project=p1&channels[]=files HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .expect("the server ends the connection")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let close = answer
        .windows(2)
        .rposition(|w| w[0] == 0x88)
        .expect("a close frame");
    assert_eq!(
        u16::from_be_bytes([answer[close + 2], answer[close + 3]]),
        1002
    );
    // Still serving, and nothing panicked.
    let (_ws, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    assert_eq!(http(addr, "GET", "/health", &[], "").await.0, 200);
    assert_eq!(metric(addr, "rtbench_panics_total").await, 0);
}

#[tokio::test]
async fn what_a_connection_may_hold_is_limited_and_each_limit_is_counted() {
    let server = start(|c| {
        c.max_subscriptions = 2;
        c.max_channels = 3;
        c.max_channel_bytes = 10;
        c.max_subscription_id_bytes = 4;
        c.max_subscription_bytes = 24;
    })
    .await;
    let addr = server.local_addr();
    let (mut ws, _) = connect_ok(addr, "project=p1&channels[]=files").await;
    let cases = [
        (
            json!([{"subscriptionId": "a", "channels": ["b", "c", "d"]}]),
            "Too many channels (at most 3)",
            "channels",
        ),
        (
            json!([{"subscriptionId": "a", "channels": ["x".repeat(11)]}]),
            "Channel name too long (at most 10 bytes)",
            "channel_bytes",
        ),
        (
            json!([{"subscriptionId": "abcde", "channels": ["b"]}]),
            "Subscription id too long (at most 4 bytes)",
            "subscription_id_bytes",
        ),
        (
            json!([{"subscriptionId": "a", "channels": ["b"]}, {"subscriptionId": "b", "channels": ["c"]}]),
            "Too many subscriptions (at most 2)",
            "subscriptions",
        ),
        (
            json!([{"subscriptionId": "a", "channels": ["bbbbbbbbbb", "cccccccccc"]}]),
            "Subscriptions too large (at most 24 bytes)",
            "subscription_bytes",
        ),
    ];
    for (data, message, limit) in cases {
        send_json(&mut ws, json!({"type": "subscribe", "data": data})).await;
        let err = next_json(&mut ws).await;
        assert_eq!(
            err,
            json!({"type": "error", "data": {"code": 1008, "message": message}})
        );
        assert_eq!(
            metric(
                addr,
                &format!("rtbench_limit_hits_total{{limit=\"{limit}\"}}")
            )
            .await,
            1,
            "{limit}"
        );
    }
    // Refused changes change nothing: the connection still has `files` only.
    assert_eq!(
        publish(addr, "p1", &["files"], &["any"], json!({"n": 1})).await,
        1
    );
    assert_eq!(
        publish(addr, "p1", &["b", "c"], &["any"], json!({"n": 2})).await,
        0
    );
    send_json(
        &mut ws,
        json!({"type": "subscribe", "data": [{"subscriptionId": "a", "channels": ["b"]}]}),
    )
    .await;
    let got = drain(&mut ws).await;
    assert_eq!(got[0]["data"]["payload"]["n"], 1);
    assert_eq!(got[1]["data"]["to"], "subscribe");
}

#[tokio::test]
async fn handshakes_and_http_connections_in_progress_are_limited() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(|c| {
        c.max_handshakes = 2;
        c.max_http_connections = 1;
    })
    .await;
    let addr = server.local_addr();
    // Clients that never send their request hold the two handshakes; the
    // next one is answered 503 at once (the ones before it may still be
    // being accepted: each probe that is not refused holds a place too).
    let mut silent = Vec::new();
    let answer = loop {
        assert!(
            silent.len() < 5,
            "no client was refused with two handshakes allowed"
        );
        let mut probe = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut answer = String::new();
        match tokio::time::timeout(
            std::time::Duration::from_millis(300),
            probe.read_to_string(&mut answer),
        )
        .await
        {
            Ok(_) => break answer,
            Err(_) => silent.push(probe),
        }
    };
    assert_eq!(silent.len(), 2, "two handshakes held before the refusal");
    assert!(
        answer.starts_with("HTTP/1.1 503 ") && answer.contains("too many handshakes"),
        "{answer}"
    );
    drop(silent);
    // One keep-alive HTTP connection in use: a second is turned away. Each
    // reactor notices its own silent client leave; until both have, a new
    // client may still be refused as a third handshake (and counted).
    let mut refusals = 1;
    let kept = loop {
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(WAIT, kept.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        if answer.starts_with("HTTP/1.1 200 ") {
            break kept;
        }
        assert!(
            answer.starts_with("HTTP/1.1 503 ") && answer.contains("too many handshakes"),
            "{answer}"
        );
        refusals += 1;
        assert!(
            refusals < 100,
            "the silent clients' handshakes were never given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let (status, body) = http(addr, "GET", "/health", &[], "").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many HTTP connections"), "{body}");
    drop(kept);
    let t0 = std::time::Instant::now();
    while http(addr, "GET", "/health", &[], "").await.0 != 200 {
        assert!(
            t0.elapsed() < WAIT,
            "the HTTP connection was not given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        metric(addr, "rtbench_limit_hits_total{limit=\"handshakes\"}").await,
        refusals
    );
    assert!(metric(addr, "rtbench_limit_hits_total{limit=\"http_connections\"}").await >= 1);
}

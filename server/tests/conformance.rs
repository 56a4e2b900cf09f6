//! Protocol conformance over real sockets, organised like Autobahn|Testsuite's
//! case categories (framing, pings, reserved bits, opcodes, fragmentation,
//! UTF-8, close handling, limits), plus the HTTP/1.1 framing (RFC 9112) and
//! the opening handshake (RFC 6455 4.2.1) the server accepts. Autobahn itself
//! cannot run here (Python 2); these cases send the bytes by hand, so each
//! one says exactly what goes on the wire and what must come back.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use rtbench_protocol::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket client that writes raw frames and reads raw frames.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A client frame with every bit chosen by the case.
fn raw_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A FIN frame of `opcode`.
fn whole(opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(0x80 | opcode, payload, true)
}

/// What the server sent back.
#[derive(Debug, PartialEq)]
enum Got {
    Frame(u8, Vec<u8>),
    /// The TCP connection ended.
    End,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Raw {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"GET /v1/realtime?project=p1&channels[]=files HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut raw = Raw { s, buf: Vec::new() };
        let head = raw.read_until(b"\r\n\r\n").await;
        assert!(
            head.starts_with(b"HTTP/1.1 101 "),
            "{}",
            String::from_utf8_lossy(&head)
        );
        match raw.next().await {
            Got::Frame(frame::OP_TEXT, p) => assert!(p.starts_with(br#"{"type":"connected""#)),
            other => panic!("expected `connected`, got {other:?}"),
        }
        raw
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match tokio::time::timeout(WAIT, self.s.read(&mut chunk))
            .await
            .expect("the server answers in time")
        {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn read_until(&mut self, end: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(end.len()).position(|w| w == end) {
                return self.buf.drain(..i + end.len()).collect();
            }
            assert!(self.fill().await, "the connection ended");
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes).await;
    }

    async fn next(&mut self) -> Got {
        loop {
            if let Some(f) = frame::parse(&mut self.buf, usize::MAX, frame::Sender::Server).unwrap()
            {
                let payload = self.buf[f.payload_start..f.end()].to_vec();
                self.buf.drain(..f.end());
                return Got::Frame(f.opcode, payload);
            }
            if !self.fill().await {
                return Got::End;
            }
        }
    }

    /// The next frame that is not an `error` message.
    async fn next_non_error(&mut self) -> Got {
        loop {
            match self.next().await {
                Got::Frame(frame::OP_TEXT, p) if p.starts_with(br#"{"type":"error""#) => continue,
                got => return got,
            }
        }
    }

    /// Expects the server's close with `code`, then the end of the connection.
    async fn closed_with(&mut self, code: u16) {
        match self.next_non_error().await {
            Got::Frame(frame::OP_CLOSE, p) => {
                assert_eq!(frame::close_code(&p), code, "close payload {p:?}")
            }
            other => panic!("expected a close with {code}, got {other:?}"),
        }
        // Our side of the close, then the server ends the connection.
        self.send(&whole(frame::OP_CLOSE, &code.to_be_bytes()))
            .await;
        assert_eq!(self.next().await, Got::End);
    }

    /// Our protocol's ping answered by pong: the connection works.
    async fn alive(&mut self) {
        self.send(&whole(frame::OP_TEXT, br#"{"type":"ping"}"#))
            .await;
        assert_eq!(
            self.next().await,
            Got::Frame(frame::OP_TEXT, br#"{"type":"pong"}"#.to_vec())
        );
    }
}

// --- 1. Framing: every length form.

#[tokio::test]
async fn framing_every_length_form_is_read() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    for len in [15, 125, 126, 127, 65535] {
        // `{"type":"ping"}` padded with JSON whitespace to `len` bytes.
        let mut msg = br#"{"type":"ping"}"#.to_vec();
        msg.splice(1..1, std::iter::repeat_n(b' ', len.min(64_000) - msg.len()));
        if len > 64_000 {
            continue;
        }
        c.send(&whole(frame::OP_TEXT, &msg)).await;
        assert_eq!(
            c.next().await,
            Got::Frame(frame::OP_TEXT, br#"{"type":"pong"}"#.to_vec()),
            "length {len}"
        );
    }
    // The 64-bit length form: a 70,000-byte frame is over the limit (1009).
    c.send(&whole(frame::OP_TEXT, &vec![b' '; 70_000])).await;
    c.closed_with(1009).await;
}

#[tokio::test]
async fn framing_a_64_bit_length_with_its_top_bit_set_is_1002_not_1009() {
    // RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0.
    // Such a frame is malformed (1002), whatever size it claims; a length
    // just under that bit is only too big (1009).
    let server = start(|_| {}).await;
    let ping = br#"{"type":"ping"}"#;
    for (top, want) in [(0x80u8, 1002u16), (0xff, 1002), (0x7f, 1009)] {
        let mut c = Raw::open(server.local_addr()).await;
        let mut f = vec![0x81, 0x80 | 127, top, 0, 0, 0, 0, 0, 0, ping.len() as u8];
        f.extend_from_slice(&MASK);
        f.extend(ping.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        c.send(&f).await;
        c.closed_with(want).await;
    }
}

#[tokio::test]
async fn framing_an_unmasked_client_frame_is_1002() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    c.send(&raw_frame(0x81, br#"{"type":"ping"}"#, false)).await;
    c.closed_with(1002).await;
}

// --- 2. Pings and pongs.

#[tokio::test]
async fn pings_are_answered_with_their_payload_and_pongs_are_ignored() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    let payload = vec![7u8; 125];
    c.send(&whole(frame::OP_PING, &payload)).await;
    assert_eq!(c.next().await, Got::Frame(frame::OP_PONG, payload));
    c.send(&whole(frame::OP_PING, b"")).await;
    assert_eq!(c.next().await, Got::Frame(frame::OP_PONG, Vec::new()));
    c.send(&whole(frame::OP_PONG, b"unsolicited")).await;
    c.alive().await;
}

#[tokio::test]
async fn pings_over_125_bytes_or_fragmented_are_1002() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    c.send(&whole(frame::OP_PING, &[0u8; 126])).await;
    c.closed_with(1002).await;
    let mut c = Raw::open(server.local_addr()).await;
    c.send(&raw_frame(frame::OP_PING, b"x", true)).await; // FIN clear
    c.closed_with(1002).await;
}

// --- 3. Reserved bits.

#[tokio::test]
async fn reserved_bits_are_1002() {
    let server = start(|_| {}).await;
    for rsv in [0x40u8, 0x20, 0x10, 0x70] {
        let mut c = Raw::open(server.local_addr()).await;
        c.send(&raw_frame(
            0x80 | rsv | frame::OP_TEXT,
            br#"{"type":"ping"}"#,
            true,
        ))
        .await;
        c.closed_with(1002).await;
    }
}

// --- 4. Opcodes.

#[tokio::test]
async fn reserved_opcodes_are_1002() {
    let server = start(|_| {}).await;
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let mut c = Raw::open(server.local_addr()).await;
        c.send(&whole(op, b"")).await;
        c.closed_with(1002).await;
    }
}

// --- 5. Fragmentation.

#[tokio::test]
async fn fragments_are_assembled_with_pings_between_them() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    c.send(&raw_frame(frame::OP_TEXT, br#"{"ty"#, true)).await;
    c.send(&whole(frame::OP_PING, b"mid")).await;
    assert_eq!(c.next().await, Got::Frame(frame::OP_PONG, b"mid".to_vec()));
    c.send(&raw_frame(frame::OP_CONTINUATION, br#"pe":"pi"#, true))
        .await;
    c.send(&raw_frame(0x80 | frame::OP_CONTINUATION, br#"ng"}"#, true))
        .await;
    assert_eq!(
        c.next().await,
        Got::Frame(frame::OP_TEXT, br#"{"type":"pong"}"#.to_vec())
    );
}

#[tokio::test]
async fn a_continuation_without_a_start_or_a_new_message_inside_one_is_1002() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    c.send(&raw_frame(0x80 | frame::OP_CONTINUATION, b"x", true))
        .await;
    c.closed_with(1002).await;
    let mut c = Raw::open(server.local_addr()).await;
    c.send(&raw_frame(frame::OP_TEXT, b"{", true)).await;
    c.send(&whole(frame::OP_TEXT, b"{}")).await;
    c.closed_with(1002).await;
}

// --- 6. UTF-8.

#[tokio::test]
async fn text_must_be_utf8_and_may_split_a_character_across_fragments() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    // "é" (c3 a9) split between two fragments of `{"type":"ping","x":"é"}`.
    c.send(&raw_frame(
        frame::OP_TEXT,
        b"{\"type\":\"ping\",\"x\":\"\xc3",
        true,
    ))
    .await;
    c.send(&raw_frame(0x80 | frame::OP_CONTINUATION, b"\xa9\"}", true))
        .await;
    assert_eq!(
        c.next().await,
        Got::Frame(frame::OP_TEXT, br#"{"type":"pong"}"#.to_vec())
    );
    c.send(&whole(
        frame::OP_TEXT,
        b"{\"type\":\"ping\",\"x\":\"\xff\"}",
    ))
    .await;
    c.closed_with(1007).await;
}

// --- 7. Close handling.

#[tokio::test]
async fn a_close_is_echoed_with_its_code_or_1000() {
    let server = start(|_| {}).await;
    for (sent, echoed) in [
        (Some(1000u16), 1000u16),
        (Some(1001), 1001),
        (Some(3000), 3000),
        (Some(4999), 4999),
        (None, 1000),
    ] {
        let mut c = Raw::open(server.local_addr()).await;
        let payload = sent
            .map(|code| [&code.to_be_bytes()[..], b"bye"].concat())
            .unwrap_or_default();
        c.send(&whole(frame::OP_CLOSE, &payload)).await;
        match c.next().await {
            Got::Frame(frame::OP_CLOSE, p) => {
                assert_eq!(frame::close_code(&p), echoed, "sent {sent:?}")
            }
            other => panic!("expected a close, got {other:?}"),
        }
        assert_eq!(
            c.next().await,
            Got::End,
            "the server ends the connection after the close"
        );
    }
}

#[tokio::test]
async fn a_malformed_close_is_answered_1002_or_1007() {
    let server = start(|_| {}).await;
    let cases: Vec<(Vec<u8>, u16)> = [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]
        .into_iter()
        .map(|code| (code.to_be_bytes().to_vec(), 1002))
        .chain([
            (vec![3], 1002),
            ([&1000u16.to_be_bytes()[..], b"\xff"].concat(), 1007),
        ])
        .collect();
    for (payload, want) in cases {
        let mut c = Raw::open(server.local_addr()).await;
        c.send(&whole(frame::OP_CLOSE, &payload)).await;
        match c.next().await {
            Got::Frame(frame::OP_CLOSE, p) => {
                assert_eq!(frame::close_code(&p), want, "sent {payload:?}")
            }
            other => panic!("expected a close, got {other:?} for {payload:?}"),
        }
    }
}

// --- 8. Limits.

#[tokio::test]
async fn a_fragmented_message_over_64000_bytes_is_1009() {
    let server = start(|_| {}).await;
    let mut c = Raw::open(server.local_addr()).await;
    c.send(&raw_frame(frame::OP_TEXT, &[b' '; 40_000], true))
        .await;
    c.send(&raw_frame(
        0x80 | frame::OP_CONTINUATION,
        &[b' '; 40_000],
        true,
    ))
    .await;
    c.closed_with(1009).await;
}

#[tokio::test]
async fn a_frame_that_does_not_arrive_whole_in_time_is_1008() {
    let server = start(|c| c.frame_timeout_ms = 300).await;
    let addr = server.local_addr();
    let mut c = Raw::open(addr).await;
    let f = whole(frame::OP_TEXT, br#"{"type":"ping"}"#);
    c.send(&f[..5]).await; // half a frame, then silence
    c.closed_with(1008).await;
    assert_eq!(
        metric(addr, "rtbench_limit_hits_total{limit=\"frame_timeout\"}").await,
        1
    );
    // A frame that does arrive, slowly but within the time, is fine.
    let mut c = Raw::open(addr).await;
    c.send(&f[..5]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send(&f[5..]).await;
    assert_eq!(
        c.next().await,
        Got::Frame(frame::OP_TEXT, br#"{"type":"pong"}"#.to_vec())
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_for_the_idle_timeout_is_closed_1001() {
    let server = start(|c| c.idle_timeout_s = 3).await;
    let addr = server.local_addr();
    let mut silent = Raw::open(addr).await;
    let mut pinging = Raw::open(addr).await;
    let ping = whole(frame::OP_TEXT, br#"{"type":"ping"}"#);
    // A ping every 200 ms (a loaded machine may hold this task back a
    // second or two: the 3 s timeout leaves room) for 6.4 s: past the
    // timeout plus its two seconds of rounding and its 1 s pass, in which
    // the silent one is closed.
    for _ in 0..32 {
        pinging.send(&ping).await;
        assert_eq!(
            pinging.next().await,
            Got::Frame(frame::OP_TEXT, br#"{"type":"pong"}"#.to_vec())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    silent.closed_with(1001).await;
    assert_eq!(
        metric(addr, "rtbench_limit_hits_total{limit=\"idle_timeout\"}").await,
        1
    );
    pinging.send(&ping).await;
    assert_eq!(
        pinging.next().await,
        Got::Frame(frame::OP_TEXT, br#"{"type":"pong"}"#.to_vec())
    );
}

// --- The opening handshake (RFC 6455 4.2.1).

/// Sends `request` on a fresh connection; returns the whole answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the server ends the connection");
    String::from_utf8_lossy(&out).into_owned()
}

fn upgrade(version: &str, host: bool, key: &str) -> Vec<u8> {
    format!(
        "GET /v1/realtime?project=p1&channels[]=files {version}\r\n{}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        if host { "Host: x\r\n" } else { "" }
    )
    .into_bytes()
}

#[tokio::test]
async fn an_upgrade_needs_http_1_1_a_host_and_a_sixteen_byte_key() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let good = "dGhlIHNhbXBsZSBub25jZQ==";
    for (request, why) in [
        (upgrade("HTTP/1.0", true, good), "HTTP/1.0"),
        (upgrade("HTTP/1.1", false, good), "no Host"),
        (upgrade("HTTP/1.1", true, "c2hvcnQ="), "an 5-byte key"),
        (
            upgrade("HTTP/1.1", true, "not base64 at all!!!!!!!"),
            "not base64",
        ),
    ] {
        let answer = exchange(addr, &request).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{why}: {answer}");
        assert!(answer.contains("Connection: close"), "{why}: {answer}");
    }
    assert_eq!(metric(addr, "rtbench_bad_handshakes_total").await, 4);
}

#[tokio::test]
async fn refusals_carry_the_headers_rfc_9110_asks_for() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let answer = exchange(
        addr,
        b"GET /v1/realtime?project=p1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 426 ") && answer.contains("\r\nUpgrade: websocket\r\n"),
        "{answer}"
    );
    let answer = exchange(
        addr,
        b"DELETE /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 405 ") && answer.contains("\r\nAllow: POST\r\n"),
        "{answer}"
    );
    let answer = exchange(
        addr,
        b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("\r\n\r\n"),
        "HEAD has no body: {answer:?}"
    );
}

// --- HTTP/1.1 framing (RFC 9112): no request hides in another's body.

#[tokio::test]
async fn a_body_is_never_read_as_the_next_request() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let smuggled = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases = [
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\n\r\n{smuggled}"
            ),
            "411 ",
        ),
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nContent-Length: 2000000\r\n\r\n{smuggled}"
            ),
            "413 ",
        ),
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            "400 ",
        ),
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd{smuggled}"
            ),
            "400 ",
        ),
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd{smuggled}"
            ),
            "400 ",
        ),
        // Chunked without the key: refused before its body, which is never read.
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            "401 ",
        ),
        // A coding before chunked is not understood (501); one after it, or
        // none, leaves the length unknown (400).
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            "501 ",
        ),
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            "400 ",
        ),
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: identity\r\n\r\n{smuggled}"
            ),
            "400 ",
        ),
        // Content-Length beside Transfer-Encoding, whichever comes first.
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            "400 ",
        ),
        // A malformed chunk (data longer than its size) ends the connection.
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n{smuggled}"
            ),
            "400 ",
        ),
        (
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd{smuggled}"
            ),
            "401 ",
        ),
    ];
    for (request, status) in cases {
        let answer = exchange(addr, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?}\n=> {answer}"
        );
        assert!(answer.contains("Connection: close"), "{answer}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "a second answer was sent: {answer}"
        );
    }
}

#[tokio::test]
async fn an_event_body_must_arrive_within_the_request_timeout_whatever_its_pace() {
    let server = start(|c| c.request_timeout_ms = 500).await;
    let addr = server.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nContent-Length: 100\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    // A byte every 150 ms: each read is quick, the body never whole in time.
    let t0 = std::time::Instant::now();
    let mut answer = Vec::new();
    for _ in 0..20 {
        if s.write_all(b" ").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut chunk = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut chunk)).await
        {
            answer.extend_from_slice(&chunk[..n]);
            if n == 0 || !answer.is_empty() {
                break;
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 408 "),
        "{answer:?} after {:?}",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        metric(addr, "rtbench_limit_hits_total{limit=\"request_timeout\"}").await,
        1
    );
}

// --- Chunked request bodies (RFC 9112 7.1).

/// An event document for project p1, channel `files`.
fn event_doc(n: u64) -> String {
    format!(
        r#"{{"project":"p1","roles":["any"],"data":{{"events":["e"],"channels":["files"],"payload":{{"n":{n}}}}}}}"#
    )
}

/// Reads one HTTP answer (head and Content-Length body) from `s`.
async fn answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let whole: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return String::from_utf8_lossy(&whole).into_owned();
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(
            n > 0,
            "the connection ended: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_chunked_event_is_published_and_the_connection_goes_on() {
    let server = start(|_| {}).await;
    let addr = server.local_addr();
    let mut ws = connect_ok(addr, "project=p1&channels[]=files").await.0;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    // Chunks of 7 bytes with extensions, a trailer, sent in pieces of 5
    // bytes that cut lines, sizes and CRLFs anywhere.
    let doc = event_doc(1);
    let body = rtbench_server::chunked::encode(
        doc.as_bytes(),
        7,
        r#" ; sig="a;b" ;x"#,
        "X-Checksum: 42\r\n",
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(5) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut buf = Vec::new();
    let a = answer(&mut s, &mut buf).await;
    assert!(
        a.starts_with("HTTP/1.1 200 ") && a.ends_with(r#"{"deliveries":1}"#),
        "{a}"
    );
    assert_eq!(next_json(&mut ws).await["data"]["payload"]["n"], 1);
    // The same connection: a second chunked event in one piece, then a GET.
    let second = rtbench_server::chunked::encode(event_doc(2).as_bytes(), 1000, "", "");
    s.write_all(
        &[
            head.as_bytes(),
            &second,
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        .concat(),
    )
    .await
    .unwrap();
    let a = answer(&mut s, &mut buf).await;
    assert!(
        a.starts_with("HTTP/1.1 200 ") && a.contains("Connection: keep-alive"),
        "{a}"
    );
    assert_eq!(next_json(&mut ws).await["data"]["payload"]["n"], 2);
    let a = answer(&mut s, &mut buf).await;
    assert!(
        a.starts_with("HTTP/1.1 200 ") && a.ends_with(r#"{"status":"pass"}"#),
        "{a}"
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_event_limit_is_413_as_soon_as_a_chunk_says_so() {
    let server = start(|c| c.max_event_bytes = 100).await;
    let addr = server.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    // 60 bytes, then a chunk announcing 60 more: 413 before its data is sent.
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(format!("{head}3c\r\n{}\r\n3c\r\n", " ".repeat(60)).as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the server ends the connection")
        .unwrap();
    let a = String::from_utf8_lossy(&out);
    assert!(
        a.starts_with("HTTP/1.1 413 ") && a.contains("Connection: close"),
        "{a}"
    );
    assert!(a.contains("event document exceeds 100 bytes"), "{a}");
    assert_eq!(
        metric(addr, "rtbench_limit_hits_total{limit=\"event_bytes\"}").await,
        1
    );
    // Exactly at the limit is fine (and with Content-Length the same).
    let doc = format!("{:<100}", event_doc(3));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = rtbench_server::chunked::encode(doc.as_bytes(), 30, "", "");
    s.write_all(&[head.as_bytes(), &body].concat())
        .await
        .unwrap();
    let a = answer(&mut s, &mut Vec::new()).await;
    assert!(a.starts_with("HTTP/1.1 200 "), "{a}");
}

#[tokio::test]
async fn a_chunked_body_must_arrive_within_the_request_timeout() {
    let server = start(|c| c.request_timeout_ms = 500).await;
    let addr = server.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    // A one-byte chunk every 150 ms: each arrives quickly, the body never ends.
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    for _ in 0..20 {
        if s.write_all(b"1\r\n \r\n").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut chunk = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut chunk)).await
        {
            out.extend_from_slice(&chunk[..n]);
            if n == 0 || !out.is_empty() {
                break;
            }
        }
    }
    let a = String::from_utf8_lossy(&out);
    assert!(
        a.starts_with("HTTP/1.1 408 "),
        "{a:?} after {:?}",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

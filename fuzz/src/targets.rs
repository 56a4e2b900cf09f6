//! The fuzz targets: every parser a client or a publisher feeds.

use rtbench_protocol::frame::{self, Sender, encode_masked};
use rtbench_protocol::jwt::{self, Claims, Team};
use rtbench_server::chunked::{self, ChunkError, Chunked};
use rtbench_server::fuzzing::SessionHarness;
use rtbench_server::handshake;
use rtbench_server::request::{Head, parse_head};
use rtbench_server::subs::{Limits, Subs, Subscription, effective};
use rtbench_server::{Config, event};

use crate::engine::Target;

pub const TARGETS: &[Target] = &[
    Target {
        name: "frame",
        seeds: frame_seeds,
        check: frame,
    },
    Target {
        name: "session",
        seeds: session_seeds,
        check: session,
    },
    Target {
        name: "http_head",
        seeds: head_seeds,
        check: http_head,
    },
    Target {
        name: "chunked",
        seeds: chunked_seeds,
        check: chunked_body,
    },
    Target {
        name: "jwt",
        seeds: jwt_seeds,
        check: jwt,
    },
    Target {
        name: "event",
        seeds: event_seeds,
        check: event_doc,
    },
    Target {
        name: "subscriptions",
        seeds: subs_seeds,
        check: subscriptions,
    },
];

const MASK: [u8; 4] = [0x5a, 0xc3, 0x11, 0x7e];
const SECRET: &str = "fuzz-secret";
/// The session target's largest frame plus header, twice (a partial frame
/// and a fragmented message), plus its outbound queue limit.
const MAX_MESSAGE: usize = 64_000;

fn text(s: &str) -> Vec<u8> {
    encode_masked(frame::OP_TEXT, s.as_bytes(), MASK)
}

fn frame_seeds() -> Vec<Vec<u8>> {
    let mut fragmented = encode_masked(frame::OP_TEXT, b"{\"ty", MASK);
    fragmented[0] &= 0x7f;
    vec![
        text(r#"{"type":"ping"}"#),
        encode_masked(frame::OP_TEXT, &[b' '; 126], MASK),
        encode_masked(frame::OP_BINARY, &[7; 70_000], MASK),
        encode_masked(frame::OP_PING, b"hello", MASK),
        encode_masked(frame::OP_CLOSE, &[3, 232, b'b', b'y', b'e'], MASK),
        fragmented,
    ]
}

/// Client frames: never a panic; a whole frame lies within the input and
/// within the limit.
fn frame(input: &[u8]) -> Result<(), String> {
    for from in [Sender::Client, Sender::Server] {
        let mut buf = input.to_vec();
        if let Ok(Some(f)) = frame::parse(&mut buf, MAX_MESSAGE, from)
            && (f.end() > input.len() || f.payload_len > MAX_MESSAGE)
        {
            return Err(format!(
                "frame {f:?} beyond its input of {} bytes",
                input.len()
            ));
        }
    }
    Ok(())
}

/// A token that stays the same whenever it is made (its expiry is fixed,
/// far ahead), so the seeds a check compares with are the ones fuzzed.
fn token(sub: &str) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp: 4_102_444_800, // 2100-01-01
        teams: vec![Team {
            id: "t1".into(),
            roles: vec!["owner".into()],
        }],
        labels: vec!["vip".into()],
    };
    jwt::mint(&claims, SECRET.as_bytes())
}

fn session_seeds() -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut first = encode_masked(
        frame::OP_TEXT,
        br#"{"type":"subscribe","data":[{"subscriptionId":"a","#,
        MASK,
    );
    first[0] &= 0x7f;
    parts.push(
        [
            first,
            encode_masked(
                frame::OP_CONTINUATION,
                br#""channels":["x","account"]}]}"#,
                MASK,
            ),
        ]
        .concat(),
    );
    parts.push(text(r#"{"type":"ping"}"#));
    parts.push(text(r#"{"type":"subscribe","data":[{"subscriptionId":"s1","channels":["files","account","c.1"]}]}"#));
    parts.push(text(
        r#"{"type":"unsubscribe","data":[{"subscriptionId":"s1"},{"subscriptionId":"default"}]}"#,
    ));
    parts.push(text(&format!(
        r#"{{"type":"authentication","data":{{"session":"{}"}}}}"#,
        token("u1")
    )));
    parts.push(encode_masked(frame::OP_PING, b"p", MASK));
    parts.push(encode_masked(frame::OP_CLOSE, &[3, 232], MASK));
    parts.push(text(r#"{"type":"dance"}"#));
    let mut seeds: Vec<Vec<u8>> = parts.clone();
    seeds.push(parts[2..6].concat());
    seeds.push(parts.concat());
    seeds
}

/// A connection's session: whatever arrives, in whatever pieces, no
/// panic, and what it holds stays within the limits.
fn session(input: &[u8]) -> Result<(), String> {
    let mut config = Config::for_listen("127.0.0.1:0".parse().expect("an address"));
    config.projects = vec!["p1".into()];
    config.jwt_secret = SECRET.into();
    let limit = 2 * (MAX_MESSAGE + 14) + config.max_outbound_bytes + 2 * MAX_MESSAGE;
    let max_channels = config.max_channels;
    // Half the input comes with the upgrade, the rest in pieces.
    let (first, rest) = input.split_at(input.len() / 2);
    let mut h = SessionHarness::new(config, first).map_err(|e| format!("harness: {e}"))?;
    for piece in rest.chunks(1 + input.len() % 97) {
        h.feed(piece);
        if h.held_bytes() > limit {
            return Err(format!(
                "the connection holds {} bytes (limit {limit})",
                h.held_bytes()
            ));
        }
        if h.channels() > max_channels {
            return Err(format!("{} channels filed", h.channels()));
        }
    }
    Ok(())
}

fn head_seeds() -> Vec<Vec<u8>> {
    vec![
        rtbench_server::fuzzing::UPGRADE.to_vec(),
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: k\r\nContent-Length: 12\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.0\r\n\r\n".to_vec(),
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3, 3\r\n\r\n".to_vec(),
        b"HEAD /health?x=%zz&channels[]=%41 HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close, Upgrade\r\n\r\n".to_vec(),
    ]
}

/// Request heads: never a panic, a head lies within its input, and framing
/// and upgrade checks answer for any head.
fn http_head(input: &[u8]) -> Result<(), String> {
    if let Head::Complete(req, n) = parse_head(input) {
        if n > input.len() {
            return Err(format!("a head of {n} bytes in {} bytes", input.len()));
        }
        let _ = req.framing();
        let _ = handshake::upgrade_accept(&req);
        let _ = req.channels();
        let _ = req.query_values("project").count();
    }
    Ok(())
}

fn chunked_seeds() -> Vec<Vec<u8>> {
    vec![
        chunked::encode(br#"{"project":"p1","data":{}}"#, 7, "", ""),
        chunked::encode(
            b"0123456789abcdef",
            5,
            r#" ; a="b;c" ;d"#,
            "X-Sum: 1\r\nY:\r\n",
        ),
        b"000\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        b"ffffffffffffffff\r\n".to_vec(),
        b"3\r\nabc\r\n1\r\n".to_vec(),
    ]
}

/// The largest body the chunked target decodes.
const CHUNKED_LIMIT: usize = 256;

/// Decodes `input` fed in pieces of `step` bytes, as `http.rs` does: the
/// body, and how many bytes it used.
fn decode_chunked(input: &[u8], step: usize) -> Result<Option<(Vec<u8>, usize)>, ChunkError> {
    let mut d = Chunked::new(CHUNKED_LIMIT);
    let mut buf: Vec<u8> = Vec::new();
    let mut used_total = 0;
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        let (used, done) = d.feed(&buf)?;
        if used > buf.len() {
            return Err(ChunkError::Malformed("used more than it was given"));
        }
        buf.drain(..used);
        used_total += used;
        if done {
            return Ok(Some((d.into_body(), used_total)));
        }
    }
    Ok(None)
}

/// Chunked bodies: never a panic, never more than the limit; the same
/// answer however the bytes arrive; and any bytes, encoded, decode back.
fn chunked_body(input: &[u8]) -> Result<(), String> {
    let whole = decode_chunked(input, input.len());
    for step in [1, 2, 3, 7, 64] {
        let pieces = decode_chunked(input, step);
        if pieces != whole {
            return Err(format!("whole: {whole:?}, in pieces of {step}: {pieces:?}"));
        }
    }
    if let Ok(Some((body, used))) = &whole
        && (body.len() > CHUNKED_LIMIT || *used > input.len())
    {
        return Err(format!(
            "a body of {} bytes, {used} of {} used",
            body.len(),
            input.len()
        ));
    }
    let data = &input[..input.len().min(CHUNKED_LIMIT)];
    let size = 1 + input.first().copied().unwrap_or(0) as usize % 40;
    let wire = chunked::encode(data, size, ";e=1", "T: v\r\n");
    match decode_chunked(&wire, 1 + input.len() % 11) {
        Ok(Some((body, used))) if body == data && used == wire.len() => Ok(()),
        other => Err(format!(
            "{} bytes in chunks of {size} decoded as {other:?}",
            data.len()
        )),
    }
}

fn jwt_seeds() -> Vec<Vec<u8>> {
    ["u1", "someone-else", ""]
        .iter()
        .map(|s| token(s).into_bytes())
        .collect()
}

/// Tokens: never a panic, and no changed token is accepted.
fn jwt(input: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Ok(());
    };
    if jwt::verify(text, SECRET.as_bytes(), jwt::now_secs()).is_ok()
        && !jwt_seeds().iter().any(|s| s == input)
    {
        return Err("a changed token was accepted".into());
    }
    Ok(())
}

fn event_seeds() -> Vec<Vec<u8>> {
    vec![
        br#"{"project":"p1","roles":["any"],"permissionsChanged":false,"userId":null,"data":{"events":["a.b"],"channels":["files","c.1"],"timestamp":"2026-11-28T00:00:00.000+00:00","payload":{"$id":"f1","n":[1,2.5,"x"]}}}"#.to_vec(),
        br#"{"rtbenchSeq":7,"project":"p","roles":[],"data":{"events":[],"channels":[],"payload":{}}}"#.to_vec(),
        br#"{"project":"p","roles":["user:u1","team:t1/owner"],"data":{"events":["e"],"channels":["account.u1"],"payload":{"s":"\u00e9\ud83d\ude00"}}}"#.to_vec(),
    ]
}

/// Event documents: never a panic; an accepted one becomes one server text
/// frame holding an `event` message that is JSON.
fn event_doc(input: &[u8]) -> Result<(), String> {
    let Ok(ev) = event::parse(input) else {
        return Ok(());
    };
    let mut wire = ev.frame.to_vec();
    let f = frame::parse(&mut wire, usize::MAX, Sender::Server)
        .map_err(|e| format!("the event frame does not parse: {e:?}"))?
        .ok_or("the event frame is incomplete")?;
    if f.opcode != frame::OP_TEXT || f.end() != wire.len() {
        return Err(format!("not one whole text frame: {f:?}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&wire[f.payload_start..])
        .map_err(|e| format!("the event frame is not JSON: {e}"))?;
    if v["type"] != "event" {
        return Err(format!("the frame is not an event: {v}"));
    }
    Ok(())
}

fn subs_seeds() -> Vec<Vec<u8>> {
    vec![
        vec![
            0, 1, 3, 1, 2, 9, 0, 2, 2, 1, 1, 1, 1, 2, 0, 3, 4, 5, 6, 7, 8, 2, 1,
        ],
        (0..64).collect(),
    ]
}

const LIMITS: Limits = Limits {
    subscriptions: 4,
    channels: 6,
    channel_bytes: 12,
    id_bytes: 4,
    bytes: 48,
};

/// Subscriptions changed by any sequence of operations: what is filed is
/// always the union of the subscriptions' channels, and the limits hold.
fn subscriptions(input: &[u8]) -> Result<(), String> {
    let mut subs = Subs::new(Vec::new(), None);
    let user = "u1";
    let mut signed_in = false;
    let mut bytes = input.iter().copied();
    while let Some(op) = bytes.next() {
        let who = signed_in.then_some(user);
        match op % 4 {
            0 | 1 => {
                let id = format!("s{}", bytes.next().unwrap_or(0) % 6);
                let n = bytes.next().unwrap_or(0) % 5;
                let channels = (0..n)
                    .map(|_| match bytes.next().unwrap_or(0) % 11 {
                        9 => "account".into(),
                        10 => "a-very-long-channel".into(),
                        k => format!("c{k}").into(),
                    })
                    .collect();
                let _ = subs.upsert(
                    vec![Subscription {
                        id: id.into(),
                        channels,
                    }],
                    who,
                    &LIMITS,
                );
            }
            2 => {
                let id = format!("s{}", bytes.next().unwrap_or(0) % 6);
                subs.remove(&[&id], who);
            }
            _ => {
                signed_in = !signed_in;
                subs = Subs::new(subs.list().to_vec(), signed_in.then_some(user));
            }
        }
        let who = signed_in.then_some(user);
        let mut filed: Vec<&str> = subs.filed().collect();
        filed.sort();
        let mut want: Vec<String> = subs
            .list()
            .iter()
            .flat_map(|s| s.channels.iter().filter_map(|c| effective(c, who)))
            .collect();
        want.sort();
        want.dedup();
        if filed != want {
            return Err(format!("filed {filed:?}, subscribed {want:?}"));
        }
        let bytes_held: usize = subs
            .list()
            .iter()
            .map(|s| s.id.len() + s.channels.iter().map(|c| c.len()).sum::<usize>())
            .sum();
        if subs.list().len() > LIMITS.subscriptions
            || filed.len() > LIMITS.channels
            || bytes_held > LIMITS.bytes
        {
            return Err(format!(
                "over a limit: {} subscriptions, {} channels, {bytes_held} bytes",
                subs.list().len(),
                filed.len()
            ));
        }
    }
    Ok(())
}

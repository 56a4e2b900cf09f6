//! NATS's client protocol over WebSocket (nats-server's `websocket`
//! listener): the server's `INFO`, then the client's `CONNECT`, a `SUB`
//! per channel (the subject is the channel's name, the sid its position)
//! and a `PING`, whose `PONG` says every `SUB` was processed: the connection
//! is open. Events arrive as `MSG <subject> <sid> [reply] <#bytes>`; the
//! server's `PING` is answered `PONG`; the client's keepalive is `PING`.
//!
//! NATS is a byte stream: a WebSocket frame may hold several messages, and
//! a message may end in the next frame (`read` says how far it got).

use super::{Broken, ErrorKey, Greet, Hello, Msg, Outbox};
use rtbench_protocol::frame;

pub const PING: &[u8] = b"PING\r\n";
const PONG: &[u8] = b"PONG\r\n";

/// Longest control line accepted: a cluster's `INFO` lists its servers.
const MAX_LINE: usize = 1 << 16;

/// One message at the start of `buf`, and its length; None when it is not
/// whole yet.
fn next(buf: &[u8]) -> Result<Option<(Msg<'_>, usize)>, Broken> {
    let Some(eol) = memchr::memmem::find(buf, b"\r\n") else {
        return if buf.len() > MAX_LINE {
            Err(Broken)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..eol];
    let after = eol + 2;
    let word = line.split(|&b| b == b' ').next().unwrap_or(b"");
    let msg = match word {
        b"MSG" => {
            let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
            let (_, subject) = (parts.next(), parts.next().ok_or(Broken)?);
            // sid [reply-to] #bytes: the size is the last of two or three.
            let rest = [parts.next(), parts.next(), parts.next(), parts.next()];
            let size = match rest {
                [Some(_), Some(n), None, None] | [Some(_), Some(_), Some(n), None] => {
                    std::str::from_utf8(n)
                        .ok()
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or(Broken)?
                }
                _ => return Err(Broken),
            };
            if size > super::MAX_CARRY {
                return Err(Broken);
            }
            let end = after + size + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(Broken);
            }
            let channel = std::str::from_utf8(subject).map_err(|_| Broken)?;
            return Ok(Some((
                Msg::Event {
                    channel,
                    body: &buf[after..after + size],
                },
                end,
            )));
        }
        b"PING" => Msg::Answer(frame::OP_BINARY, PONG),
        b"PONG" => Msg::Pong,
        b"-ERR" => Msg::Error(ErrorKey::Named("nats_err")),
        b"+OK" | b"INFO" => Msg::Other,
        _ => return Err(Broken),
    };
    Ok(Some((msg, after)))
}

/// Every whole message of `buf`; returns how many bytes they were.
pub fn read(buf: &[u8], on: &mut impl FnMut(Msg<'_>)) -> Result<usize, Broken> {
    let mut at = 0;
    while let Some((msg, n)) = next(&buf[at..])? {
        on(msg);
        at += n;
    }
    Ok(at)
}

/// The handshake. Stage 0: waiting for `INFO`; 1: `CONNECT`, `SUB`s and
/// `PING` sent, waiting for the `PONG`.
pub fn greet(stage: &mut u8, hello: &Hello, payload: &[u8], out: &mut Outbox) -> Greet {
    let mut at = 0;
    loop {
        let (msg, n) = match next(&payload[at..]) {
            Ok(Some(m)) => m,
            Ok(None) => return Greet::Wait,
            Err(Broken) => return Greet::Failed("protocol_error".into()),
        };
        match (*stage, msg) {
            (0, Msg::Other) if payload[at..].starts_with(b"INFO") => {
                out.send(frame::OP_BINARY, &connect(hello));
                *stage = 1;
            }
            (_, Msg::Error(_)) => return Greet::Failed("nats_err".into()),
            (_, Msg::Answer(op, answer)) => out.send(op, answer),
            (1, Msg::Pong) => return Greet::Open { rest: at + n },
            // An event before the PONG: subscribed already; the receive
            // path takes the frame from here.
            (1, Msg::Event { .. }) => return Greet::Open { rest: at },
            _ => {}
        }
        at += n;
    }
}

/// `CONNECT`, a `SUB` per channel, `PING`: one frame.
fn connect(hello: &Hello) -> Vec<u8> {
    let mut s = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"{}\",\"lang\":\"rtbench\",\"version\":\"{}\",\"protocol\":1,\"headers\":false}}\r\n",
        hello.client_id,
        env!("CARGO_PKG_VERSION")
    );
    for (sid, channel) in hello.channels.iter().enumerate() {
        s.push_str(&format!("SUB {channel} {}\r\n", sid + 1));
    }
    s.push_str("PING\r\n");
    s.into_bytes()
}

/// `PUB <subject> <#bytes>`.
pub fn publish(channel: &str, body: &str) -> Vec<u8> {
    format!("PUB {channel} {}\r\n{body}\r\n", body.len()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_across_frames_and_carried_when_cut() {
        let stream = b"INFO {\"server_id\":\"x\"}\r\nMSG room.7 1 5\r\nhello\r\nPING\r\nMSG room.8 2 _INBOX.x 2\r\nhi\r\nPONG\r\n";
        let mut seen = Vec::new();
        let used = read(stream, &mut |m| seen.push(format!("{m:?}"))).unwrap();
        assert_eq!(used, stream.len());
        assert_eq!(seen.len(), 5);
        assert!(seen[1].contains("channel: \"room.7\"") && seen[4] == "Pong");
        // Cut inside a MSG: the whole messages before it are read, the rest
        // is for the next frame.
        let cut = 30;
        let mut n = 0;
        let used = read(&stream[..cut], &mut |_| n += 1).unwrap();
        assert_eq!((used, n), (24, 1));
        assert!(read(b"BOGUS\r\n", &mut |_| {}).is_err());
        assert!(read(b"MSG a 1 5\r\nhelloXY", &mut |_| {}).is_err());
    }

    #[test]
    fn the_handshake_subscribes_then_opens_on_pong() {
        let hello = Hello {
            channels: vec!["room.1".into(), "room.2".into()],
            client_id: "c1".into(),
            keepalive_s: 0.0,
        };
        let (mut wire, mut mask, mut stage) = (Vec::new(), 7u32, 0u8);
        let mut out = Outbox {
            wire: &mut wire,
            mask: &mut mask,
        };
        assert_eq!(
            greet(&mut stage, &hello, b"INFO {}\r\n", &mut out),
            Greet::Wait
        );
        assert_eq!(stage, 1);
        let sent = connect(&hello);
        assert!(sent.ends_with(b"SUB room.1 1\r\nSUB room.2 2\r\nPING\r\n"));
        assert_eq!(
            greet(
                &mut stage,
                &hello,
                b"PONG\r\nMSG room.1 1 2\r\nhi\r\n",
                &mut out
            ),
            Greet::Open { rest: 6 }
        );
        assert_eq!(
            greet(
                &mut stage,
                &hello,
                b"MSG room.1 1 2\r\nhi\r\nPONG\r\n",
                &mut out
            ),
            Greet::Open { rest: 0 }
        );
        assert_eq!(
            greet(
                &mut stage,
                &hello,
                b"-ERR 'Authorization Violation'\r\n",
                &mut out
            ),
            Greet::Failed("nats_err".into())
        );
    }
}

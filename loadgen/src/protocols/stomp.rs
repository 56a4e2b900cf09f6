//! STOMP 1.2 over WebSocket (RabbitMQ's Web-STOMP, subprotocol
//! `v12.stomp`): `CONNECT` with the session's heart-beat both ways,
//! `CONNECTED`, a `SUBSCRIBE` per channel to `/topic/<channel>` (the last
//! asks for a receipt), `RECEIPT`: open. Events arrive as `MESSAGE`, the
//! channel in its `destination`; the client's keepalive is the heart-beat
//! (an end of line), which the server does not answer.
//!
//! Frames are read as a stream too (a WebSocket frame may hold heart-beats
//! and frames), and a frame cut at a WebSocket frame's end is carried.

use super::{Broken, ErrorKey, Greet, Hello, Msg, Outbox};
use rtbench_protocol::frame;

pub const SUBPROTOCOL: &str = "v12.stomp";
pub const HEART_BEAT: &[u8] = b"\n";

/// Where channels live: RabbitMQ's topic exchange, routed by channel name.
const TOPIC: &str = "/topic/";

/// A STOMP frame's command, headers and body.
struct Frame<'a> {
    command: &'a [u8],
    headers: &'a [u8],
    body: &'a [u8],
}

impl<'a> Frame<'a> {
    fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers.split(|&b| b == b'\n').find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.strip_prefix(name)?.strip_prefix(b":")
        })
    }
}

/// The next frame (or run of heart-beats) at the start of `buf`, and its
/// length; None when it is not whole yet.
fn next(buf: &[u8]) -> Result<Option<(Option<Frame<'_>>, usize)>, Broken> {
    let eols = buf
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .count();
    if eols > 0 {
        return Ok(Some((None, eols)));
    }
    let Some(head_end) = memchr::memmem::find(buf, b"\n\n")
        .map(|i| (i, i + 2))
        .into_iter()
        .chain(memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i, i + 4)))
        .min()
    else {
        return if buf.len() > super::MAX_CARRY {
            Err(Broken)
        } else {
            Ok(None)
        };
    };
    let (head, body_at) = head_end;
    let head = &buf[..head];
    let (command, headers) = match memchr::memchr(b'\n', head) {
        Some(i) => (&head[..i], &head[i + 1..]),
        None => (head, &b""[..]),
    };
    let command = command.strip_suffix(b"\r").unwrap_or(command);
    let mut f = Frame {
        command,
        headers,
        body: b"",
    };
    let body_len = match f.header(b"content-length") {
        Some(n) => std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .ok_or(Broken)?,
        None => match memchr::memchr(0, &buf[body_at..]) {
            Some(n) => n,
            None => return Ok(None),
        },
    };
    let end = body_at + body_len;
    match buf.get(end) {
        None => return Ok(None),
        Some(0) => {}
        Some(_) => return Err(Broken),
    }
    f.body = &buf[body_at..end];
    Ok(Some((Some(f), end + 1)))
}

fn message<'a>(f: &Frame<'a>) -> Result<Msg<'a>, Broken> {
    Ok(match f.command {
        b"MESSAGE" => {
            let dest = f.header(b"destination").ok_or(Broken)?;
            let dest = std::str::from_utf8(dest).map_err(|_| Broken)?;
            Msg::Event {
                channel: dest.strip_prefix(TOPIC).unwrap_or(dest),
                body: f.body,
            }
        }
        b"ERROR" => Msg::Error(ErrorKey::Named("stomp_error")),
        _ => Msg::Other,
    })
}

/// Every whole frame of `buf`; returns how many bytes they were.
pub fn read(buf: &[u8], on: &mut impl FnMut(Msg<'_>)) -> Result<usize, Broken> {
    let mut at = 0;
    while let Some((f, n)) = next(&buf[at..])? {
        on(match &f {
            Some(f) => message(f)?,
            None => Msg::Other, // the server's heart-beat
        });
        at += n;
    }
    Ok(at)
}

/// The handshake. Stage 0: `CONNECT` sent (`Greeting::upgraded`), waiting
/// for `CONNECTED`; 1: `SUBSCRIBE`s sent, waiting for the last one's receipt.
pub fn greet(stage: &mut u8, hello: &Hello, payload: &[u8], out: &mut Outbox) -> Greet {
    let mut at = 0;
    loop {
        let f = match next(&payload[at..]) {
            Ok(Some((Some(f), n))) => (f, n),
            Ok(Some((None, n))) => {
                at += n;
                continue;
            }
            Ok(None) => return Greet::Wait,
            Err(Broken) => return Greet::Failed("protocol_error".into()),
        };
        let (f, n) = f;
        match (*stage, f.command) {
            (_, b"ERROR") => return Greet::Failed("stomp_error".into()),
            (0, b"CONNECTED") => {
                if hello.channels.is_empty() {
                    return Greet::Open { rest: at + n };
                }
                let last = hello.channels.len() - 1;
                for (i, c) in hello.channels.iter().enumerate() {
                    let receipt = if i == last {
                        "receipt:subscribed\n"
                    } else {
                        ""
                    };
                    out.send(
                        frame::OP_TEXT,
                        format!(
                            "SUBSCRIBE\nid:{i}\ndestination:{TOPIC}{c}\nack:auto\n{receipt}\n\0"
                        )
                        .as_bytes(),
                    );
                }
                *stage = 1;
            }
            (1, b"RECEIPT") => return Greet::Open { rest: at + n },
            (1, b"MESSAGE") => return Greet::Open { rest: at },
            _ => {}
        }
        at += n;
    }
}

/// `CONNECT` with heart-beats every keepalive period, both ways.
pub fn connect(hello: &Hello) -> Vec<u8> {
    let ms = (hello.keepalive_s * 1000.0).round() as u64;
    format!(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:{ms},{ms}\n\n\0"
    )
    .into_bytes()
}

/// `SEND` to the channel's topic.
pub fn publish(channel: &str, body: &str) -> Vec<u8> {
    format!(
        "SEND\ndestination:{TOPIC}{channel}\ncontent-type:application/json\ncontent-length:{}\n\n{body}\0",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_heart_beats_are_read_and_cut_frames_carried() {
        let m = b"MESSAGE\r\ndestination:/topic/room.7\nmessage-id:1\ncontent-length:5\n\nhe\0lo\0";
        let stream = [
            &b"\n"[..],
            m,
            b"\n",
            b"MESSAGE\ndestination:/topic/x\n\nhi\0",
        ]
        .concat();
        let mut seen = Vec::new();
        assert_eq!(
            read(&stream, &mut |m| seen.push(format!("{m:?}"))),
            Ok(stream.len())
        );
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen[1].contains("channel: \"room.7\"") && seen[1].contains("[104, 101, 0, 108, 111]")
        );
        assert!(seen[3].contains("channel: \"x\""));
        let mut n = 0;
        assert_eq!(read(&stream[..20], &mut |_| n += 1), Ok(1));
        assert_eq!(
            read(b"MESSAGE\ncontent-length:1\n\nab\0", &mut |_| {}),
            Err(Broken)
        );
        let publish = publish("room.7", "{}");
        let mut got = Vec::new();
        read(&publish, &mut |m| got.push(format!("{m:?}"))).unwrap();
        assert_eq!(got, ["Other"], "SEND is no event to a reader");
    }

    #[test]
    fn the_handshake_subscribes_every_channel_and_opens_on_the_receipt() {
        let hello = Hello {
            channels: vec!["a".into(), "b".into()],
            client_id: "c".into(),
            keepalive_s: 20.0,
        };
        assert!(connect(&hello).ends_with(b"heart-beat:20000,20000\n\n\0"));
        let (mut wire, mut mask, mut stage) = (Vec::new(), 7u32, 0u8);
        let mut out = Outbox {
            wire: &mut wire,
            mask: &mut mask,
        };
        assert_eq!(
            greet(
                &mut stage,
                &hello,
                b"CONNECTED\nversion:1.2\nheart-beat:20000,20000\n\n\0",
                &mut out
            ),
            Greet::Wait
        );
        assert_eq!(stage, 1);
        assert!(out.wire.len() > 80, "two SUBSCRIBE frames");
        assert_eq!(
            greet(
                &mut stage,
                &hello,
                b"RECEIPT\nreceipt-id:subscribed\n\n\0",
                &mut out
            ),
            Greet::Open { rest: 32 }
        );
        assert_eq!(
            greet(&mut stage, &hello, b"ERROR\nmessage:no\n\n\0", &mut out),
            Greet::Failed("stomp_error".into())
        );
    }
}

//! What a client speaks inside its WebSocket: one module per protocol
//! (`appwrite`, `raw`, `nats`, `mqtt`, `stomp`, `socketio`, `centrifuge`) behind the few
//! functions here, dispatched on `Protocol` (an enum match, not a trait
//! object: `read` runs per frame).
//!
//! Each protocol says:
//! - `upgrade_path` and `Greeting::subprotocol`: what its upgrade asks for;
//! - `Greeting`: its handshake after the 101, frame by frame: what the
//!   client sends (CONNECT, SUB, SUBSCRIBE, a namespace connect...) and when
//!   the connection is open, which for a subscriber means subscribed;
//! - `read`: a data frame's messages as `Msg`s: events with their channel
//!   and the body that carries the publisher's stamp, pongs, server
//!   keepalives to answer, errors;
//! - `keepalive`: the client's own keepalive frame, where the protocol has one;
//! - `publish`: an event as the publisher sends it through the broker.
//!
//! Nothing here does I/O or keeps per-connection state between frames but
//! what the caller hands in: a held connection stays a `Held` slot.

pub mod appwrite;
pub mod centrifuge;
pub mod mqtt;
pub mod nats;
pub mod raw;
pub mod socketio;
pub mod stomp;

use rtbench_protocol::frame;
use rtbench_record::scenario::Protocol;

use crate::users::Population;

/// One message read from a data frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// A published event on `channel`; `body` holds its stamp (`stamp::read`).
    Event { channel: &'a str, body: &'a [u8] },
    /// The answer to the client's keepalive (a round trip).
    Pong,
    /// The server's keepalive, answered with this frame (opcode, payload).
    Answer(u8, &'static [u8]),
    /// An error the server reported, by the key it is counted under.
    Error(ErrorKey),
    /// Raw: an echo message sent at this time came back.
    Echo(u64),
    /// Raw: a data frame that is no echo sent (`opcode`, what it held).
    Unmatched { opcode: u8, payload: &'a [u8] },
    /// Anything else: acknowledgements, the server's heart-beats, notices.
    Other,
}

/// What an error is counted under (`Counters::error_frames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKey {
    /// Appwrite's `error` frame code.
    Code(u64),
    /// A broker's error: `nats_err`, `stomp_error`, `socketio_connect_error`.
    Named(&'static str),
}

impl std::fmt::Display for ErrorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorKey::Code(c) => write!(f, "{c}"),
            ErrorKey::Named(n) => f.write_str(n),
        }
    }
}

/// The stream was broken: a message no parser of the protocol accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken;

/// Longest message a stream protocol (NATS, MQTT, STOMP) may leave
/// unfinished at a frame's end; beyond it the stream is broken.
pub const MAX_CARRY: usize = 1 << 20;

/// Reads the messages of one data frame's `payload` (or of what a stream
/// protocol carried over from earlier frames, with this one's appended),
/// calling `on` for each. Returns how many bytes were whole messages: a
/// stream protocol's unfinished message at the end is for the caller to
/// carry into the next frame.
pub fn read(
    protocol: Protocol,
    opcode: u8,
    payload: &[u8],
    on: &mut impl FnMut(Msg<'_>),
) -> Result<usize, Broken> {
    match protocol {
        Protocol::Appwrite => {
            if opcode == frame::OP_TEXT {
                on(appwrite::read(payload));
            }
            Ok(payload.len())
        }
        Protocol::Raw => {
            on(raw::read(opcode, payload));
            Ok(payload.len())
        }
        Protocol::Nats => nats::read(payload, on),
        Protocol::Mqtt => mqtt::read(payload, on),
        Protocol::Stomp => stomp::read(payload, on),
        Protocol::Socketio => {
            on(socketio::read(payload));
            Ok(payload.len())
        }
        Protocol::Centrifuge => {
            centrifuge::read(payload, on);
            Ok(payload.len())
        }
    }
}

/// The frame a client sends as its own keepalive every ping interval, and
/// whether the server answers it (a round trip to time); None where the
/// server keeps the connection alive (Socket.IO pings, the client answers)
/// or there is no keepalive (raw: echoes instead).
pub fn keepalive(protocol: Protocol) -> Option<(u8, &'static [u8])> {
    match protocol {
        Protocol::Appwrite => Some((frame::OP_TEXT, appwrite::PING)),
        Protocol::Nats => Some((frame::OP_BINARY, nats::PING)),
        Protocol::Mqtt => Some((frame::OP_BINARY, mqtt::PINGREQ)),
        Protocol::Stomp => Some((frame::OP_TEXT, stomp::HEART_BEAT)),
        Protocol::Centrifuge => Some((frame::OP_TEXT, centrifuge::PING)),
        Protocol::Raw | Protocol::Socketio => None,
    }
}

/// An event as the publisher sends it through the broker: (opcode,
/// payload of one frame). Appwrite publishes over HTTP or the bus, raw not
/// at all (`publisher.rs`), so None.
pub fn publish(protocol: Protocol, channel: &str, body: &str) -> Option<(u8, Vec<u8>)> {
    Some(match protocol {
        Protocol::Appwrite | Protocol::Raw => return None,
        Protocol::Nats => (frame::OP_BINARY, nats::publish(channel, body)),
        Protocol::Mqtt => (frame::OP_BINARY, mqtt::publish(channel, body)),
        Protocol::Stomp => (frame::OP_TEXT, stomp::publish(channel, body)),
        Protocol::Socketio => (frame::OP_TEXT, socketio::publish(channel, body)),
        Protocol::Centrifuge => (frame::OP_TEXT, centrifuge::publish(channel, body)),
    })
}

/// The path and query the upgrade requests for `user` (None: the publisher)
/// on a target whose path is `path`.
pub fn upgrade_path(protocol: Protocol, path: &str, pop: &Population, user: Option<u64>) -> String {
    match (protocol, user) {
        (Protocol::Appwrite, Some(user)) => format!("{path}?{}", pop.query(user)),
        (Protocol::Socketio, _) => socketio::upgrade_path(path),
        _ => path.to_string(),
    }
}

/// Who a connection is to the server: a subscriber with its channels, or
/// the publisher (no channels).
#[derive(Debug, Clone, Default)]
pub struct Hello {
    pub channels: Vec<String>,
    /// Unique per connection among the run's (MQTT brokers drop a second
    /// connection with the same client id).
    pub client_id: String,
    /// The session's keepalive period in seconds (0: none), announced where
    /// the protocol announces it (MQTT keep-alive, STOMP heart-beat).
    pub keepalive_s: f64,
}

/// Where a handshake stands after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Greet {
    Wait,
    /// Open (subscribed). `rest`: where in the frame that opened it the
    /// receive path takes over (the frame's length: nothing left; 0: the
    /// whole frame is an event that came before the acknowledgement).
    Open {
        rest: usize,
    },
    /// An error the server sent before the connection opened, counted;
    /// the handshake goes on (Appwrite sends `error`, then closes).
    Error(ErrorKey),
    Failed(String),
}

/// A handshake in progress: the protocol, who connects, and how far it got.
#[derive(Debug)]
pub struct Greeting {
    pub protocol: Protocol,
    pub hello: Hello,
    /// How far the handshake got; each protocol numbers its own stages.
    stage: u8,
}

/// Frames a handshake sends, masked as a client's.
pub struct Outbox<'a> {
    pub wire: &'a mut Vec<u8>,
    pub mask: &'a mut u32,
}

impl Outbox<'_> {
    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        let m = *self.mask;
        let m = m ^ (m << 13) ^ (m >> 17) ^ (m << 5); // xorshift: a fresh mask per frame
        *self.mask = m;
        self.wire
            .extend_from_slice(&frame::encode_masked(opcode, payload, m.to_ne_bytes()));
    }
}

impl Greeting {
    pub fn new(protocol: Protocol, hello: Hello) -> Greeting {
        Greeting {
            protocol,
            hello,
            stage: 0,
        }
    }

    /// The `Sec-WebSocket-Protocol` the upgrade asks for.
    pub fn subprotocol(&self) -> Option<&'static str> {
        match self.protocol {
            Protocol::Mqtt => Some(mqtt::SUBPROTOCOL),
            Protocol::Stomp => Some(stomp::SUBPROTOCOL),
            _ => None,
        }
    }

    /// The 101 is in: what the client says first, or whether it is open.
    pub fn upgraded(&mut self, out: &mut Outbox) -> Greet {
        match self.protocol {
            Protocol::Raw => Greet::Open { rest: 0 },
            Protocol::Mqtt => {
                out.send(frame::OP_BINARY, &mqtt::connect(&self.hello));
                Greet::Wait
            }
            Protocol::Stomp => {
                out.send(frame::OP_TEXT, &stomp::connect(&self.hello));
                Greet::Wait
            }
            Protocol::Centrifuge => {
                out.send(frame::OP_TEXT, &centrifuge::connect(&self.hello));
                Greet::Wait
            }
            // These wait for the server to speak first.
            Protocol::Appwrite | Protocol::Nats | Protocol::Socketio => Greet::Wait,
        }
    }

    /// A data frame before the connection is open.
    pub fn frame(&mut self, opcode: u8, payload: &[u8], out: &mut Outbox) -> Greet {
        let (hello, stage) = (&self.hello, &mut self.stage);
        match self.protocol {
            Protocol::Raw => Greet::Open { rest: 0 },
            Protocol::Appwrite => appwrite::greet(opcode, payload),
            Protocol::Nats => nats::greet(stage, hello, payload, out),
            Protocol::Mqtt => mqtt::greet(stage, hello, payload, out),
            Protocol::Stomp => stomp::greet(stage, hello, payload, out),
            Protocol::Socketio => socketio::greet(stage, hello, payload, out),
            Protocol::Centrifuge => centrifuge::greet(hello, payload, out),
        }
    }
}

/// A frame's bytes for a record: the first few, printable, escaped otherwise.
pub fn preview(payload: &[u8]) -> String {
    const SHOWN: usize = 32;
    let mut s: String = payload
        .iter()
        .take(SHOWN)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if payload.len() > SHOWN {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every protocol's reader and handshake take any bytes without
    /// panicking: mutations of real messages, cut anywhere.
    #[test]
    fn no_input_makes_a_reader_or_a_handshake_panic() {
        let samples: Vec<(Protocol, Vec<u8>)> = vec![
            (Protocol::Nats, b"MSG room.1 1 12\r\n{\"ts\":1,\"x\"}\r\nPING\r\nINFO {}\r\n-ERR 'x'\r\n".to_vec()),
            (Protocol::Mqtt, [&[0x30u8, 0x0c, 0, 2, b'r', b'1'][..], b"{\"ts\":1}", &[0xd0, 0, 0x20, 2, 0, 0, 0x90, 3, 0, 1, 0]].concat()),
            (Protocol::Stomp, b"\nMESSAGE\ndestination:/topic/r\ncontent-length:3\n\nabc\0CONNECTED\nversion:1.2\n\n\0RECEIPT\nreceipt-id:s\n\n\0".to_vec()),
            (Protocol::Socketio, b"42[\"event\",\"room.1\",{\"ts\":1}]".to_vec()),
            (Protocol::Socketio, b"0{\"sid\":\"x\"}".to_vec()),
            (Protocol::Socketio, b"430[2]".to_vec()),
            (Protocol::Appwrite, br#"{"type":"event","data":{"channels":["a"],"payload":{"ts":1,"seq":2,"to":"any"}}}"#.to_vec()),
            (Protocol::Raw, b"rtbench-echo:123".to_vec()),
            (Protocol::Centrifuge, b"{\"result\":{\"channel\":\"a\",\"data\":{\"data\":{\"ts\":1}}}}\n{\"id\":2,\"result\":{}}".to_vec()),
        ];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for (protocol, sample) in samples {
            for round in 0..3000 {
                let mut bytes = sample.clone();
                for _ in 0..(round % 4) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if bytes.is_empty() {
                        break;
                    }
                    let at = (x as usize) % bytes.len();
                    match x % 3 {
                        0 => bytes[at] = (x >> 24) as u8,
                        1 => bytes.truncate(at),
                        _ => bytes.insert(at, (x >> 32) as u8),
                    }
                }
                for op in [frame::OP_TEXT, frame::OP_BINARY] {
                    let _ = read(protocol, op, &bytes, &mut |_| {});
                    let mut g = Greeting::new(
                        protocol,
                        Hello {
                            channels: vec!["room.1".into()],
                            client_id: "c".into(),
                            keepalive_s: 20.0,
                        },
                    );
                    let (mut wire, mut mask) = (Vec::new(), 1u32);
                    let mut out = Outbox {
                        wire: &mut wire,
                        mask: &mut mask,
                    };
                    g.upgraded(&mut out);
                    for _ in 0..3 {
                        if let Greet::Open { rest } = g.frame(op, &bytes, &mut out) {
                            assert!(rest <= bytes.len());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn previews_are_short_and_printable() {
        assert_eq!(preview(b"ok\x00\xff"), "ok\\x00\\xff");
        assert_eq!(preview(&[b'a'; 40]).chars().count(), 33);
    }
}

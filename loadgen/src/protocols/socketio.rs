//! Socket.IO 5 on Engine.IO 4, WebSocket transport only
//! (`/socket.io/?EIO=4&transport=websocket`): the server's Engine.IO open
//! packet (`0{...}`), the client's namespace connect (`40`), the server's
//! (`40{"sid":...}`), then `subscribe` emitted with an acknowledgement
//! (`420["subscribe",[channels]]`, answered `430[...]`): open, the
//! connection in a room per channel. Events arrive as
//! `42["event","<channel>",<payload>]`. The server keeps the connection
//! alive: its `2` (ping) is answered `3` (pong). The publisher emits
//! `42["publish","<channel>",<payload>]`, which the server (`peers/socketio/`)
//! emits to the channel's room.

use super::{ErrorKey, Greet, Hello, Msg, Outbox};
use rtbench_protocol::frame;

const PING: &[u8] = b"2";
const PONG: &[u8] = b"3";
const EVENT: &[u8] = br#"42["event",""#;

/// The Engine.IO query on the target's path.
pub fn upgrade_path(path: &str) -> String {
    let joiner = if path.contains('?') { '&' } else { '?' };
    format!("{path}{joiner}EIO=4&transport=websocket")
}

/// A text frame on an open connection: one Engine.IO packet.
pub fn read(payload: &[u8]) -> Msg<'_> {
    if let Some(rest) = payload.strip_prefix(EVENT) {
        let Some(end) = memchr::memchr(b'"', rest) else {
            return Msg::Other;
        };
        return match std::str::from_utf8(&rest[..end]) {
            Ok(channel) => Msg::Event {
                channel,
                body: &rest[end + 1..],
            },
            Err(_) => Msg::Other,
        };
    }
    match payload {
        PING => Msg::Answer(frame::OP_TEXT, PONG),
        p if p.starts_with(b"44") => Msg::Error(ErrorKey::Named("socketio_connect_error")),
        _ => Msg::Other,
    }
}

/// The handshake. Stage 0: waiting for Engine.IO's open; 1: `40` sent,
/// waiting for the namespace's; 2: `subscribe` emitted, waiting for its
/// acknowledgement.
pub fn greet(stage: &mut u8, hello: &Hello, payload: &[u8], out: &mut Outbox) -> Greet {
    match (*stage, payload) {
        (_, PING) => out.send(frame::OP_TEXT, PONG),
        (_, p) if p.starts_with(b"44") => return Greet::Failed("socketio_connect_error".into()),
        (_, p) if p.starts_with(b"1") => return Greet::Failed("socketio_closed".into()),
        (0, p) if p.starts_with(b"0{") => {
            out.send(frame::OP_TEXT, b"40");
            *stage = 1;
        }
        (1, p) if p.starts_with(b"40") => {
            if hello.channels.is_empty() {
                return Greet::Open {
                    rest: payload.len(),
                };
            }
            let rooms = serde_json::to_string(&hello.channels).expect("strings serialize");
            out.send(
                frame::OP_TEXT,
                format!(r#"420["subscribe",{rooms}]"#).as_bytes(),
            );
            *stage = 2;
        }
        (2, p) if p.starts_with(b"430") => {
            return Greet::Open {
                rest: payload.len(),
            };
        }
        (2, p) if p.starts_with(EVENT) => return Greet::Open { rest: 0 },
        _ => {}
    }
    Greet::Wait
}

/// The publisher's emit: the server relays it to the channel's room.
pub fn publish(channel: &str, body: &str) -> Vec<u8> {
    format!(r#"42["publish","{channel}",{body}]"#).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pings_and_errors_are_told_apart() {
        let e = br#"42["event","room.7",{"ts":1,"seq":2,"to":"any"}]"#;
        assert_eq!(
            read(e),
            Msg::Event {
                channel: "room.7",
                body: br#",{"ts":1,"seq":2,"to":"any"}]"#
            }
        );
        assert_eq!(read(b"2"), Msg::Answer(frame::OP_TEXT, b"3"));
        assert_eq!(
            read(br#"44{"message":"no"}"#),
            Msg::Error(ErrorKey::Named("socketio_connect_error"))
        );
        assert_eq!(
            upgrade_path("/socket.io/"),
            "/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn the_handshake_connects_the_namespace_and_subscribes_with_an_ack() {
        let hello = Hello {
            channels: vec!["a".into()],
            client_id: "c".into(),
            keepalive_s: 0.0,
        };
        let (mut wire, mut mask, mut stage) = (Vec::new(), 7u32, 0u8);
        let mut out = Outbox {
            wire: &mut wire,
            mask: &mut mask,
        };
        let open = br#"0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(greet(&mut stage, &hello, open, &mut out), Greet::Wait);
        assert_eq!(
            greet(&mut stage, &hello, br#"40{"sid":"y"}"#, &mut out),
            Greet::Wait
        );
        assert_eq!(stage, 2);
        assert_eq!(
            greet(&mut stage, &hello, b"430[1]", &mut out),
            Greet::Open { rest: 6 }
        );
        // `40`, then `420["subscribe",["a"]]`, each a masked frame.
        assert_eq!(out.wire.len(), (2 + 4 + 2) + (2 + 4 + 22));
    }
}

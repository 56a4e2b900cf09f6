//! Appwrite's Realtime protocol (`/work/shared/realtime-protocol.md`): the
//! channels go in the upgrade's query (`Population::query`), the server
//! greets with `connected` (or `error`, then closes), events arrive as
//! `{"type":"event",...}` frames, `{"type":"ping"}` is answered by `pong`.
//! Events are published over HTTP or the bus (`publisher.rs`).

use super::{ErrorKey, Greet, Msg};
use rtbench_protocol::frame;

/// The SDKs' keepalive.
pub const PING: &[u8] = br#"{"type":"ping"}"#;

/// A frame before `connected`: by its first bytes when the server writes
/// `type` first (as Appwrite does), else by parsing it.
pub fn greet(opcode: u8, payload: &[u8]) -> Greet {
    if opcode != frame::OP_TEXT {
        return Greet::Wait;
    }
    if payload.starts_with(br#"{"type":"connected""#) {
        return Greet::Open {
            rest: payload.len(),
        };
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Greet::Wait;
    };
    match v["type"].as_str() {
        Some("connected") => Greet::Open {
            rest: payload.len(),
        },
        Some("error") => Greet::Error(ErrorKey::Code(v["data"]["code"].as_u64().unwrap_or(0))),
        _ => Greet::Wait,
    }
}

/// A text frame on an open connection.
pub fn read(payload: &[u8]) -> Msg<'_> {
    if payload.starts_with(br#"{"type":"event""#) {
        return match channel(payload) {
            Some(channel) => Msg::Event {
                channel,
                body: payload,
            },
            None => Msg::Other,
        };
    }
    if payload == br#"{"type":"pong"}"# {
        return Msg::Pong;
    }
    if payload.starts_with(br#"{"type":"error""#) {
        let code = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["data"]["code"].as_u64())
            .unwrap_or(0);
        return Msg::Error(ErrorKey::Code(code));
    }
    Msg::Other
}

/// The event's first channel: `"channels":["<this>"`.
fn channel(payload: &[u8]) -> Option<&str> {
    let key = br#""channels":[""#;
    let at = memchr::memmem::find(payload, key)? + key.len();
    let end = memchr::memchr(b'"', &payload[at..])?;
    std::str::from_utf8(&payload[at..at + end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pongs_and_errors_are_told_apart() {
        let event = br#"{"type":"event","data":{"channels":["chat.7"],"payload":{"ts":1,"seq":2,"to":"any"}}}"#;
        assert_eq!(
            read(event),
            Msg::Event {
                channel: "chat.7",
                body: event
            }
        );
        assert_eq!(read(br#"{"type":"pong"}"#), Msg::Pong);
        assert_eq!(
            read(br#"{"type":"error","data":{"code":1008,"message":"x"}}"#),
            Msg::Error(ErrorKey::Code(1008))
        );
        assert_eq!(
            greet(frame::OP_TEXT, br#"{"type":"connected","data":{}}"#),
            Greet::Open { rest: 30 }
        );
        assert_eq!(
            greet(frame::OP_TEXT, br#"{"data":{"code":1003},"type":"error"}"#),
            Greet::Error(ErrorKey::Code(1003))
        );
    }
}

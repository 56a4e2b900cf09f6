//! The Realtime protocol on an open connection: frames, messages, answers.
//!
//! The reactor (`reactor/mod.rs`) reads a connection's bytes into its own buffer
//! and hands them here: whole frames are handled in place, fragments are
//! assembled, and the messages of Appwrite's protocol (`ping`,
//! `authentication`, `subscribe`, `unsubscribe`) change what the connection is
//! filed under and are answered. The SDK's ping, the one message a million
//! idle connections send, is answered with a frame built once, before any
//! JSON is parsed.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Reactor;
use crate::index::ConnId;
use crate::messages::{MAX_MESSAGE, URL_SUBSCRIPTION, error_frame, message, user_json};
use crate::metrics::Limit;
use crate::subs::{Subs, Subscription};
use rtbench_protocol::frame::{self, close};
use rtbench_protocol::jwt;

/// The SDK's ping, byte for byte as the SDKs send it.
const PING: &[u8] = br#"{"type":"ping"}"#;
/// Its answer, framed once for every connection.
static PONG: Bytes = Bytes::from_static(b"\x81\x0f{\"type\":\"pong\"}");

impl Reactor {
    fn respond(&mut self, id: ConnId, data: Value) {
        let f = message("response", data);
        self.send(id, &[&f]);
    }

    fn send_error(&mut self, id: ConnId, code: u16, message: &str) {
        let f = error_frame(code, message);
        self.send(id, &[&f]);
    }

    /// Appwrite sends the code in an error frame; beyond Appwrite, the close
    /// frame carries it too.
    fn fail(&mut self, id: ConnId, code: u16, message: &str) {
        self.send_error(id, code, message);
        self.close(id, code, message);
    }

    /// Handles every whole frame at the start of `buf`; returns bytes used.
    pub(crate) fn consume(&mut self, id: ConnId, buf: &mut [u8]) -> usize {
        let mut at = 0;
        loop {
            let c = &self.conns[id as usize];
            if c.sock.is_none() || c.is_closing() {
                return buf.len(); // closing: the rest is discarded
            }
            match frame::parse(&mut buf[at..], MAX_MESSAGE, frame::Sender::Client) {
                Ok(Some(f)) => {
                    let start = at + f.payload_start;
                    self.on_frame(id, f, &buf[start..start + f.payload_len]);
                    at += f.end();
                }
                Ok(None) => return at,
                Err(e) => {
                    if e.code == close::MESSAGE_TOO_BIG {
                        self.shared.metrics.hit(Limit::MessageBytes);
                    }
                    self.close(id, e.code, e.reason);
                    return buf.len();
                }
            }
        }
    }

    fn on_frame(&mut self, id: ConnId, f: frame::Frame, payload: &[u8]) {
        self.stats.frames_in += 1;
        match f.opcode {
            frame::OP_PING => {
                let pong = frame::encode(frame::OP_PONG, payload);
                self.send(id, &[&pong]);
            }
            frame::OP_PONG => {}
            frame::OP_CLOSE => match close_reply(payload) {
                Ok(code) => self.close(id, code, ""),
                Err((code, reason)) => self.close(id, code, reason),
            },
            frame::OP_CONTINUATION => {
                let e = self.conns[id as usize].extra();
                if e.message_opcode == 0 {
                    return self.close(id, close::PROTOCOL_ERROR, "continuation without a message");
                }
                if e.message.len() + payload.len() > MAX_MESSAGE {
                    self.shared.metrics.hit(Limit::MessageBytes);
                    return self.close(id, close::MESSAGE_TOO_BIG, "message exceeds 64000 bytes");
                }
                e.message.extend_from_slice(payload);
                if f.fin {
                    let message = std::mem::take(&mut e.message);
                    let opcode = std::mem::replace(&mut e.message_opcode, 0);
                    self.conns[id as usize].trim();
                    self.on_message(id, opcode, &message);
                }
            }
            opcode => {
                let c = &mut self.conns[id as usize];
                if c.extra.as_ref().is_some_and(|e| e.message_opcode != 0) {
                    return self.close(
                        id,
                        close::PROTOCOL_ERROR,
                        "new message inside a fragmented one",
                    );
                }
                if f.fin {
                    self.on_message(id, opcode, payload);
                } else {
                    let e = c.extra();
                    e.message_opcode = opcode;
                    e.message = payload.to_vec();
                }
            }
        }
    }

    fn on_message(&mut self, id: ConnId, opcode: u8, payload: &[u8]) {
        if let Some(limit) = self.shared.config.message_rate
            && !self.conns[id as usize].rate.allow(jwt::now_secs(), limit)
        {
            self.shared.metrics.hit(Limit::MessageRate);
            // Refused with an error, as Appwrite does; a client that keeps
            // going at twice its allowance is flooding, and is closed.
            if self.conns[id as usize].rate.count() > limit.saturating_mul(2) {
                return self.fail(id, close::TRY_AGAIN_LATER, "Too many messages");
            }
            return self.send_error(id, close::TRY_AGAIN_LATER, "Too many messages");
        }
        if opcode == frame::OP_TEXT && payload == PING {
            self.stats.pongs += 1;
            self.send(id, &[&PONG]);
            return;
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            if opcode == frame::OP_TEXT {
                return self.close(id, close::INVALID_PAYLOAD, "text frame is not UTF-8");
            }
            return self.send_error(id, close::UNSUPPORTED_DATA, "message format invalid");
        };
        #[derive(Deserialize)]
        struct Message {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            data: Value,
        }
        let msg = match serde_json::from_str::<Message>(text) {
            Ok(m) if opcode == frame::OP_TEXT => m,
            _ => return self.send_error(id, close::UNSUPPORTED_DATA, "message format invalid"),
        };
        match msg.kind.as_str() {
            "ping" => {
                self.stats.pongs += 1;
                self.send(id, &[&PONG]);
            }
            "authentication" => self.authenticate(id, &msg.data),
            "subscribe" => self.subscribe(id, &msg.data),
            "unsubscribe" => self.unsubscribe(id, &msg.data),
            _ => self.send_error(id, close::UNSUPPORTED_DATA, "message format invalid"),
        }
    }

    /// The signed-in user's id (`None` for a guest).
    fn user_id(&self, id: ConnId) -> Option<String> {
        self.sessions
            .user(&self.names, self.conns[id as usize].session)
            .map(String::from)
    }

    /// The connection's subscriptions, made from its connect URL's channels
    /// the first time it changes them.
    fn subs(&mut self, id: ConnId) -> &mut Subs {
        let user = self.user_id(id);
        let names: Vec<Box<str>> = {
            let c = &self.conns[id as usize];
            if c.extra.as_ref().is_some_and(|e| e.subs.is_some()) {
                Vec::new()
            } else {
                let filed = c.channels.as_slice().iter().map(|&ch| self.names.name(ch));
                crate::subs::url_channels(filed, c.flags.url_account(), user.as_deref())
            }
        };
        let e = self.conns[id as usize].extra();
        e.subs.get_or_insert_with(|| {
            let url = (!names.is_empty()).then(|| Subscription {
                id: URL_SUBSCRIPTION.into(),
                channels: names,
            });
            Subs::new(url.into_iter().collect(), user.as_deref())
        })
    }

    fn authenticate(&mut self, id: ConnId, data: &Value) {
        let Some(token) = data.get("session").and_then(Value::as_str) else {
            return self.send_error(
                id,
                close::UNSUPPORTED_DATA,
                "message format invalid: data.session is missing",
            );
        };
        match jwt::verify(token, self.shared.jwt_secret(), jwt::now_secs()) {
            Ok(claims) => {
                // `account` may name another channel now: file the
                // subscriptions afresh for this user.
                let list = self.subs(id).list().to_vec();
                let subs = Subs::new(list, Some(&claims.sub));
                let channels: Vec<String> = subs.filed().map(String::from).collect();
                self.conns[id as usize].extra().subs = Some(subs);
                let session = self.sessions.acquire(&mut self.names, Some(&claims));
                let user = user_json(Some(&claims));
                self.refile(id, &channels, Some(session));
                self.respond(
                    id,
                    json!({"to": "authentication", "success": true, "user": user}),
                );
            }
            Err(e) => self.fail(id, close::POLICY_VIOLATION, &e.to_string()),
        }
    }

    fn subscribe(&mut self, id: ConnId, data: &Value) {
        #[derive(Deserialize)]
        struct Sub {
            #[serde(rename = "subscriptionId")]
            id: String,
            channels: Vec<String>,
        }
        let Some(new): Option<Vec<Sub>> = one_or_many(data) else {
            return self.send_error(
                id,
                close::UNSUPPORTED_DATA,
                "message format invalid: subscribe takes [{subscriptionId, channels}]",
            );
        };
        let listed: Vec<Value> = new
            .iter()
            .map(|s| json!({"subscriptionId": s.id, "channels": s.channels}))
            .collect();
        let new: Vec<Subscription> = new
            .into_iter()
            .map(|s| Subscription {
                id: s.id.into(),
                channels: s.channels.into_iter().map(Into::into).collect(),
            })
            .collect();
        let limits = self.shared.config.subscription_limits();
        let user = self.user_id(id);
        match self.subs(id).upsert(new, user.as_deref(), &limits) {
            Ok(change) => {
                self.refile_change(id, &change);
                self.respond(
                    id,
                    json!({"to": "subscribe", "success": true, "subscriptions": listed}),
                );
            }
            Err(over) => {
                self.shared.metrics.hit(Limit::from(over));
                self.send_error(id, close::POLICY_VIOLATION, &over.message(&limits));
            }
        }
    }

    fn unsubscribe(&mut self, id: ConnId, data: &Value) {
        #[derive(Deserialize)]
        struct Unsub {
            #[serde(rename = "subscriptionId")]
            id: String,
        }
        let Some(gone): Option<Vec<Unsub>> = one_or_many(data) else {
            return self.send_error(
                id,
                close::UNSUPPORTED_DATA,
                "message format invalid: unsubscribe takes [{subscriptionId}]",
            );
        };
        let ids: Vec<&str> = gone.iter().map(|g| g.id.as_str()).collect();
        let user = self.user_id(id);
        let change = self.subs(id).remove(&ids, user.as_deref());
        self.refile_change(id, &change);
        self.respond(
            id,
            json!({"to": "unsubscribe", "success": true, "subscriptions": ids}),
        );
    }
}

/// The answer to a client's close frame (RFC 6455 5.5.1, 7.4): its own
/// code echoed, 1000 for a close without one; a malformed close is a
/// protocol error (1002: a one-byte payload, or a code an endpoint must
/// never send), an invalid UTF-8 reason is 1007.
pub(super) fn close_reply(payload: &[u8]) -> Result<u16, (u16, &'static str)> {
    match payload.len() {
        0 => Ok(close::NORMAL),
        1 => Err((close::PROTOCOL_ERROR, "a close payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !valid_close_code(code) {
                return Err((close::PROTOCOL_ERROR, "a close code that must not be sent"));
            }
            if std::str::from_utf8(&payload[2..]).is_err() {
                return Err((close::INVALID_PAYLOAD, "a close reason that is not UTF-8"));
            }
            Ok(code)
        }
    }
}

/// Codes a close frame may carry: the defined ones that may be sent
/// (1000-1003, 1007-1014; not 1004-1006 or 1015) and the private range.
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A list of `T`, or one `T` alone.
fn one_or_many<T: for<'de> Deserialize<'de>>(data: &Value) -> Option<Vec<T>> {
    match data {
        Value::Array(_) => serde_json::from_value(data.clone()).ok(),
        Value::Object(_) => serde_json::from_value(data.clone())
            .ok()
            .map(|one| vec![one]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pong_frame_is_the_pong_message() {
        let mut wire = PONG.to_vec();
        let f = frame::parse(&mut wire, 1024, frame::Sender::Server)
            .unwrap()
            .unwrap();
        assert_eq!((f.opcode, f.fin), (frame::OP_TEXT, true));
        assert_eq!(&wire[f.payload_start..], br#"{"type":"pong"}"#);
    }

    #[test]
    fn close_frames_are_answered_as_rfc_6455_says() {
        let with = |code: u16, reason: &[u8]| [&code.to_be_bytes()[..], reason].concat();
        assert_eq!(close_reply(&[]), Ok(1000));
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert_eq!(close_reply(&with(ok, b"bye")), Ok(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(close_reply(&with(bad, b"")).unwrap_err().0, 1002, "{bad}");
        }
        assert_eq!(close_reply(&[3]).unwrap_err().0, 1002);
        assert_eq!(close_reply(&with(1000, b"\xff\xfe")).unwrap_err().0, 1007);
    }
}

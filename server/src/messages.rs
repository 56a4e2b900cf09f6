//! The server's messages of Appwrite's Realtime protocol, built as frames:
//! `connected`, `response`, `error`, `event` all go through `message`. A
//! leaf, so the admission check at the handshake and the session on an open
//! connection build them the same way.

use bytes::Bytes;
use serde_json::{Value, json};

use rtbench_protocol::frame;
use rtbench_protocol::jwt::Claims;

/// Largest client message, as in Appwrite.
pub(crate) const MAX_MESSAGE: usize = 64_000;
/// The subscription id of the channels given in the connect URL.
pub(crate) const URL_SUBSCRIPTION: &str = "default";

/// The channels a connection is filed under: its subscriptions' channels,
/// each once, with `account` rewritten to `account.<userId>` (and dropped for
/// a guest); `user` is the signed-in user's id.
pub(crate) fn effective_channels<'a>(
    subs: impl IntoIterator<Item = &'a str>,
    user: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in subs {
        let Some(c) = crate::subs::effective(c, user) else {
            continue;
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The `user` field of `connected` and `response` frames.
pub(crate) fn user_json(user: Option<&Claims>) -> Value {
    match user {
        Some(u) => json!({"$id": u.sub, "labels": u.labels}),
        None => Value::Null,
    }
}

/// A protocol message, `{"type":..,"data":..}` with `type` first, as
/// Appwrite writes it (clients may look at the start of a frame).
pub(crate) fn message(kind: &str, data: Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Message<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        data: Value,
    }
    frame::text(&serde_json::to_vec(&Message { kind, data }).expect("a message serializes"))
}

pub(crate) fn error_frame(code: u16, message_text: &str) -> Bytes {
    message("error", json!({"code": code, "message": message_text}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_rewritten_for_users_and_dropped_for_guests() {
        assert_eq!(
            effective_channels(["files", "account", "files"], Some("u1")),
            vec!["files", "account.u1"]
        );
        assert_eq!(
            effective_channels(["files", "account"], None),
            vec!["files"]
        );
    }
}

//! Event documents: Appwrite's bus format in, one shared WebSocket frame out.
//!
//! The same document arrives by `POST /v1/events` today and from Redis pub/sub
//! later, so parsing lives here, apart from either transport. The outgoing frame
//! is serialized once per event; every receiver gets a clone of the same bytes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use rtbench_protocol::frame;

/// A parsed event, ready to match and to send.
#[derive(Debug, Clone)]
pub struct Event {
    pub(crate) project: String,
    pub(crate) roles: Vec<String>,
    pub(crate) channels: Vec<String>,
    /// The bus's number for this event (`bus.rs`), when it came numbered.
    pub(crate) seq: Option<u64>,
    /// The complete `{"type":"event",...}` text frame, shared by all receivers.
    pub frame: Bytes,
}

#[derive(Deserialize)]
struct Document {
    project: String,
    roles: Vec<String>,
    // Accepted as Appwrite sends them; roles come from tokens here, so a
    // permissions change needs no lookup.
    #[serde(rename = "permissionsChanged", default)]
    _permissions_changed: bool,
    #[serde(rename = "userId", default)]
    _user_id: Option<String>,
    #[serde(rename = "rtbenchSeq", default)]
    seq: Option<u64>,
    data: Data,
}

#[derive(Deserialize, Serialize)]
struct Data {
    events: Vec<String>,
    channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    payload: Box<RawValue>,
}

#[derive(Serialize)]
struct OutFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: &'a Data,
}

/// Any JSON value, read in full (strings unescaped, so every escape is
/// checked) and kept nowhere.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_string<E>(self, _: String) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

/// Parses one event document; the error names what is wrong and where.
pub fn parse(body: &[u8]) -> Result<Event, String> {
    let mut doc: Document =
        serde_json::from_slice(body).map_err(|e| format!("invalid event document: {e}"))?;
    if doc.project.is_empty() {
        return Err("invalid event document: `project` is empty".into());
    }
    if !doc.data.payload.get().starts_with('{') {
        return Err("invalid event document: `data.payload` must be an object".into());
    }
    // The payload goes to every receiver as it is: it must be JSON every
    // parser takes (a raw value is only checked for syntax; a lone UTF-16
    // surrogate in an escape would pass it and break strict clients).
    serde_json::from_str::<Strict>(doc.data.payload.get())
        .map_err(|e| format!("invalid event document: `data.payload`: {e}"))?;
    if doc.data.timestamp.is_none() {
        doc.data.timestamp = Some(rtbench_protocol::time::appwrite_timestamp(
            rtbench_protocol::time::now_ns(),
        ));
    }
    let text = serde_json::to_vec(&OutFrame {
        kind: "event",
        data: &doc.data,
    })
    .expect("event serializes");
    Ok(Event {
        project: doc.project,
        roles: doc.roles,
        channels: doc.data.channels,
        seq: doc.seq,
        frame: frame::text(&text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"project":"p1","roles":["any"],"permissionsChanged":false,"userId":null,
        "data":{"events":["buckets.b1.files.f1.create"],"channels":["files","buckets.b1.files"],
        "timestamp":"2026-11-28T00:00:00.000+00:00","payload":{"$id":"f1","n":[1,2]}}}"#;

    #[test]
    fn frame_carries_data_unchanged() {
        let ev = parse(DOC.as_bytes()).unwrap();
        assert_eq!(ev.project, "p1");
        assert_eq!(ev.channels, vec!["files", "buckets.b1.files"]);
        let mut wire = ev.frame.to_vec();
        let f = frame::parse(&mut wire, usize::MAX, frame::Sender::Server)
            .unwrap()
            .unwrap();
        let text: serde_json::Value = serde_json::from_slice(&wire[f.payload_start..]).unwrap();
        assert_eq!(text["type"], "event");
        assert_eq!(text["data"]["payload"]["n"][1], 2);
        assert_eq!(text["data"]["timestamp"], "2026-11-28T00:00:00.000+00:00");
    }

    #[test]
    fn errors_name_the_problem() {
        let e =
            parse(br#"{"project":"p","roles":[],"data":{"events":[],"payload":{}}}"#).unwrap_err();
        assert!(e.contains("missing field `channels`"), "{e}");
        let e = parse(br#"{"project":"p","roles":"any","data":{}}"#).unwrap_err();
        assert!(e.contains("line 1 column"), "{e}");
        let e =
            parse(br#"{"project":"p","roles":[],"data":{"events":[],"channels":[],"payload":3}}"#)
                .unwrap_err();
        assert!(e.contains("data.payload"), "{e}");
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn a_payload_every_parser_cannot_read_is_refused() {
        let doc = |payload: &str| {
            format!(
                r#"{{"project":"p","roles":[],"data":{{"events":[],"channels":[],"payload":{payload}}}}}"#
            )
        };
        assert!(
            parse(doc(r#"{"s":"\ud83d\ude00"}"#).as_bytes()).is_ok(),
            "a surrogate pair is fine"
        );
        for lone in [
            r#"{"s":"\ud83d"}"#,
            r#"{"s":"\ud83dx"}"#,
            r#"{"s":"\ude00"}"#,
        ] {
            let e = parse(doc(lone).as_bytes()).unwrap_err();
            assert!(
                e.contains("`data.payload`")
                    && (e.contains("surrogate") || e.contains("hex escape")),
                "{lone}: {e}"
            );
        }
    }

    #[test]
    fn a_missing_timestamp_is_filled_in() {
        let ev =
            parse(br#"{"project":"p","roles":[],"data":{"events":[],"channels":[],"payload":{}}}"#)
                .unwrap();
        let text = String::from_utf8_lossy(&ev.frame);
        assert!(
            text.contains(r#""timestamp":"20"#) && text.contains("+00:00"),
            "{text}"
        );
    }
}

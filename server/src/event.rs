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
    pub project: String,
    pub roles: Vec<String>,
    pub channels: Vec<String>,
    /// The bus's number for this event (`bus.rs`), when it came numbered.
    pub seq: Option<u64>,
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

/// Parses one event document; the error names what is wrong and where.
pub fn parse(body: &[u8]) -> Result<Event, String> {
    let mut doc: Document = serde_json::from_slice(body).map_err(|e| format!("invalid event document: {e}"))?;
    if doc.project.is_empty() {
        return Err("invalid event document: `project` is empty".into());
    }
    if !doc.data.payload.get().starts_with('{') {
        return Err("invalid event document: `data.payload` must be an object".into());
    }
    if doc.data.timestamp.is_none() {
        doc.data.timestamp = Some(rtbench_protocol::time::appwrite_timestamp(rtbench_protocol::time::now_ns()));
    }
    let text = serde_json::to_vec(&OutFrame { kind: "event", data: &doc.data }).expect("event serializes");
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
        let f = frame::parse(&mut wire, usize::MAX, frame::Sender::Server).unwrap().unwrap();
        let text: serde_json::Value = serde_json::from_slice(&wire[f.payload_start..]).unwrap();
        assert_eq!(text["type"], "event");
        assert_eq!(text["data"]["payload"]["n"][1], 2);
        assert_eq!(text["data"]["timestamp"], "2026-11-28T00:00:00.000+00:00");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse(br#"{"project":"p","roles":[],"data":{"events":[],"payload":{}}}"#).unwrap_err();
        assert!(e.contains("missing field `channels`"), "{e}");
        let e = parse(br#"{"project":"p","roles":"any","data":{}}"#).unwrap_err();
        assert!(e.contains("line 1 column"), "{e}");
        let e = parse(br#"{"project":"p","roles":[],"data":{"events":[],"channels":[],"payload":3}}"#).unwrap_err();
        assert!(e.contains("data.payload"), "{e}");
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn a_missing_timestamp_is_filled_in() {
        let ev = parse(br#"{"project":"p","roles":[],"data":{"events":[],"channels":[],"payload":{}}}"#).unwrap();
        let text = String::from_utf8_lossy(&ev.frame);
        assert!(text.contains(r#""timestamp":"20"#) && text.contains("+00:00"), "{text}");
    }
}

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
        doc.data.timestamp = Some(iso8601_now());
    }
    let text = serde_json::to_vec(&OutFrame { kind: "event", data: &doc.data }).expect("event serializes");
    Ok(Event { project: doc.project, roles: doc.roles, channels: doc.data.channels, frame: frame::text(&text) })
}

/// The current time as Appwrite writes it: `2026-11-28T00:00:00.000+00:00`.
pub fn iso8601_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    iso8601(now.as_secs(), now.subsec_millis())
}

fn iso8601(secs: u64, millis: u32) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}+00:00", rem / 3600, rem / 60 % 60, rem % 60)
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
    fn timestamps_are_filled_in_appwrite_format() {
        assert_eq!(iso8601(0, 0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(iso8601(1_795_824_000, 7), "2026-11-28T00:00:00.007+00:00");
        assert_eq!(iso8601(951_782_400 + 3661, 999), "2000-02-29T01:01:01.999+00:00");
    }
}

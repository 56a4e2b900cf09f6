//! The stamp an event carries from publisher to receivers, and its reader.
//!
//! The publisher writes `{"ts":<unix ns>,"seq":<n>,"to":"<role>","pad":"x.."}`
//! as the event payload. Receivers must not spend more than a microsecond per
//! frame, so they do not parse JSON: they find the few fields by substring
//! search in the frame the server sent. Both sides use this one module.

use memchr::memmem;

/// What a receiver needs from an event frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    pub ts_ns: u64,
    pub seq: u64,
    pub to: &'a str,
    pub channel: &'a str,
}

/// The payload for event `seq`, readable by `to`, padded to `size` bytes.
pub fn payload(ts_ns: u64, seq: u64, to: &str, size: usize) -> String {
    let mut s = format!(r#"{{"ts":{ts_ns},"seq":{seq},"to":"{to}","pad":""#);
    let pad = size.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// Reads the stamp from an Appwrite `event` frame's text; `None` for any
/// other frame.
pub fn read(frame: &[u8]) -> Option<Stamp<'_>> {
    if !frame.starts_with(br#"{"type":"event""#) {
        return None;
    }
    Some(Stamp {
        ts_ns: number_after(frame, br#""ts":"#)?,
        seq: number_after(frame, br#""seq":"#)?,
        to: string_after(frame, br#""to":""#)?,
        channel: string_after(frame, br#""channels":[""#)?,
    })
}

fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = memmem::find(hay, key)? + key.len();
    let digits = hay[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&hay[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn string_after<'a>(hay: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let at = memmem::find(hay, key)? + key.len();
    let end = memchr::memchr(b'"', &hay[at..])?;
    std::str::from_utf8(&hay[at..at + end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_server_sends() {
        let p = payload(1_700_000_000_123_456_789, 42, "team:t3", 200);
        assert_eq!(p.len(), 200);
        let frame = format!(
            r#"{{"type":"event","data":{{"events":["rtbench.event"],"channels":["chat.7"],"timestamp":"2026-11-28T00:00:00.000+00:00","payload":{p}}}}}"#
        );
        let s = read(frame.as_bytes()).unwrap();
        assert_eq!(
            s,
            Stamp {
                ts_ns: 1_700_000_000_123_456_789,
                seq: 42,
                to: "team:t3",
                channel: "chat.7"
            }
        );
        assert!(read(br#"{"type":"pong"}"#).is_none());
        assert!(read(br#"{"type":"event","data":{}}"#).is_none());
    }
}

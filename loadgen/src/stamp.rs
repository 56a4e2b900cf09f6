//! The stamp an event carries from publisher to receivers, and its reader.
//!
//! The publisher writes `{"ts":<unix ns>,"seq":<n>,"to":"<role>","pad":"x.."}`
//! as the event payload. Receivers must not spend more than a microsecond per
//! frame, so they do not parse JSON: they find the few fields by substring
//! search in whatever carries the payload (an Appwrite `event` frame, a NATS
//! `MSG`, a Socket.IO event that a server parsed and wrote again, perhaps
//! with spaces). Both sides use this one module.

use memchr::memmem;

/// What a receiver needs from an event's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    pub ts_ns: u64,
    pub seq: u64,
    pub to: &'a str,
}

/// The payload for event `seq`, readable by `to`, padded to `size` bytes.
pub fn payload(ts_ns: u64, seq: u64, to: &str, size: usize) -> String {
    let mut s = format!(r#"{{"ts":{ts_ns},"seq":{seq},"to":"{to}","pad":""#);
    let pad = size.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// Reads the stamp from text that holds a payload; `None` when it has none.
pub fn read(body: &[u8]) -> Option<Stamp<'_>> {
    Some(Stamp {
        ts_ns: number_after(body, br#""ts""#)?,
        seq: number_after(body, br#""seq""#)?,
        to: string_after(body, br#""to""#)?,
    })
}

/// Where the value of `key` starts: after the key, a colon and any spaces.
fn value_of(hay: &[u8], key: &[u8]) -> Option<usize> {
    let mut at = memmem::find(hay, key)? + key.len();
    let skip = |at: &mut usize| {
        while hay.get(*at).is_some_and(|b| b.is_ascii_whitespace()) {
            *at += 1;
        }
    };
    skip(&mut at);
    (hay.get(at) == Some(&b':')).then_some(())?;
    at += 1;
    skip(&mut at);
    Some(at)
}

pub(crate) fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = value_of(hay, key)?;
    let digits = hay[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&hay[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

pub(crate) fn string_after<'a>(hay: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let at = value_of(hay, key)?;
    (hay.get(at) == Some(&b'"')).then_some(())?;
    let end = memchr::memchr(b'"', &hay[at + 1..])?;
    std::str::from_utf8(&hay[at + 1..at + 1 + end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_publisher_wrote_wherever_it_is_carried() {
        let p = payload(1_700_000_000_123_456_789, 42, "team:t3", 200);
        assert_eq!(p.len(), 200);
        let want = Stamp {
            ts_ns: 1_700_000_000_123_456_789,
            seq: 42,
            to: "team:t3",
        };
        let frame = format!(
            r#"{{"type":"event","data":{{"events":["rtbench.event"],"channels":["chat.7"],"timestamp":"2026-11-28T00:00:00.000+00:00","payload":{p}}}}}"#
        );
        assert_eq!(read(frame.as_bytes()), Some(want));
        assert_eq!(read(p.as_bytes()), Some(want));
        // As a server that parsed and wrote it again with spaces does.
        let spaced =
            r#"["event", "chat.7", {"ts": 1700000000123456789, "seq": 42, "to": "team:t3"}]"#;
        assert_eq!(read(spaced.as_bytes()), Some(want));
        assert!(read(br#"{"type":"pong"}"#).is_none());
        assert!(read(br#"{"ts":"x","seq":1,"to":"any"}"#).is_none());
    }
}

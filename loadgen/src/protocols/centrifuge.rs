//! Centrifuge's client protocol, JSON encoding (the `centrifuge` Go
//! library Centrifugo is built on, as Debian packages it: protocol v1):
//! commands and replies are JSON objects, one a line, several in a frame.
//! The client sends `connect` (id 1) and a `subscribe` per channel (ids 2
//! and up) at once; the reply to the last one opens the connection.
//! Publications arrive as `{"result":{"channel":"<channel>","data":{"data":
//! <payload>}}}`; the client's keepalive is the `ping` command, answered by
//! a reply with its id. The publisher sends `publish` commands.

use super::{ErrorKey, Greet, Hello, Msg, Outbox};

/// The ping command; its id tells its reply from the others.
pub const PING: &[u8] = br#"{"id":4000000000,"method":7}"#;
const PONG: &[u8] = br#"{"id":4000000000}"#;
const PUBLICATION: &[u8] = br#"{"result":{"channel":""#;
const DATA: &[u8] = br#""data":{"data":"#;
const ERROR: ErrorKey = ErrorKey::Named("centrifuge_error");

/// One line: a reply or a push.
fn message(line: &[u8]) -> Msg<'_> {
    if let Some(rest) = line.strip_prefix(PUBLICATION) {
        let Some(end) = memchr::memchr(b'"', rest) else {
            return Msg::Other;
        };
        let (Ok(channel), Some(at)) = (
            std::str::from_utf8(&rest[..end]),
            memchr::memmem::find(&rest[end..], DATA),
        ) else {
            return Msg::Other;
        };
        return Msg::Event {
            channel,
            body: &rest[end + at + DATA.len()..],
        };
    }
    if line == PONG {
        return Msg::Pong;
    }
    if line.starts_with(br#"{"id":"#) && memchr::memmem::find(line, br#""error":"#).is_some() {
        return Msg::Error(ERROR);
    }
    Msg::Other
}

fn lines(payload: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < payload.len() {
            let start = at;
            let end = memchr::memchr(b'\n', &payload[at..]).map_or(payload.len(), |i| at + i);
            at = end + 1;
            if end > start {
                return Some((start, &payload[start..end]));
            }
        }
        None
    })
}

/// A text frame on an open connection: every line of it.
pub fn read(payload: &[u8], on: &mut impl FnMut(Msg<'_>)) {
    for (_, line) in lines(payload) {
        on(message(line));
    }
}

/// `connect`, then a `subscribe` per channel, in one frame.
pub fn connect(hello: &Hello) -> Vec<u8> {
    let mut s = format!(r#"{{"id":1,"params":{{"name":"{}"}}}}"#, hello.client_id);
    for (i, c) in hello.channels.iter().enumerate() {
        let channel = serde_json::to_string(c).expect("a string serializes");
        s.push_str(&format!(
            "\n{{\"id\":{},\"method\":1,\"params\":{{\"channel\":{channel}}}}}",
            i + 2
        ));
    }
    s.into_bytes()
}

/// The handshake: everything was sent with the upgrade
/// (`Greeting::upgraded`); open on the last command's reply.
pub fn greet(hello: &Hello, payload: &[u8], _out: &mut Outbox) -> Greet {
    let last = format!(r#"{{"id":{},"#, hello.channels.len() + 1);
    for (at, line) in lines(payload) {
        match message(line) {
            Msg::Error(_) => return Greet::Failed("centrifuge_error".into()),
            Msg::Event { .. } => return Greet::Open { rest: at },
            _ if line.starts_with(last.as_bytes()) => {
                return Greet::Open {
                    rest: (at + line.len() + 1).min(payload.len()),
                };
            }
            _ => {}
        }
    }
    Greet::Wait
}

/// The publisher's `publish` command (its replies are not waited for).
pub fn publish(channel: &str, body: &str) -> Vec<u8> {
    let channel = serde_json::to_string(channel).expect("a string serializes");
    format!(r#"{{"id":1,"method":3,"params":{{"channel":{channel},"data":{body}}}}}"#).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_pongs_and_errors_are_read_line_by_line() {
        let frame = b"{\"result\":{\"channel\":\"room-1\",\"data\":{\"data\":{\"ts\":1,\"seq\":2,\"to\":\"any\"},\"info\":{\"client\":\"x\"}}}}\n{\"id\":4000000000}\n{\"id\":3,\"error\":{\"code\":103,\"message\":\"permission denied\"}}\n";
        let mut seen = Vec::new();
        read(frame, &mut |m| seen.push(format!("{m:?}")));
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[0].contains("channel: \"room-1\""));
        assert_eq!(seen[1], "Pong");
        assert_eq!(seen[2], "Error(Named(\"centrifuge_error\"))");
        let Msg::Event { body, .. } = message(frame.split(|&b| b == b'\n').next().unwrap()) else {
            panic!("an event")
        };
        assert!(body.starts_with(br#"{"ts":1,"#));
    }

    #[test]
    fn the_handshake_opens_on_the_last_subscribes_reply() {
        let hello = Hello {
            channels: vec!["a".into(), "b".into()],
            client_id: "c".into(),
            keepalive_s: 0.0,
        };
        assert_eq!(
            String::from_utf8(connect(&hello)).unwrap(),
            "{\"id\":1,\"params\":{\"name\":\"c\"}}\n{\"id\":2,\"method\":1,\"params\":{\"channel\":\"a\"}}\n{\"id\":3,\"method\":1,\"params\":{\"channel\":\"b\"}}"
        );
        let (mut wire, mut mask) = (Vec::new(), 1u32);
        let mut out = Outbox {
            wire: &mut wire,
            mask: &mut mask,
        };
        let reply = b"{\"id\":1,\"result\":{\"client\":\"x\"}}\n{\"id\":2,\"result\":{}}\n";
        assert_eq!(greet(&hello, reply, &mut out), Greet::Wait);
        let reply = b"{\"id\":3,\"result\":{}}\n";
        assert_eq!(
            greet(&hello, reply, &mut out),
            Greet::Open { rest: reply.len() }
        );
        let refused = b"{\"id\":2,\"error\":{\"code\":103,\"message\":\"permission denied\"}}";
        assert_eq!(
            greet(&hello, refused, &mut out),
            Greet::Failed("centrifuge_error".into())
        );
    }
}

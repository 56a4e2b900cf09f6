//! Any WebSocket server: connect, hold, and (when the session asks) echo.
//! An echo message is `ECHO_PREFIX` and its send time; whatever comes back
//! is matched by payload, in a text frame or a binary one (Node's `ws`
//! sends a received message back as binary unless told otherwise). A frame
//! that is no echo is `Unmatched`, so a run whose frames come back but
//! never match says what they were.

use super::Msg;
use rtbench_protocol::frame;

/// Echo messages: this prefix, then the send time in ns.
pub const ECHO_PREFIX: &[u8] = b"rtbench-echo:";

/// The echo message sent at `now_ns`.
pub fn echo(now_ns: u64) -> Vec<u8> {
    [ECHO_PREFIX, now_ns.to_string().as_bytes()].concat()
}

/// A data frame that came back.
pub fn read(opcode: u8, payload: &[u8]) -> Msg<'_> {
    if !matches!(opcode, frame::OP_TEXT | frame::OP_BINARY) {
        return Msg::Other;
    }
    let sent = payload
        .strip_prefix(ECHO_PREFIX)
        .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
        .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok());
    match sent {
        Some(ts) => Msg::Echo(ts),
        None => Msg::Unmatched { opcode, payload },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_match_by_payload_in_text_and_binary_frames() {
        let m = echo(1234);
        assert_eq!(read(frame::OP_TEXT, &m), Msg::Echo(1234));
        assert_eq!(read(frame::OP_BINARY, &m), Msg::Echo(1234));
        assert_eq!(
            read(frame::OP_TEXT, b"rtbench-echo:12x"),
            Msg::Unmatched {
                opcode: frame::OP_TEXT,
                payload: b"rtbench-echo:12x"
            }
        );
        assert_eq!(read(frame::OP_PONG, b""), Msg::Other);
    }
}

//! RFC 6455 framing, written for hot paths on both ends.
//!
//! Neither the server nor the load generator keeps a read buffer per
//! connection (a large part of what an idle connection costs in a library
//! that does, such as tungstenite; this workspace's measured cost per idle
//! connection is README.md's, from `cargo xtask memprobe`), so both need a
//! parser that works on whatever slice a worker thread just read into its
//! own buffer and tells how much it consumed.
//! Server frames are unmasked, so one encoded event is valid on every
//! connection and is shared; client frames are masked.

use bytes::{BufMut, Bytes, BytesMut};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes the server sends (RFC 6455 section 7.4.1 and Appwrite's codes).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// The fixed part of a parsed client frame; the payload is unmasked in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    /// Offset of the payload within the parsed slice.
    pub payload_start: usize,
    pub payload_len: usize,
}

impl Frame {
    /// Offset just past this frame in the input.
    pub fn end(&self) -> usize {
        self.payload_start + self.payload_len
    }

    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// A client frame that breaks the protocol: the connection is closed with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: u16,
    pub reason: &'static str,
}

/// Who sent the frames being read: a server reads masked client frames, a
/// client reads unmasked server frames; anything else is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

/// Parses one frame at the start of `buf`, unmasking a client frame in place.
///
/// `Ok(None)` means the frame is incomplete: keep the bytes and read more.
pub fn parse(
    buf: &mut [u8],
    max_payload: usize,
    from: Sender,
) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 {
        return Err(err(close::PROTOCOL_ERROR, "reserved bits set"));
    }
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(err(close::PROTOCOL_ERROR, "unknown opcode"));
    }
    let masked = b1 & 0x80 != 0;
    match (from, masked) {
        (Sender::Client, false) => {
            return Err(err(close::PROTOCOL_ERROR, "client frame not masked"));
        }
        (Sender::Server, true) => return Err(err(close::PROTOCOL_ERROR, "server frame masked")),
        _ => {}
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            // RFC 6455 5.2: "the most significant bit MUST be 0". A length
            // that breaks the framing is a protocol error, not a big message.
            if len >> 63 != 0 {
                return Err(err(
                    close::PROTOCOL_ERROR,
                    "64-bit payload length with its most significant bit set",
                ));
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    if opcode & 0x8 != 0 && (len > 125 || !fin) {
        return Err(err(close::PROTOCOL_ERROR, "invalid control frame"));
    }
    if len > max_payload as u64 {
        return Err(err(
            close::MESSAGE_TOO_BIG,
            "frame exceeds the maximum size",
        ));
    }
    let len = len as usize;
    let mask_len = if masked { 4 } else { 0 };
    if buf.len() < at + mask_len + len {
        return Ok(None);
    }
    if masked {
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&buf[at..at + 4]);
        at += 4;
        unmask(&mut buf[at..at + len], mask);
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload_start: at,
        payload_len: len,
    }))
}

fn err(code: u16, reason: &'static str) -> FrameError {
    FrameError { code, reason }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Encodes one unmasked server frame.
pub fn encode(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    put_head(&mut out, opcode, payload.len(), 0);
    out.put_slice(payload);
    out.freeze()
}

/// Encodes one small client frame (payload at most 125 bytes) into `out`,
/// masked with `mask`; returns its length. No allocation: the load
/// generator's pings take this path a million times a run.
pub fn encode_masked_into(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut [u8]) -> usize {
    assert!(
        payload.len() <= 125 && out.len() >= payload.len() + 6,
        "a small frame"
    );
    out[0] = 0x80 | opcode;
    out[1] = 0x80 | payload.len() as u8;
    out[2..6].copy_from_slice(&mask);
    let body = &mut out[6..6 + payload.len()];
    body.copy_from_slice(payload);
    unmask(body, mask);
    6 + payload.len()
}

/// Encodes one client frame, masked with `mask` (RFC 6455 section 5.3).
pub fn encode_masked(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(payload.len() + 14);
    put_head(&mut out, opcode, payload.len(), 0x80);
    out.put_slice(&mask);
    let start = out.len();
    out.put_slice(payload);
    unmask(&mut out[start..], mask);
    out.to_vec()
}

fn put_head(out: &mut BytesMut, opcode: u8, len: usize, mask_bit: u8) {
    out.put_u8(0x80 | opcode);
    match len {
        n if n < 126 => out.put_u8(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            out.put_u8(mask_bit | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(mask_bit | 127);
            out.put_u64(n as u64);
        }
    }
}

pub fn text(payload: &[u8]) -> Bytes {
    encode(OP_TEXT, payload)
}

pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    encode(OP_CLOSE, &payload)
}

/// Reads the code of a close frame's payload (1005 "no status" when empty).
pub fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1005,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = encode_masked(opcode, payload, [0x37, 0xfa, 0x21, 0x3d]);
        if !fin {
            v[0] &= 0x7F;
        }
        v
    }

    #[test]
    fn parses_every_length_form_and_unmasks() {
        for n in [0usize, 1, 5, 125, 126, 1000, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let mut wire = masked(OP_TEXT, true, &payload);
            let f = parse(&mut wire, 100_000, Sender::Client).unwrap().unwrap();
            assert_eq!(f.end(), wire.len());
            assert_eq!(&wire[f.payload_start..f.end()], &payload[..], "length {n}");
        }
    }

    #[test]
    fn small_frames_encode_in_place_as_encode_masked_does() {
        let mut out = [0u8; 131];
        for n in [0usize, 1, 15, 125] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let len = encode_masked_into(OP_TEXT, &payload, [1, 2, 3, 4], &mut out);
            assert_eq!(
                &out[..len],
                &encode_masked(OP_TEXT, &payload, [1, 2, 3, 4])[..],
                "length {n}"
            );
        }
    }

    #[test]
    fn incomplete_input_asks_for_more_at_every_cut() {
        let wire = masked(OP_TEXT, true, &[7u8; 300]);
        for cut in 0..wire.len() {
            let mut part = wire[..cut].to_vec();
            assert_eq!(
                parse(&mut part, 1000, Sender::Client),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn rejects_protocol_violations() {
        let mut unmasked = vec![0x81, 0x01, b'a'];
        assert_eq!(
            parse(&mut unmasked, 100, Sender::Client).unwrap_err().code,
            close::PROTOCOL_ERROR
        );
        let mut big = masked(OP_TEXT, true, &[0u8; 200]);
        assert_eq!(
            parse(&mut big, 100, Sender::Client).unwrap_err().code,
            close::MESSAGE_TOO_BIG
        );
        let mut frag_ping = masked(OP_PING, false, b"x");
        assert_eq!(
            parse(&mut frag_ping, 100, Sender::Client).unwrap_err().code,
            close::PROTOCOL_ERROR
        );
        let mut rsv = masked(OP_TEXT, true, b"x");
        rsv[0] |= 0x40;
        assert_eq!(
            parse(&mut rsv, 100, Sender::Client).unwrap_err().code,
            close::PROTOCOL_ERROR
        );
        let mut bad_op = masked(0x3, true, b"x");
        assert_eq!(
            parse(&mut bad_op, 100, Sender::Client).unwrap_err().code,
            close::PROTOCOL_ERROR
        );
        // A 64-bit length with its top bit set is malformed (1002) for
        // either sender, whatever the limit; just under it is only too big.
        for from in [Sender::Client, Sender::Server] {
            let mask = if from == Sender::Client { 0x80 } else { 0 };
            let mut msb = vec![0x82, mask | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
            assert_eq!(
                parse(&mut msb, usize::MAX, from).unwrap_err().code,
                close::PROTOCOL_ERROR
            );
            let mut top = vec![
                0x82,
                mask | 127,
                0x7f,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
            ];
            assert_eq!(
                parse(&mut top, 100, from).unwrap_err().code,
                close::MESSAGE_TOO_BIG
            );
        }
    }

    proptest::proptest! {
        /// Any bytes from the network: an answer, never a panic, and a frame
        /// that fits inside what was given.
        #[test]
        fn arbitrary_input_never_panics(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), max in 0usize..200) {
            if let Ok(Some(f)) = parse(&mut bytes, max, Sender::Client) {
                proptest::prop_assert!(f.end() <= bytes.len() && f.payload_len <= max);
            }
        }

        /// A masked frame of any opcode, fin and payload parses back to itself.
        #[test]
        fn masked_frames_round_trip(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..70_000), fin: bool, op in 0usize..3) {
            let opcode = [OP_CONTINUATION, OP_TEXT, OP_BINARY][op];
            let mut wire = masked(opcode, fin, &payload);
            let f = parse(&mut wire, 70_000, Sender::Client).unwrap().unwrap();
            proptest::prop_assert_eq!((f.fin, f.opcode, f.end()), (fin, opcode, wire.len()));
            proptest::prop_assert_eq!(&wire[f.payload_start..], &payload[..]);
        }
    }

    #[test]
    fn server_frames_parse_unmasked_and_masking_is_checked() {
        for n in [0usize, 125, 126, 65536] {
            let payload = vec![9u8; n];
            let mut wire = encode(OP_TEXT, &payload).to_vec();
            let f = parse(&mut wire, 70_000, Sender::Server).unwrap().unwrap();
            assert_eq!(
                (&wire[f.payload_start..], f.end()),
                (&payload[..], wire.len())
            );
            assert_eq!(
                parse(&mut wire, 70_000, Sender::Client).unwrap_err().code,
                close::PROTOCOL_ERROR
            );
        }
        let mut client = masked(OP_TEXT, true, b"x");
        assert_eq!(
            parse(&mut client, 10, Sender::Server).unwrap_err().code,
            close::PROTOCOL_ERROR
        );
    }

    #[test]
    fn encodes_lengths_as_the_rfc_says() {
        assert_eq!(&text(b"hi")[..], &[0x81, 2, b'h', b'i']);
        assert_eq!(&encode(OP_TEXT, &[0; 126])[..4], &[0x81, 126, 0, 126]);
        assert_eq!(
            &encode(OP_TEXT, &[0; 65536])[..10],
            &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(close_code(&close_frame(1013, "full")[2..]), 1013);
    }
}

//! The chunked transfer coding (RFC 9112 7.1), decoded as bytes arrive.
//!
//! RFC 9112 says every HTTP/1.1 recipient must be able to parse chunked,
//! and HTTP clients send it for streamed bodies, so `POST /v1/events`
//! takes it. The decoder is sans-IO: `feed` is given whatever has arrived
//! and says how much of it was used, leaving an incomplete line for the
//! next call (`http.rs` reads more and calls again). What a client could
//! make it hold is bounded: the decoded body by the caller's limit (the
//! event size limit: `TooLarge`, which the caller answers with 413), a
//! chunk-size line and the trailer section by `MAX_LINE` and
//! `request::MAX_HEAD`. Chunk extensions and trailer fields are checked
//! for their grammar's characters and ignored. Lines end in CRLF only: a
//! bare LF or CR is refused, so no two parsers can disagree on where a
//! chunk ends.

use crate::request::MAX_HEAD;

/// Longest chunk-size line (size, extensions, CRLF).
pub(crate) const MAX_LINE: usize = 4096;

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The decoded body would exceed the limit (413).
    TooLarge,
    /// Not the chunked coding's grammar (400), with what is wrong.
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes to go.
    Data(usize),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailer,
    Done,
}

#[derive(Debug)]
pub struct Chunked {
    state: State,
    body: Vec<u8>,
    limit: usize,
    /// Trailer bytes so far.
    trailer: usize,
}

impl Chunked {
    /// A decoder whose body may grow to `limit` bytes.
    pub fn new(limit: usize) -> Chunked {
        Chunked {
            state: State::Size,
            body: Vec::new(),
            limit,
            trailer: 0,
        }
    }

    /// Decodes from `input`; returns the bytes used (the rest is an
    /// incomplete line, or what follows the body) and whether the body is
    /// whole.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), ChunkError> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.state {
                State::Done => return Ok((at, true)),
                State::Data(left) => {
                    let n = left.min(rest.len());
                    self.body.extend_from_slice(&rest[..n]);
                    at += n;
                    if n < left {
                        self.state = State::Data(left - n);
                        return Ok((at, false));
                    }
                    self.state = State::DataEnd;
                }
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        self.state = State::Size;
                    }
                    [] | [b'\r'] => return Ok((at, false)),
                    _ => return Err(ChunkError::Malformed("chunk data longer than its size")),
                },
                State::Size => {
                    let Some(line) = line(rest, MAX_LINE, "chunk-size line too long")? else {
                        return Ok((at, false));
                    };
                    at += line.len() + 2;
                    let size = chunk_size(line)?;
                    if size > self.limit - self.body.len() {
                        return Err(ChunkError::TooLarge);
                    }
                    if size == 0 {
                        self.state = State::Trailer;
                    } else {
                        // Grows as data arrives: announcing a size costs nothing.
                        self.state = State::Data(size);
                    }
                }
                State::Trailer => {
                    let room = MAX_HEAD.saturating_sub(self.trailer);
                    let Some(line) = line(rest, room, "trailer section too long")? else {
                        return Ok((at, false));
                    };
                    at += line.len() + 2;
                    self.trailer += line.len() + 2;
                    if line.is_empty() {
                        self.state = State::Done;
                    } else {
                        trailer_field(line)?;
                    }
                }
            }
        }
    }

    /// The decoded body (whole once `feed` said so).
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// The line at the start of `input` without its CRLF; `None` while its end
/// has not arrived (within `max` bytes, CRLF included).
fn line<'a>(
    input: &'a [u8],
    max: usize,
    too_long: &'static str,
) -> Result<Option<&'a [u8]>, ChunkError> {
    match input.iter().position(|&b| b == b'\n' || b == b'\r') {
        Some(i) if i + 2 > max => Err(ChunkError::Malformed(too_long)),
        Some(i) => match input.get(i..i + 2) {
            Some(b"\r\n") => Ok(Some(&input[..i])),
            Some(_) => Err(ChunkError::Malformed("a line not ended by CRLF")),
            None if input[i] == b'\r' => Ok(None),
            None => Err(ChunkError::Malformed("a line not ended by CRLF")),
        },
        None if input.len() + 2 > max => Err(ChunkError::Malformed(too_long)),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]`: the size, its extensions checked and ignored.
fn chunk_size(line: &[u8]) -> Result<usize, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError::Malformed("chunk size is not hexadecimal"));
    }
    // Leading zeros are allowed; past 15 significant digits no size fits.
    let significant = line[..digits].iter().skip_while(|&&b| b == b'0').count();
    if significant > 15 {
        return Err(ChunkError::TooLarge);
    }
    let text = std::str::from_utf8(&line[..digits]).expect("hex digits are ASCII");
    let size = usize::from_str_radix(text, 16).map_err(|_| ChunkError::TooLarge)?;
    extensions(&line[digits..])?;
    Ok(size)
}

/// `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, value a token or a
/// quoted string: checked for its characters, then ignored.
fn extensions(ext: &[u8]) -> Result<(), ChunkError> {
    let trimmed = ext
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&[][..], |i| &ext[i..]);
    if trimmed.is_empty() {
        return Ok(());
    }
    if trimmed[0] != b';' {
        return Err(ChunkError::Malformed(
            "chunk size followed by something other than an extension",
        ));
    }
    if trimmed.iter().any(|&b| is_ctl(b)) {
        return Err(ChunkError::Malformed(
            "a control character in a chunk extension",
        ));
    }
    Ok(())
}

/// `field-name ":" OWS field-value OWS`, checked for its characters, ignored.
fn trailer_field(line: &[u8]) -> Result<(), ChunkError> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(ChunkError::Malformed("a trailer field without a colon"));
    };
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(ChunkError::Malformed(
            "a trailer field name that is not a token",
        ));
    }
    if line[colon + 1..].iter().any(|&b| is_ctl(b)) {
        return Err(ChunkError::Malformed(
            "a control character in a trailer field",
        ));
    }
    Ok(())
}

/// A control character other than HTAB (RFC 9110 5.5).
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// A token character (RFC 9110 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `body` in the chunked coding, in chunks of `size` (tests, fuzzing).
pub fn encode(body: &[u8], size: usize, extension: &str, trailer: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}{extension}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0{extension}\r\n{trailer}\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes, as reads would bring it.
    fn decode(wire: &[u8], step: usize, limit: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Chunked::new(limit);
        let mut buf = Vec::new();
        let mut consumed = 0;
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            let (used, done) = d.feed(&buf)?;
            buf.drain(..used);
            consumed += used;
            if done {
                return Ok((d.into_body(), consumed));
            }
        }
        Err(ChunkError::Malformed("incomplete"))
    }

    #[test]
    fn bodies_decode_however_they_arrive() {
        let body = br#"{"project":"p1","data":{"payload":{"n":1}}}"#;
        for (size, ext, trailer) in [
            (7, "", ""),
            (1, ";a=b", "X-Sum: 1\r\n"),
            (100, " ; name = \"q;\\\"uoted\" ; x", "A: 1\r\nB:\r\n"),
        ] {
            let wire = encode(body, size, ext, trailer);
            for step in [1, 2, 3, 5, 64, wire.len()] {
                assert_eq!(
                    decode(&wire, step, 1000),
                    Ok((body.to_vec(), wire.len())),
                    "{size} {ext:?} step {step}"
                );
            }
        }
        // What follows the body is the next request's, untouched.
        let mut wire = encode(b"abc", 2, "", "");
        let n = wire.len();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut d = Chunked::new(100);
        assert_eq!(d.feed(&wire), Ok((n, true)));
        assert_eq!(
            decode(b"000\r\n\r\n", 1, 0),
            Ok((vec![], 7)),
            "leading zeros, an empty body"
        );
        assert_eq!(
            decode(b"A\r\n0123456789\r\n0\r\n\r\n", 4, 10),
            Ok((b"0123456789".to_vec(), 20))
        );
    }

    #[test]
    fn over_the_limit_is_too_large_as_soon_as_a_size_says_so() {
        let wire = encode(&[b'x'; 100], 30, "", "");
        assert_eq!(decode(&wire, 1000, 99), Err(ChunkError::TooLarge));
        assert_eq!(decode(&wire, 1000, 100).map(|(b, _)| b.len()), Ok(100));
        // The fourth chunk's size line is enough: its data is never awaited.
        let head = &wire[..3 * 36 + 3];
        let mut d = Chunked::new(99);
        assert_eq!(d.feed(head), Err(ChunkError::TooLarge));
        assert_eq!(
            decode(b"ffffffffffffffffff\r\n", 100, 100),
            Err(ChunkError::TooLarge)
        );
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3\rabc",
            b"3 x\r\nabc\r\n0\r\n\r\n",
            b"3;a\x00\r\nabc\r\n0\r\n\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\nbad name: 1\r\n\r\n",
            b"-1\r\n",
        ] {
            assert!(
                matches!(decode(bad, 1, 100), Err(ChunkError::Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                decode(bad, 1, 100)
            );
        }
        let long_line = format!("1;{}\r\n", "a".repeat(MAX_LINE));
        assert_eq!(
            decode(long_line.as_bytes(), 7, 100),
            Err(ChunkError::Malformed("chunk-size line too long"))
        );
        let long_trailer = format!("0\r\n{}", "X: y\r\n".repeat(MAX_HEAD / 6 + 1));
        assert_eq!(
            decode(long_trailer.as_bytes(), 100, 100),
            Err(ChunkError::Malformed("trailer section too long"))
        );
    }
}

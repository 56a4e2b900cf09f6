//! An HTTP/1.1 request head, owned, as the router and admission read it,
//! and the one parser both the reactors and the HTTP tasks use; and a
//! connection on its way between them (`Incoming`).

/// A connection handed to a reactor, or from a reactor to the HTTP side,
/// with what was read from it so far.
pub(crate) struct Incoming {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) bytes: Vec<u8>,
}

/// Largest request head accepted.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Most header fields accepted.
const MAX_HEADERS: usize = 48;

/// What the bytes so far hold.
pub enum Head {
    /// Not a whole head yet: read more (up to `MAX_HEAD`).
    Partial,
    /// A request and the length of its head in the bytes.
    Complete(Request, usize),
    /// Answer with this status and message, then close.
    Bad(u16, &'static str),
}

/// Parses a request head at the start of `buf`.
pub fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let target = req.path.unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let request = Request {
                method: req.method.unwrap_or("").to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                http10: req.version == Some(0),
            };
            Head::Complete(request, n)
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            Head::Bad(431, "request head too large")
        }
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(httparse::Error::TooManyHeaders) => Head::Bad(431, "too many headers"),
        Err(_) => Head::Bad(400, "malformed request"),
    }
}

/// A request head.
pub struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) http10: bool,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// Percent-decoded values of query parameter `key`, in order.
    pub fn query_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = String> + 'a {
        self.query.split('&').filter_map(move |pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
    }

    /// `channels[]=a&channels[]=b` (PHP also accepts `channels[0]=a`).
    pub fn channels(&self) -> Vec<String> {
        self.query
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                let k = percent_decode(k);
                let is_channel =
                    k == "channels" || (k.starts_with("channels[") && k.ends_with(']'));
                (is_channel && !v.is_empty()).then(|| percent_decode(v))
            })
            .collect()
    }

    pub(crate) fn keep_alive(&self) -> bool {
        !self.http10 && !self.header_has_token("connection", "close")
    }

    pub(crate) fn is_http10(&self) -> bool {
        self.http10
    }

    /// Every value of header `name` (lower case), in order.
    pub(crate) fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's body framing as RFC 9112 (6.1, 6.3) has it: one Host
    /// (HTTP/1.1), and a body given by Content-Length or by the chunked
    /// coding alone. Refused, each closing the connection (the body's end
    /// is unknown, and its bytes must never be read as a request):
    /// - Content-Length beside Transfer-Encoding, lengths that are
    ///   malformed or differ, Transfer-Encoding in HTTP/1.0, and codings
    ///   whose last is not `chunked` or that apply it twice: 400, as 6.3
    ///   requires when the length cannot be determined;
    /// - `chunked` after another coding (`gzip, chunked`): 501, as 6.1
    ///   advises for a coding the server does not understand (the framing
    ///   is clear; the body would need a decoder this server does not have).
    pub fn framing(&self) -> Result<Body, (u16, &'static str)> {
        if !self.http10 && self.headers_named("host").count() != 1 {
            return Err((400, "a request needs exactly one Host header"));
        }
        if self.headers_named("transfer-encoding").next().is_some() {
            if self.headers_named("content-length").next().is_some() {
                return Err((400, "Content-Length and Transfer-Encoding together"));
            }
            if self.http10 {
                return Err((400, "Transfer-Encoding in an HTTP/1.0 request"));
            }
            // Empty list elements are ignored (RFC 9110 5.6.1).
            let codings: Vec<&str> = self
                .headers_named("transfer-encoding")
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let chunked = |c: &&str| c.eq_ignore_ascii_case("chunked");
            return match codings.split_last() {
                Some((last, before)) if chunked(last) && !before.iter().any(chunked) => {
                    match before {
                        [] => Ok(Body::Chunked),
                        _ => Err((501, "only the chunked transfer coding is supported")),
                    }
                }
                Some((last, _)) if chunked(last) => Err((400, "chunked applied more than once")),
                Some(_) => Err((
                    400,
                    "Transfer-Encoding does not end with chunked: the body's length is unknown",
                )),
                None => Err((400, "Transfer-Encoding names no coding")),
            };
        }
        let mut lengths = self
            .headers_named("content-length")
            .flat_map(|v| v.split(','));
        let Some(first) = lengths.next() else {
            return Ok(Body::Length(0));
        };
        let parse = |v: &str| -> Result<usize, (u16, &'static str)> {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err((400, "Content-Length is not a number"));
            }
            v.parse().map_err(|_| (400, "Content-Length is too large"))
        };
        let n = parse(first)?;
        for other in lengths {
            if parse(other)? != n {
                return Err((400, "Content-Length values differ"));
            }
        }
        Ok(Body::Length(n))
    }
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Content-Length bytes (0: no body).
    Length(usize),
    /// The chunked coding (`chunked.rs`), ending with its last chunk.
    Chunked,
}

impl Body {
    /// Whether the request has a body to read or skip.
    pub(crate) fn is_some(self) -> bool {
        self != Body::Length(0)
    }
}

/// Decodes `%XX` escapes and `+` (form encoding); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Request {
        match parse_head(text.as_bytes()) {
            Head::Complete(r, _) => r,
            _ => panic!("not a whole head: {text}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112_for_what_is_accepted() {
        let ok = |h: &str| head(&format!("POST / HTTP/1.1\r\nHost: x\r\n{h}\r\n")).framing();
        assert_eq!(ok(""), Ok(Body::Length(0)));
        assert_eq!(ok("Content-Length: 12\r\n"), Ok(Body::Length(12)));
        assert_eq!(
            ok("Content-Length: 12\r\nContent-Length: 12\r\n"),
            Ok(Body::Length(12))
        );
        assert_eq!(ok("Content-Length: 12, 12\r\n"), Ok(Body::Length(12)));
        assert_eq!(
            ok("Content-Length: 12\r\nContent-Length: 13\r\n")
                .unwrap_err()
                .0,
            400
        );
        for bad in ["+12", "-1", "1 2", "0x10", ""] {
            assert_eq!(
                ok(&format!("Content-Length: {bad}\r\n")).unwrap_err().0,
                400,
                "{bad:?}"
            );
        }
        for chunked in [
            "chunked",
            "Chunked",
            " chunked ",
            "CHUNKED",
            "chunked,",
            ", chunked",
        ] {
            assert_eq!(
                ok(&format!("Transfer-Encoding: {chunked}\r\n")),
                Ok(Body::Chunked),
                "{chunked:?}"
            );
        }
        for (te, status) in [
            ("gzip, chunked", 501),
            ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", 501),
            ("chunked, gzip", 400),
            ("gzip", 400),
            ("identity", 400),
            ("chunked, chunked", 400),
            ("", 400),
            (" , ", 400),
            ("chunked;x=1", 400),
        ] {
            let h = if te.starts_with("Transfer") {
                format!("{te}\r\n")
            } else {
                format!("Transfer-Encoding: {te}\r\n")
            };
            assert_eq!(ok(&h).unwrap_err().0, status, "{te:?}");
        }
        assert_eq!(
            ok("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")
                .unwrap_err()
                .0,
            400
        );
        let http10 = head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(
            http10.framing().unwrap_err().0,
            400,
            "HTTP/1.0 has no transfer codings"
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\n\r\n").framing().unwrap_err().0,
            400,
            "no Host"
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                .framing()
                .unwrap_err()
                .0,
            400
        );
        assert_eq!(
            head("GET / HTTP/1.0\r\n\r\n").framing(),
            Ok(Body::Length(0)),
            "HTTP/1.0 needs no Host"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("channels%5B%5D"), "channels[]");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
    }
}

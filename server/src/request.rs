//! An HTTP/1.1 request head, owned, as the router and admission read it,
//! and the one parser both the reactors and the HTTP tasks use.

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
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
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect(),
                http10: req.version == Some(0),
            };
            Head::Complete(request, n)
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Head::Bad(431, "request head too large"),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(httparse::Error::TooManyHeaders) => Head::Bad(431, "too many headers"),
        Err(_) => Head::Bad(400, "malformed request"),
    }
}

/// A request head.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) http10: bool,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
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
                let is_channel = k == "channels" || (k.starts_with("channels[") && k.ends_with(']'));
                (is_channel && !v.is_empty()).then(|| percent_decode(v))
            })
            .collect()
    }

    pub fn keep_alive(&self) -> bool {
        !self.http10 && !self.header_has_token("connection", "close")
    }
}

/// Decodes `%XX` escapes and `+` (form encoding); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
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

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("channels%5B%5D"), "channels[]");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
    }
}

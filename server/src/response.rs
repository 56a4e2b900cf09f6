//! HTTP answers as bytes: what a reactor writes when it refuses a handshake
//! and what the HTTP tasks (`http.rs`) write. A leaf: both sides build
//! answers the same way without depending on each other.

/// The status line and headers of an answer; `extra` are whole header
/// lines (`Allow: GET\r\n`).
pub(crate) fn response_head(
    status: u16,
    content_type: &str,
    len: usize,
    keep_alive: bool,
    extra: &str,
) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let extra = match status {
        426 => {
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n".to_string()
                + extra
        }
        _ => extra.to_string(),
    };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: {conn}\r\n{extra}\r\n"
    )
}

/// A whole answer: head and body.
pub(crate) fn response_bytes(
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = response_head(status, content_type, body.len(), keep_alive, "").into_bytes();
    out.extend_from_slice(body);
    out
}

pub(crate) fn json_error(message: &str) -> Vec<u8> {
    serde_json::json!({ "message": message })
        .to_string()
        .into_bytes()
}

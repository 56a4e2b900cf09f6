//! The WebSocket opening handshake's key: checked, and answered.

use base64::Engine;
use sha1::{Digest, Sha1};

/// RFC 6455 section 4.2.2: base64(SHA-1(key + GUID)), the server's answer to
/// a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// RFC 6455 section 4.1: the key is 16 random bytes, base64-encoded.
pub fn is_valid_key(key: &str) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_sixteen_bytes_of_base64() {
        assert!(super::is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZ!==",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!super::is_valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

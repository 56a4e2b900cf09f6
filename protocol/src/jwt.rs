//! Sessions as signed tokens.
//!
//! Appwrite looks sessions up in its database; rtbench's server has none, so a
//! session is an HS256 JWT signed with a secret shared by the server and
//! whoever mints tokens (the load generator, tests): both sides use this module.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The claims the server reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<Team>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Why a token was refused; the text goes into the 1008 error frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Malformed(&'static str),
    BadSignature,
    Expired,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Malformed(what) => write!(f, "Invalid token: {what}"),
            AuthError::BadSignature => f.write_str("Invalid token: bad signature"),
            AuthError::Expired => f.write_str("Invalid token: expired"),
        }
    }
}

const HEADER_HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs `claims` (used by tests and the load generator).
pub fn mint(claims: &Claims, secret: &[u8]) -> String {
    let body = serde_json::to_vec(claims).expect("claims serialize");
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER_HS256),
        URL_SAFE_NO_PAD.encode(body)
    );
    let sig = mac(secret, signing_input.as_bytes())
        .finalize()
        .into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Checks the signature and expiry of `token` at time `now` (Unix seconds).
pub fn verify(token: &str, secret: &[u8], now: u64) -> Result<Claims, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three dot-separated parts"));
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    #[derive(Deserialize)]
    struct Header {
        alg: String,
    }
    let header: Header =
        serde_json::from_slice(&header).map_err(|_| AuthError::Malformed("header is not JSON"))?;
    if header.alg != "HS256" {
        return Err(AuthError::Malformed("algorithm is not HS256"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| AuthError::Malformed("signature is not base64url"))?;
    let signing_input = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    mac(secret, signing_input.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| AuthError::BadSignature)?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| AuthError::Malformed("claims are not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&body).map_err(|_| AuthError::Malformed("claims are not valid"))?;
    if claims.exp <= now {
        return Err(AuthError::Expired);
    }
    Ok(claims)
}

fn mac(secret: &[u8], input: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(input);
    m
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            exp,
            teams: vec![Team {
                id: "t1".into(),
                roles: vec!["owner".into()],
            }],
            labels: vec!["vip".into()],
        }
    }

    #[test]
    fn minted_tokens_verify_and_tampering_fails() {
        let t = mint(&claims(2000), b"s3cret");
        assert_eq!(verify(&t, b"s3cret", 1000).unwrap(), claims(2000));
        assert_eq!(verify(&t, b"other", 1000), Err(AuthError::BadSignature));
        assert_eq!(verify(&t, b"s3cret", 2000), Err(AuthError::Expired));
        let forged = mint(
            &Claims {
                sub: "admin".into(),
                ..claims(2000)
            },
            b"s3cret",
        );
        let spliced = format!(
            "{}.{}",
            &forged[..forged.rfind('.').unwrap()],
            t.rsplit('.').next().unwrap()
        );
        assert_eq!(
            verify(&spliced, b"s3cret", 1000),
            Err(AuthError::BadSignature)
        );
        assert!(matches!(
            verify("a.b", b"s3cret", 0),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            verify("!!.!!.!!", b"s3cret", 0),
            Err(AuthError::Malformed(_))
        ));
    }
}

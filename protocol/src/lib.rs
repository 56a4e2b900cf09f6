//! rtbench-protocol: what the server and the load generator must agree on,
//! defined once: RFC 6455 framing for both directions, the handshake's accept
//! key, the session tokens (HS256 JWT) that carry a user's identity, and
//! timestamps in Appwrite's format.

pub mod frame;
pub mod handshake;
pub mod jwt;
pub mod time;

//! rtbench-server: a realtime WebSocket server speaking Appwrite's Realtime
//! protocol, built to hold many idle connections cheaply and fan events out
//! at a cost proportional to their receivers. `ARCHITECTURE.md` maps the modules.
//!
//! The public API is what the binary, the tests, the benches and the fuzz
//! targets use: the modules below marked `pub`, and in them only the items
//! those callers name. Everything else is `pub(crate)` (`unreachable_pub`
//! holds it so), as tungstenite and mio keep theirs.

#![warn(unreachable_pub)]

mod admission;
mod auth;
mod bus;
pub mod chunked;
pub mod config;
mod conn;
pub mod event;
mod fasthash;
mod freeids;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod index;
pub mod intern;
pub mod leak;
pub mod limits;
pub mod memory;
mod messages;
mod metrics;
mod reactor;
pub mod request;
mod response;
pub mod server;
pub mod sessions;
mod shared;
pub mod subs;
mod subscriber;
mod wheel;

pub use config::Config;
/// The handshake's parts the fuzz targets drive.
#[doc(hidden)]
pub use reactor::handshake;
pub use server::Server;

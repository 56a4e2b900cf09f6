//! rtbench-server: a realtime WebSocket server speaking Appwrite's Realtime
//! protocol, built to hold many idle connections cheaply and fan events out
//! at a cost proportional to their receivers. `ARCHITECTURE.md` maps the modules.

pub mod admission;
pub mod auth;
pub mod bus;
pub mod chunked;
pub mod config;
pub mod conn;
pub mod event;
mod fasthash;
pub mod freeids;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod index;
pub mod intern;
pub mod leak;
pub mod limits;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod reactor;
pub mod request;
pub mod response;
pub mod server;
pub mod sessions;
pub mod shared;
pub mod subs;
pub mod subscriber;
pub mod wheel;

pub use config::Config;
pub use server::Server;

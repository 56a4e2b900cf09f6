//! rtbench-server: a realtime WebSocket server speaking Appwrite's Realtime
//! protocol, built to hold many idle connections cheaply and fan events out
//! at a cost proportional to their receivers. `ARCHITECTURE.md` maps the modules.

pub mod auth;
pub mod bus;
pub mod config;
pub mod conn;
pub mod event;
pub mod http;
pub mod hub;
pub mod index;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod session;

pub use config::Config;
pub use server::Server;

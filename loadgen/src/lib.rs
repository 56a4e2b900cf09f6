//! rtbench-loadgen: an open-model WebSocket load generator. A controller
//! process starts single-threaded worker processes, publishes stamped events,
//! merges the workers' reports and writes a run directory. `ARCHITECTURE.md`
//! maps the modules.

pub mod client;
pub mod controller;
pub mod handshake;
pub mod hold;
pub mod progress;
pub mod protocols;
pub mod publisher;
pub mod rx_time;
pub mod schedule;
pub mod stamp;
pub mod stats;
pub mod sys;
pub mod users;
pub mod wire;
pub mod worker;

//! rtbench-fuzz: mutation fuzzing on stable Rust for every parser a client
//! or publisher feeds (`targets.rs`), driven by a small engine (`engine.rs`).
//! `cargo xtask fuzz --seconds N` runs it for a while; its test runs a
//! bounded number of cases in CI.

pub mod engine;
pub mod targets;

//! Every question rtbench asks the operating system about a process, the
//! machine, a socket option or a limit, asked in one place.
//!
//! The server, the load generator, the roofline and the xtask each need a
//! process's CPU time and resident memory, the machine's memory and TCP
//! counters, a raised open-files limit; before this crate each had its own
//! copy, and the copies read failures differently (one ignored a failing
//! `setsockopt`, another fell back to 1,024 open files). Here each call is
//! made once and its result always checked: a failure is an [`Error`] that
//! names the call or the file, and the caller decides what a missing figure
//! means (the record's schema, in `rtbench-record`, says what a figure is;
//! this crate only reads it).
//!
//! A leaf (`xtask/tests/layers.rs` checks it): no workspace crate, no serde,
//! no tokio, so any crate may use it and building it builds nothing else.
//!
//! - [`process`] — a process: this one's CPU time (`getrusage`), any one's
//!   RSS (`statm`), peak RSS, `/proc/<pid>/stat`, niceness, the pids there are.
//! - [`host`] — the machine: memory, CPU busy, load, TCP sockets, the
//!   kernel's TCP counters, softnet drops, names (host, kernel, boot).
//! - [`sysctl`] — kernel settings under `/proc/sys`, the local port range.
//! - [`socket`] — socket options (`IP_BIND_ADDRESS_NO_PORT`, `SO_TIMESTAMPNS`) and
//!   the two hot calls std has no form of: a read with its receive time, a
//!   `send` of one buffer.
//! - [`limits`] — the open-files limit.

#[macro_use]
mod syscall;
mod error;
mod procfs;

pub mod host;
pub mod limits;
pub mod malloc;
pub mod process;
pub mod socket;
pub mod sysctl;

pub use error::{Error, Result};

//! The controller's clock, as this worker estimates it. A worker on another
//! machine moves every time it takes by the offset the controller measured,
//! so schedules, stamps and latencies read one clock wherever it runs.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::sys::now_ns;

/// This machine's clock minus the controller's (the plan's `clock_offset_ns`).
static CLOCK_OFFSET_NS: AtomicI64 = AtomicI64::new(0);

/// Sets the offset once, from the plan, before anything is timed.
pub(super) fn set_offset(ns: i64) {
    CLOCK_OFFSET_NS.store(ns, Ordering::Relaxed);
}

/// The controller's clock as this worker estimates it: schedules, stamps and
/// latencies all read it, so a worker on another machine measures what a
/// local one would.
pub(super) fn clock_ns() -> u64 {
    (now_ns() as i64 - CLOCK_OFFSET_NS.load(Ordering::Relaxed)) as u64
}

/// A time this machine's clock read (a kernel's receive stamp) on the
/// controller's clock.
pub(super) fn on_controller_clock(host_ns: u64) -> u64 {
    (host_ns as i64 - CLOCK_OFFSET_NS.load(Ordering::Relaxed)) as u64
}

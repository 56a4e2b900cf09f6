//! Ctrl-C and SIGTERM end a run, not the xtask: the handler only notes the
//! signal; the run driver forwards it to the load generator (which writes an
//! incomplete record), stops everything it started and still writes the
//! bench record, marked as stopped by it.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that interrupted the run (0: none).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to `received`.
pub fn install() {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// The signal that interrupted the run, 0 if none.
pub fn received() -> i32 {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The signal that interrupted the run, as the record names it.
pub fn stop_cause() -> Option<rtbench_record::StopCause> {
    match received() {
        0 => None,
        libc::SIGINT => Some(rtbench_record::StopCause::Sigint),
        _ => Some(rtbench_record::StopCause::Sigterm),
    }
}

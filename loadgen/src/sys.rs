//! What the load generator reads about itself: its clock, CPU, memory, limits
//! (asked of the OS through `rtbench-sys`; here, what a figure that cannot be
//! read becomes).

use rtbench_sys::process::Process;

/// Wall-clock nanoseconds since the Unix epoch (CLOCK_REALTIME): the one clock
/// publisher and receivers on a host share, so delivery latency is a difference
/// of two readings of it.
pub use rtbench_protocol::time::now_ns;

/// User + system CPU seconds this process has used; 0 if getrusage fails
/// (it fails only on a bad argument): a tick's figure, never a stopped worker.
pub fn cpu_seconds() -> f64 {
    rtbench_sys::process::cpu_time().map_or(0.0, |t| t.seconds())
}

/// Resident set size of this process in KiB; 0 where /proc cannot be read,
/// as for `cpu_seconds`.
pub fn rss_kib() -> u64 {
    rtbench_sys::process::rss_bytes(Process::Current).map_or(0, |b| b / 1024)
}

/// Raises the soft open-files limit to the hard one; returns the new limit.
pub fn raise_open_files() -> Result<u64, String> {
    rtbench_sys::limits::raise_open_files()
        .map(|l| l.soft)
        .map_err(|e| format!("cannot raise the open-files limit: {e}"))
}

pub fn hostname() -> String {
    rtbench_sys::host::hostname().unwrap_or_else(|_| "unknown".into())
}

/// Applies `rtbench_record::launch::LOADGEN_NICE` to this process. Refused unless root, and then the
/// process runs at the niceness it has, without a word: most runs are not
/// root, and the record states the machine's load either way.
pub fn raise_priority() {
    use rtbench_record::launch::LOADGEN_NICE;
    match rtbench_sys::process::set_niceness(LOADGEN_NICE) {
        Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => {
            eprintln!("rtbench-loadgen: warning: cannot set niceness {LOADGEN_NICE}: {e}");
        }
        _ => {}
    }
}

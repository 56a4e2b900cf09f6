//! What the load generator reads about itself: its clock, CPU, memory, limits.

/// Wall-clock nanoseconds since the Unix epoch (CLOCK_REALTIME): the one clock
/// publisher and receivers on a host share, so delivery latency is a difference
/// of two readings of it.
pub use rtbench_protocol::time::now_ns;

/// User + system CPU seconds this process has used.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64) / 1024
}

/// Raises the soft open-files limit to the hard one; returns the new limit.
pub fn raise_open_files() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::Resource::NOFILE.get().map(|(soft, _)| soft))
        .unwrap_or(1024)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Niceness the instrument's processes ask for, workers and controller
/// alike: the instrument keeps its schedule ahead of the processes it
/// measures when the machine is saturated (both share its cores), and the
/// controller (publisher, heartbeat watch) is not starved by its own
/// workers: at 0 beside fifty workers at -10 it went unscheduled long enough
/// to declare live workers lost. Only root may lower niceness; elsewhere the
/// process stays at 0.
pub const WORKER_NICE: i32 = -10;

/// Applies `WORKER_NICE` to this process; returns the niceness it now has.
pub fn raise_priority() -> i32 {
    // SAFETY: setpriority/getpriority on this process, no memory involved.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE);
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
}

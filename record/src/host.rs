//! What a Linux machine says about itself in /proc: memory used, CPU busy,
//! load and TCP sockets. The xtask's sampler (the server's machine) and the
//! load generator's workers (each worker host) read a machine the same way,
//! so their figures can stand side by side.

use crate::series::HostSample;

/// A field of /proc/meminfo, in KiB.
pub fn meminfo(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// MemTotal − MemAvailable: what the machine's processes and kernel hold.
pub fn mem_used_kib() -> u64 {
    meminfo("MemTotal")
        .unwrap_or(0)
        .saturating_sub(meminfo("MemAvailable").unwrap_or(0))
}

/// (busy, total) jiffies of all CPUs from /proc/stat's first line; idle
/// and iowait are not busy.
pub fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The busy share of all cores between two `cpu_jiffies` readings (100 =
/// every core); 0 when either is missing.
pub fn busy_pct(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> f64 {
    match (before, after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    }
}

/// The one-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// (TCP sockets in use, TCP buffer pages) from a sockstat file: the
/// caller's network namespace's (`/proc/net/sockstat`) or a process's.
pub fn tcp_sockstat(path: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let tcp = s.lines().find(|l| l.starts_with("TCP:")).unwrap_or("");
    let field = |name: &str| {
        let mut w = tcp.split_whitespace();
        while let Some(x) = w.next() {
            if x == name {
                return w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
        0
    };
    (field("inuse"), field("mem"))
}

/// The kernel's TCP counters that say why connections were slow or lost:
/// a full accept or SYN queue (the server not keeping up), SYN cookies,
/// retransmitted SYNs and segments (clients waiting on timers), resets.
pub const TCP_COUNTERS: [&str; 13] = [
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.SyncookiesSent",
    "TcpExt.TCPSynRetrans",
    "TcpExt.TCPTimeouts",
    "TcpExt.TCPBacklogDrop",
    "Tcp.RetransSegs",
    "Tcp.AttemptFails",
    "Tcp.EstabResets",
    // Socket memory over `net.ipv4.tcp_mem`'s pressure mark: the kernel
    // shrinks buffers and prunes queues, which stalls busy sockets.
    "TcpExt.TCPMemoryPressures",
    "TcpExt.PruneCalled",
    "TcpExt.TCPAbortOnMemory",
];

/// `TCP_COUNTERS` (and `softnet.dropped`, machine-wide) as a network
/// namespace's `netstat` and `snmp` files hold them (`dir`: `/proc/net`, or `/proc/<pid>/net` for a process's
/// namespace). Missing files or fields read as absent.
pub fn tcp_counters(dir: &str) -> std::collections::BTreeMap<String, u64> {
    let mut all = std::collections::BTreeMap::new();
    if let Some(d) = softnet_dropped() {
        all.insert("softnet.dropped".to_string(), d);
    }
    for file in ["netstat", "snmp"] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap_or_default();
        // Pairs of lines: `Prefix: names...` then `Prefix: values...`.
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let (Some((prefix, names)), Some((_, values))) =
                (names.split_once(": "), values.split_once(": "))
            else {
                continue;
            };
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                let key = format!("{prefix}.{n}");
                if TCP_COUNTERS.contains(&key.as_str())
                    && let Ok(v) = v.parse()
                {
                    all.insert(key, v);
                }
            }
        }
    }
    all
}

/// Packets the kernel dropped at a CPU's input queue (machine-wide: the
/// second column of /proc/net/softnet_stat, summed). On loopback every
/// packet passes that queue (`net.core.netdev_max_backlog` long); one
/// dropped there is retransmitted after 200 ms or more, a SYN after 1 s.
pub fn softnet_dropped() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/softnet_stat").ok()?;
    Some(
        text.lines()
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .sum(),
    )
}

/// Reads this machine once a second as a `HostSample`.
pub struct HostSampler {
    last: Option<(u64, u64)>,
}

impl Default for HostSampler {
    fn default() -> HostSampler {
        HostSampler {
            last: cpu_jiffies(),
        }
    }
}

impl HostSampler {
    /// Second `t_s`'s sample; `host` is left for the caller to name.
    pub fn sample(&mut self, t_s: u64) -> HostSample {
        let now = cpu_jiffies();
        let cpu_pct = busy_pct(self.last, now);
        self.last = now;
        HostSample {
            t_s,
            host: String::new(),
            mem_used_kib: mem_used_kib(),
            cpu_pct: (cpu_pct * 10.0).round() / 10.0,
            load1: load1(),
            tcp_inuse: tcp_sockstat("/proc/net/sockstat").0,
        }
    }
}

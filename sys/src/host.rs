//! What a Linux machine says about itself in /proc: memory used, CPU busy,
//! load, TCP sockets, the kernel's TCP counters and softnet drops, and its
//! names (host, kernel, boot). The xtask's sampler (the server's machine),
//! the load generator's workers (each worker host) and the roofline read a
//! machine through these same functions, so their figures stand side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result, procfs};

/// `/proc/meminfo` as read once: several fields of one moment.
pub struct Meminfo(String);

const MEMINFO: &str = "/proc/meminfo";

impl Meminfo {
    pub fn read() -> Result<Meminfo> {
        procfs::read(Path::new(MEMINFO)).map(Meminfo)
    }

    /// A field in KiB (`MemTotal`, `MemAvailable`, `Slab`).
    pub fn kib(&self, field: &str) -> Result<u64> {
        procfs::named_value(Path::new(MEMINFO), &self.0, field)
    }

    /// MemTotal − MemAvailable: what the machine's processes and kernel hold.
    pub fn used_kib(&self) -> Result<u64> {
        Ok(self
            .kib("MemTotal")?
            .saturating_sub(self.kib("MemAvailable")?))
    }
}

/// MemTotal − MemAvailable, read now.
pub fn mem_used_kib() -> Result<u64> {
    Meminfo::read()?.used_kib()
}

/// All CPUs' time since boot from /proc/stat's first line, in jiffies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jiffies {
    /// Neither idle nor waiting for I/O.
    pub busy: u64,
    /// user, nice, system, idle, iowait, irq, softirq, steal.
    pub total: u64,
}

const STAT: &str = "/proc/stat";

pub fn cpu_jiffies() -> Result<Jiffies> {
    parse_jiffies(&procfs::read(Path::new(STAT))?)
}

fn parse_jiffies(text: &str) -> Result<Jiffies> {
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = *f
        .get(3)
        .ok_or_else(|| Error::format(STAT, "the cpu line has no idle field"))?;
    let total: u64 = f.iter().take(8).sum();
    let idle = idle + f.get(4).copied().unwrap_or(0);
    Ok(Jiffies {
        busy: total - idle,
        total,
    })
}

/// The busy share of all cores between two readings (100 = every core); 0
/// when either is missing or no time passed between them.
pub fn busy_pct(before: Option<Jiffies>, after: Option<Jiffies>) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) if a.total > b.total => {
            100.0 * (a.busy - b.busy) as f64 / (a.total - b.total) as f64
        }
        _ => 0.0,
    }
}

/// The one-minute load average.
pub fn load1() -> Result<f64> {
    let path = Path::new("/proc/loadavg");
    procfs::field(path, &procfs::read(path)?, 0, "load1")
}

/// Whose network stack: this process's, or another's (a server's in the
/// run's network namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetNamespace {
    Current,
    OfProcess(u32),
}

impl NetNamespace {
    /// `/proc/net` or `/proc/<pid>/net`.
    pub fn dir(self) -> PathBuf {
        match self {
            NetNamespace::Current => PathBuf::from("/proc/net"),
            NetNamespace::OfProcess(pid) => PathBuf::from(format!("/proc/{pid}/net")),
        }
    }
}

/// The `TCP:` line of a network namespace's `sockstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpSockstat {
    /// TCP sockets in use.
    pub inuse: u64,
    /// Pages of TCP buffers.
    pub mem_pages: u64,
}

pub fn tcp_sockstat(ns: NetNamespace) -> Result<TcpSockstat> {
    let path = ns.dir().join("sockstat");
    parse_tcp_sockstat(&path, &procfs::read(&path)?)
}

fn parse_tcp_sockstat(path: &Path, text: &str) -> Result<TcpSockstat> {
    let tcp = text
        .lines()
        .find_map(|l| l.strip_prefix("TCP:"))
        .ok_or_else(|| Error::format(path, "no TCP line"))?;
    let field = |name: &str| -> Result<u64> {
        let mut words = tcp.split_whitespace();
        while let Some(w) = words.next() {
            if w == name {
                return words
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::format(path, format!("TCP {name} is not a number")));
            }
        }
        Err(Error::format(path, format!("no TCP {name}")))
    };
    Ok(TcpSockstat {
        inuse: field("inuse")?,
        mem_pages: field("mem")?,
    })
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

/// `TCP_COUNTERS` as a network namespace's `netstat` and `snmp` files hold
/// them, and `softnet.dropped` (machine-wide). Best effort, on purpose: a
/// file or field that cannot be read leaves its counters out (absent, never
/// 0), since a record compares counters read before and after a run, and a
/// kernel without one of them (older, or built without it) has nothing to
/// compare.
pub fn tcp_counters(ns: NetNamespace) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    if let Ok(d) = softnet_dropped() {
        all.insert("softnet.dropped".to_string(), d);
    }
    for file in ["netstat", "snmp"] {
        if let Ok(text) = procfs::read(&ns.dir().join(file)) {
            all.extend(parse_tcp_counters(&text));
        }
    }
    all
}

/// Pairs of lines, `Prefix: names...` then `Prefix: values...`: the
/// `TCP_COUNTERS` among them.
fn parse_tcp_counters(text: &str) -> BTreeMap<String, u64> {
    let mut found = BTreeMap::new();
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
                found.insert(key, v);
            }
        }
    }
    found
}

/// Packets the kernel dropped at a CPU's input queue (machine-wide: the
/// second column of /proc/net/softnet_stat, summed). On loopback every
/// packet passes that queue (`net.core.netdev_max_backlog` long); one
/// dropped there is retransmitted after 200 ms or more, a SYN after 1 s.
pub fn softnet_dropped() -> Result<u64> {
    let text = procfs::read(Path::new("/proc/net/softnet_stat"))?;
    Ok(text
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum())
}

/// Processes the kernel's OOM killer ended since boot (`oom_kill` in
/// /proc/vmstat): a rise over a run is a kill its log may have named.
pub fn oom_kills() -> Result<u64> {
    let path = Path::new("/proc/vmstat");
    vmstat_value(path, &procfs::read(path)?, "oom_kill")
}

/// The number after `name ` on its line of /proc/vmstat's `name value` lines.
fn vmstat_value(path: &Path, text: &str, name: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::format(path, format!("no {name} number")))
}

/// A one-line file, trimmed.
fn line(path: &str) -> Result<String> {
    Ok(procfs::read(Path::new(path))?.trim().to_string())
}

/// The machine's hostname (in this UTS namespace).
pub fn hostname() -> Result<String> {
    line("/proc/sys/kernel/hostname")
}

/// The running kernel's release (`6.1.0-18-amd64`).
pub fn kernel_release() -> Result<String> {
    line("/proc/sys/kernel/osrelease")
}

/// This boot's id: a pid and its start time name a process only within it.
pub fn boot_id() -> Result<String> {
    line("/proc/sys/kernel/random/boot_id")
}

/// The first CPU's model name from /proc/cpuinfo.
pub fn cpu_model() -> Result<String> {
    let path = Path::new("/proc/cpuinfo");
    procfs::read(path)?
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .map(|m| m.trim().to_string())
        .ok_or_else(|| Error::format(path, "no model name line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmstat_values_are_whole_names() {
        let text = "oom_kill_other 9\noom_kill 3\n";
        let p = Path::new("/proc/vmstat");
        assert_eq!(vmstat_value(p, text, "oom_kill").unwrap(), 3);
        assert!(vmstat_value(p, "pgfault 1\n", "oom_kill").is_err());
        assert!(oom_kills().is_ok());
    }

    #[test]
    fn busy_is_everything_but_idle_and_iowait() {
        let j = parse_jiffies("cpu  100 5 50 800 40 3 2 1 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            j,
            Jiffies {
                busy: 161,
                total: 1001
            }
        );
        let later = Jiffies {
            busy: 261,
            total: 1401,
        };
        assert_eq!(busy_pct(Some(j), Some(later)), 25.0);
        assert_eq!(busy_pct(Some(later), Some(j)), 0.0);
        assert_eq!(busy_pct(None, Some(j)), 0.0);
        let e = parse_jiffies("cpu 1 2 3\n").unwrap_err();
        assert_eq!(e.to_string(), "/proc/stat: the cpu line has no idle field");
    }

    #[test]
    fn sockstat_gives_tcp_in_use_and_pages() {
        let text =
            "sockets: used 187\nTCP: inuse 7 orphan 0 tw 2 alloc 9 mem 3\nUDP: inuse 1 mem 0\n";
        let p = Path::new("/proc/net/sockstat");
        assert_eq!(
            parse_tcp_sockstat(p, text).unwrap(),
            TcpSockstat {
                inuse: 7,
                mem_pages: 3
            }
        );
        let e = parse_tcp_sockstat(p, "TCP: inuse 7\n").unwrap_err();
        assert_eq!(e.to_string(), "/proc/net/sockstat: no TCP mem");
    }

    #[test]
    fn tcp_counters_are_read_from_name_and_value_line_pairs() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                       TcpExt: 1 22 23\n\
                       IpExt: InNoRoutes\nIpExt: 5\n";
        let snmp = "Tcp: RtoAlgorithm AttemptFails EstabResets RetransSegs\nTcp: 1 4 5 6\n";
        let mut all = parse_tcp_counters(netstat);
        all.extend(parse_tcp_counters(snmp));
        let expected: BTreeMap<String, u64> = [
            ("TcpExt.SyncookiesSent", 1),
            ("TcpExt.ListenOverflows", 22),
            ("TcpExt.ListenDrops", 23),
            ("Tcp.AttemptFails", 4),
            ("Tcp.EstabResets", 5),
            ("Tcp.RetransSegs", 6),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn this_machine_reads() {
        let m = Meminfo::read().unwrap();
        let total = m.kib("MemTotal").unwrap();
        assert_eq!(
            m.used_kib().unwrap(),
            total - m.kib("MemAvailable").unwrap()
        );
        let own = tcp_counters(NetNamespace::Current);
        let by_pid = tcp_counters(NetNamespace::OfProcess(std::process::id()));
        // Every counter this kernel has is there (all of them since 4.x),
        // whether read through /proc/net or through a process's directory.
        assert_eq!(own.len(), TCP_COUNTERS.len() + 1, "{own:?}");
        assert_eq!(
            own.keys().collect::<Vec<_>>(),
            by_pid.keys().collect::<Vec<_>>()
        );
        assert!(tcp_sockstat(NetNamespace::Current).is_ok());
        assert!(load1().unwrap() >= 0.0);
        let j = cpu_jiffies().unwrap();
        assert!(j.busy <= j.total);
        assert_eq!(boot_id().unwrap().len(), 36);
        assert!(!kernel_release().unwrap().is_empty());
    }

    #[test]
    fn a_process_gone_has_no_network_figures() {
        let e = tcp_sockstat(NetNamespace::OfProcess(4_194_305)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(
            e.to_string().starts_with("/proc/4194305/net/sockstat: "),
            "{e}"
        );
        // Softnet drops are machine-wide, so they alone remain.
        let left = tcp_counters(NetNamespace::OfProcess(4_194_305));
        assert_eq!(left.keys().collect::<Vec<_>>(), ["softnet.dropped"]);
    }
}

//! Before anything starts: can this machine reach the run's target?
//!
//! Each check reads a limit, compares it with what the run needs, and when it
//! falls short says so with the command that fixes it. A run that cannot
//! reach its target is refused, never silently scaled down.

use anyhow::Context as _;

use serde::{Deserialize, Serialize};

use crate::tuning;
use rtbench_sys::sysctl;

/// Kernel memory per idle loopback TCP socket (measured here: 2,000,000
/// plain loopback connections, both ends, in 11.8 GiB).
pub const KERNEL_KIB_PER_SOCKET: f64 = 3.1;
/// Measured by `cargo xtask memprobe --connections 19000` (0.11-0.13 and
/// 0.09-0.10), with a margin.
pub const SERVER_KIB_PER_CONNECTION: f64 = 0.25;
pub const LOADGEN_KIB_PER_CONNECTION: f64 = 0.25;
/// What each process costs before its first connection (measured: a server
/// 4.0-4.4 MiB, a load generator worker 5.5-5.7 MiB with its histograms),
/// with a margin; plus Redis, the controller and this task.
pub const SERVER_BASE_MIB: u64 = 6;
pub const WORKER_BASE_MIB: u64 = 8;
const OTHERS_MIB: u64 = 256;
/// Descriptors a server process keeps for itself.
const SERVER_RESERVED_FDS: u64 = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// The command that fixes it, when one does.
    pub fix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Needs {
    pub connections: u64,
    pub sources: usize,
    pub server_processes: u64,
    /// The open-files limit each server process runs under.
    pub server_nofile: u64,
    /// The run goes into a network namespace of its own (`--tune`).
    pub namespace: bool,
}

fn check(name: &str, ok: bool, detail: String, fix: Option<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail,
        fix,
    }
}

fn num(name: &str) -> Option<u64> {
    tuning::read(name)?.split_whitespace().next()?.parse().ok()
}

/// A field of /proc/meminfo in KiB (`MemAvailable`), if it can be read.
pub fn meminfo(field: &str) -> Option<u64> {
    rtbench_sys::host::Meminfo::read()
        .and_then(|m| m.kib(field))
        .ok()
}

/// The open-files hard limit of a process started from here.
pub fn nofile_hard() -> u64 {
    rtbench_sys::limits::open_files().map_or(0, |(_, hard)| hard)
}

/// Connections one server process can hold under an open-files limit of
/// `nofile`.
pub fn server_capacity(nofile: u64) -> u64 {
    nofile.saturating_sub(SERVER_RESERVED_FDS)
}

/// Every check for a run that needs `n`, in the order they are printed.
pub fn run(n: &Needs) -> Vec<Check> {
    [
        Some(open_files(n)),
        file_max(n),
        nr_open(n),
        redis(n),
        Some(ports(n)),
        if n.namespace {
            Some(namespace(n))
        } else {
            conntrack(n)
        },
        Some(memory(n)),
        Some(ahead_of_servers()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn open_files(n: &Needs) -> Check {
    let c = n.connections;
    let cap = server_capacity(n.server_nofile);
    check(
        "open files per process",
        n.server_processes * cap >= c,
        format!(
            "{c} connections need {} server process(es) of at most {cap} connections (hard limit {} descriptors); this run starts {}",
            c.div_ceil(cap.max(1)),
            n.server_nofile,
            n.server_processes
        ),
        (n.server_processes * cap < c).then(|| {
            format!(
                "several server processes need the shared event bus (the Redis scale-out issue), not built yet; run at most --connections {}",
                n.server_processes * cap
            )
        }),
    )
}

fn file_max(n: &Needs) -> Option<Check> {
    let max = num("fs.file-max")?;
    let need = 2 * n.connections + 10_000;
    Some(check(
        "fs.file-max",
        max >= need,
        format!("{max} system-wide descriptors, {need} needed (both ends of every connection)"),
        (max < need).then(|| format!("sysctl -w fs.file-max={}", need.max(12_000_500))),
    ))
}

fn nr_open(n: &Needs) -> Option<Check> {
    let nr = num("fs.nr_open")?;
    let per = n.connections.min(server_capacity(n.server_nofile)) + SERVER_RESERVED_FDS;
    Some(check(
        "fs.nr_open",
        nr >= per,
        format!("a process may be given at most {nr} descriptors; the busiest needs {per}"),
        (nr < per).then(|| "sysctl -w fs.nr_open=20000500".to_string()),
    ))
}

fn redis(n: &Needs) -> Option<Check> {
    if n.server_processes <= 1 {
        return None;
    }
    let ok = crate::server::redis_available();
    Some(check(
        "redis-server",
        ok,
        format!(
            "{} server processes share events over Redis",
            n.server_processes
        ),
        (!ok).then(|| "apt-get install -y redis-server".to_string()),
    ))
}

fn ports(n: &Needs) -> Check {
    let c = n.connections;
    let (lo, hi) = sysctl::local_port_range().unwrap_or(sysctl::LINUX_DEFAULT_PORT_RANGE);
    let ports = u64::from(hi.saturating_sub(lo)) + 1;
    let budget = ports * n.sources.max(1) as u64;
    check(
        "ports x source addresses",
        budget >= c,
        format!("{} source address(es) x {ports} ports ({lo}-{hi}) = {budget} connections to one server address", n.sources.max(1)),
        (budget < c).then(|| "sysctl -w net.ipv4.ip_local_port_range=\"1025 65535\" (or add sources to the suite)".to_string()),
    )
}

fn namespace(n: &Needs) -> Check {
    let ok = crate::netns::available().and_then(|()| {
        tuning::read("net.ipv4.tcp_child_ehash_entries")
            .map(|_| ())
            .context("this kernel (before 6.1) cannot size a namespace's socket hash")
    });
    check(
        "network namespace",
        ok.is_ok(),
        match &ok {
            Ok(()) => format!(
                "the run gets its own network namespace with a {}-bucket socket hash (the host's: {})",
                crate::netns::buckets_for(n.connections),
                tuning::read("net.ipv4.tcp_ehash_entries").unwrap_or_default()
            ),
            Err(e) => format!("no network namespace: {e:#}"),
        },
        ok.is_err()
            .then(|| "run on the host's network stack: add --host-net".to_string()),
    )
}

/// Connection tracking is active (Docker's NAT rules load it): every
/// loopback connection takes an entry, and a full table drops SYNs.
fn conntrack(n: &Needs) -> Option<Check> {
    let c = n.connections;
    let max = num("net.netfilter.nf_conntrack_max")?;
    let count = num("net.netfilter.nf_conntrack_count")?;
    let need = count + c + c / 10;
    Some(check(
        "nf_conntrack_max",
        max >= need,
        format!(
            "connection tracking is active: {count} entries in use, table of {max}, this run adds {c}"
        ),
        (max < need).then(|| {
            format!(
                "sysctl -w net.netfilter.nf_conntrack_max={}",
                need.next_power_of_two()
            )
        }),
    ))
}

fn memory(n: &Needs) -> Check {
    let c = n.connections;
    let avail_kib = meminfo("MemAvailable").unwrap_or(0);
    let workers = rtbench_record::launch::workers_needed(c, nofile_hard());
    let per_connection =
        2.0 * KERNEL_KIB_PER_SOCKET + SERVER_KIB_PER_CONNECTION + LOADGEN_KIB_PER_CONNECTION;
    let hash_kib = if n.namespace {
        crate::netns::buckets_for(c) * 8 / 1024
    } else {
        0
    };
    let fixed_kib = (n.server_processes * SERVER_BASE_MIB + workers * WORKER_BASE_MIB + OTHERS_MIB)
        * 1024
        + hash_kib;
    let need_kib = (c as f64 * per_connection) as u64 + fixed_kib;
    let fits = need_kib <= avail_kib * 9 / 10;
    check(
        "memory",
        fits,
        format!(
            "estimate {} MiB: {c} connections x {per_connection:.2} KiB ({KERNEL_KIB_PER_SOCKET} KiB kernel x 2 sockets + {SERVER_KIB_PER_CONNECTION} server + {LOADGEN_KIB_PER_CONNECTION} load generator) + {} MiB fixed ({} server process(es) x {SERVER_BASE_MIB} MiB, {workers} load generator worker(s) x {WORKER_BASE_MIB} MiB, {OTHERS_MIB} MiB Redis and controllers, {} MiB socket hash); {} MiB available, 90% usable",
            need_kib / 1024,
            fixed_kib / 1024,
            n.server_processes,
            hash_kib / 1024,
            avail_kib / 1024
        ),
        (!fits).then(|| {
            let usable = (avail_kib * 9 / 10).saturating_sub(fixed_kib) as f64;
            format!(
                "run fewer connections: --connections {}",
                (usable / per_connection) as u64
            )
        }),
    )
}

/// Prints the checks; an error naming every failed one, with its fix.
/// Processes the run does not start that the scheduler puts ahead of the
/// servers (niceness `SERVER_NICE` or lower; kernel threads aside): their
/// bursts of CPU delay every server at once, and the latencies measured
/// include them. Not a failure, since a run cannot stop the machine's own
/// processes, but named in the record. Here the sandbox's agent (pid 1,
/// `process_api`, niceness -10) works in bursts that grow with the TCP
/// sockets open: none idle, 75-110 ms of CPU a second with 190,000 idle
/// sockets, and during a fan-out over 100,000 connections 200-250 ms
/// every 3.1 s, when each second's delivery p99 rose from about 10 ms to
/// 50-150 ms (issue 28's note).
fn ahead_of_servers() -> Check {
    use rtbench_record::launch::SERVER_NICE;
    use rtbench_sys::process::{Process, Stat, pids};
    let ahead: Vec<String> = pids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| Stat::read(Process::Pid(pid)).ok())
        .filter(|s| s.nice <= SERVER_NICE && s.pid != KTHREADD && s.ppid != KTHREADD)
        .map(|s| format!("{} (pid {}) at {}", s.comm, s.pid, s.nice))
        .collect();
    check(
        "processes ahead of the servers",
        true,
        if ahead.is_empty() {
            format!("none runs at niceness {SERVER_NICE} or lower")
        } else {
            format!(
                "{}, at the servers' niceness ({SERVER_NICE}) or lower: their CPU delays the servers, and the latencies include it",
                ahead.join(", ")
            )
        },
        None,
    )
}

/// The kernel's thread spawner: it and its children are kernel threads.
const KTHREADD: u32 = 2;

pub fn verdict(checks: &[Check]) -> anyhow::Result<()> {
    for c in checks {
        eprintln!(
            "preflight: {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "{}: {}{}",
                c.name,
                c.detail,
                c.fix
                    .as_ref()
                    .map_or(String::new(), |f| format!("\n  fix: {f}"))
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "this run cannot reach its target:\n{}",
            failed.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sleep` started at niceness `nice` (root only: lower needs it).
    fn sleeper(nice: i32) -> std::process::Child {
        std::process::Command::new("nice")
            .args(["-n", &nice.to_string(), "sleep", "30"])
            .spawn()
            .expect("nice and sleep run")
    }

    #[test]
    fn a_process_ahead_of_the_servers_is_named_and_one_behind_is_not() {
        use rtbench_record::launch::SERVER_NICE;
        let mut ahead = sleeper(SERVER_NICE - 1);
        let mut behind = sleeper(0);
        // `nice` sets the niceness, then becomes `sleep`.
        let comm = |c: &std::process::Child| {
            use rtbench_sys::process::{Process, Stat};
            Stat::read(Process::Pid(c.id())).map_or(String::new(), |s| s.comm)
        };
        let t0 = std::time::Instant::now();
        while [&ahead, &behind].iter().any(|c| comm(c) != "sleep")
            && t0.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let c = ahead_of_servers();
        let _ = (ahead.kill(), behind.kill(), ahead.wait(), behind.wait());
        assert!(c.ok, "never a failure");
        assert!(
            c.detail.contains(&format!(
                "sleep (pid {}) at {}",
                ahead.id(),
                SERVER_NICE - 1
            )),
            "{}",
            c.detail
        );
        assert!(
            !c.detail.contains(&format!("(pid {})", behind.id())),
            "{}",
            c.detail
        );
    }
}

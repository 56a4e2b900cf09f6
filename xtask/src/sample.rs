//! Once a second during a run: the server process and the machine.
//!
//! Server RSS and CPU come from /proc, its connection count from /metrics;
//! system memory, TCP sockets and the kernel's TCP buffer pages from
//! /proc/meminfo and /proc/net/sockstat, so the record can say what a
//! connection costs the whole machine, not just the processes.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::preflight::meminfo;
use crate::server;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub server_connections: u64,
    pub server_rss_kib: u64,
    pub server_cpu_pct: f64,
    /// MemTotal − MemAvailable.
    pub mem_used_kib: u64,
    pub tcp_inuse: u64,
    pub tcp_mem_kib: u64,
    pub load1: f64,
}

pub const CSV_HEADER: &str =
    "t_s,server_connections,server_rss_kib,server_cpu_pct,mem_used_kib,tcp_inuse,tcp_mem_kib,load1";

impl Sample {
    pub fn csv(&self) -> String {
        format!(
            "{:.1},{},{},{:.1},{},{},{},{:.2}",
            self.t_s,
            self.server_connections,
            self.server_rss_kib,
            self.server_cpu_pct,
            self.mem_used_kib,
            self.tcp_inuse,
            self.tcp_mem_kib,
            self.load1
        )
    }
}

pub struct Sampler {
    pid: u32,
    addr: SocketAddr,
    start: std::time::Instant,
    last: Option<(f64, f64)>,
}

impl Sampler {
    pub fn new(pid: u32, addr: SocketAddr) -> Sampler {
        Sampler {
            pid,
            addr,
            start: std::time::Instant::now(),
            last: None,
        }
    }

    pub fn sample(&mut self) -> Sample {
        let t = self.start.elapsed().as_secs_f64();
        let cpu = server::cpu_seconds(self.pid).unwrap_or(0.0);
        let server_cpu_pct = match self.last {
            Some((t0, c0)) if t > t0 => 100.0 * (cpu - c0) / (t - t0),
            _ => 0.0,
        };
        self.last = Some((t, cpu));
        let (tcp_inuse, tcp_mem_pages) = sockstat();
        Sample {
            t_s: t,
            server_connections: server::metric(self.addr, "rtbench_connections").unwrap_or(0),
            server_rss_kib: server::rss_kib(self.pid).unwrap_or(0),
            server_cpu_pct,
            mem_used_kib: system_used_kib(),
            tcp_inuse,
            tcp_mem_kib: tcp_mem_pages * 4,
            load1: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0),
        }
    }
}

pub fn system_used_kib() -> u64 {
    meminfo("MemTotal")
        .unwrap_or(0)
        .saturating_sub(meminfo("MemAvailable").unwrap_or(0))
}

/// (TCP sockets in use, TCP buffer pages) from /proc/net/sockstat.
fn sockstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
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

//! Once a second during a run: the server process and the machine.
//!
//! Server processes' RSS and CPU come from /proc (summed, and kept per
//! process), their connection counts from /metrics, Redis's from /proc;
//! system memory, TCP sockets and the kernel's TCP buffer pages from
//! /proc/meminfo and /proc/net/sockstat, so the record can say what a
//! connection costs the whole machine, not just the processes.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::preflight::meminfo;
use crate::server;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    /// Summed over the server processes.
    pub server_connections: u64,
    pub server_rss_kib: u64,
    /// 100 = one core.
    pub server_cpu_pct: f64,
    pub redis_rss_kib: u64,
    pub redis_cpu_pct: f64,
    /// MemTotal − MemAvailable.
    pub mem_used_kib: u64,
    pub tcp_inuse: u64,
    pub tcp_mem_kib: u64,
    pub load1: f64,
    /// Each server process: (connections, RSS KiB, CPU seconds so far).
    #[serde(skip)]
    pub per_process: Vec<(u64, u64, f64)>,
}

pub const CSV_HEADER: &str = "t_s,server_connections,server_rss_kib,server_cpu_pct,redis_rss_kib,redis_cpu_pct,mem_used_kib,tcp_inuse,tcp_mem_kib,load1";

impl Sample {
    pub fn csv(&self) -> String {
        format!(
            "{:.1},{},{},{:.1},{},{:.1},{},{},{},{:.2}",
            self.t_s,
            self.server_connections,
            self.server_rss_kib,
            self.server_cpu_pct,
            self.redis_rss_kib,
            self.redis_cpu_pct,
            self.mem_used_kib,
            self.tcp_inuse,
            self.tcp_mem_kib,
            self.load1
        )
    }
}

const CONNECTIONS: &str = "rtbench_connections";

/// Samples every server process (by pid and address) and Redis, if any.
pub struct Sampler {
    /// Wall-clock time of t_s = 0, to line samples up with the load generator.
    pub start_unix_ns: u64,
    servers: Vec<(u32, SocketAddr)>,
    redis: Option<u32>,
    start: std::time::Instant,
    /// Time and CPU seconds of each process (servers, then Redis) at the last sample.
    last: Option<(f64, Vec<f64>)>,
}

impl Sampler {
    pub fn new(servers: Vec<(u32, SocketAddr)>, redis: Option<u32>) -> Sampler {
        Sampler {
            start_unix_ns: rtbench_protocol::time::now_ns(),
            servers,
            redis,
            start: std::time::Instant::now(),
            last: None,
        }
    }

    pub fn sample(&mut self) -> Sample {
        let t = self.start.elapsed().as_secs_f64();
        let pids: Vec<u32> = self
            .servers
            .iter()
            .map(|(p, _)| *p)
            .chain(self.redis)
            .collect();
        // All servers at once, each with a short timeout: a busy server must
        // not stretch one sample over many seconds. A server on another
        // machine (pid 0) reports its own RSS and CPU there.
        let metrics: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .servers
                .iter()
                .map(|&(pid, addr)| {
                    scope.spawn(move || {
                        let names: &[&str] = if pid == 0 {
                            &[
                                CONNECTIONS,
                                "rtbench_process_resident_memory_bytes",
                                "rtbench_process_cpu_milliseconds_total",
                            ]
                        } else {
                            &[CONNECTIONS]
                        };
                        server::metrics_within(addr, names, Duration::from_millis(500))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().ok().and_then(Result::ok).unwrap_or_default())
                .collect()
        });
        let remote = |i: usize, k: usize| metrics.get(i).and_then(|m| m.get(k)).copied();
        let cpu: Vec<f64> = pids
            .iter()
            .enumerate()
            .map(|(i, &p)| match p {
                0 => remote(i, 2).map_or(0.0, |ms| ms as f64 / 1000.0),
                p => server::cpu_seconds(p).unwrap_or(0.0),
            })
            .collect();
        let pct: Vec<f64> = match &self.last {
            Some((t0, c0)) if t > *t0 => cpu
                .iter()
                .zip(c0)
                .map(|(c, c0)| 100.0 * (c - c0) / (t - t0))
                .collect(),
            _ => vec![0.0; cpu.len()],
        };
        let per_process: Vec<(u64, u64, f64)> = self
            .servers
            .iter()
            .zip(&cpu)
            .enumerate()
            .map(|(i, ((pid, _), c))| {
                let rss = match pid {
                    0 => remote(i, 1).unwrap_or(0) / 1024,
                    p => server::rss_kib(*p).unwrap_or(0),
                };
                (remote(i, 0).unwrap_or(0), rss, *c)
            })
            .collect();
        let n = self.servers.len();
        // The servers' own network namespace's sockets (the host's, or the
        // run's namespace): read through the first local server's /proc.
        let local = self.servers.iter().map(|s| s.0).find(|&p| p != 0);
        let (tcp_inuse, tcp_mem_pages) = sockstat(local);
        let s = Sample {
            t_s: t,
            server_connections: per_process.iter().map(|p| p.0).sum(),
            server_rss_kib: per_process.iter().map(|p| p.1).sum(),
            server_cpu_pct: pct[..n].iter().sum(),
            redis_rss_kib: self.redis.map_or(0, |p| server::rss_kib(p).unwrap_or(0)),
            redis_cpu_pct: pct.get(n).copied().unwrap_or(0.0),
            mem_used_kib: system_used_kib(),
            tcp_inuse,
            tcp_mem_kib: tcp_mem_pages * 4,
            load1: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0),
            per_process,
        };
        self.last = Some((t, cpu));
        s
    }
}

pub fn system_used_kib() -> u64 {
    meminfo("MemTotal")
        .unwrap_or(0)
        .saturating_sub(meminfo("MemAvailable").unwrap_or(0))
}

/// (TCP sockets in use, TCP buffer pages) from `pid`'s network namespace's sockstat.
fn sockstat(pid: Option<u32>) -> (u64, u64) {
    let path = pid.map_or("/proc/net/sockstat".to_string(), |p| {
        format!("/proc/{p}/net/sockstat")
    });
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

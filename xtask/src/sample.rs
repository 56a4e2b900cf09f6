//! Once a second during a run: the server process and the machine.
//!
//! Server processes' RSS and CPU come from /proc (summed, and kept per
//! process), their connection counts from /metrics, Redis's from /proc;
//! system memory, TCP sockets and the kernel's TCP buffer pages from
//! /proc/meminfo and /proc/net/sockstat, so the record can say what a
//! connection costs the whole machine, not just the processes. For leak
//! checks each process also gets a row of its own (`ProcessSample`): its
//! descriptors beside its RSS, a server's live counts, and the load
//! generator's controller and workers summed.

use std::net::SocketAddr;
use std::time::Duration;

use crate::server;
use rtbench_sys::host::{self, Jiffies, NetNamespace};

use rtbench_record::series::ProcessSample;
/// One second of `server.csv`; its schema lives with the record's.
pub use rtbench_record::series::ServerSample as Sample;

const CONNECTIONS: &str = "rtbench_connections";
/// A server's live counts, in `ProcessSample`'s order after connections.
const LIVE: [&str; 5] = [
    "rtbench_interned_names",
    "rtbench_wheel_entries",
    "rtbench_index_entries",
    "rtbench_role_sets",
    "rtbench_queued_bytes",
];
/// What a server on another machine reports of its own process (no /proc here).
const REMOTE_RSS: &str = "rtbench_process_resident_memory_bytes";
const REMOTE_CPU: &str = "rtbench_process_cpu_milliseconds_total";

/// The servers' cumulative work counters, from their /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub reads: u64,
    pub writes: u64,
    pub wakeups: u64,
    pub deliveries: u64,
    pub pongs: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A `Work` field, reached by name.
type Field = fn(&mut Work) -> &mut u64;

impl Work {
    /// Each counter's /metrics name and its field: the one place they meet.
    const COUNTERS: [(&'static str, Field); 7] = [
        ("rtbench_read_syscalls_total", |w| &mut w.reads),
        ("rtbench_write_syscalls_total", |w| &mut w.writes),
        ("rtbench_wakeups_total", |w| &mut w.wakeups),
        ("rtbench_deliveries_total", |w| &mut w.deliveries),
        ("rtbench_pongs_total", |w| &mut w.pongs),
        ("rtbench_bytes_in_total", |w| &mut w.bytes_in),
        ("rtbench_bytes_out_total", |w| &mut w.bytes_out),
    ];

    fn names() -> impl Iterator<Item = &'static str> {
        Self::COUNTERS.iter().map(|(name, _)| *name)
    }

    /// Takes every value read (in `names()` order) over the one known.
    fn update(&mut self, values: &[Option<u64>]) {
        for ((_, field), v) in Self::COUNTERS.iter().zip(values) {
            if let Some(v) = v {
                *field(self) = *v;
            }
        }
    }

    /// One server's counters, read once within `limit`; None unless it
    /// answered with all of them.
    pub fn read(addr: SocketAddr, limit: Duration) -> Option<Work> {
        let names: Vec<&str> = Self::names().collect();
        let values = server::metrics_within(addr, &names, limit).ok()?;
        if values.iter().any(Option::is_none) {
            return None;
        }
        let mut w = Work::default();
        w.update(&values);
        Some(w)
    }

    fn add(mut self, other: &Work) -> Work {
        for (_, field) in Self::COUNTERS {
            let mut o = *other;
            *field(&mut self) += *field(&mut o);
        }
        self
    }

    /// Summed over the servers.
    pub fn total<'a>(each: impl IntoIterator<Item = &'a Work>) -> Work {
        each.into_iter().fold(Work::default(), |acc, w| acc.add(w))
    }
}

/// One server's /metrics, read for a sample.
#[derive(Debug, Default)]
struct Reading {
    connections: Option<u64>,
    work: Vec<Option<u64>>,
    /// A server on another machine's own RSS and CPU.
    rss_bytes: Option<u64>,
    cpu_ms: Option<u64>,
    /// `LIVE`'s values.
    live: [u64; LIVE.len()],
    /// It answered at all.
    answered: bool,
}

impl Reading {
    fn take(addr: SocketAddr, remote: bool, limit: Duration) -> Reading {
        let mut names = vec![CONNECTIONS];
        names.extend(Work::names());
        names.extend(LIVE);
        if remote {
            names.extend([REMOTE_RSS, REMOTE_CPU]);
        }
        let Ok(v) = server::metrics_within(addr, &names, limit) else {
            return Reading::default();
        };
        let n = Work::COUNTERS.len();
        let (live, rest) = v[1 + n..].split_at(LIVE.len());
        Reading {
            connections: v[0],
            work: v[1..1 + n].to_vec(),
            live: std::array::from_fn(|i| live[i].unwrap_or(0)),
            rss_bytes: rest.first().copied().flatten(),
            cpu_ms: rest.get(1).copied().flatten(),
            answered: true,
        }
    }
}

/// One server's /metrics figures as last known.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    connections: u64,
    work: Work,
}

/// Samples every server process (by pid and address) and Redis, if any.
pub struct Sampler {
    /// Wall-clock time of t_s = 0, to line samples up with the load generator.
    pub start_unix_ns: u64,
    servers: Vec<(u32, SocketAddr)>,
    redis: Option<u32>,
    /// The load generator's controller (its workers are its descendants).
    loadgen: Option<u32>,
    start: std::time::Instant,
    /// Time and CPU seconds of each process (servers, then Redis) at the last sample.
    last: Option<(f64, Vec<f64>)>,
    /// Each server's /metrics figures as last read (connections, then the
    /// work counters): a process too busy to answer within the sample keeps
    /// its last figures, so neither the connection count nor the sums dip.
    known: Vec<Known>,
    /// /proc/stat's (busy, total) jiffies at the last sample.
    machine: Option<Jiffies>,
}

impl Sampler {
    pub fn new(servers: Vec<(u32, SocketAddr)>, redis: Option<u32>) -> Sampler {
        Sampler {
            start_unix_ns: rtbench_protocol::time::now_ns(),
            servers,
            redis,
            loadgen: None,
            start: std::time::Instant::now(),
            last: None,
            known: Vec::new(),
            machine: None,
        }
    }

    /// Server process `i` is now `pid` at `addr` (a restart), or is gone
    /// (`alive` false: its last known figures are forgotten, not carried).
    pub fn set_server(&mut self, i: usize, pid: u32, addr: SocketAddr, alive: bool) {
        if let Some(s) = self.servers.get_mut(i) {
            *s = (pid, addr);
        }
        if !alive && let Some(k) = self.known.get_mut(i) {
            *k = Known::default();
        }
    }

    /// Redis is now `pid` (a fault plan restarted it).
    pub fn set_redis(&mut self, pid: Option<u32>) {
        self.redis = pid;
    }

    /// The load generator's controller: it and its workers are sampled.
    pub fn set_loadgen(&mut self, pid: u32) {
        self.loadgen = Some(pid);
    }

    /// Every server's /metrics at once, each with a short timeout: a busy
    /// server must not stretch one sample over many seconds. A server on
    /// another machine (pid 0) reports its own RSS and CPU there.
    fn read_servers(&self) -> Vec<Reading> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .servers
                .iter()
                .map(|&(pid, addr)| {
                    scope.spawn(move || Reading::take(addr, pid == 0, Duration::from_millis(800)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }

    pub fn sample(&mut self) -> Sample {
        let t = self.start.elapsed().as_secs_f64();
        let pids: Vec<u32> = self
            .servers
            .iter()
            .map(|(p, _)| *p)
            .chain(self.redis)
            .collect();
        let readings = self.read_servers();
        let cpu: Vec<f64> = pids
            .iter()
            .enumerate()
            .map(|(i, &p)| match p {
                0 => readings
                    .get(i)
                    .and_then(|r| r.cpu_ms)
                    .map_or(0.0, |ms| ms as f64 / 1000.0),
                p => server::cpu_seconds(p).unwrap_or(0.0),
            })
            .collect();
        let pct: Vec<f64> = match &self.last {
            Some((t0, c0)) if t > *t0 => cpu
                .iter()
                .zip(c0)
                // A process gone (killed by a fault plan) reads 0: no CPU.
                .map(|(c, c0)| (100.0 * (c - c0) / (t - t0)).max(0.0))
                .collect(),
            _ => vec![0.0; cpu.len()],
        };
        let n = self.servers.len();
        self.known.resize(n, Known::default());
        for (k, r) in self.known.iter_mut().zip(&readings) {
            if let Some(c) = r.connections {
                k.connections = c;
            }
            k.work.update(&r.work);
        }
        let answering = readings.iter().filter(|r| r.answered).count() as u64;
        let per_process: Vec<(u64, u64, f64)> = self
            .servers
            .iter()
            .zip(&cpu)
            .enumerate()
            .map(|(i, ((pid, _), c))| {
                let rss = match pid {
                    0 => readings.get(i).and_then(|r| r.rss_bytes).unwrap_or(0) / 1024,
                    p => server::rss_kib(*p).unwrap_or(0),
                };
                (self.known[i].connections, rss, *c)
            })
            .collect();
        let work = Work::total(self.known.iter().map(|k| &k.work));
        // A figure /proc does not give is 0, as `server.csv` has always had it.
        let machine = host::cpu_jiffies().ok();
        let machine_cpu_pct = host::busy_pct(self.machine, machine);
        self.machine = machine;
        // The servers' own network namespace's sockets (the host's, or the
        // run's namespace): read through the first local server's /proc.
        let local = self.servers.iter().map(|s| s.0).find(|&p| p != 0);
        let sockstat =
            host::tcp_sockstat(local.map_or(NetNamespace::Current, NetNamespace::OfProcess))
                .unwrap_or_default();
        let (tcp_inuse, tcp_mem_pages) = (sockstat.inuse, sockstat.mem_pages);
        let processes = self.processes(t, &per_process, &readings);
        let (server_fds, loadgen_rss_kib, loadgen_fds) = totals(&processes);
        let s = Sample {
            server_fds,
            loadgen_rss_kib,
            loadgen_fds,
            processes,
            t_s: t,
            server_connections: per_process.iter().map(|p| p.0).sum(),
            server_rss_kib: per_process.iter().map(|p| p.1).sum(),
            server_cpu_pct: pct[..n].iter().sum(),
            redis_rss_kib: self.redis.map_or(0, |p| server::rss_kib(p).unwrap_or(0)),
            redis_cpu_pct: pct.get(n).copied().unwrap_or(0.0),
            mem_used_kib: host::mem_used_kib().unwrap_or(0),
            tcp_inuse,
            tcp_mem_kib: tcp_mem_pages * 4,
            load1: host::load1().unwrap_or(0.0),
            machine_cpu_pct,
            servers_answering: answering,
            server_reads: work.reads,
            server_writes: work.writes,
            server_wakeups: work.wakeups,
            server_deliveries: work.deliveries,
            server_pongs: work.pongs,
            server_bytes_in: work.bytes_in,
            server_bytes_out: work.bytes_out,
            per_process,
        };
        self.last = Some((t, cpu));
        s
    }
}

/// The server processes' descriptors, and the load generator's RSS and
/// descriptors, from the second's process rows.
fn totals(processes: &[ProcessSample]) -> (u64, u64, u64) {
    let servers = processes.iter().filter(|p| p.process.starts_with("server"));
    let loadgen = processes.iter().find(|p| p.process == "loadgen");
    (
        servers.map(|p| p.fds).sum(),
        loadgen.map_or(0, |p| p.rss_kib),
        loadgen.map_or(0, |p| p.fds),
    )
}

impl Sampler {
    /// One row per tracked process: each server process (a server on
    /// another machine has no /proc here: its descriptors read 0), Redis,
    /// and the load generator with its workers summed.
    fn processes(
        &self,
        t_s: f64,
        per_process: &[(u64, u64, f64)],
        readings: &[Reading],
    ) -> Vec<ProcessSample> {
        let fds = |pid: u32| {
            rtbench_sys::process::open_fds(rtbench_sys::process::Process::Pid(pid)).unwrap_or(0)
        };
        let mut rows: Vec<ProcessSample> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, &(pid, _))| {
                let live = readings.get(i).map_or([0; LIVE.len()], |r| r.live);
                ProcessSample {
                    t_s,
                    process: format!("server {i}"),
                    pid,
                    rss_kib: per_process.get(i).map_or(0, |p| p.1),
                    fds: if pid == 0 { 0 } else { fds(pid) },
                    connections: per_process.get(i).map_or(0, |p| p.0),
                    interned_names: live[0],
                    wheel_entries: live[1],
                    index_entries: live[2],
                    role_sets: live[3],
                    queued_bytes: live[4],
                }
            })
            .collect();
        let own = |process: &str, pids: &[u32]| ProcessSample {
            t_s,
            process: process.into(),
            pid: pids.first().copied().unwrap_or(0),
            rss_kib: pids.iter().map(|&p| server::rss_kib(p).unwrap_or(0)).sum(),
            fds: pids.iter().map(|&p| fds(p)).sum(),
            ..Default::default()
        };
        if let Some(pid) = self.redis.filter(|&p| p != 0) {
            rows.push(own("redis", &[pid]));
        }
        if let Some(pid) = self.loadgen {
            let tree = rtbench_sys::process::with_descendants(pid).unwrap_or_else(|_| vec![pid]);
            rows.push(own("loadgen", &tree));
        }
        rows
    }
}

/// The whole machine's CPU busy over `over`, in % of all cores.
pub fn machine_busy_pct(over: std::time::Duration) -> Option<f64> {
    let before = host::cpu_jiffies().ok()?;
    std::thread::sleep(over);
    let after = host::cpu_jiffies().ok()?;
    (after.total > before.total).then(|| host::busy_pct(Some(before), Some(after)))
}

/// Waits, up to `limit`, until the machine's CPU is under `quiet_pct` busy
/// over a second; returns the last reading. Why: the kernel tears a run's
/// network namespace down after the run, in the background, and with a
/// million sockets that takes a minute of CPU: a run started meanwhile
/// would measure it.
pub fn wait_until_quiet(quiet_pct: f64, limit: std::time::Duration) -> Option<f64> {
    let t0 = std::time::Instant::now();
    let mut said = false;
    loop {
        let busy = machine_busy_pct(std::time::Duration::from_secs(1))?;
        if busy < quiet_pct || t0.elapsed() >= limit {
            if said {
                eprintln!("xtask: the machine is {busy:.0}% busy; starting");
            }
            return Some(busy);
        }
        if !said {
            eprintln!(
                "xtask: the machine is {busy:.0}% busy before the run (an earlier run's sockets still being torn down?): waiting up to {} s for it to settle under {quiet_pct:.0}%",
                limit.as_secs()
            );
            said = true;
        }
    }
}

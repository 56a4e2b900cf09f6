//! Where workers run. By default each worker is this binary started locally
//! (`rtbench-loadgen worker`); `run --launch FILE` names instead, for each
//! worker, either the command line that starts it elsewhere (`ssh HOST ...`)
//! or the address of a worker already started that waits for its controller
//! there (`rtbench-loadgen worker --listen ADDR`, as in a container). The
//! protocol is the same both ways: the plan in, JSON lines back, the end of
//! the controller's side as the stop signal; only the channel differs (the
//! process's stdin and stdout, or one TCP connection).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ReadError;

/// What a `worker --listen` prints on stderr, followed by its address,
/// once it waits for its controller: its starter waits for this line.
pub const WAITING_FOR_CONTROLLER: &str = "rtbench-loadgen worker: waiting for its controller on";

/// Descriptors a load generator worker keeps for itself beside its
/// connections: stdio, its two pollers, the controller's channel, one
/// probe of the ready barrier at a time (13 in all, measured in a worker
/// container: issue 26's 20,000 connections on a 20,000-descriptor worker
/// failed 13), with a margin. One socket per arrival at a time: a lost
/// connection's socket is closed before it reconnects.
pub const WORKER_RESERVED_FDS: u64 = 64;

/// Niceness of the load generator's processes, workers and controller
/// alike: the instrument keeps its schedule ahead of the processes it
/// measures when the machine is saturated (both share its cores), and the
/// controller (publisher, heartbeat watch) is not starved by its own
/// workers: at 0 beside fifty workers at -10 it went unscheduled long enough
/// to declare live workers lost. Only root may lower niceness; elsewhere a
/// process stays at 0.
pub const LOADGEN_NICE: i32 = -10;

/// Niceness of the processes under test (servers, brokers, the Redis bus)
/// and of the roofline's sides: above the machine's own daemons, below the
/// instrument. At 0, a shared machine's background bursts (100-150 ms of
/// CPU every 3 s here, from processes no run starts) delayed every server
/// at once: fan-out at 500 events/s over 100,000 connections read delivery
/// p99 35 and 55 ms in two runs with the servers at 0, 18 ms at -5, the
/// load and the rest of the run the same (issue 28's note). Those bursts are
/// the sandbox's agent (pid 1, `process_api`, itself at -10), whose work
/// grows with the TCP sockets open (none idle, 75-110 ms of CPU a second
/// with 190,000 idle sockets): 200-250 ms every 3.1 s during a fan-out over
/// 100,000 connections. With its threads put at
/// +10 for one run, 800 events/s read delivery p99 34 ms, against 67 and
/// 78 ms in two runs without; 74 ms with the servers at -12 and the load
/// generator at -15, 52 ms at -19 and -20 (one run each). Lower still is left alone: a saturated run would starve the
/// agent that carries the session. The preflight names such processes.
pub const SERVER_NICE: i32 = -5;

/// Connections one worker holds at most under an open-files limit of
/// `nofile`.
pub fn worker_capacity(nofile: u64) -> u64 {
    nofile.saturating_sub(WORKER_RESERVED_FDS)
}

/// Workers enough that each holds its share of `connections` under an
/// open-files limit of `nofile`.
pub fn workers_needed(connections: u64, nofile: u64) -> u64 {
    connections.div_ceil(worker_capacity(nofile).max(1)).max(1)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    pub workers: Vec<WorkerLaunch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerLaunch {
    /// The machine (or container) it runs on: workers on one share its ports.
    pub host: String,
    /// The command that starts the worker, ending in `... rtbench-loadgen
    /// worker`; empty when the worker is reached at `connect` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// A worker started by someone else, listening for its controller
    /// (`rtbench-loadgen worker --listen`): its control address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<SocketAddr>,
    /// Where that someone writes the worker's stderr, when the controller
    /// does not hold it (a `connect` worker): read to explain a failure. A
    /// relative path is from the launch file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// That machine's clock minus this one's (CLOCK_REALTIME), as estimated:
    /// the worker corrects every timestamp it takes by it.
    #[serde(default)]
    pub clock_offset_ns: i64,
}

impl Launch {
    pub fn read(path: &Path) -> Result<Launch, ReadError> {
        let mut l: Launch = crate::read_json(path)?;
        let invalid = |problem: String| ReadError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        let here = path.parent().unwrap_or(Path::new("."));
        for w in &mut l.workers {
            if let Some(log) = &mut w.log
                && log.is_relative()
            {
                *log = here.join(&*log);
            }
        }
        if l.workers.is_empty() {
            return Err(invalid("`workers` is empty".into()));
        }
        if let Some(i) = l
            .workers
            .iter()
            .position(|w| w.argv.is_empty() == w.connect.is_none())
        {
            return Err(invalid(format!(
                "workers[{i}] needs exactly one of `argv` and `connect`"
            )));
        }
        if let Some(i) = l
            .workers
            .iter()
            .position(|w| w.connect.is_none() && w.log.is_some())
        {
            return Err(invalid(format!(
                "workers[{i}]: `log` is for a `connect` worker (a started one's stderr is the controller's)"
            )));
        }
        Ok(l)
    }

    /// Distinct machines: each has its own ephemeral ports.
    pub fn hosts(&self) -> usize {
        let mut h: Vec<&str> = self.workers.iter().map(|w| w.host.as_str()).collect();
        h.sort();
        h.dedup();
        h.len()
    }
}

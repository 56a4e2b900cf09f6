//! The bench run record: `results/<scenario>/<UTC time>-<host>/`.
//!
//! | file | content |
//! |---|---|
//! | `scenario.toml` | the suite as run: overrides applied, variant and target filled in |
//! | `load.toml` | its `[load]` part, as handed to the load generator |
//! | `environment.json` | `Environment`: machine, kernel, sysctls and limits as read, tuning before/after, toolchain, git commit, binaries and flags |
//! | `server.csv` | one `sample::Sample` a second |
//! | `preflight.json` | every check and its verdict |
//! | `loadgen/` | the load generator's run directory (`loadgen/README.md`) |
//! | `summary.json` | `BenchSummary`: the headline figures |
//!
//! `FORMAT_VERSION` changes whenever a reader must know. The xtask writes
//! records and the results site and regression gate read them, all through
//! these types: a crate of its own so that neither side owns the schema.
//!
//! Beside the bench record, the files the load generator reads and writes:
//! the scenario (`scenario`), the launch plan (`launch`), targets and source
//! addresses (`endpoint`), its run directory (`load`); and the machine's own
//! limits (`roofline`). Invariant: this crate depends on serde and its
//! formats only, so that whatever reads a record builds no runtime.

use std::collections::BTreeMap;
use std::path::Path;

pub use error::ReadError;
pub use load::{Bottleneck, StopCause};
pub use role::{HostRole, Role};
use serde::{Deserialize, Serialize};

/// 2: `limit` is its causes (`limit::Causes`), not a sentence.
pub const FORMAT_VERSION: u32 = 2;

/// File names inside a record directory.
pub const SUMMARY: &str = "summary.json";
pub const ENVIRONMENT: &str = "environment.json";
pub const PREFLIGHT: &str = "preflight.json";
pub const SERVER_CSV: &str = "server.csv";
/// Each tracked process's second (`series::ProcessSample`): a soak's leak check.
pub const PROCESSES_CSV: &str = "processes.csv";
pub const SCENARIO: &str = "scenario.toml";
pub const LOADGEN_DIR: &str = "loadgen";
/// Marks a `--versus` record: its runs are subdirectories `A1`, `B1`, ...
pub const VERSUS: &str = "versus.json";
/// Marks a reference record (a published run rtbench did not make).
pub const REFERENCE: &str = "reference.json";

pub mod broadcast;
pub mod drift;
pub mod endpoint;
pub mod error;
pub mod launch;
pub mod limit;
pub mod live;
pub mod load;
pub mod metrics;
pub mod role;
pub mod roofline;
pub mod scenario;
pub mod series;
pub mod slo;
pub mod sweep;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSummary {
    pub format_version: u32,
    pub scenario: String,
    pub variant: Option<String>,
    pub description: String,
    /// False when interrupted or when a part failed; the figures then cover
    /// what ran.
    pub complete: bool,
    pub stopped_by: Option<StopCause>,
    pub started_at: String,
    pub host: String,
    /// The user's overrides (`--scale`, `--connections`, `--rate`, `--hold`).
    pub overrides: Overrides,
    pub connections: Connections,
    pub connect_ms: Latency,
    pub delivery_ms: Latency,
    /// Round trips: a raw echo's, or an Appwrite ping's answered by its pong
    /// (absent from records made before they were measured).
    #[serde(default)]
    pub round_trip_ms: Latency,
    /// Reconnections (scenarios that reconnect): from a connection's loss to
    /// its being open again, the backoff included.
    #[serde(default)]
    pub reconnect_ms: Latency,
    pub deliveries_per_s: f64,
    pub server: ServerFigures,
    pub system: SystemFigures,
    pub errors: Errors,
    pub client_bottleneck: Bottleneck,
    /// What each delivery and each ping cost, over the hold (absent from
    /// records made before the servers counted their syscalls).
    #[serde(default)]
    pub costs: Costs,
    /// What limited the run, judged from the client's self-check and the
    /// machine's CPU over the hold (absent from older records).
    #[serde(default)]
    pub limit: Option<limit::Causes>,
    /// The load generator's own cost (absent from older records).
    #[serde(default)]
    pub loadgen: LoadgenFigures,
    /// What was benchmarked: `rtbench`, `command: LINE` or `url: URL`.
    #[serde(default = "rtbench")]
    pub server_under_test: String,
    /// Figures this run could not measure, and why (a server that is not
    /// rtbench exports no /metrics; one given by URL has no process here).
    #[serde(default)]
    pub unmeasured: Vec<String>,
    /// Processes the bench started that ended during the run (a server, Redis
    /// or a load generator worker that died): such a run is not complete.
    #[serde(default)]
    pub process_exits: Vec<ProcessExit>,
    /// The kernel's TCP counters in the servers' network namespace over the
    /// run (`rtbench_sys::host::TCP_COUNTERS`, increases only): accept-queue overflows,
    /// SYN retransmits, packets dropped at a CPU's input queue
    /// (`softnet.dropped`) and the like, which say why connects were slow.
    #[serde(default)]
    pub kernel_tcp: std::collections::BTreeMap<String, u64>,
    /// The faults the suite's plan made happen, in order (planned exits are
    /// not `process_exits`).
    #[serde(default)]
    pub faults_injected: Vec<FaultDone>,
    /// A run with a fault plan: the storm it caused.
    #[serde(default)]
    pub failover: Option<Failover>,
    /// Each objective of the run (`[slo]`, `--slo`), met or not, evaluated
    /// on the histograms every worker sent, merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<slo::Outcome>,
    /// A broadcast (a scenario that times each event): every event's burst,
    /// read against the host's bare-TCP fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<broadcast::Broadcast>,
    /// The closing phase after the hold, measured on its own: how long the
    /// connections took to close (absent from older records).
    #[serde(default)]
    pub closing: Option<load::Closing>,
    /// A churn run (`session.lifetime_s`): the churn, the events and the
    /// leak check (every series' slope; the leaks named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<drift::Soak>,
}

/// A fault the suite's plan made happen (`[[faults]]`): what, to whom, when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultDone {
    /// When the plan said, in seconds of the load generator's schedule.
    pub at_s: f64,
    /// When it was done, on the record's timeline (`server.csv`).
    pub t_s: f64,
    /// `kill`, `restart`, `pause`, `resume`.
    pub action: String,
    pub target: Role,
    /// The process it was done to (a restart: the new one).
    pub pid: u32,
}

/// What a run with a fault plan measured: the storm and what it cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Failover {
    /// Connections open the second before the first fault.
    pub open_before: u64,
    /// The fewest open in any second after it.
    pub open_lowest: u64,
    /// Connections the server side closed from the first fault on.
    pub connections_lost: u64,
    /// Seconds from the first fault until as many were open again (None:
    /// never, within the run).
    pub recovered_after_s: Option<f64>,
    /// Reconnections made, and their time from loss to open again.
    pub reconnects: u64,
    pub reconnect_ms: Latency,
    /// Server processes' CPU (100 = one core) and RSS, summed, at their
    /// highest from the first fault to the end of the hold.
    pub servers_cpu_peak_pct: f64,
    pub servers_rss_peak_kib: u64,
    /// Every subscriber is sent every event: events published times
    /// subscribers, against what they received. Appwrite's protocol has no
    /// replay, so events published to a client while it reconnects are lost.
    pub events_expected: u64,
    pub events_received: u64,
    pub events_missed: u64,
    /// Subscribers that missed at least one event, and the most one missed
    /// (from each subscriber's own count).
    #[serde(default)]
    pub subscribers_missing_events: u64,
    #[serde(default)]
    pub most_missed_by_one: u64,
    pub duplicates: u64,
}

/// A process of the run that ended before the bench stopped it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessExit {
    /// When it was noticed, in seconds on the record's timeline (`server.csv`).
    pub t_s: f64,
    pub role: Role,
    /// Its pid here (0: on another machine, or not known).
    pub pid: u32,
    /// `exit status: 1`, `signal 9 (Killed)`, and why when it is known.
    pub status: String,
    /// Why it ended, when something outside it ended it (absent: not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ExitCause>,
}

/// What ended a process of the run, when it was not the process itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCause {
    /// The kernel's OOM killer: the machine, or the memory cgroup the
    /// process ran in (its container's limit), was out of memory.
    OomKiller,
}

fn rtbench() -> String {
    "rtbench".into()
}

/// What the load generator itself used: the instrument's cost beside the
/// server's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadgenFigures {
    /// (peak RSS − RSS before) / peak connections, over all workers.
    pub kib_per_connection: Option<f64>,
    pub workers: u64,
    /// CPU seconds over the run, all workers.
    pub cpu_s: f64,
    /// The busiest worker's busiest second (100 = one core).
    pub worker_cpu_max_pct: f64,
}

/// The cost of the work done while holding: server CPU and syscalls per
/// delivery and per ping (from the servers' counters at the first and last
/// sample of the hold), and the load generator's syscalls per delivery and
/// per ping (whole run). `None` where there was no such work.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Costs {
    pub deliveries: u64,
    pub pings: u64,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server_syscalls_per_delivery: Option<f64>,
    pub server_wakeups_per_delivery: Option<f64>,
    pub server_cpu_us_per_ping: Option<f64>,
    pub server_syscalls_per_ping: Option<f64>,
    pub loadgen_syscalls_per_delivery: Option<f64>,
    pub loadgen_syscalls_per_ping: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connections {
    pub target: u64,
    pub peak: u64,
    pub held: u64,
    pub failed: u64,
    pub time_to_target_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerFigures {
    pub processes: u64,
    pub rss_before_kib: u64,
    /// Highest RSS while the connections were held.
    pub rss_peak_kib: u64,
    /// (peak RSS − RSS before) / peak connections, both while holding.
    pub kib_per_connection: f64,
    /// Mean CPU over the hold, all processes (100 = one core); null when no
    /// sample fell in the hold.
    pub cpu_holding_pct: Option<f64>,
    /// Absent from records made before several processes were run.
    #[serde(default)]
    pub per_process: Vec<ProcessFigures>,
    /// The event bus, when the run had several processes.
    #[serde(default)]
    pub redis: Option<RedisFigures>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessFigures {
    pub connections_peak: u64,
    pub rss_peak_kib: u64,
    pub cpu_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisFigures {
    pub rss_peak_kib: u64,
    pub cpu_holding_pct: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SystemFigures {
    pub mem_used_before_kib: u64,
    pub mem_used_peak_kib: u64,
    /// Whole-machine memory per connection: kernel, server and load generator.
    pub kib_per_connection: f64,
    pub tcp_mem_peak_kib: u64,
}

impl SystemFigures {
    /// `kib_per_connection`, unless the machine's memory moved less than the
    /// server's alone (or not at all): then it is inside the noise of
    /// everything else on the machine, and None.
    pub fn kib_per_connection_measured(&self, server_kib_per_connection: f64) -> Option<f64> {
        let k = self.kib_per_connection;
        (self.mem_used_peak_kib > self.mem_used_before_kib
            && k > 0.0
            && k >= server_kib_per_connection)
            .then_some(k)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Errors {
    pub failed: BTreeMap<String, u64>,
    pub closed_by_server: BTreeMap<String, u64>,
    pub error_frames: BTreeMap<String, u64>,
    pub misdelivered: u64,
    pub duplicates: u64,
    /// Deliveries the servers made that no client received (from their
    /// `rtbench_deliveries_total`); unknown when a server could not be read.
    pub lost: Option<i64>,
    /// A raw echo run whose frames came back but never matched an echo
    /// sent, with what was seen (`load::Counters::echo_mismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mismatch: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub format_version: u32,
    pub host: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: usize,
    pub mem_total_kib: u64,
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    /// Relevant sysctls as read at the start.
    pub sysctls: BTreeMap<String, Option<String>>,
    /// The suite's tuning: wanted, before, after (`applied` false: read only).
    pub tuning: BTreeMap<String, Setting>,
    pub tuning_applied: bool,
    pub rustc: String,
    pub git_commit: String,
    pub git_dirty: bool,
    pub server_version: String,
    /// The first server process's flags; every process gets the same, but for
    /// `--max-connections` when a cap is split (the first cap % P take one more).
    pub server_args: Vec<String>,
    #[serde(default = "one")]
    pub server_processes: u64,
    pub loadgen_version: String,
    pub overrides: Overrides,
    /// Absent from records made before runs could leave this machine: local.
    #[serde(default)]
    pub deployment: Deployment,
    /// The network namespace the run's processes ran in (`bench --tune`);
    /// absent: the host's network stack.
    #[serde(default)]
    pub network_namespace: Option<NetworkNamespace>,
    /// The roofline this run is read against: a directory under
    /// `results/roofline/` (the host's newest when the run started, or one
    /// measured for it with `--roofline`); absent when the host had none.
    #[serde(default)]
    pub roofline: Option<String>,
    /// The machine's CPU busy (% of all cores) over the second before the
    /// run started, after waiting for it to settle (`sample::wait_until_quiet`).
    #[serde(default)]
    pub machine_busy_before_pct: Option<f64>,
    /// The first server process's niceness as read once it started
    /// (`launch::SERVER_NICE` when run as root); absent in older records
    /// and for a server on another machine.
    #[serde(default)]
    pub server_niceness: Option<i32>,
}

/// A network namespace made for a run, sized for it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkNamespace {
    pub name: String,
    /// Buckets of its established-socket hash table (the host's is sized at boot).
    pub ehash_buckets: u64,
    /// The suite's `net.*` settings as the processes inside saw them (absent:
    /// a host-wide setting the namespace does not have).
    pub sysctls: BTreeMap<String, Option<String>>,
}

fn one() -> u64 {
    1
}

/// The user's choices that change a run; recorded with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    pub scale: Option<f64>,
    pub connections: Option<u64>,
    pub rate: Option<f64>,
    pub hold_s: Option<f64>,
    /// Server processes (default: as many as the open-files limit requires).
    #[serde(default)]
    pub processes: Option<u64>,
    /// Events per second from every publisher together, each publisher's
    /// rate scaled to it (a sweep `--over rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<f64>,
    /// Seconds between a client's pings (a sweep `--over pings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_interval_s: Option<f64>,
}

/// One OS setting of a suite's tuning: wanted, and as read before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setting {
    pub wanted: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

pub fn read_summary(dir: &Path) -> Result<BenchSummary, ReadError> {
    read_json(&dir.join(SUMMARY))
}

pub fn read_environment(dir: &Path) -> Result<Environment, ReadError> {
    read_json(&dir.join(ENVIRONMENT))
}

/// Reads a JSON file into `T`; the error names the file, line and column.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReadError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ReadError> {
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).expect("serializes"),
    )
    .map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The load generator's own record (`loadgen/summary.json`).
pub use load::{Summary as LoadSummary, read_summary as read_load_summary};

/// `cargo xtask bench --versus REF`: the same scenario run alternately with
/// this checkout's server (A) and one built at REF (B), A B A B, so that each
/// B is judged against the A next to it in time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versus {
    pub format_version: u32,
    pub scenario: String,
    pub variant: Option<String>,
    pub started_at: String,
    pub host: String,
    pub a: Revision,
    pub b: Revision,
    /// In the order they ran.
    pub runs: Vec<VersusRun>,
    /// Per headline metric (`metrics::METRICS` keys): B / A of each pair.
    pub ratios: BTreeMap<String, Ratio>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revision {
    pub git_ref: String,
    pub commit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersusRun {
    /// `A` or `B`.
    pub side: String,
    /// Its record's directory, inside the versus record.
    pub dir: String,
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub pairs: Vec<f64>,
}

/// The median of `v` (NaN when empty); `v` is sorted in place.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Ratio {
    /// B / A per pair, for each metric both sides have.
    pub fn of_pairs(pairs: &[(&BenchSummary, &BenchSummary)]) -> BTreeMap<String, Ratio> {
        let mut out = BTreeMap::new();
        for m in metrics::METRICS {
            let mut r: Vec<f64> = pairs
                .iter()
                .filter_map(|(a, b)| Some(((m.get)(b)?, (m.get)(a)?)))
                .filter(|(_, a)| *a != 0.0)
                .map(|(b, a)| b / a)
                .collect();
            if r.is_empty() {
                continue;
            }
            let pairs = r.clone();
            let median = median(&mut r);
            out.insert(
                m.key.to_string(),
                Ratio {
                    median,
                    min: r[0],
                    max: r[r.len() - 1],
                    pairs,
                },
            );
        }
        out
    }
}

/// Where a run's parts ran: local processes (the default), containers on a
/// private Docker network, hosts reached over SSH, or a Docker swarm's nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    /// `local`, `containers`, `hosts` or `swarm`.
    pub kind: String,
    /// The limits the containers were given, and their images (`name:tag`;
    /// in a swarm `registry/name@sha256:...`, the digest every node pulled).
    #[serde(default)]
    pub containers: Option<Containers>,
    #[serde(default)]
    pub images: Vec<String>,
    /// Every machine or container a part ran on.
    #[serde(default)]
    pub hosts: Vec<HostRecord>,
}

impl Default for Deployment {
    fn default() -> Deployment {
        Deployment {
            kind: "local".into(),
            containers: None,
            images: Vec::new(),
            hosts: Vec::new(),
        }
    }
}

/// Container resources: a suite's `[containers]` table, then `--limit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Containers {
    /// Load generator worker containers (each its own address, like the
    /// original's client machines).
    #[serde(default = "two")]
    pub workers: u64,
    #[serde(default)]
    pub server: Limits,
    #[serde(default)]
    pub worker: Limits,
    #[serde(default)]
    pub redis: Limits,
    /// Every container's open-files limit (soft and hard).
    #[serde(default = "nofile")]
    pub nofile: u64,
    /// Namespaced sysctls (net.*) set in every container.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
}

impl Default for Containers {
    fn default() -> Containers {
        Containers {
            workers: two(),
            server: Limits::default(),
            worker: Limits::default(),
            redis: Limits::default(),
            nofile: nofile(),
            sysctls: BTreeMap::new(),
        }
    }
}

fn two() -> u64 {
    2
}

fn nofile() -> u64 {
    20_000
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPUs the container may use (Docker's NanoCpus / 1e9), e.g. `1.5`.
    pub cpus: Option<f64>,
    /// Its memory limit, as Docker writes sizes (e.g. `512m`, `1.5g`).
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    /// `server`, `redis` or `client`.
    pub role: String,
    pub address: String,
    /// Its clock minus the controller's, and the bound on that estimate's
    /// error (half the best round trip); 0 for a shared clock.
    pub clock_offset_ns: i64,
    pub clock_error_ns: u64,
    /// The suite's tuning on that host (`--tune`): wanted, before, after.
    #[serde(default)]
    pub tuning: BTreeMap<String, Setting>,
    /// A swarm node: what its engine says of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeFacts>,
}

/// A Docker swarm node that took part in a run, as its engine describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// The swarm's id for it.
    pub id: String,
    pub hostname: String,
    pub engine_version: String,
    pub cpus: f64,
    pub memory_bytes: u64,
}

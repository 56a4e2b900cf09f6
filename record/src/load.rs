//! The load generator's run directory: what a run leaves behind, in a
//! documented, versioned format (`loadgen/README.md`, "Run directory").
//! `Summary` is the schema; the load generator writes it and the xtask and
//! the results site read it, all through these types.
//!
//! A record is written into `<dir>.partial` and renamed into place at the end,
//! so a directory with the final name is always whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bumped on any change to what a reader must know.
pub const FORMAT_VERSION: u32 = 1;

/// The signal that ended a run before its schedule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopCause {
    #[serde(rename = "SIGINT")]
    Sigint,
    #[serde(rename = "SIGTERM")]
    Sigterm,
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopCause::Sigint => "SIGINT",
            StopCause::Sigterm => "SIGTERM",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub format_version: u32,
    /// False when the run was interrupted (Ctrl-C, SIGTERM) or a worker died.
    pub complete: bool,
    pub stopped_by: Option<StopCause>,
    pub scenario: String,
    pub description: String,
    pub protocol: String,
    pub targets: Vec<String>,
    pub started_at: String,
    /// When the arrival schedule's second 0 was (CLOCK_REALTIME ns): the
    /// timeline every other figure's seconds count from.
    #[serde(default)]
    pub schedule_start_unix_ns: u64,
    pub duration_s: f64,
    pub workers: u64,
    /// Publisher and receivers read one clock: this host's CLOCK_REALTIME.
    pub clock: String,
    pub connections: Connections,
    pub connect_ms: Percentiles,
    pub connect_attempt_ms: Percentiles,
    pub delivery_ms: Percentiles,
    /// Round trips: a raw echo's, or a ping's answered by its pong.
    pub echo_ms: Percentiles,
    /// Reconnections: from the loss (or failed attempt) to open again,
    /// backoff included.
    #[serde(default)]
    pub reconnect_ms: Percentiles,
    /// From a frame's arrival in a client's socket (the kernel's receive
    /// time) to the worker's read of it: the load generator's own delay,
    /// kept out of the latencies above. Empty in records made before it.
    #[serde(default)]
    pub read_wait_ms: Percentiles,
    pub events: Events,
    pub counters: Counters,
    pub loadgen: LoadgenSelf,
    pub client_bottleneck: Bottleneck,
    /// Workers that did not end cleanly (the run is then not complete).
    #[serde(default)]
    pub worker_exits: Vec<WorkerExit>,
    /// Each event's burst, for a scenario that times events one by one
    /// (`per_event`): how long until its first and its last delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bursts: Vec<Burst>,
    /// The scenario's objectives, each met or not, on the merged histograms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<crate::slo::Outcome>,
    /// The closing phase, measured on its own (absent from older records).
    #[serde(default)]
    pub closing: Closing,
    /// A raw echo run whose frames came back but never matched
    /// (`Counters::echo_mismatch`): what was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mismatch: Option<String>,
}

/// The closing phase: from the hold's end (or the stop) until a worker
/// holds no socket. Each worker reports its own; the run's is the slowest
/// worker's time and the others summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Closing {
    /// Seconds from when closing began until the last socket was gone.
    pub seconds: f64,
    /// Connections open when closing began.
    pub open: u64,
    /// Connections the server had not answered within the close timeout,
    /// closed without its answer.
    pub aborted: u64,
}

impl Closing {
    /// Adds one worker's closing to the run's.
    pub fn add(&mut self, other: &Closing) {
        self.seconds = self.seconds.max(other.seconds);
        self.open += other.open;
        self.aborted += other.aborted;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerExit {
    pub worker: u64,
    /// Its pid here (0 when it ran elsewhere or was never started).
    pub pid: u32,
    /// Where it ran, as the launch plan names the host.
    #[serde(default)]
    pub host: String,
    /// How it ended (`signal 9`, `exit status: 1`), or `lost: ...` when it
    /// fell silent and was killed.
    pub status: String,
}

/// Each worker host's memory, CPU, load and sockets per second
/// (`series::HostSample` rows).
pub const HOSTS_CSV: &str = "hosts.csv";

/// The run's seconds (`TimeseriesRow` rows).
pub const TIMESERIES_CSV: &str = "timeseries.csv";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connections {
    /// Arrivals the scenario schedules.
    pub target: u64,
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub peak_open: u64,
    /// Open at the last second before closing began.
    pub held: u64,
    /// Seconds from the start until `target` connections were open at once.
    pub time_to_target_s: Option<f64>,
    /// Connections per second over the arrival phases.
    pub connect_rate: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Events {
    /// Events the publishers' schedules called for.
    #[serde(default)]
    pub scheduled: u64,
    pub published: u64,
    /// Deliveries the server reported handing to sockets.
    pub server_deliveries: u64,
    pub received: u64,
    pub per_second: f64,
    pub duplicates: u64,
    pub misdelivered: u64,
    /// Server-reported deliveries that no client received; unknown (null) when
    /// the server did not report deliveries per event (a shared bus).
    pub lost: Option<i64>,
    pub publish_errors: BTreeMap<String, u64>,
    pub publish_lag_max_ms: f64,
    /// HTTP publishing: most requests in flight at once, and the cap.
    #[serde(default)]
    pub in_flight_max: u64,
    #[serde(default)]
    pub in_flight_cap: u64,
    /// Subscribers by the events each received over the run (events ->
    /// subscribers), all its connections counted; empty without events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub received_by_subscriber: BTreeMap<u32, u64>,
    /// Events the server refused with a 503 (its bus down): an answer, not
    /// silence; with one request in flight their sequence is reused, so
    /// they leave no gap a subscriber could miss.
    #[serde(default)]
    pub refused: u64,
    /// Inside each connection's received range (first to last sequence),
    /// events expected and missing, summed over connections
    /// (`Counters::span_expected`, `span_missed`).
    #[serde(default)]
    pub span_expected: u64,
    #[serde(default)]
    pub span_missed: u64,
    /// Of `span_missed`, those of events whose publishing failed without
    /// a clear answer (the connection closed, a timeout): the event may or
    /// may not have gone out, so their misses are not counted as lost.
    #[serde(default)]
    pub span_missed_uncertain: u64,
    /// The events missed inside connections' ranges, by sequence: how many
    /// connections missed each (the first 20).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missed_by_seq: BTreeMap<u64, u64>,
}

/// Descriptions of unmatched frames a record keeps.
pub const UNMATCHED_SEEN: usize = 4;

/// One event as a worker's receivers saw it (a scenario with `per_event`):
/// its stamp, how many received it, and its first and last arrival (the
/// kernel's receive times, CLOCK_REALTIME ns on the controller's clock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSpan {
    pub seq: u64,
    pub published_ns: u64,
    pub received: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl EventSpan {
    /// Adds another worker's view of the same event.
    pub fn add(&mut self, o: &EventSpan) {
        if o.received == 0 {
            return;
        }
        if self.received == 0 {
            *self = *o;
            return;
        }
        self.received += o.received;
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
    }
}

/// One event's burst: from its publishing to its first and its last
/// delivery, and deliveries per second between those two.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Burst {
    pub seq: u64,
    pub received: u64,
    pub to_first_ms: f64,
    pub to_last_ms: f64,
    pub per_second: f64,
}

impl Burst {
    pub fn of(s: &EventSpan) -> Burst {
        let ms = |ns: u64| ns.saturating_sub(s.published_ns) as f64 / 1e6;
        let span_s = s.last_ns.saturating_sub(s.first_ns) as f64 / 1e9;
        Burst {
            seq: s.seq,
            received: s.received,
            to_first_ms: ms(s.first_ns),
            to_last_ms: ms(s.last_ns),
            per_second: if span_s > 0.0 {
                s.received as f64 / span_s
            } else {
                0.0
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadgenSelf {
    /// Workers' RSS summed: before the first arrival, and at its highest.
    pub start_rss_kib: u64,
    pub peak_rss_kib: u64,
    /// (peak RSS − start RSS) / peak open connections: what one more
    /// connection costs, as the server's memprobe measures it.
    pub kib_per_connection: f64,
    pub cpu_s: f64,
    pub worker_cpu_max_pct: f64,
    pub arrival_lag_max_ms: f64,
    /// Every arrival's lag behind its schedule (absent before 2026-12-07).
    #[serde(default)]
    pub arrival_lag_ms: Percentiles,
}

/// Whether the load generator, not the server, limited the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Bottleneck {
    pub bottleneck: bool,
    pub reasons: Vec<String>,
}

/// One row of `timeseries.csv`.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub t: u64,
    pub open: u64,
    pub connecting: u64,
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub closed_by_server: u64,
    pub deliveries: u64,
    /// Bytes the clients received and sent so far (frames and handshakes).
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connect: Percentiles,
    pub delivery: Percentiles,
    pub lag_max_ms: f64,
    pub worker_cpu_max_pct: f64,
    pub rss_kib: u64,
}

/// One row of `timeseries.csv`, as written (`series.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeseriesRow {
    pub t_s: u64,
    pub open: u64,
    pub connecting: u64,
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    /// Connections opened in this second.
    pub connect_rate: u64,
    pub closed_by_server: u64,
    pub deliveries: u64,
    /// Deliveries in this second.
    pub delivery_rate: u64,
    pub connect_p50_ms: f64,
    pub connect_p99_ms: f64,
    pub delivery_p50_ms: f64,
    pub delivery_p99_ms: f64,
    pub arrival_lag_max_ms: f64,
    pub worker_cpu_max_pct: f64,
    pub loadgen_rss_kib: u64,
    /// Client traffic in this second (bytes; absent from early records).
    #[serde(default)]
    pub received_bytes_per_s: u64,
    #[serde(default)]
    pub sent_bytes_per_s: u64,
}

/// Three decimals are a microsecond: enough, and the files stay small.
fn milli(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl TimeseriesRow {
    /// Row `r` as `timeseries.csv` holds it (rates from the row before it,
    /// `prev`: `Row::default()` for the first).
    pub fn of(r: &Row, prev: &Row) -> TimeseriesRow {
        TimeseriesRow {
            t_s: r.t,
            open: r.open,
            connecting: r.connecting,
            attempted: r.attempted,
            connected: r.connected,
            failed: r.failed,
            connect_rate: r.connected.saturating_sub(prev.connected),
            closed_by_server: r.closed_by_server,
            deliveries: r.deliveries,
            delivery_rate: r.deliveries.saturating_sub(prev.deliveries),
            connect_p50_ms: milli(r.connect.p50),
            connect_p99_ms: milli(r.connect.p99),
            delivery_p50_ms: milli(r.delivery.p50),
            delivery_p99_ms: milli(r.delivery.p99),
            arrival_lag_max_ms: milli(r.lag_max_ms),
            worker_cpu_max_pct: (r.worker_cpu_max_pct * 10.0).round() / 10.0,
            loadgen_rss_kib: r.rss_kib,
            received_bytes_per_s: r.bytes_in.saturating_sub(prev.bytes_in),
            sent_bytes_per_s: r.bytes_out.saturating_sub(prev.bytes_out),
        }
    }
}

/// Where a run is written while it runs.
pub fn partial_dir(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

pub fn read_summary(dir: &Path) -> Result<Summary, crate::ReadError> {
    crate::read_json(&dir.join("summary.json"))
}

/// Percentiles in milliseconds, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// Counters a worker keeps; the controller adds them up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub attempted: u64,
    pub connected: u64,
    /// Connections open now (a gauge).
    pub open: u64,
    /// Failed connection attempts by reason (`refused`, `timeout`, `http_503`,
    /// `error_frame_1008`, `closed_1013`, `ports_exhausted`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Connections the server closed while they were held, by close code.
    pub closed_by_server: BTreeMap<String, u64>,
    /// `error` frames received, by code.
    pub error_frames: BTreeMap<String, u64>,
    pub reconnects: u64,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub pings: u64,
    /// Pings not sent because the socket would block (the client fell behind).
    pub pings_skipped: u64,
    pub pongs: u64,
    /// The server's own keepalives the clients answered (NATS `PING`,
    /// Socket.IO's ping), where the server keeps the connection alive.
    #[serde(default)]
    pub server_pings: u64,
    pub deliveries: u64,
    pub duplicates: u64,
    /// Events a connection received that its channels and roles should have
    /// kept from it. Must stay 0.
    pub misdelivered: u64,
    /// Raw protocol: echo messages sent, and received back (`echoes`, text
    /// or binary frames, matched by payload).
    #[serde(default)]
    pub echoes_sent: u64,
    pub echoes: u64,
    /// Raw protocol: data frames that came back and were no echo sent, and
    /// what the first few were (`UNMATCHED_SEEN` at most, each once).
    #[serde(default)]
    pub unmatched: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched_seen: Vec<String>,
    /// Syscalls on held connections and the hold reactor's wake-ups, so a
    /// record shows what each delivery and ping cost the client.
    #[serde(default)]
    pub reads: u64,
    #[serde(default)]
    pub writes: u64,
    #[serde(default)]
    pub wakeups: u64,
    /// Churn (`session.lifetime_s`): connections that left at the end of
    /// their lifetime with a close frame, and by a silent drop.
    #[serde(default)]
    pub left_closed: u64,
    #[serde(default)]
    pub left_dropped: u64,
    /// Dropped clients whose server had not closed the socket by the time
    /// they gave up holding it (`drop_hold_s`): the server never reaped them.
    #[serde(default)]
    pub drops_unreaped: u64,
    /// Events missing inside a connection's received range: from its first
    /// received sequence to its last, every accepted event (a refused one
    /// takes no sequence) not received, summed over connections.
    #[serde(default)]
    pub span_missed: u64,
    /// Events a connection received inside its range (the denominator).
    #[serde(default)]
    pub span_expected: u64,
    /// The sequences missed inside connections' ranges, and by how many
    /// connections each: which events were lost, not only how many.
    /// Written as [seq, count] pairs: a worker's tick is an internally
    /// tagged enum, through which serde cannot read numbers as map keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "pairs")]
    pub missed_by_seq: BTreeMap<u64, u64>,
}

/// A `BTreeMap<u64, u64>` as a list of `[key, value]` pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<u64, u64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, u64>, D::Error> {
        Ok(Vec::<(u64, u64)>::deserialize(d)?.into_iter().collect())
    }
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.attempted += o.attempted;
        self.connected += o.connected;
        self.open += o.open;
        for (into, from) in [
            (&mut self.failed, &o.failed),
            (&mut self.closed_by_server, &o.closed_by_server),
            (&mut self.error_frames, &o.error_frames),
        ] {
            for (k, v) in from {
                *into.entry(k.clone()).or_default() += v;
            }
        }
        self.reconnects += o.reconnects;
        self.frames_in += o.frames_in;
        self.bytes_in += o.bytes_in;
        self.frames_out += o.frames_out;
        self.bytes_out += o.bytes_out;
        self.pings += o.pings;
        self.pings_skipped += o.pings_skipped;
        self.pongs += o.pongs;
        self.server_pings += o.server_pings;
        self.deliveries += o.deliveries;
        self.duplicates += o.duplicates;
        self.misdelivered += o.misdelivered;
        self.echoes += o.echoes;
        self.echoes_sent += o.echoes_sent;
        self.unmatched += o.unmatched;
        for seen in &o.unmatched_seen {
            self.saw_unmatched(seen);
        }
        self.reads += o.reads;
        self.writes += o.writes;
        self.wakeups += o.wakeups;
        self.left_closed += o.left_closed;
        self.left_dropped += o.left_dropped;
        self.drops_unreaped += o.drops_unreaped;
        self.span_missed += o.span_missed;
        self.span_expected += o.span_expected;
        for (seq, n) in &o.missed_by_seq {
            *self.missed_by_seq.entry(*seq).or_default() += n;
        }
    }

    /// Keeps `seen` among the first unmatched frames' descriptions, each
    /// once, up to `UNMATCHED_SEEN`.
    pub fn saw_unmatched(&mut self, seen: &str) {
        if self.unmatched_seen.len() < UNMATCHED_SEEN
            && !self.unmatched_seen.iter().any(|s| s == seen)
        {
            self.unmatched_seen.push(seen.to_string());
        }
    }

    /// A raw echo run whose frames came back but never matched an echo
    /// sent: what was seen, for the record to say. None when any matched,
    /// nothing was sent or nothing came back.
    pub fn echo_mismatch(&self) -> Option<String> {
        (self.echoes_sent > 0 && self.echoes == 0 && self.unmatched > 0).then(|| {
            format!(
                "{} echo messages sent, {} frames came back and none matched one (round trips not measured); first seen: {}",
                self.echoes_sent,
                self.unmatched,
                self.unmatched_seen.join("; ")
            )
        })
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        *self.failed.entry(reason.into()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_spans_from_two_workers_make_one_burst() {
        let span = |received, first_ns, last_ns| EventSpan {
            seq: 7,
            published_ns: 1_000_000_000,
            received,
            first_ns,
            last_ns,
        };
        let mut all = EventSpan::default();
        all.add(&span(0, 0, 0));
        all.add(&span(60_000, 1_000_500_000, 1_600_000_000));
        all.add(&span(40_000, 1_000_200_000, 1_800_000_000));
        assert_eq!(all, span(100_000, 1_000_200_000, 1_800_000_000));
        let b = Burst::of(&all);
        assert_eq!((b.seq, b.received), (7, 100_000));
        assert_eq!((b.to_first_ms, b.to_last_ms), (0.2, 800.0));
        // 100,000 deliveries between the first (0.2 ms) and the last (800 ms).
        assert_eq!(b.per_second, 100_000.0 / 0.7998);
    }
}

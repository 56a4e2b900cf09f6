//! The run directory: what a run leaves behind, in a documented, versioned
//! format (`loadgen/README.md`, "Run directory"). `Summary` is the schema;
//! the xtask and the results site read it through this type.
//!
//! A record is written into `<dir>.partial` and renamed into place at the end,
//! so a directory with the final name is always whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stats::{Counters, Hists, Percentiles, percentile_table};

/// Bumped on any change to what a reader must know.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub format_version: u32,
    /// False when the run was interrupted (Ctrl-C, SIGTERM) or a worker died.
    pub complete: bool,
    pub stopped_by: Option<String>,
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
    pub echo_ms: Percentiles,
    pub events: Events,
    pub counters: Counters,
    pub loadgen: LoadgenSelf,
    pub client_bottleneck: Bottleneck,
}

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
    pub connect: Percentiles,
    pub delivery: Percentiles,
    pub lag_max_ms: f64,
    pub worker_cpu_max_pct: f64,
    pub rss_kib: u64,
}

pub const TIMESERIES_HEADER: &str = "t_s,open,connecting,attempted,connected,failed,connect_rate,closed_by_server,deliveries,delivery_rate,connect_p50_ms,connect_p99_ms,delivery_p50_ms,delivery_p99_ms,arrival_lag_max_ms,worker_cpu_max_pct,loadgen_rss_kib";

pub fn timeseries_csv(rows: &[Row]) -> String {
    let mut s = String::from(TIMESERIES_HEADER);
    s.push('\n');
    let mut prev = Row::default();
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.1},{}\n",
            r.t,
            r.open,
            r.connecting,
            r.attempted,
            r.connected,
            r.failed,
            r.connected.saturating_sub(prev.connected),
            r.closed_by_server,
            r.deliveries,
            r.deliveries.saturating_sub(prev.deliveries),
            r.connect.p50,
            r.connect.p99,
            r.delivery.p50,
            r.delivery.p99,
            r.lag_max_ms,
            r.worker_cpu_max_pct,
            r.rss_kib
        ));
        prev = r.clone();
    }
    s
}

/// Where a run is written while it runs.
pub fn partial_dir(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

/// Writes the histograms: V2+deflate binary (`.hdr`) and percentile text (`.txt`).
pub fn write_histograms(dir: &Path, hists: &Hists) -> std::io::Result<()> {
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    let hdir = dir.join("histograms");
    std::fs::create_dir_all(&hdir)?;
    for name in Hists::NAMES {
        let h = hists.get(name);
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        std::fs::write(hdir.join(format!("{name}.hdr")), bytes)?;
        std::fs::write(hdir.join(format!("{name}.txt")), percentile_table(h))?;
    }
    Ok(())
}

pub fn read_summary(dir: &Path) -> Result<Summary, String> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

//! The record's time series: one row a second, written and read as CSV
//! through serde types, so the header, the writer and the readers cannot
//! drift apart. `server.csv` is `ServerSample`s (the xtask's sampler);
//! the load generator's `timeseries.csv` is `load::TimeseriesRow`s.
//!
//! A column a reader needs that a file lacks is an error naming the file,
//! the line and the field; columns added after the first records are
//! `#[serde(default)]`, so those records still read.

use std::path::{Path, PathBuf};

use crate::ReadError;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// One second of `server.csv`: the server processes and the machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerSample {
    pub t_s: f64,
    /// Summed over the server processes.
    pub server_connections: u64,
    pub server_rss_kib: u64,
    /// 100 = one core.
    pub server_cpu_pct: f64,
    #[serde(default)]
    pub redis_rss_kib: u64,
    #[serde(default)]
    pub redis_cpu_pct: f64,
    /// MemTotal − MemAvailable.
    pub mem_used_kib: u64,
    pub tcp_inuse: u64,
    pub tcp_mem_kib: u64,
    pub load1: f64,
    /// The whole machine's CPU busy since the last sample (100 = every core).
    #[serde(default)]
    pub machine_cpu_pct: f64,
    /// Server processes whose /metrics answered within the sample; the
    /// others' figures are their last known.
    #[serde(default)]
    pub servers_answering: u64,
    /// The servers' work so far, summed over the processes (cumulative):
    /// read and write syscalls, reactor wake-ups, deliveries, pongs.
    #[serde(default)]
    pub server_reads: u64,
    #[serde(default)]
    pub server_writes: u64,
    #[serde(default)]
    pub server_wakeups: u64,
    #[serde(default)]
    pub server_deliveries: u64,
    #[serde(default)]
    pub server_pongs: u64,
    /// Bytes the servers read from and wrote to their connections
    /// (cumulative; 0 for a server that does not report them).
    #[serde(default)]
    pub server_bytes_in: u64,
    #[serde(default)]
    pub server_bytes_out: u64,
    /// Descriptors the server processes hold, summed (`/proc/PID/fd`).
    #[serde(default)]
    pub server_fds: u64,
    /// The load generator (controller and workers, summed): RSS and
    /// descriptors.
    #[serde(default)]
    pub loadgen_rss_kib: u64,
    #[serde(default)]
    pub loadgen_fds: u64,
    /// Each server process: (connections, RSS KiB, CPU seconds so far); kept
    /// in the summary, not in the CSV.
    #[serde(skip)]
    pub per_process: Vec<(u64, u64, f64)>,
    /// Each process tracked for leaks this second: `processes.csv`.
    #[serde(skip)]
    pub processes: Vec<ProcessSample>,
}

/// One second of one process a soak tracks for leaks (`processes.csv`,
/// one row per process and second): a server process, Redis or the load
/// generator (its controller and workers summed). A server's live counts
/// are from its /metrics (0 where it did not answer or is not rtbench).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSample {
    pub t_s: f64,
    /// `server 0`, `redis`, `loadgen`.
    pub process: String,
    pub pid: u32,
    pub rss_kib: u64,
    pub fds: u64,
    pub connections: u64,
    pub interned_names: u64,
    pub wheel_entries: u64,
    pub index_entries: u64,
    pub role_sets: u64,
    pub queued_bytes: u64,
}

/// One second of a machine the run used, as a worker on it read it: the
/// load generator's `hosts.csv` (one row per host and second), so a run
/// across machines shows each one's memory and CPU, not only the
/// controller's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    pub t_s: u64,
    /// The host as the launch plan names it (`localhost` for local workers).
    pub host: String,
    /// MemTotal − MemAvailable.
    pub mem_used_kib: u64,
    /// The machine's CPU busy over the second (100 = every core).
    pub cpu_pct: f64,
    pub load1: f64,
    /// TCP sockets in use in the worker's network namespace.
    pub tcp_inuse: u64,
}

/// `rows` as CSV text: a header from the type's fields, one line each.
pub fn to_csv<T: Serialize>(rows: &[T]) -> Result<String, ReadError> {
    let csv_error = |source| ReadError::Csv {
        path: None,
        line: None,
        source,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(csv_error)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv_error(csv::Error::from(e.into_error())))?;
    // The csv writer writes the UTF-8 that serde handed it.
    Ok(String::from_utf8(bytes).expect("csv writes UTF-8"))
}

pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), ReadError> {
    let text = to_csv(rows).map_err(|e| e.in_file(path))?;
    std::fs::write(path, text).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A CSV file written a row at a time, as a run's seconds complete: what a
/// long run keeps in memory for its record stays flat however long it runs
/// (the load generator once kept every second's row until the end: 1 MiB
/// an hour, which the soak's drift check named).
pub struct CsvFile {
    path: PathBuf,
    w: csv::Writer<std::io::BufWriter<std::fs::File>>,
}

impl CsvFile {
    pub fn create(path: &Path) -> Result<CsvFile, ReadError> {
        let f = std::fs::File::create(path).map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(CsvFile {
            path: path.to_path_buf(),
            w: csv::Writer::from_writer(std::io::BufWriter::new(f)),
        })
    }

    /// Appends one row (the header before the first).
    pub fn row<T: Serialize>(&mut self, row: &T) -> Result<(), ReadError> {
        self.w.serialize(row).map_err(|source| ReadError::Csv {
            path: Some(self.path.clone()),
            line: None,
            source,
        })
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<(), ReadError> {
        self.w.flush().map_err(|source| ReadError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads `text` as rows of `T`; an error says the line and the field.
pub fn from_csv<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, ReadError> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    r.deserialize()
        .map(|row| {
            row.map_err(|source| ReadError::Csv {
                path: None,
                line: source.position().map(|p| p.line()),
                source,
            })
        })
        .collect()
}

pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_csv(&text).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::TimeseriesRow;

    #[test]
    fn rows_round_trip_and_a_renamed_column_fails_naming_the_field() {
        let rows = vec![
            ServerSample {
                t_s: 1.0,
                server_connections: 10,
                server_rss_kib: 4096,
                ..Default::default()
            },
            ServerSample {
                t_s: 2.0,
                server_connections: 20,
                server_rss_kib: 5000,
                ..Default::default()
            },
        ];
        let text = to_csv(&rows).unwrap();
        assert!(
            text.starts_with("t_s,server_connections,server_rss_kib,"),
            "{text}"
        );
        let back: Vec<ServerSample> = from_csv(&text).unwrap();
        assert_eq!(
            back.iter()
                .map(|r| (r.server_connections, r.server_rss_kib))
                .collect::<Vec<_>>(),
            vec![(10, 4096), (20, 5000)]
        );
        let renamed = text.replacen("server_rss_kib", "server_rss", 1);
        let e = from_csv::<ServerSample>(&renamed).unwrap_err().to_string();
        assert!(e.contains("missing field `server_rss_kib`"), "{e}");
        let bad = text.replacen("4096", "many", 1);
        let e = from_csv::<ServerSample>(&bad).unwrap_err().to_string();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    #[test]
    fn the_first_records_columns_still_read() {
        // server.csv as the first records wrote it (before Redis and the
        // work counters were sampled).
        let old = "t_s,server_connections,server_rss_kib,server_cpu_pct,mem_used_kib,tcp_inuse,tcp_mem_kib,load1\n0.0,0,4000,0.0,100000,5,1,0.10\n";
        let rows: Vec<ServerSample> = from_csv(old).unwrap();
        assert_eq!((rows[0].server_rss_kib, rows[0].redis_rss_kib), (4000, 0));
        let ts = "t_s,open,connecting,attempted,connected,failed,connect_rate,closed_by_server,deliveries,delivery_rate,connect_p50_ms,connect_p99_ms,delivery_p50_ms,delivery_p99_ms,arrival_lag_max_ms,worker_cpu_max_pct,loadgen_rss_kib\n1,5,0,5,5,0,5,0,0,0,1.000,2.000,0.000,0.000,0.100,3.0,2048\n";
        let rows: Vec<TimeseriesRow> = from_csv(ts).unwrap();
        assert_eq!((rows[0].open, rows[0].loadgen_rss_kib), (5, 2048));
    }
}

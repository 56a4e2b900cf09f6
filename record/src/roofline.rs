//! The roofline record: this machine's own limits with plain TCP sockets
//! (`cargo xtask roofline`, measured by `rtbench-roofline`), the ceiling a
//! bench's figures are read against (`results/roofline/<time>-<host>/`).

use serde::{Deserialize, Serialize};

use std::path::Path;

/// Rooflines live in `results/<DIR>/<time>-<host>/<FILE>`.
pub const DIR: &str = "roofline";
pub const FILE: &str = "roofline.json";
pub const FORMAT_VERSION: u32 = 1;

/// A figure measured several times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: Vec<f64>,
}

impl Spread {
    pub fn of(mut runs: Vec<f64>) -> Spread {
        runs.sort_by(f64::total_cmp);
        let median = match runs.len() {
            0 => 0.0,
            n if n % 2 == 1 => runs[n / 2],
            n => (runs[n / 2 - 1] + runs[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: runs.first().copied().unwrap_or(0.0),
            max: runs.last().copied().unwrap_or(0.0),
            runs,
        }
    }
}

/// Connection pairs opened between two sets of processes and held.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pairs {
    pub count: u64,
    /// Pairs opened per second (every connecting process at once).
    pub per_second: Spread,
    /// The machine's memory in use per pair (MemTotal − MemAvailable, as a
    /// bench's "machine memory" reads it), both ends, less the processes'.
    pub kernel_kib_per_pair: Spread,
    /// The kernel's slab growth per pair (SReclaimable + SUnreclaim): the
    /// socket objects themselves, part of which MemAvailable counts as
    /// reclaimable, and steadier than it when other memory moves.
    #[serde(default)]
    pub slab_kib_per_pair: Spread,
}

/// One process writing to another over many connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fanout {
    /// Message size in bytes, and messages per `write`.
    pub size: usize,
    pub per_write: usize,
    pub connections: u64,
    /// Messages the reader received per second.
    pub deliveries_per_s: Spread,
}

/// Request/response exchanges, one in flight per connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundTrips {
    pub connections: u64,
    pub request_bytes: usize,
    pub per_second: Spread,
}

/// Round trips paced as clients' pings are: every connection sends one
/// request every `interval_s`, the connections' turns spread evenly, over
/// as many processes on each side as the open-files limit needs (an idle
/// run with the SDKs' ping, without WebSocket).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pings {
    pub connections: u64,
    pub interval_s: f64,
    pub request_bytes: usize,
    /// Requests sent per second: connections / interval.
    pub offered_per_s: f64,
    /// Round trips completed per second.
    pub per_second: Spread,
    /// The machine's CPU busy over the measurement, % of all its cores.
    pub machine_busy_pct: Spread,
    /// The machine's CPU time (all cores) per completed round trip, µs.
    pub machine_us_per_trip: Spread,
}

/// One write per delivery at a paced rate, not as fast as the writers go:
/// events of `per_event` writes (a fan-out bench's event reaches about as
/// many connections), each message stamped with the wall-clock time its
/// event was sent and timed by the reader's kernel receive stamp, as a
/// bench times deliveries. Bare TCP's own latency against offered load: the
/// knee a server's is read against, where the saturated figure only says
/// where every queue grows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Paced {
    pub connections: u64,
    pub size: usize,
    pub per_event: usize,
    /// Deliveries offered per second, and that as a share of the saturated
    /// one-write fan-out over as many connections measured in the same run.
    pub offered_per_s: f64,
    pub share_of_saturated: f64,
    pub delivered_per_s: Spread,
    /// Send stamp to kernel receive stamp, ms.
    pub p50_ms: Spread,
    pub p99_ms: Spread,
    pub p999_ms: Spread,
    /// The machine's CPU busy over the measurement, % of all its cores.
    pub machine_busy_pct: Spread,
    /// CPU time per delivery of the writing and the reading processes, µs
    /// (loopback charges the receiver's kernel work to the writer).
    pub writer_us_per_delivery: Spread,
    pub reader_us_per_delivery: Spread,
}

/// What `rtbench-roofline run` measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub pairs: Pairs,
    pub fanout: Vec<Fanout>,
    pub round_trips: RoundTrips,
    /// Measured only when asked (`cargo xtask roofline --pings N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pings: Option<Pings>,
    /// Measured only when asked (`cargo xtask roofline --paced N`), at
    /// rising shares of the saturated figure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paced: Vec<Paced>,
}

impl Measured {
    /// The fan-out measured closest to `size`-byte messages, `per_write` to
    /// a write, and then closest to `connections` (by ratio): a kernel that
    /// writes to 100,000 sockets misses its caches where one writing to
    /// 9,000 does not (here 120,000 writes/s at 9,000, 88,000 at 19,000).
    pub fn fanout_for(&self, size: usize, per_write: usize, connections: u64) -> Option<&Fanout> {
        let apart = |f: &Fanout| {
            let ratio = (f.connections.max(1) as f64 / connections.max(1) as f64)
                .ln()
                .abs();
            (f.size.abs_diff(size), (ratio * 1e6) as u64)
        };
        self.fanout
            .iter()
            .filter(|f| f.per_write == per_write)
            .min_by_key(|f| apart(f))
    }

    /// Bare TCP's knee at `p99_ms`, over the paced connection count
    /// nearest `connections`: the last paced rate, going up, before the
    /// first whose median p99 missed it (as a sweep's knee is).
    pub fn paced_knee(&self, p99_ms: f64, connections: u64) -> Option<&Paced> {
        let nearest = self
            .paced
            .iter()
            .map(|p| p.connections)
            .min_by_key(|&c| c.abs_diff(connections))?;
        let mut rising: Vec<&Paced> = self
            .paced
            .iter()
            .filter(|p| p.connections == nearest)
            .collect();
        rising.sort_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
        rising
            .into_iter()
            .take_while(|p| p.p99_ms.median <= p99_ms)
            .last()
    }
}

/// The record: the figures, and the machine they were measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Roofline {
    pub format_version: u32,
    pub host: String,
    pub measured_at: String,
    pub kernel: String,
    pub cores: usize,
    pub mem_total_kib: u64,
    /// The network namespace it ran in (sized as a bench's would be), if any.
    pub ehash_buckets: Option<u64>,
    pub measured: Measured,
}

impl Roofline {
    pub fn read(dir: &Path) -> Result<Roofline, crate::ReadError> {
        let r: Roofline = crate::read_json(&dir.join(FILE))?;
        if r.format_version > FORMAT_VERSION {
            return Err(crate::ReadError::Invalid {
                path: dir.join(FILE),
                problem: format!(
                    "format_version {} is newer than this reads ({FORMAT_VERSION})",
                    r.format_version
                ),
            });
        }
        Ok(r)
    }
}

/// The newest roofline of `host` under `results`: its directory name and
/// figures (names start with the UTC time, so the greatest is the newest).
pub fn newest(results: &Path, host: &str) -> Option<(String, Roofline)> {
    let mut dirs: Vec<_> = std::fs::read_dir(results.join(DIR))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(FILE).exists())
        .collect();
    dirs.sort();
    dirs.into_iter().rev().find_map(|d| {
        let r = Roofline::read(&d).ok().filter(|r| r.host == host)?;
        Some((d.file_name()?.to_string_lossy().into_owned(), r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_out_is_read_against_the_nearest_size_then_the_nearest_connections() {
        let m = Measured {
            fanout: [
                (200, 1, 9_000, 150_000.0),
                (200, 1, 100_000, 60_000.0),
                (400, 1, 9_000, 125_000.0),
                (200, 4, 9_000, 500_000.0),
            ]
            .map(|(size, per_write, connections, rate)| Fanout {
                size,
                per_write,
                connections,
                deliveries_per_s: Spread::of(vec![rate]),
            })
            .to_vec(),
            ..Measured::default()
        };
        let at = |size, per_write, connections| {
            m.fanout_for(size, per_write, connections)
                .map(|f| f.deliveries_per_s.median)
        };
        assert_eq!(at(256, 1, 100_000), Some(60_000.0));
        assert_eq!(
            at(256, 1, 40_000),
            Some(60_000.0),
            "2.5x from 100,000, 4.4x from 9,000"
        );
        assert_eq!(at(256, 1, 20_000), Some(150_000.0));
        assert_eq!(at(256, 1, 0), Some(150_000.0), "unknown: the fewest");
        assert_eq!(at(380, 1, 100_000), Some(125_000.0), "the size first");
        assert_eq!(at(256, 4, 100_000), Some(500_000.0));
        assert_eq!(at(256, 16, 100_000), None);
    }

    #[test]
    fn bare_tcps_knee_is_the_last_rate_under_the_target_before_the_first_over_it() {
        let paced = |connections, offered_per_s, p99| Paced {
            connections,
            offered_per_s,
            p99_ms: Spread::of(vec![p99]),
            ..Paced::default()
        };
        let m = Measured {
            paced: vec![
                paced(100_000, 90_000.0, 70.0),
                paced(100_000, 30_000.0, 4.0),
                paced(100_000, 120_000.0, 20.0),
                paced(100_000, 60_000.0, 12.0),
                paced(9_000, 200_000.0, 1.0),
            ],
            ..Measured::default()
        };
        let knee = |target, connections| {
            m.paced_knee(target, connections)
                .map(|p| (p.connections, p.offered_per_s))
        };
        assert_eq!(
            knee(50.0, 100_000),
            Some((100_000, 60_000.0)),
            "120,000 met it after 90,000 missed"
        );
        assert_eq!(knee(80.0, 80_000), Some((100_000, 120_000.0)));
        assert_eq!(knee(50.0, 10_000), Some((9_000, 200_000.0)));
        assert_eq!(knee(3.0, 100_000), None, "the lowest missed it");
        assert_eq!(Measured::default().paced_knee(50.0, 100_000), None);
    }
}

//! Merging the workers' reports: each `tick` line into its second's row
//! (counters summed, latency histograms merged exactly), `final` lines kept
//! for the summary, and the seconds a lost or ended worker will never
//! report closed without it. Rows come out in order, each once, and go
//! straight to `timeseries.csv` (and each host's second to `hosts.csv`):
//! what the controller holds stays flat however long the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rtbench_record::ReadError;
use rtbench_record::load::{self, Row, TimeseriesRow};
use rtbench_record::scenario::Scenario;
use rtbench_record::series::CsvFile;

use super::selfcheck;
use crate::stats::{self, Counters, percentiles_ms};
use crate::wire::Report;

/// Per-second rows, built as the workers report. A second's histograms are
/// merged as its lines arrive and dropped once every worker has reported it,
/// so the controller's work per line stays flat however long the run and
/// however many workers (it once re-merged every second for every line).
pub(super) struct Merge {
    workers: u64,
    /// Seconds not yet reported by every worker.
    open: BTreeMap<u64, Second>,
    /// The newest row completed and the one before it (the live file's rates).
    newest: Row,
    pub(super) before_newest: Option<Row>,
    /// What the summary reads of all the rows.
    pub(super) seen: Seen,
    /// Each worker's latest tick: (counters, connecting, RSS KiB).
    latest: BTreeMap<u64, (Counters, u64, u64)>,
    pub(super) finals: BTreeMap<u64, Report>,
    pub(super) bad_lines: u64,
    /// Seconds each worker spent at or above CPU_SATURATED_PCT.
    pub(super) saturated: BTreeMap<u64, usize>,
    pub(super) cpu_max: f64,
    /// Workers that will report no more (lost, or their output ended):
    /// seconds no longer wait for them.
    pub(super) gone: BTreeSet<u64>,
    /// The newest second each worker reported.
    last_t: BTreeMap<u64, u64>,
    /// Workers declared lost: their connections are gone with them.
    pub(super) lost: BTreeSet<u64>,
    /// Each worker's host, as the launch plan names it.
    hosts: Vec<String>,
    /// `timeseries.csv`; `hosts.csv` (each host's second, from the worker
    /// that samples it); the first error writing either, for the end.
    timeseries: CsvFile,
    host_rows: CsvFile,
    write_error: Option<ReadError>,
}

/// The rows' figures the summary reports, kept as they complete.
#[derive(Default)]
pub(super) struct Seen {
    /// Arrivals the scenario makes, and its last whole second before
    /// closing starts (closing begins at `hold_end_s`).
    target: u64,
    hold_end: u64,
    pub(super) peak_open: u64,
    /// Open at the hold's last second.
    pub(super) held: u64,
    /// The first second with `target` open.
    pub(super) time_to_target_s: Option<f64>,
}

impl Seen {
    fn add(&mut self, r: &Row) {
        self.peak_open = self.peak_open.max(r.open);
        if r.t <= self.hold_end {
            self.held = r.open;
        }
        if self.time_to_target_s.is_none() && self.target > 0 && r.open >= self.target {
            self.time_to_target_s = Some(r.t as f64);
        }
    }
}

struct Second {
    by_worker: BTreeMap<u64, (Counters, u64, u64)>,
    connect: stats::Hist,
    delivery: stats::Hist,
    lag_max_ms: f64,
    cpu_max: f64,
}

impl Merge {
    /// Merges for `hosts`' workers into the run directory `dir`.
    pub(super) fn new(hosts: Vec<String>, sc: &Scenario, dir: &Path) -> Result<Merge, ReadError> {
        Ok(Merge {
            workers: hosts.len() as u64,
            hosts,
            gone: Default::default(),
            last_t: BTreeMap::new(),
            lost: Default::default(),
            timeseries: CsvFile::create(&dir.join(load::TIMESERIES_CSV))?,
            host_rows: CsvFile::create(&dir.join(load::HOSTS_CSV))?,
            write_error: None,
            open: BTreeMap::new(),
            newest: Row::default(),
            before_newest: None,
            seen: Seen {
                target: sc.total_arrivals(),
                hold_end: (sc.hold_end_s() - 1.0).floor().max(0.0) as u64,
                ..Seen::default()
            },
            latest: BTreeMap::new(),
            finals: BTreeMap::new(),
            bad_lines: 0,
            saturated: BTreeMap::new(),
            cpu_max: 0.0,
        })
    }

    /// Takes one line from worker `w` (`None`: its output ended); returns
    /// the newest row it completed, if any. A lost worker's lines are not
    /// counted: it was killed, and whatever it still wrote came too late.
    pub(super) fn take_line(&mut self, w: u64, line: Option<String>) -> Option<Row> {
        if self.lost.contains(&w) {
            return None;
        }
        match line.map(|l| serde_json::from_str::<Report>(&l)) {
            None => self.gone(w),
            Some(Ok(r @ Report::Tick { .. })) => self.tick(w, r),
            Some(Ok(r @ Report::Final { .. })) => {
                self.finals.insert(w, r);
                None
            }
            Some(Ok(Report::Ready { .. })) => None,
            Some(Err(_)) => {
                self.bad_lines += 1;
                None
            }
        }
    }

    /// Takes one `tick` line; returns the newest row it completed, if any.
    fn tick(&mut self, w: u64, r: Report) -> Option<Row> {
        let Report::Tick {
            t,
            counters,
            connecting,
            lag_max_ms,
            cpu_pct,
            rss_kib,
            interval,
            host,
            ..
        } = r
        else {
            return None;
        };
        self.last_t.insert(w, t);
        if let Some(mut h) = host {
            h.host = self.hosts.get(w as usize).cloned().unwrap_or_default();
            let written = self.host_rows.row(&h);
            self.keep_error(written);
        }
        self.cpu_max = self.cpu_max.max(cpu_pct);
        if cpu_pct >= selfcheck::CPU_SATURATED_PCT {
            *self.saturated.entry(w).or_default() += 1;
        }
        self.latest
            .insert(w, (counters.clone(), connecting, rss_kib));
        let sec = self.open.entry(t).or_insert_with(|| Second {
            by_worker: BTreeMap::new(),
            connect: stats::new_hist(),
            delivery: stats::new_hist(),
            lag_max_ms: 0.0,
            cpu_max: 0.0,
        });
        sec.by_worker.insert(w, (counters, connecting, rss_kib));
        sec.lag_max_ms = sec.lag_max_ms.max(lag_max_ms);
        sec.cpu_max = sec.cpu_max.max(cpu_pct);
        for (name, h) in [
            ("connect", &mut sec.connect),
            ("delivery", &mut sec.delivery),
        ] {
            if let Some(Ok(x)) = interval.get(name).map(|b| stats::decode(b)) {
                stats::merge(h, &x);
            }
        }
        self.close_seconds()
    }

    /// Completes every leading second each worker has reported or will
    /// never report; returns the newest.
    fn close_seconds(&mut self) -> Option<Row> {
        let mut done = None;
        while self.open.first_key_value().is_some_and(|(_, s)| {
            (0..self.workers).all(|w| s.by_worker.contains_key(&w) || self.gone.contains(&w))
        }) {
            let (t, sec) = self.open.pop_first().expect("checked");
            done = Some(self.complete(t, sec));
        }
        done
    }

    /// The newest second worker `w` reported (0: none yet).
    pub(super) fn latest_second(&self, w: u64) -> u64 {
        self.last_t.get(&w).copied().unwrap_or(0)
    }

    /// Worker `w` reports no more: seconds stop waiting for it.
    pub(super) fn gone(&mut self, w: u64) -> Option<Row> {
        self.gone.insert(w);
        self.close_seconds()
    }

    /// Completes the seconds some worker never reported (it ended first):
    /// its latest figures stand in for it.
    pub(super) fn finish(&mut self) {
        while let Some((t, sec)) = self.open.pop_first() {
            self.complete(t, sec);
        }
    }

    fn complete(&mut self, t: u64, sec: Second) -> Row {
        let mut sum = Counters::default();
        let (mut connecting, mut rss_kib) = (0, 0);
        for w in 0..self.workers {
            if let Some((c, conn, rss)) = sec.by_worker.get(&w).or_else(|| self.latest.get(&w)) {
                if self.lost.contains(&w) {
                    // Killed: its counts stand, its connections and memory do not.
                    sum.add(&Counters {
                        open: 0,
                        ..c.clone()
                    });
                } else {
                    sum.add(c);
                    connecting += conn;
                    rss_kib += rss;
                }
            }
        }
        let row = Row {
            t,
            open: sum.open,
            connecting,
            attempted: sum.attempted,
            connected: sum.connected,
            failed: sum.failed_total(),
            closed_by_server: sum.closed_by_server.values().sum(),
            deliveries: sum.deliveries,
            bytes_in: sum.bytes_in,
            bytes_out: sum.bytes_out,
            connect: percentiles_ms(&sec.connect),
            delivery: percentiles_ms(&sec.delivery),
            lag_max_ms: sec.lag_max_ms,
            worker_cpu_max_pct: sec.cpu_max,
            rss_kib,
        };
        let written = self.timeseries.row(&TimeseriesRow::of(&row, &self.newest));
        self.keep_error(written);
        self.seen.add(&row);
        self.before_newest = Some(std::mem::replace(&mut self.newest, row.clone()));
        row
    }

    fn keep_error(&mut self, r: Result<(), ReadError>) {
        if let Err(e) = r {
            self.write_error.get_or_insert(e);
        }
    }

    /// Writes out the CSV files; the first error writing them, if any.
    pub(super) fn close_files(&mut self) -> Result<(), ReadError> {
        if let Some(e) = self.write_error.take() {
            return Err(e);
        }
        self.timeseries.flush()?;
        self.host_rows.flush()
    }
}

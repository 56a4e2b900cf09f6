//! The record's time series as chart points, read from its typed rows
//! (`ServerSample`, `TimeseriesRow`, `HostSample`) through closures over
//! their fields: a field renamed in `rtbench-record` fails to compile here
//! instead of drawing an empty chart.

use rtbench_record::load::TimeseriesRow;
use rtbench_record::series::{HostSample, ProcessSample, ServerSample};

/// A row of one second of a run.
pub trait Timed {
    /// Seconds since the run started.
    fn t_s(&self) -> f64;
}

impl Timed for TimeseriesRow {
    fn t_s(&self) -> f64 {
        self.t_s as f64
    }
}

impl Timed for ServerSample {
    fn t_s(&self) -> f64 {
        self.t_s
    }
}

impl Timed for ProcessSample {
    fn t_s(&self) -> f64 {
        self.t_s
    }
}

impl Timed for HostSample {
    fn t_s(&self) -> f64 {
        self.t_s as f64
    }
}

/// (seconds, `y` of the row) for every row.
pub fn over_time<R: Timed>(rows: &[R], y: impl Fn(&R) -> f64) -> Vec<(f64, f64)> {
    rows.iter().map(|r| (r.t_s(), y(r))).collect()
}

/// (seconds, `y` of the row) for the rows `keep` accepts.
pub fn over_time_where<R: Timed>(
    rows: &[R],
    keep: impl Fn(&R) -> bool,
    y: impl Fn(&R) -> f64,
) -> Vec<(f64, f64)> {
    rows.iter()
        .filter(|r| keep(r))
        .map(|r| (r.t_s(), y(r)))
        .collect()
}

/// A cumulative counter's rate, per second. A counter summed over processes
/// drops when one of them dies (its count goes with it): that second reads
/// 0, not a negative rate.
pub fn per_second(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .windows(2)
        .map(|w| {
            (
                w[1].0,
                ((w[1].1 - w[0].1) / (w[1].0 - w[0].0).max(1e-9)).max(0.0),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_come_from_the_rows_fields() {
        let rows = vec![
            ServerSample {
                t_s: 1.0,
                server_connections: 10,
                server_bytes_out: 100,
                ..Default::default()
            },
            ServerSample {
                t_s: 3.0,
                server_connections: 30,
                server_bytes_out: 50,
                ..Default::default()
            },
        ];
        assert_eq!(
            over_time(&rows, |s| s.server_connections as f64),
            [(1.0, 10.0), (3.0, 30.0)]
        );
        assert_eq!(
            over_time_where(&rows, |s| s.server_connections > 10, |s| s.t_s),
            [(3.0, 3.0)]
        );
        assert_eq!(
            per_second(&over_time(&rows, |s| s.server_bytes_out as f64)),
            [(3.0, 0.0)]
        );
        assert_eq!(per_second(&[(0.0, 0.0), (2.0, 10.0)]), [(2.0, 5.0)]);
    }
}

//! The series a run is drawn with that more than one page draws: users over
//! time, deliveries per second and a failover's storm, on the run's own page
//! and small on its scenario's card; a soak's tracked series with their
//! fitted lines. Read from the typed rows (`rows`).

use crate::chart::Series;
use crate::load::Run;
use crate::rows::{over_time, over_time_where, per_second};
use rtbench_record::series::ProcessSample;

/// Arrivals so far, and connections open as the load generator and the
/// server count them.
pub fn users(run: &Run) -> Vec<Series> {
    let (ts, sv) = (&run.timeseries, &run.server);
    vec![
        Series::new(
            "target (arrivals so far)",
            over_time(ts, |r| r.attempted as f64),
        ),
        Series::new(
            "connected (load generator)",
            over_time(ts, |r| r.open as f64),
        ),
        Series::new(
            "connected (server)",
            over_time(sv, |s| s.server_connections as f64),
        ),
    ]
}

/// Deliveries each second, or none when the run published nothing.
pub fn deliveries(run: &Run) -> Option<Series> {
    let points = over_time(&run.timeseries, |r| r.delivery_rate as f64);
    points
        .iter()
        .any(|p| p.1 > 0.0)
        .then(|| Series::new("deliveries/s", points))
}

/// A fault plan's storm, close up: from 5 s before the first fault to 20 s
/// after the last (not the end of the run, whose closing would dwarf it),
/// on the storm's own scale: the clients missing, not the ones open around
/// them. None for a run without faults.
pub fn storm(run: &Run) -> Option<Vec<Series>> {
    let s = run.summary.as_ref()?;
    let (first, last, before) = (
        s.faults_injected.first()?.at_s,
        s.faults_injected.last()?.at_s,
        s.failover.as_ref()?.open_before as f64,
    );
    let near = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        pts.into_iter()
            .filter(|p| p.0 >= first - 5.0 && p.0 <= last + 20.0)
            .collect()
    };
    let ts = &run.timeseries;
    Some(vec![
        Series::new(
            "clients not connected (of those open before the fault)",
            near(over_time(ts, |r| (before - r.open as f64).max(0.0))),
        ),
        Series::new("connecting", near(over_time(ts, |r| r.connecting as f64))),
        Series::new(
            "closed by server, per second",
            near(per_second(&over_time(ts, |r| r.closed_by_server as f64))),
        ),
    ])
}

/// A soak's series `column` (`rss_kib`, `fds`) of every tracked process,
/// each with its fitted line over the span fitted (`summary.json`'s
/// `soak.drift`), in `scale` units. None without tracked processes.
pub fn drift(run: &Run, column: &str, scale: f64) -> Option<Vec<Series>> {
    let value = match column {
        "rss_kib" => |p: &ProcessSample| p.rss_kib,
        _ => |p: &ProcessSample| p.fds,
    };
    let mut names: Vec<&str> = run.processes.iter().map(|p| p.process.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return None;
    }
    let slopes = run
        .summary
        .as_ref()
        .and_then(|s| s.soak.as_ref())
        .map(|s| s.drift.slopes.as_slice())
        .unwrap_or_default();
    let mut out = Vec::new();
    for name in names {
        let points = over_time_where(
            &run.processes,
            |p| p.process == name && p.pid != 0,
            |p| value(p) as f64 / scale,
        );
        out.push(Series::new(name, points));
        // A server's descriptors are fitted beyond its connections: that
        // line is drawn over the descriptors less the connections.
        let fitted = format!("{name} {column}");
        let beyond = format!("{name} fds_beyond_connections");
        if let Some(f) = slopes
            .iter()
            .find(|f| f.series == fitted || f.series == beyond)
        {
            let at = |t: f64| (f.at_start + f.per_hour * (t - f.from_s) / 3600.0) / scale;
            let verdict = if f.leak { "LEAK" } else { "fit" };
            out.push(Series::new(
                format!("{name}: {verdict} {:+.1} {}", f.per_hour, f.unit),
                vec![(f.from_s, at(f.from_s)), (f.to_s, at(f.to_s))],
            ));
        }
    }
    Some(out)
}

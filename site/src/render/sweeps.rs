//! What more than one page says of a sweep: where its page is, its knee in
//! words, and the bare-TCP fan-out it is read against.

use rtbench_record::metrics;
use rtbench_record::sweep::Sweep;

use crate::load::{Records, SweepRecord};

/// The page's path under the site.
pub fn sweep_path(r: &SweepRecord) -> String {
    format!("scenarios/{}/sweep-{}.html", r.scenario, r.name)
}

/// The knee in words, in deliveries per second where the sweep knows them.
pub fn knee_text(sw: &Sweep) -> String {
    let unit = &sw.unit;
    let at = |v: f64| {
        let step = sw.steps.iter().find(|s| s.offered == v);
        match step.and_then(|s| s.offered_deliveries_per_s) {
            Some(d) => format!(
                "{} {unit} ({} deliveries/s)",
                metrics::group(v.round() as i64),
                metrics::group(d.round() as i64)
            ),
            None => format!("{} {unit}", metrics::group(v.round() as i64)),
        }
    };
    match (sw.knee.last_pass, sw.knee.first_fail) {
        (Some(p), Some(f)) => format!("met up to {}; missed from {}", at(p), at(f)),
        (Some(p), None) => format!("met at every step, up to {}", at(p)),
        (None, Some(f)) => format!("missed at every step, down to {}", at(f)),
        (None, None) => "no step judged".into(),
    }
}

/// The machine's bare-TCP fan-out at one write per delivery, from the
/// roofline `sw` names, over as many connections as its first step held.
pub fn roofline_fanout(records: &Records, sw: &SweepRecord) -> Option<f64> {
    let name = sw.sweep.roofline.as_ref()?;
    let (_, r) = records.rooflines.iter().find(|(n, _)| n == name)?;
    let first = format!("{}/{}", sw.name, sw.sweep.steps.first()?.dir);
    let connections = records
        .runs
        .iter()
        .find(|run| run.scenario == sw.scenario && run.name == first)
        .and_then(|run| run.load.as_ref())
        .map_or(0, |l| l.connections.held);
    Some(
        r.measured
            .fanout_for(256, 1, connections)?
            .deliveries_per_s
            .median,
    )
}

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
/// roofline the sweep names.
pub fn roofline_fanout(records: &Records, sw: &Sweep) -> Option<f64> {
    let name = sw.roofline.as_ref()?;
    let (_, r) = records.rooflines.iter().find(|(n, _)| n == name)?;
    Some(r.measured.fanout_for(256, 1)?.deliveries_per_s.median)
}

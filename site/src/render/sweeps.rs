//! What more than one page says of a sweep: where its page is, its knee in
//! words, and the bare-TCP fan-out it is read against.

use rtbench_record::metrics;
use rtbench_record::slo::{Latency, Metric, Op, Statistic, Threshold};
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

/// What the roofline `sw` names measured of bare TCP's fan-out at one
/// write per delivery, over as many connections as its first step held.
pub struct BareTcp {
    /// As fast as the writers go.
    pub saturated: f64,
    /// Paced, if measured (`cargo xtask roofline --paced N`): (offered
    /// deliveries/s, p99 ms), rising.
    pub paced_p99: Vec<(f64, f64)>,
    /// The most bare TCP was paced at with its p99 under the sweep's
    /// `delivery.p99` target (`Measured::paced_knee`), if both are known.
    pub knee: Option<f64>,
}

pub fn bare_tcp(records: &Records, sw: &SweepRecord) -> Option<BareTcp> {
    let name = sw.sweep.roofline.as_ref()?;
    let (_, r) = records.rooflines.iter().find(|(n, _)| n == name)?;
    let first = format!("{}/{}", sw.name, sw.sweep.steps.first()?.dir);
    let connections = records
        .runs
        .iter()
        .find(|run| run.scenario == sw.scenario && run.name == first)
        .and_then(|run| run.load.as_ref())
        .map_or(0, |l| l.connections.held);
    let m = &r.measured;
    let nearest = m
        .paced
        .iter()
        .map(|p| p.connections)
        .min_by_key(|&c| c.abs_diff(connections));
    let mut paced_p99: Vec<(f64, f64)> = m
        .paced
        .iter()
        .filter(|p| Some(p.connections) == nearest)
        .map(|p| (p.offered_per_s, p.p99_ms.median))
        .collect();
    paced_p99.sort_by(|a, b| a.0.total_cmp(&b.0));
    let knee = delivery_p99_target(&sw.sweep.slo)
        .and_then(|target| m.paced_knee(target, connections))
        .map(|p| p.offered_per_s);
    Some(BareTcp {
        saturated: m.fanout_for(256, 1, connections)?.deliveries_per_s.median,
        paced_p99,
        knee,
    })
}

/// The sweep's `delivery.p99 <= X` (or `<`) target in ms, if it has one:
/// the one bare TCP's paced fan-out is judged by.
fn delivery_p99_target(slo: &[Threshold]) -> Option<f64> {
    slo.iter()
        .find(|t| {
            t.metric == Metric::Latency(Latency::Delivery, Statistic::Quantile(0.99))
                && matches!(t.op, Op::Le | Op::Lt)
        })
        .map(|t| t.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_tcp_is_judged_by_the_sweeps_delivery_p99_ceiling_only() {
        let target = |slo: &[&str]| {
            let slo: Vec<Threshold> = slo.iter().map(|t| t.parse().unwrap()).collect();
            delivery_p99_target(&slo)
        };
        assert_eq!(
            target(&["connect.p99<=100ms", "delivery.p99<=50ms"]),
            Some(50.0)
        );
        assert_eq!(target(&["delivery.p99<20ms"]), Some(20.0));
        assert_eq!(target(&["delivery.p50<=5ms"]), None);
        assert_eq!(target(&["roundtrip.p99<=100ms"]), None);
        assert_eq!(target(&["delivery.p99>=50ms"]), None);
    }
}

//! `cargo xtask sweep <suite> --slo 'delivery.p99<=50ms' --over rate`:
//! capacity at a latency target. The suite runs at rising offered load,
//! geometric steps (`--factor`) until a step misses an objective, then
//! bisection (on a log scale) between the last step that met them and the
//! first that did not; each step is a bench run with its own record, and
//! the sweep's record (`rtbench_record::sweep`) holds the curve and the
//! knee.
//!
//! A step where the load generator was the bottleneck measured the client,
//! not the server: the sweep says so and stops there, with no knee beyond
//! it. So does a step that did not complete.

use std::path::{Path, PathBuf};

use rtbench_protocol::time::{compact_utc, now_ns};
use rtbench_record::load::Summary as LoadSummary;
use rtbench_record::scenario::Scenario;
use rtbench_record::slo::{Latency, Metric, Threshold};
use rtbench_record::sweep::{Knee, Over, SWEEP, Step, Sweep};

use crate::bench::{self, OnFlag, Side};
use crate::{record, root, suite};

/// `cargo xtask sweep`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// A suite under suites/ or a suite file
    #[arg(value_name = "SUITE")]
    pub suite: String,
    /// The objectives every step must meet, repeatable, e.g. 'delivery.p99<=50ms'
    #[arg(long = "slo", value_name = "METRIC OP VALUE", required = true)]
    pub slo: Vec<Threshold>,
    /// What rises: rate (publishers' events/s, or arrivals/s without publishers), connections, or pings (per second in all)
    #[arg(long, value_name = "WHAT", value_parser = over())]
    pub over: Over,
    /// Run only this variant [default: the suite's only one; required when it has several]
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// The first step's load [default: the suite's own]
    #[arg(long, value_name = "X", value_parser = crate::flags::positive_number)]
    pub from: Option<f64>,
    /// Each geometric step's load over the last's
    #[arg(long, value_name = "F", default_value_t = 2.0, value_parser = factor)]
    pub factor: f64,
    /// Geometric steps at most, up or down
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = crate::flags::whole_number_from_1::<usize>)]
    pub steps: usize,
    /// Bisection steps between the last pass and the first failure
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub refine: usize,
    #[command(flatten)]
    pub size: bench::Size,
    /// Apply the suite's sysctls, run in a sized namespace [default: off]
    #[arg(long)]
    pub tune: bool,
    /// With --tune, stay on the host's network stack [default: off]
    #[arg(long)]
    pub host_net: bool,
    /// rtbench, command:LINE or url:ws://... [default: the suite's]
    #[arg(long, value_name = "SPEC")]
    pub server: Option<String>,
    /// The clients' protocol [default: the suite's]
    #[arg(long, value_name = "PROTOCOL", value_parser = bench::protocol_flag())]
    pub protocol: Option<rtbench_record::scenario::Protocol>,
    /// The sweep's record directory [default: results/<suite>/<time>-<host>[-variant]-sweep-<over>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the live page is served
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8091")]
    pub dashboard: String,
}

fn over() -> impl clap::builder::TypedValueParser<Value = Over> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["rate", "connections", "pings"]).map(|s| {
        match s.as_str() {
            "connections" => Over::Connections,
            "pings" => Over::Pings,
            _ => Over::Rate,
        }
    })
}

fn factor(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if f > 1.0 && f.is_finite() {
        Ok(f)
    } else {
        Err(format!("{f}: a step's factor must be above 1"))
    }
}

/// What the sweep varies, read from the suite as the first step would run.
struct Knob {
    over: Over,
    /// `--over rate` on a suite with publishers: their events/s.
    publishers: bool,
    /// The connections of a step (pings per second divide by the interval).
    connections: u64,
    unit: &'static str,
}

impl Knob {
    fn of(over: Over, load: &Scenario) -> Knob {
        let publishers = !load.publishers.is_empty();
        Knob {
            over,
            publishers,
            connections: load.total_arrivals(),
            unit: match over {
                Over::Rate if publishers => "events/s",
                Over::Rate => "arrivals/s",
                Over::Connections => "connections",
                Over::Pings => "pings/s",
            },
        }
    }

    /// The suite's own load, the first step's unless `--from`.
    fn start(&self, load: &Scenario) -> f64 {
        match self.over {
            Over::Rate if self.publishers => suite::total_publish_rate(load),
            Over::Rate => load.phases.first().map_or(1.0, |p| p.rate),
            Over::Connections => self.connections as f64,
            Over::Pings => self.connections as f64 / ping_interval(load),
        }
    }

    /// The bench's size for a step at `value`.
    fn size(&self, base: &bench::Size, value: f64) -> bench::Size {
        let mut size = base.clone();
        match self.over {
            Over::Rate if self.publishers => size.publish_rate = Some(value),
            Over::Rate => size.rate = Some(value),
            Over::Connections => {
                size.connections = Some(value.round().max(1.0) as u64);
                size.scale = None;
            }
            Over::Pings => size.ping_interval = Some(self.connections as f64 / value),
        }
        size
    }

    /// What a step achieved, in the sweep's unit.
    fn achieved(&self, s: &rtbench_record::BenchSummary, l: &LoadSummary, load: &Scenario) -> f64 {
        match self.over {
            Over::Rate if self.publishers => {
                let from = load
                    .publishers
                    .iter()
                    .filter_map(|p| p.start_s)
                    .fold(load.arrivals_end_s(), f64::min);
                l.events.published as f64 / (load.hold_end_s() - from).max(1.0)
            }
            Over::Rate => l.connections.connect_rate,
            Over::Connections => s.connections.held as f64,
            // Answers over the whole run: a server behind answers late.
            Over::Pings => s.round_trip_ms.count as f64 / l.duration_s.max(1.0),
        }
    }
}

/// The raw protocol echoes where Appwrite's pings.
fn ping_interval(load: &Scenario) -> f64 {
    match load.target.protocol {
        rtbench_record::scenario::Protocol::Raw => load.session.echo_interval_s,
        _ => load.session.ping_interval_s,
    }
    .max(f64::MIN_POSITIVE)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let bench_args = |size: bench::Size, out: Option<PathBuf>| bench::Args {
        suite: a.suite.clone(),
        size,
        variant: a.variant.clone(),
        out,
        tune: a.tune,
        host_net: a.host_net,
        roofline: false,
        server: a.server.clone(),
        protocol: a.protocol,
        dashboard: a.dashboard.clone(),
        versus: None,
        pairs: 2,
        on: OnFlag::Local,
        hosts: None,
        limits: Vec::new(),
        registry: None,
        slo: a.slo.clone(),
    };
    let prepared = bench::prepare(&bench_args(a.size.clone(), None))?;
    let [variant] = &prepared.variants[..] else {
        return Err(anyhow::anyhow!(
            "a sweep runs one variant: name it with --variant (suite `{}` has {})",
            prepared.name,
            prepared.variants.len()
        ));
    };
    let mut first = prepared.suite.load.clone();
    suite::apply(&bench_args(a.size.clone(), None).overrides(), &mut first)?;
    if let Some(i) = variant.as_ref().and_then(|v| v.ping_interval_s) {
        first.session.ping_interval_s = i;
    }
    if let Some(p) = a.protocol.or(variant.as_ref().and_then(|v| v.protocol)) {
        first.target.protocol = p;
    }
    let knob = Knob::of(a.over, &first);
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| default_dir(&prepared.name, variant.as_ref(), a.over));
    let tmp = bench::record_dir::begin(&dir)?;
    let mut sweep = Sweep {
        format_version: rtbench_record::FORMAT_VERSION,
        scenario: prepared.name.clone(),
        variant: variant.as_ref().map(|v| v.name.clone()),
        host: record::host_id(),
        started_at: String::new(),
        over: a.over,
        unit: knob.unit.into(),
        slo: a.slo.clone(),
        steps: Vec::new(),
        knee: Knee::default(),
        ended: String::new(),
        roofline: rtbench_record::roofline::newest(&root().join("results"), &record::host_id())
            .map(|(n, _)| n),
    };
    let mut step = |value: f64, sweep: &mut Sweep| -> anyhow::Result<Step> {
        let name = format!("step-{:02}", sweep.steps.len() + 1);
        eprintln!("xtask: sweep {name}: {value:.1} {} offered", knob.unit);
        let args = bench_args(knob.size(&a.size, value), None);
        let side = Side {
            dir: Some(tmp.join(&name)),
            ..Side::default()
        };
        let (d, _) = bench::run_one(
            &prepared.suite,
            &prepared.name,
            variant.as_ref(),
            &args,
            &prepared.live,
            &side,
        )?;
        let s = judge_step(&knob, &d, &name, value)?;
        sweep.steps.push(s.clone());
        Ok(s)
    };
    sweep.ended = climb(&a, knob.start(&first), &mut sweep, &mut step)?;
    sweep.started_at = read_started_at(&tmp, &sweep);
    rtbench_record::write_json(&tmp.join(SWEEP), &sweep)?;
    bench::record_dir::finish(&tmp, &dir)?;
    print(&sweep);
    println!("{}", dir.display());
    Ok(())
}

/// Geometric steps up from `start` until one fails (down, if the first
/// fails, until one passes), then bisection between the two; returns why
/// it ended.
fn climb(
    a: &Args,
    start: f64,
    sweep: &mut Sweep,
    step: &mut impl FnMut(f64, &mut Sweep) -> anyhow::Result<Step>,
) -> anyhow::Result<String> {
    let start = a.from.unwrap_or(start);
    let mut value = start;
    for _ in 0..a.steps {
        let s = step(value, sweep)?;
        if let Some(why) = stop_reason(&s) {
            return Ok(why);
        }
        if s.pass {
            sweep.knee.last_pass = Some(sweep.knee.last_pass.map_or(value, |p| p.max(value)));
        } else {
            sweep.knee.first_fail = Some(sweep.knee.first_fail.map_or(value, |f| f.min(value)));
        }
        match (sweep.knee.last_pass, sweep.knee.first_fail) {
            (Some(_), Some(_)) => break,
            (Some(_), None) => value *= a.factor,
            (None, Some(_)) => value /= a.factor,
            (None, None) => unreachable!("a step either passed or failed"),
        }
    }
    for _ in 0..a.refine {
        let (Some(lo), Some(hi)) = (sweep.knee.last_pass, sweep.knee.first_fail) else {
            break;
        };
        if hi / lo < 1.05 {
            break;
        }
        let mid = (lo * hi).sqrt();
        let s = step(mid, sweep)?;
        if let Some(why) = stop_reason(&s) {
            return Ok(why);
        }
        if s.pass {
            sweep.knee.last_pass = Some(mid);
        } else {
            sweep.knee.first_fail = Some(mid);
        }
    }
    Ok(match (sweep.knee.last_pass, sweep.knee.first_fail) {
        (Some(p), Some(f)) => format!("the knee lies between {p:.1} and {f:.1} {}", sweep.unit),
        (Some(p), None) => format!(
            "every step met the objectives, up to {p:.1} {}: raise --steps or --from",
            sweep.unit
        ),
        (None, _) => format!(
            "no step met the objectives, down to {:.1} {}: lower --from",
            sweep.steps.last().map_or(start, |s| s.offered),
            sweep.unit
        ),
    })
}

/// A step that measured the client, or did not complete, ends the sweep.
fn stop_reason(s: &Step) -> Option<String> {
    if s.client_bottleneck {
        return Some(format!(
            "{} at {:.1} offered: the load generator was the bottleneck ({}); beyond it the sweep would measure the client",
            s.dir,
            s.offered,
            s.client_reasons.join("; ")
        ));
    }
    (!s.complete).then(|| format!("{} at {:.1} offered did not complete", s.dir, s.offered))
}

/// A step's figures from its bench record.
fn judge_step(knob: &Knob, dir: &Path, name: &str, offered: f64) -> anyhow::Result<Step> {
    let s = rtbench_record::read_summary(dir)?;
    let l = rtbench_record::load::read_summary(&dir.join(rtbench_record::LOADGEN_DIR))?;
    let load = Scenario::load(&dir.join(rtbench_record::LOADGEN_DIR).join("scenario.toml"))
        .or_else(|_| Scenario::load(&dir.join("load.toml")))?;
    let latency = match s.slo.iter().find_map(|o| match o.threshold.metric {
        Metric::Latency(l, _) => Some(l),
        Metric::Count(_) => None,
    }) {
        Some(Latency::Connect | Latency::ConnectAttempt) => &s.connect_ms,
        Some(Latency::RoundTrip) => &s.round_trip_ms,
        Some(Latency::Reconnect) => &s.reconnect_ms,
        Some(Latency::Delivery) | None => &s.delivery_ms,
    };
    let receivers_per_event = receivers_per_event(&l.events);
    let client_bottleneck = s.client_bottleneck.bottleneck;
    Ok(Step {
        dir: name.into(),
        offered,
        achieved: knob.achieved(&s, &l, &load),
        deliveries_per_s: s.deliveries_per_s,
        offered_deliveries_per_s: (knob.over == Over::Rate && knob.publishers)
            .then_some(receivers_per_event)
            .flatten()
            .map(|r| r * offered),
        p50_ms: latency.p50,
        p99_ms: latency.p99,
        p999_ms: latency.p999,
        server_cpu_pct: s.server.cpu_holding_pct,
        complete: s.complete,
        client_bottleneck,
        client_reasons: s.client_bottleneck.reasons.clone(),
        pass: s.complete && !client_bottleneck && s.slo.iter().all(|o| o.pass),
        slo: s.slo,
    })
}

/// How many received an event, on average: as the servers reported
/// (publishing over HTTP), or, where nobody could (over the Redis bus, which
/// says nothing back), as the clients counted. `None` before any event.
fn receivers_per_event(e: &rtbench_record::load::Events) -> Option<f64> {
    let received = if e.server_deliveries > 0 {
        e.server_deliveries
    } else {
        e.received
    };
    (e.published > 0).then(|| received as f64 / e.published as f64)
}

fn read_started_at(tmp: &Path, sweep: &Sweep) -> String {
    sweep
        .steps
        .first()
        .and_then(|s| rtbench_record::read_summary(&tmp.join(&s.dir)).ok())
        .map(|s| s.started_at)
        .unwrap_or_default()
}

/// `results/<suite>/<time>-<host>[-variant]-sweep-<over>`.
fn default_dir(name: &str, variant: Option<&suite::Variant>, over: Over) -> PathBuf {
    let variant = variant.map_or(String::new(), |v| format!("-{}", v.name));
    root().join("results").join(name).join(format!(
        "{}-{}{variant}-sweep-{over}",
        compact_utc(now_ns()),
        record::host_id()
    ))
}

fn print(sweep: &Sweep) {
    eprintln!(
        "xtask: sweep of {} over {} ({}):",
        sweep.scenario, sweep.over, sweep.unit
    );
    for s in &sweep.steps {
        eprintln!(
            "xtask:   {} offered {:>10.1} achieved {:>10.1}  p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms  server CPU {}  {}",
            s.dir,
            s.offered,
            s.achieved,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.server_cpu_pct
                .map_or("-".into(), |c| format!("{:.0}%", c)),
            if s.client_bottleneck {
                "CLIENT BOTTLENECK"
            } else if s.pass {
                "pass"
            } else {
                "FAIL"
            }
        );
    }
    eprintln!("xtask: {}", sweep.ended);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_per_event_are_the_servers_count_or_else_the_clients() {
        let events = |published, server_deliveries, received| rtbench_record::load::Events {
            published,
            server_deliveries,
            received,
            ..Default::default()
        };
        // Over HTTP the servers say; a client's count may fall short of it.
        assert_eq!(receivers_per_event(&events(10, 1_000, 990)), Some(100.0));
        // Over the bus nobody says: the fan-out sweep read 0 offered deliveries.
        assert_eq!(
            receivers_per_event(&events(15_000, 0, 1_520_803)),
            Some(1_520_803.0 / 15_000.0)
        );
        assert_eq!(receivers_per_event(&events(0, 0, 0)), None);
    }
}

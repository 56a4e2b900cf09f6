//! Suite files (`suites/*.toml`): a load generator scenario plus what a local
//! run needs around it: server flags, the OS tuning profile, variants.
//!
//! The scenario part is the load generator's own schema, under `[load]`, so it
//! is defined once; the runner fills in the target address.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rtbench_record::scenario::Scenario;
use serde::{Deserialize, Serialize};

pub use rtbench_record::Overrides;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub description: String,
    #[serde(default)]
    pub server: ServerSpec,
    /// sysctl name -> wanted value (`cargo xtask tune`, `bench --tune`).
    #[serde(default)]
    pub tuning: BTreeMap<String, String>,
    /// Runs of the same scenario that differ in one thing; none means one run.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Resources for `--on containers`.
    #[serde(default)]
    pub containers: rtbench_record::Containers,
    /// What the suite's servers need installed or built before it runs.
    #[serde(default)]
    pub setup: Setup,
    /// What the bench does to the run's processes mid-run (`faults.rs`
    /// carries it out).
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Objectives every run of the suite must meet (`thresholds = [...]`);
    /// `bench` exits 2 when one fails. The load generator evaluates them.
    #[serde(default, skip_serializing_if = "rtbench_record::slo::Slo::is_empty")]
    pub slo: rtbench_record::slo::Slo,
    pub load: Scenario,
}

/// One step of a fault plan (`[[faults]]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Seconds of the schedule (0: the first arrival).
    #[serde(default)]
    pub at_s: f64,
    /// Instead of `at_s`: a share (0 to 1) of the run, from the first
    /// arrival to the end of the hold, so a long soak's faults spread over
    /// it and a short run of the same suite still has them (`place`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_share: Option<f64>,
    pub action: Action,
    /// `server N` (0-based, N below the run's server processes) or `redis`.
    pub target: String,
    /// `pause`: for how long (SIGSTOP, then SIGCONT).
    #[serde(default)]
    pub for_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// SIGKILL: the process is gone, its clients reconnect elsewhere.
    Kill,
    /// Start a killed server process again, on the same port.
    Restart,
    /// SIGSTOP for `for_s`, then SIGCONT: a process that hangs.
    Pause,
}

/// The plan with each `at_share` made seconds of a run whose hold ends
/// `hold_end_s` after the first arrival.
pub fn place(plan: &[Fault], hold_end_s: f64) -> anyhow::Result<Vec<Fault>> {
    plan.iter()
        .map(|f| match f.at_share {
            Some(share) if !(0.0..=1.0).contains(&share) => Err(anyhow::anyhow!(
                "fault {:?} {}: at_share {share} is not between 0 and 1",
                f.action,
                f.target
            )),
            Some(share) => Ok(Fault {
                at_s: share * hold_end_s,
                at_share: None,
                ..f.clone()
            }),
            None => Ok(f.clone()),
        })
        .collect()
}

/// Server processes the plan kills: the run starts this many more, so the
/// survivors can hold every connection.
pub fn spares(plan: &[Fault]) -> u64 {
    plan.iter()
        .filter(|f| f.action == Action::Kill)
        .map(|f| f.target.as_str())
        .collect::<BTreeSet<_>>()
        .len() as u64
}

/// Installed or built by `bench` before the suite runs (`setup.rs`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// Debian packages.
    #[serde(default)]
    pub apt: Vec<String>,
    /// PyPI packages, each with a module whose import proves it is there.
    #[serde(default)]
    pub pip: Vec<PipPackage>,
    /// Workspace packages built in release mode.
    #[serde(default)]
    pub cargo: Vec<String>,
    /// Go main packages of the workspace (`peers/centrifuge`), built offline
    /// against Debian's Go packages into `target/peers/<last component>`.
    #[serde(default)]
    pub go: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipPackage {
    pub package: String,
    pub module: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// What is benchmarked (`subject.rs`): `rtbench` (default),
    /// `command:LINE` or `url:ws://...`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Extra `rtbench-server` flags.
    #[serde(default)]
    pub args: Vec<String>,
    /// Every server process on one port (SO_REUSEPORT), as behind a load
    /// balancer: a client that reconnects may land on any of them.
    #[serde(default)]
    pub shared_port: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub server_args: Vec<String>,
    /// Replaces the load's session (who the clients are, their channels);
    /// the fields below still apply on top of it.
    #[serde(default)]
    pub session: Option<rtbench_record::scenario::Session>,
    /// Replaces the session's ping interval.
    #[serde(default)]
    pub ping_interval_s: Option<f64>,
    /// The server's `--max-connections` as a share of the arrivals.
    #[serde(default)]
    pub cap_fraction: Option<f64>,
    /// Replaces the suite's server (`subject.rs`).
    #[serde(default)]
    pub server: Option<String>,
    /// Replaces the load's protocol (`raw` for a server that does not speak
    /// Appwrite's).
    #[serde(default)]
    pub protocol: Option<rtbench_record::scenario::Protocol>,
    /// Replaces the session's echo interval (raw protocol).
    #[serde(default)]
    pub echo_interval_s: Option<f64>,
    /// How clients reconnect (`none`, `sdk`, `sdk-jitter`).
    #[serde(default)]
    pub reconnect: Option<rtbench_record::scenario::Reconnect>,
    /// Processes of a `command:` server (a broker that scales out across
    /// them: `subject.rs` gives each its own port); `--processes` wins.
    #[serde(default)]
    pub processes: Option<u64>,
    /// Replaces the arrivals in all (`--connections` wins): a variant that
    /// holds more than the others, across its processes.
    #[serde(default)]
    pub connections: Option<u64>,
    /// No publishers: the connections are only held (with the session's
    /// keepalive), beside variants of the same load that publish.
    #[serde(default)]
    pub idle: bool,
    /// Replaces the hold's seconds (`--hold` wins): a longer soak.
    #[serde(default)]
    pub hold_s: Option<f64>,
    /// Runs only when named (`--variant NAME`): a plain run of the suite
    /// leaves it out (a two-hour soak beside the nightly half hour).
    #[serde(default)]
    pub on_request: bool,
}

/// The suites directory of the workspace.
pub fn dir() -> PathBuf {
    crate::root().join("suites")
}

/// Finds a suite by name (`smoke`) or path.
pub fn resolve(name: &str) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(name);
    if as_path.extension().is_some_and(|e| e == "toml") && as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    let p = dir().join(format!("{name}.toml"));
    if p.exists() {
        return Ok(p);
    }
    let known: Vec<String> = std::fs::read_dir(dir())
        .map(|d| {
            d.filter_map(|e| {
                e.ok()?
                    .path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .collect()
        })
        .unwrap_or_default();
    Err(anyhow::anyhow!(
        "no suite `{name}`; suites: {}",
        known.join(", ")
    ))
}

pub fn load(path: &Path) -> anyhow::Result<Suite> {
    let src =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
    toml::from_str(&src).map_err(|e| {
        let line = e
            .span()
            .map_or(0, |s| src[..s.start].matches('\n').count() + 1);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
    })
}

/// Applies the overrides to a scenario: scaling keeps each phase's rate
/// and shortens it; `--rate` keeps the arrivals and changes the pace.
/// Publishers' `start_s` moves with the end of the arrivals and `stop_s`
/// with the end of the hold, so they keep their place in the run. A churn
/// session's lifetime follows the ramp: the population stays the arrivals
/// (`--connections`) and the churn rate the phases' rate.
pub fn apply(o: &Overrides, sc: &mut Scenario) -> anyhow::Result<()> {
    let (arrivals_end, hold_end) = (sc.arrivals_end_s(), sc.hold_end_s());
    resize(o, sc)?;
    if sc.session.churns() && arrivals_end > 0.0 {
        sc.session.lifetime_s *= sc.arrivals_end_s() / arrivals_end;
    }
    let (moved_start, moved_stop) = (
        sc.arrivals_end_s() - arrivals_end,
        sc.hold_end_s() - hold_end,
    );
    for p in &mut sc.publishers {
        p.start_s = p.start_s.map(|s| (s + moved_start).max(0.0));
        p.stop_s = p.stop_s.map(|s| (s + moved_stop).max(0.0));
    }
    Ok(())
}

fn resize(o: &Overrides, sc: &mut Scenario) -> anyhow::Result<()> {
    let total = sc.total_arrivals();
    let factor = match (o.scale, o.connections) {
        (Some(_), Some(_)) => {
            return Err(anyhow::Error::msg(
                "--scale and --connections exclude each other",
            ));
        }
        (Some(f), None) if f > 0.0 => Some(f),
        (Some(f), None) => return Err(anyhow::anyhow!("--scale must be > 0, got {f}")),
        (None, Some(n)) if total > 0 => Some(n as f64 / total as f64),
        _ => None,
    };
    if let Some(f) = factor {
        for p in &mut sc.phases {
            p.duration_s *= f;
            p.max_users = p.max_users.map(|m| (m as f64 * f).round() as u64);
        }
        if let Some(n) = o.connections {
            // Rounding must not lose or add a connection.
            let got = sc.total_arrivals();
            if got != n
                && let Some(last) = sc.phases.last_mut()
            {
                last.duration_s += (n as f64 - got as f64 + 0.5) / last.rate;
            }
        }
    }
    if let Some(r) = o.rate {
        if r <= 0.0 {
            return Err(anyhow::anyhow!("--rate must be > 0, got {r}"));
        }
        for p in &mut sc.phases {
            let n = rtbench_record::scenario::phase_arrivals(p);
            p.duration_s = (n as f64 + 0.5) / r;
            p.rate = r;
        }
    }
    if let Some(h) = o.hold_s {
        sc.hold.duration_s = h;
    }
    if let Some(r) = o.publish_rate {
        let now = total_publish_rate(sc);
        if now <= 0.0 {
            return Err(anyhow::anyhow!(
                "--publish-rate {r}: the scenario has no publisher at a fixed rate to scale"
            ));
        }
        for p in &mut sc.publishers {
            p.rate *= r / now;
        }
    }
    // `ping_interval_s` is the plan's: it knows the protocol (a raw
    // client's ping is its echo) and the variant it overrides.
    Ok(())
}

/// Events per second from every publisher together (per-channel rates
/// times the channels).
pub fn total_publish_rate(sc: &Scenario) -> f64 {
    sc.publishers
        .iter()
        .map(|p| {
            if p.per_channel {
                p.rate * sc.session.channel_count as f64
            } else {
                p.rate
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's gaps in the sequence are misses only where every
    /// subscriber is sent every event: in fan-out, each gets its share.
    #[test]
    fn misses_are_counted_where_every_subscriber_gets_every_event_and_nowhere_else() {
        let counts = |name: &str| {
            load(&dir().join(format!("{name}.toml")))
                .unwrap()
                .load
                .every_event_reaches_every_subscriber()
        };
        assert_eq!(
            [
                "soak",
                "failover",
                "broadcast",
                "fanout",
                "fanout-max",
                "smoke",
                "idle-1m"
            ]
            .map(counts),
            [true, true, true, false, false, false, false]
        );
        let mut two_channels = load(&dir().join("soak.toml")).unwrap().load;
        two_channels.session.channels.push("account".into());
        assert!(!two_channels.every_event_reaches_every_subscriber());
    }

    #[test]
    fn every_suite_parses_and_validates() {
        for entry in std::fs::read_dir(dir()).unwrap() {
            let path = entry.unwrap().path();
            let mut s = load(&path).unwrap();
            assert!(!s.description.trim().is_empty(), "{}", path.display());
            s.load.target.urls = vec!["ws://127.0.0.1:1".into()];
            s.load.target.bus = Some("redis://127.0.0.1:1".into());
            s.load
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            for v in &s.variants {
                if let Some(session) = &v.session {
                    let mut load = s.load.clone();
                    load.session = session.clone();
                    load.validate()
                        .unwrap_or_else(|e| panic!("{} variant {}: {e:?}", path.display(), v.name));
                }
            }
        }
    }

    #[test]
    fn a_small_soak_keeps_its_churn_rate_and_spreads_its_faults() {
        let mut s = load(&dir().join("soak.toml")).unwrap();
        apply(
            &Overrides {
                connections: Some(5_000),
                hold_s: Some(120.0),
                ..Default::default()
            },
            &mut s.load,
        )
        .unwrap();
        let sc = &s.load;
        // 5,000 at 1,100/s: a 4.5 s ramp, lifetimes of 4.5 s on average,
        // and arrivals going on through the hold at the same rate.
        assert_eq!(sc.total_arrivals(), 5_000);
        assert!(
            (sc.session.lifetime_s - 5_000.0 / 1_100.0).abs() < 1e-9,
            "{}",
            sc.session.lifetime_s
        );
        assert_eq!(sc.all_arrivals(), 5_000 + 132_000);
        let placed = place(&s.faults, sc.hold_end_s()).unwrap();
        let at: Vec<f64> = placed
            .iter()
            .map(|f| (f.at_s * 10.0).round() / 10.0)
            .collect();
        assert_eq!(at, vec![12.5, 14.9, 62.3]);
        let bad = Fault {
            at_share: Some(1.5),
            ..s.faults[0].clone()
        };
        assert!(format!("{:#}", place(&[bad], 100.0).unwrap_err()).contains("at_share 1.5"));
        assert!(
            s.variants.iter().all(|v| v.on_request),
            "2h runs only when named"
        );
    }

    #[test]
    fn overrides_scale_and_pace_exactly() {
        let mut s = load(&dir().join("idle-1m.toml")).unwrap();
        assert_eq!(s.load.total_arrivals(), 1_000_000);
        apply(
            &Overrides {
                connections: Some(19_000),
                ..Default::default()
            },
            &mut s.load,
        )
        .unwrap();
        assert_eq!(s.load.total_arrivals(), 19_000);
        apply(
            &Overrides {
                rate: Some(3000.0),
                hold_s: Some(5.0),
                ..Default::default()
            },
            &mut s.load,
        )
        .unwrap();
        assert_eq!(
            (
                s.load.total_arrivals(),
                s.load.phases[0].rate,
                s.load.hold.duration_s
            ),
            (19_000, 3000.0, 5.0)
        );
        let mut s = load(&dir().join("brokers.toml")).unwrap();
        let p = &s.load.publishers[0];
        let (start, stop) = (p.start_s.unwrap(), p.stop_s.unwrap());
        let (arrivals_end, hold_end) = (s.load.arrivals_end_s(), s.load.hold_end_s());
        apply(
            &Overrides {
                scale: Some(0.5),
                hold_s: Some(60.0),
                ..Default::default()
            },
            &mut s.load,
        )
        .unwrap();
        let p = &s.load.publishers[0];
        assert_eq!(
            (
                p.start_s.unwrap() - s.load.arrivals_end_s(),
                p.stop_s.unwrap() - s.load.hold_end_s()
            ),
            (start - arrivals_end, stop - hold_end),
            "publishing keeps its place after the arrivals and before the end"
        );
        let mut s = load(&dir().join("smoke.toml")).unwrap();
        let before = s.load.total_arrivals();
        apply(
            &Overrides {
                scale: Some(0.5),
                ..Default::default()
            },
            &mut s.load,
        )
        .unwrap();
        assert_eq!(s.load.total_arrivals(), before / 2);
        assert!(
            apply(
                &Overrides {
                    scale: Some(1.0),
                    connections: Some(5),
                    ..Default::default()
                },
                &mut s.load
            )
            .is_err()
        );
    }
}

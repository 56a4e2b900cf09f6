//! The first stage of a run: the suite, its variant and the command line
//! resolved into one `RunPlan`, with no process started and nothing read
//! from the machine but what the caller passes in. Every decision that does
//! not need a running process is made here, so it is unit-tested here
//! (`tests` below) and the later stages (`start`, `watch`, `verdict`) only
//! carry it out.

use std::time::Duration;

use rtbench_record::scenario::{Protocol, Scenario, Via};

use crate::preflight::Needs;
use crate::subject::Subject;
use crate::suite::{self, Suite, Variant};

use super::args::{Args, RunsOn};

/// One run, decided.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The suite's name (its file's stem).
    pub name: String,
    pub variant: Option<Variant>,
    /// `name (variant)`, as the console and the live page say it.
    pub label: String,
    /// The load generator's scenario: overrides and the variant applied;
    /// its target's URLs are filled in by `start`.
    pub load: Scenario,
    pub subject: Subject,
    pub runs_on: RunsOn,
    /// Server processes in all (spares for a fault plan's kills included).
    pub processes: u64,
    /// Server processes this bench starts as rtbench-server (`processes`
    /// for rtbench, 0 for a server started from a command or given by URL).
    pub rtbench_processes: u64,
    /// The processes share events over Redis (several processes, or
    /// publishers that publish straight to the bus).
    pub bus: bool,
    /// The servers' connection cap as a whole, when the variant sets one.
    pub cap: Option<u64>,
    /// Every server process's arguments before `start` adds what only a
    /// running run knows (the bus URL, the shared port, admin addresses).
    pub server_args: Vec<String>,
    /// One port for every process (SO_REUSEPORT).
    pub shared_port: bool,
    /// `--tune` here: the run gets its own network namespace.
    pub namespaced: bool,
    /// What the machine must allow (the preflight's question).
    pub needs: Needs,
    /// How long to wait for a quiet machine before starting.
    pub patience: Duration,
    /// What the plan decided that the user should read (printed by `run`).
    pub notes: Vec<String>,
}

impl RunPlan {
    /// Resolves a run. `server_nofile` is the open-files limit each server
    /// process runs under (its container's, or this machine's), read by
    /// the caller.
    pub fn resolve(
        suite: &Suite,
        name: &str,
        variant: Option<&Variant>,
        a: &Args,
        server_nofile: u64,
    ) -> anyhow::Result<RunPlan> {
        // Connections a server process is given at most: its open-files
        // capacity less a margin.
        let per_process = crate::preflight::server_capacity(server_nofile) * 95 / 100;
        let mut notes = Vec::new();
        let load = shape_load(suite, variant, a, &mut notes)?;
        // Open at once (a churn run's arrivals replace those that left).
        let total = load.peak_connections();
        let subject = Subject::parse(
            a.server
                .as_deref()
                .or(variant.and_then(|v| v.server.as_deref()))
                .or(suite.server.subject.as_deref())
                .unwrap_or("rtbench"),
        )?;
        let runs_on = a.runs_on();
        check_subject(&subject, &runs_on, a)?;
        // A plan that kills servers gets as many spare processes, so the
        // survivors can hold every connection.
        let processes = if subject.is_rtbench() {
            a.size.processes.unwrap_or_else(|| {
                total.div_ceil(per_process).max(1) + suite::spares(&suite.faults)
            })
        } else {
            // A command runs as one process unless told (a broker that
            // scales out).
            a.size
                .processes
                .or(variant.and_then(|v| v.processes))
                .unwrap_or(1)
        };
        if (suite.server.shared_port || !suite.faults.is_empty())
            && (runs_on != RunsOn::Local || !subject.is_rtbench())
        {
            return Err(anyhow::Error::msg(
                "a shared port and a fault plan need rtbench-server processes started here (no --on containers, no --hosts, --server rtbench)",
            ));
        }
        let mut server_args = suite.server.args.clone();
        let mut cap: Option<u64> = None;
        if let Some(v) = variant {
            server_args.extend(v.server_args.iter().cloned());
            cap = v.cap_fraction.map(|f| (total as f64 * f).ceil() as u64);
        }
        fit_idle_timeout(&subject, &mut server_args, load.session.ping_interval_s);
        if cap.is_some() && !subject.is_rtbench() {
            return Err(anyhow::Error::msg(
                "a connection cap is rtbench-server's --max-connections: run it with --server rtbench",
            ));
        }
        // Several rtbench processes share events over Redis, as Appwrite's
        // do; so do publishers that publish straight to the bus, and
        // servers whose scale-out needs it.
        let bus = (subject.is_rtbench() && processes > 1)
            || subject.needs_bus()
            || load
                .publishers
                .iter()
                .any(|p| p.route(load.target.protocol) == Via::Bus);
        let namespaced = a.tune && !a.host_net && runs_on == RunsOn::Local;
        let needs = Needs {
            connections: total,
            sources: rtbench_record::endpoint::expand_sources(&load.target.sources)
                .map_err(anyhow::Error::msg)?
                .len(),
            server_processes: processes,
            server_nofile,
            namespace: namespaced,
        };
        Ok(RunPlan {
            name: name.to_string(),
            variant: variant.cloned(),
            label: match variant {
                Some(v) => format!("{name} ({})", v.name),
                None => name.to_string(),
            },
            rtbench_processes: if subject.is_rtbench() { processes } else { 0 },
            load,
            subject,
            runs_on,
            processes,
            bus,
            cap,
            server_args,
            shared_port: suite.server.shared_port,
            namespaced,
            needs,
            // A large run waits up to 3 minutes for the last one's sockets
            // to be torn down, a small one a few seconds.
            patience: Duration::from_secs((total / 5_000).clamp(3, 180)),
            notes,
        })
    }

    /// The arguments every server process shares, once the run knows its
    /// bus (`bus_url`) and shared address (`listen`).
    pub fn common_server_args(&self, bus_url: Option<&str>, listen: Option<&str>) -> Vec<String> {
        let mut args = self.server_args.clone();
        if let Some(url) = bus_url {
            args.extend(["--bus".into(), url.to_string()]);
        }
        if self.processes > 1 {
            args.extend(["--threads".into(), "1".into()]);
        }
        if let Some(addr) = listen {
            args.splice(
                0..0,
                [
                    "--listen".to_string(),
                    addr.to_string(),
                    "--reuse-port".into(),
                ],
            );
        }
        args
    }

    /// Server process `i`'s own arguments after the common ones: its admin
    /// address (on a shared port, each process's own /metrics) and its
    /// share of the cap, split exactly (the first `cap % processes` take
    /// one more).
    pub fn process_args(&self, common: &[String], i: u64, admin: Option<&str>) -> Vec<String> {
        let mut args = common.to_vec();
        if let Some(admin) = admin {
            args.extend(["--admin-listen".into(), admin.to_string()]);
        }
        if let Some(cap) = self.cap {
            let share = cap / self.processes + u64::from(i < cap % self.processes);
            args.extend(["--max-connections".into(), share.to_string()]);
        }
        args
    }
}

/// rtbench-server closes a client silent for its idle timeout (90 s by
/// default: four and a half of the SDKs' pings). Clients told to ping less
/// often (`--ping-interval`, a sweep over pings) get one four and a half of
/// their intervals long, and clients that never ping none, unless the suite
/// chose.
fn fit_idle_timeout(subject: &Subject, server_args: &mut Vec<String>, ping: f64) {
    let chosen = server_args
        .iter()
        .any(|a| a.starts_with("--idle-timeout-s"));
    if subject.is_rtbench() && (ping == 0.0 || ping > 20.0) && !chosen {
        let timeout = (ping * 4.5).ceil() as u64;
        server_args.extend(["--idle-timeout-s".into(), timeout.to_string()]);
    }
}

/// The load generator's scenario: the suite's, sized by the command line,
/// the variant's session and the objectives applied.
fn shape_load(
    suite: &Suite,
    variant: Option<&Variant>,
    a: &Args,
    notes: &mut Vec<String>,
) -> anyhow::Result<Scenario> {
    let mut load = suite.load.clone();
    // A variant's own size first, then the user's over it.
    if let Some(n) = variant.and_then(|v| v.connections) {
        let size = suite::Overrides {
            connections: Some(n),
            ..Default::default()
        };
        suite::apply(&size, &mut load)?;
    }
    if let Some(h) = variant.and_then(|v| v.hold_s) {
        load.hold.duration_s = h;
    }
    suite::apply(&a.overrides(), &mut load)?;
    load.slo
        .thresholds
        .extend(suite.slo.thresholds.iter().copied());
    load.slo.thresholds.extend(a.slo.iter().copied());
    apply_variant_session(&mut load, variant);
    if let Some(p) = a.protocol {
        load.target.protocol = p;
    }
    if load.target.protocol == Protocol::Raw && !load.publishers.is_empty() {
        notes.push(
            "protocol raw: the suite's publishers are left out (they publish Appwrite events)"
                .into(),
        );
        load.publishers.clear();
    }
    if let Some(p) = variant.and_then(|v| v.ping_interval_s) {
        load.session.ping_interval_s = p;
    }
    // The command line's interval over the variant's; a raw client's ping
    // is its echo.
    if let Some(i) = a.size.ping_interval {
        match load.target.protocol {
            Protocol::Raw => load.session.echo_interval_s = i,
            _ => load.session.ping_interval_s = i,
        }
    }
    Ok(load)
}

/// A variant's session over the suite's: its whole session when it gives
/// one, then its protocol, echo and reconnect settings.
fn apply_variant_session(load: &mut Scenario, variant: Option<&Variant>) {
    let Some(v) = variant else { return };
    if let Some(s) = &v.session {
        load.session = s.clone();
    }
    if let Some(p) = v.protocol {
        load.target.protocol = p;
    }
    if let Some(e) = v.echo_interval_s {
        load.session.echo_interval_s = e;
    }
    if let Some(r) = v.reconnect {
        load.session.reconnect = r;
    }
    if v.idle {
        load.publishers.clear();
    }
}

/// A server that is not rtbench runs here, alone.
fn check_subject(subject: &Subject, runs_on: &RunsOn, a: &Args) -> anyhow::Result<()> {
    if subject.is_rtbench() {
        return Ok(());
    }
    if *runs_on != RunsOn::Local {
        return Err(anyhow::anyhow!(
            "{}: a server other than rtbench runs locally only",
            subject.label()
        ));
    }
    let many = a.size.processes.is_some_and(|p| p > 1);
    if a.versus.is_some() || (many && matches!(subject, Subject::Url(_))) {
        return Err(anyhow::anyhow!(
            "{}: --versus is for rtbench-server, --processes for a server this run starts",
            subject.label()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: Args,
    }

    fn args(line: &str) -> Args {
        Cli::try_parse_from(std::iter::once("bench").chain(line.split_whitespace()))
            .unwrap()
            .bench
    }

    fn suite(name: &str) -> Suite {
        suite::load(&suite::resolve(name).unwrap()).unwrap()
    }

    fn plan(name: &str, variant: Option<&str>, line: &str, per_process: u64) -> RunPlan {
        let s = suite(name);
        let v = variant.map(|n| s.variants.iter().find(|v| v.name == n).unwrap().clone());
        RunPlan::resolve(&s, name, v.as_ref(), &args(line), per_process).unwrap()
    }

    #[test]
    fn smoke_is_one_process_without_a_bus() {
        let p = plan("smoke", None, "smoke", 19_012);
        assert_eq!(p.processes, 1);
        assert_eq!(p.rtbench_processes, 1);
        assert!(!p.bus);
        assert_eq!(p.label, "smoke");
        assert_eq!(p.common_server_args(None, None), suite("smoke").server.args);
    }

    #[test]
    fn processes_follow_the_open_files_capacity() {
        // 100,000 connections at 18,000 a process: 6 processes, on a bus,
        // each with one thread.
        let p = plan(
            "idle-1m",
            Some("no-ping"),
            "idle-1m --connections 100000",
            19_012,
        );
        assert_eq!(p.processes, 6);
        assert!(p.bus);
        assert_eq!(p.needs.connections, 100_000);
        let common = p.common_server_args(Some("redis://127.0.0.1:1"), None);
        let n = common.len();
        assert_eq!(
            common[n - 4..],
            ["--bus", "redis://127.0.0.1:1", "--threads", "1"].map(String::from)
        );
        assert_eq!(p.patience, Duration::from_secs(20));
    }

    #[test]
    fn the_idle_timeout_follows_the_clients_ping_interval_unless_the_suite_chose() {
        let timeout = |name, variant, line| {
            let a = plan(name, variant, line, 19_012).server_args;
            let at = a.iter().position(|f| f == "--idle-timeout-s");
            at.map(|i| a[i + 1].clone())
        };
        // Clients that never send: no timeout.
        assert_eq!(timeout("idle-1m", None, "idle-1m").as_deref(), Some("0"));
        assert_eq!(
            timeout("broadcast", None, "broadcast").as_deref(),
            Some("0")
        );
        // The SDKs' 20 s and faster: the server's default.
        assert_eq!(timeout("idle-1m", Some("sdk-ping"), "idle-1m"), None);
        assert_eq!(timeout("smoke", None, "smoke"), None);
        // Slower pings: four and a half intervals.
        assert_eq!(
            timeout("smoke", None, "smoke --ping-interval 60").as_deref(),
            Some("270")
        );
    }

    #[test]
    fn a_cap_is_split_exactly_across_processes() {
        let p = plan(
            "target-2m",
            Some("capped"),
            "target-2m --connections 100001",
            19_012,
        );
        let cap = p.cap.unwrap();
        assert_eq!(cap, 50_001);
        let shares: Vec<u64> = (0..p.processes)
            .map(|i| {
                let a = p.process_args(&[], i, None);
                assert_eq!(a[0], "--max-connections");
                a[1].parse().unwrap()
            })
            .collect();
        assert_eq!(shares.iter().sum::<u64>(), cap);
        assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
    }

    #[test]
    fn a_shared_port_leads_the_arguments() {
        let p = plan("failover", None, "failover --connections 20000", 19_012);
        assert!(p.shared_port);
        let common = p.common_server_args(None, Some("127.0.0.1:9"));
        assert_eq!(
            common[..3],
            ["--listen", "127.0.0.1:9", "--reuse-port"].map(String::from)
        );
        let own = p.process_args(&common, 0, Some("127.0.0.1:10"));
        assert!(own.ends_with(&["--admin-listen".into(), "127.0.0.1:10".into()]));
    }

    #[test]
    fn publish_rate_and_ping_interval_override_suite_and_variant() {
        let p = plan("fanout", None, "fanout --publish-rate 2000", 19_012);
        assert_eq!(crate::suite::total_publish_rate(&p.load), 2000.0);
        let p = plan(
            "idle-1m",
            Some("sdk-ping"),
            "idle-1m --ping-interval 5",
            19_012,
        );
        assert_eq!(p.load.session.ping_interval_s, 5.0);
        let s = suite("idle-1m");
        let e = RunPlan::resolve(
            &s,
            "idle-1m",
            None,
            &args("idle-1m --publish-rate 10"),
            19_012,
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("no publisher"), "{e:#}");
    }

    #[test]
    fn raw_protocol_drops_the_publishers_with_a_note() {
        let p = plan(
            "fanout",
            None,
            "fanout --protocol raw --connections 1000",
            19_012,
        );
        assert!(p.load.publishers.is_empty());
        assert_eq!(p.notes.len(), 1);
    }

    #[test]
    fn refusals_name_what_cannot_be_done() {
        let s = suite("smoke");
        let e = RunPlan::resolve(
            &s,
            "smoke",
            None,
            &args("smoke --server url:ws://127.0.0.1:1/ --on containers"),
            19_012,
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("runs locally only"), "{e:#}");
        let f = suite("failover");
        let e = RunPlan::resolve(
            &f,
            "failover",
            None,
            &args("failover --on containers"),
            19_012,
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("a shared port and a fault plan"), "{e:#}");
    }
}

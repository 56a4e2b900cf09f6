//! The second stage of a run: everything the plan needs running, started
//! in order (the run's network namespace, the placement, Redis, the
//! servers) and held in one `Started`, whose fields are declared in
//! teardown order: Rust drops a struct's fields first to last, so the
//! servers stop before Redis, Redis before the placement removes what it
//! made, and that before the namespace goes.
//!
//! Also the run's inputs, written before the load starts so that a run that
//! dies mid-way still says what it ran: `scenario.toml`, `load.toml`,
//! `launch.json`, `environment.json`.

use std::path::{Path, PathBuf};

use rtbench_record::NetworkNamespace;

use crate::netns::Namespace;
use crate::server::{RedisProcess, ServerProcess};
use crate::subject::Subject;
use crate::suite::Suite;
use crate::tuning;

use super::args::Args;
use super::environment;
use super::placement::{Placement, Side};
use super::plan::RunPlan;

/// What a run started; dropped in field order (see the module's opening).
pub struct Started {
    /// Server processes, in the order of their arguments in `args_of`.
    pub servers: Vec<ServerProcess>,
    pub redis: Option<RedisProcess>,
    /// Each rtbench server's arguments, to start it again (a fault plan's
    /// restart).
    pub args_of: Vec<Vec<String>>,
    pub placement: Placement,
    pub netns: Option<Namespace>,
}

/// The namespace, made before anything that runs in it.
pub fn namespace(plan: &RunPlan, suite: &Suite) -> anyhow::Result<Option<Namespace>> {
    if !plan.namespaced {
        return Ok(None);
    }
    let ns = Namespace::create(plan.needs.connections, &suite.tuning)?;
    eprintln!(
        "xtask: network namespace {}: {} buckets in its socket hash",
        ns.name, ns.ehash_buckets
    );
    Ok(Some(ns))
}

/// Starts Redis (when the plan has a bus) and every server process.
/// `load`'s target is filled in: the servers' URLs, the bus, and no source
/// addresses when the workers run elsewhere (they connect from their own).
pub fn processes(
    plan: &mut RunPlan,
    side: &Side,
    placement: Placement,
    netns: Option<Namespace>,
) -> anyhow::Result<Started> {
    let mut started = Started {
        servers: Vec::new(),
        redis: None,
        args_of: Vec::new(),
        placement,
        netns,
    };
    if plan.bus {
        let r = started.placement.start_redis()?;
        plan.load.target.bus = Some(r.url());
        started.redis = Some(r);
    }
    let shared = if plan.shared_port {
        Some(free_loopback_address()?)
    } else {
        None
    };
    let common = plan.common_server_args(
        started.redis.as_ref().map(RedisProcess::url).as_deref(),
        shared.as_deref(),
    );
    if let Subject::Command(line) = &plan.subject {
        let bus_url = started.redis.as_ref().map(RedisProcess::url);
        for (line, port) in crate::subject::command_lines(line, plan.processes, bus_url.as_deref())?
        {
            started
                .servers
                .push(ServerProcess::start_command(&line, port)?);
        }
    }
    for i in 0..plan.rtbench_processes {
        // On a shared port each process's own address answers its /metrics
        // (the shared one answers from whichever process the kernel picks).
        let admin = match shared {
            Some(_) => Some(free_loopback_address()?),
            None => None,
        };
        let args = plan.process_args(&common, i, admin.as_deref());
        started
            .servers
            .push(started.placement.start_server(side, i, &args)?);
        started.args_of.push(args);
    }
    plan.load.target.urls = match &plan.subject {
        Subject::Url(url) => vec![url.clone()],
        _ if shared.is_some() => vec![format!("ws://{}", started.servers[0].addr)],
        _ => started
            .servers
            .iter()
            .map(|s| format!("ws://{}", s.addr))
            .collect(),
    };
    Ok(started)
}

/// A loopback address nothing listens on now.
fn free_loopback_address() -> anyhow::Result<String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .map_err(|e| anyhow::anyhow!("no free port: {e:#}"))
}

/// What the run's inputs need besides the plan and what it started.
pub struct Inputs<'a> {
    pub suite: &'a Suite,
    pub args: &'a Args,
    pub side: &'a Side,
    pub tuning: &'a std::collections::BTreeMap<String, tuning::Setting>,
    pub busy_before: Option<f64>,
}

/// Writes the run's inputs into the partial record `tmp`; returns the load
/// generator's scenario file and launch plan (None: its workers start here).
pub fn write_inputs(
    plan: &mut RunPlan,
    started: &Started,
    i: &Inputs,
    tmp: &Path,
) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let launch = started.placement.launch()?;
    if launch.is_some() {
        // Workers elsewhere connect from their own address.
        plan.load.target.sources.clear();
    }
    let server_args = started
        .servers
        .first()
        .map(|s| s.args.clone())
        .unwrap_or_default();
    let mut resolved = i.suite.clone();
    resolved.load = plan.load.clone();
    // The objectives are the load's now (suite's and --slo's together).
    resolved.slo = Default::default();
    resolved.server.args = server_args.clone();
    resolved.server.subject = Some(plan.subject.label());
    write_text(
        &tmp.join(rtbench_record::SCENARIO),
        &toml::to_string(&resolved).map_err(|e| anyhow::anyhow!("the resolved scenario: {e:#}"))?,
    )?;
    let load_file = tmp.join("load.toml");
    write_text(&load_file, &plan.load.to_toml())?;
    let launch_file = match &launch {
        Some(l) => {
            let f = tmp.join("launch.json");
            rtbench_record::write_json(&f, l)?;
            Some(f)
        }
        None => None,
    };
    let mut env = environment::of_run(
        i.tuning,
        i.args,
        &server_args,
        &plan.subject,
        &i.suite.tuning,
        plan.processes,
        i.side,
    );
    env.deployment = started.placement.deployment();
    env.machine_busy_before_pct = i.busy_before;
    env.server_niceness = started
        .servers
        .first()
        .filter(|s| s.pid() > 0)
        .and_then(|s| {
            rtbench_sys::process::Stat::read(rtbench_sys::process::Process::Pid(s.pid())).ok()
        })
        .map(|s| s.nice);
    env.roofline =
        rtbench_record::roofline::newest(&crate::root().join("results"), &crate::record::host_id())
            .map(|(n, _)| n);
    env.network_namespace = started
        .netns
        .as_ref()
        .map(|ns| namespace_record(ns, i.suite));
    rtbench_record::write_json(&tmp.join(rtbench_record::ENVIRONMENT), &env)?;
    Ok((load_file, launch_file))
}

/// The namespace as the record states it: its hash and its `net.*`
/// settings as read inside it.
fn namespace_record(ns: &Namespace, suite: &Suite) -> NetworkNamespace {
    NetworkNamespace {
        name: ns.name.clone(),
        ehash_buckets: ns.ehash_buckets,
        sysctls: suite
            .tuning
            .keys()
            .chain(
                [
                    "net.core.somaxconn",
                    "net.ipv4.ip_local_port_range",
                    "net.ipv4.tcp_rmem",
                    "net.ipv4.tcp_wmem",
                ]
                .map(String::from)
                .iter(),
            )
            .filter(|k| k.starts_with("net.") && !k.starts_with("net.netfilter."))
            .map(|k| (k.clone(), ns.read(k)))
            .collect(),
    }
}

fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
}

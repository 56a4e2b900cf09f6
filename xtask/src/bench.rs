//! `cargo xtask bench <suite> [--scale F | --connections N] [--rate R] [--hold S]
//! [--out DIR] [--tune] [--dashboard ADDR]`: one command from source to record.
//!
//! Build the release binaries; preflight (and `--tune`); start the server;
//! run the load generator while sampling the server and the machine every
//! second and serving the live page; stop everything, also on Ctrl-C or
//! failure; write the record (`record.rs`) atomically.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtbench_protocol::time::{compact_utc, now_ns};
use rtbench_record::endpoint::expand_sources;
use rtbench_record::load::{partial_dir, read_summary as read_load_summary};

use crate::preflight::{self, Needs};
use crate::record::{
    self, BenchSummary, Connections, Environment, ProcessFigures, RedisFigures, ServerFigures,
    SystemFigures,
};
use crate::sample::{self, Sample, Sampler};
use crate::server::{RedisProcess, ServerProcess};
use crate::subject::Subject;
use crate::suite::{self, Overrides, Suite, Variant};
use crate::{dashboard, flags, root, tuning};

/// The signal that interrupted the run (0: none).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// `cargo xtask bench`'s command line; a run reads its options from it.
#[derive(Debug, Clone, clap::Args)]
// `-5` reaches the value's parser, which says what is wrong with it.
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// A suite under suites/ (smoke, idle-1m, fanout, ...) or a suite file
    #[arg(value_name = "SUITE")]
    pub suite: String,
    #[command(flatten)]
    pub size: Size,
    /// Run only this variant [default: every variant in turn]
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// The record's directory [default: results/<suite>/<time>-<host>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Apply the suite's sysctls, run in a sized namespace [default: off]
    #[arg(long)]
    pub tune: bool,
    /// With --tune, stay on the host's network stack [default: off]
    #[arg(long)]
    pub host_net: bool,
    /// Measure this machine's roofline first [default: off]
    #[arg(long)]
    pub roofline: bool,
    /// rtbench, command:LINE or url:ws://... [default: the suite's]
    #[arg(long, value_name = "SPEC", value_parser = server_spec)]
    pub server: Option<String>,
    /// The clients' protocol [default: the suite's]
    #[arg(long, value_name = "PROTOCOL", value_parser = protocol())]
    pub protocol: Option<rtbench_record::scenario::Protocol>,
    /// Where the live page is served
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8091")]
    pub dashboard: String,
    /// This checkout's server against GIT_REF's, A B A B ... [default: off]
    #[arg(long, value_name = "GIT_REF")]
    pub versus: Option<String>,
    /// A B pairs a --versus run makes
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = flags::whole_number_from_1::<usize>)]
    pub pairs: usize,
    /// Where the parts run (ssh hosts: --hosts)
    #[arg(long = "target", value_name = "WHERE", value_enum, default_value_t = TargetFlag::Local, conflicts_with = "hosts")]
    pub target_flag: TargetFlag,
    /// Machines over ssh, listed as xtask/src/hosts.rs says [default: none]
    #[arg(long, value_name = "HOSTS.toml")]
    pub hosts: Option<PathBuf>,
    /// A container resource, repeatable [default: the suite's]
    #[arg(long = "limit", value_name = "ROLE.KEY=VALUE")]
    pub limits: Vec<String>,
}

/// How big the run is, over the suite's own figures; recorded with the run
/// (`Overrides`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Size {
    /// The suite's arrivals times F, rates kept [default: 1]
    #[arg(long, value_name = "F", value_parser = flags::positive_number, conflicts_with = "connections")]
    pub scale: Option<f64>,
    /// Arrivals in all, exactly N [default: the suite's]
    #[arg(long, value_name = "N", value_parser = flags::whole_number_from_1::<u64>)]
    pub connections: Option<u64>,
    /// Arrivals per second, every phase [default: the suite's]
    #[arg(long, value_name = "R", value_parser = flags::positive_number)]
    pub rate: Option<f64>,
    /// Seconds the connections are held [default: the suite's]
    #[arg(long, value_name = "S", value_parser = flags::number_from_0)]
    pub hold: Option<f64>,
    /// Server processes [default: as many as open-files limits need]
    #[arg(long, value_name = "P", value_parser = flags::whole_number_from_1::<u64>)]
    pub processes: Option<u64>,
}

impl Args {
    /// The run's size as recorded.
    pub fn overrides(&self) -> Overrides {
        let s = &self.size;
        Overrides {
            scale: s.scale,
            connections: s.connections,
            rate: s.rate,
            hold_s: s.hold,
            processes: s.processes,
        }
    }

    /// Where the parts run: `--hosts` or `--target`.
    pub fn target(&self) -> Target {
        match (&self.hosts, self.target_flag) {
            (Some(file), _) => Target::Hosts(file.clone()),
            (None, TargetFlag::Local) => Target::Local,
            (None, TargetFlag::Containers) => Target::Containers,
        }
    }
}

/// `--target`'s values. Remote hosts need a file, so they are `--hosts FILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetFlag {
    Local,
    Containers,
}

/// `--server`'s value, refused while parsing when `Subject` would refuse it.
fn server_spec(spec: &str) -> Result<String, String> {
    Subject::parse(spec).map(|_| spec.to_string())
}

/// `--protocol`'s value; the help lists the two.
fn protocol() -> impl clap::builder::TypedValueParser<Value = rtbench_record::scenario::Protocol> {
    use clap::builder::TypedValueParser;
    use rtbench_record::scenario::Protocol;
    clap::builder::PossibleValuesParser::new(["appwrite", "raw"]).map(|p| match p.as_str() {
        "raw" => Protocol::Raw,
        _ => Protocol::Appwrite,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Local,
    Containers,
    Hosts(PathBuf),
}

/// Where a run's server, Redis and load generator workers run. Dropped
/// after everything it started, it removes what it made.
pub enum Placement {
    Local,
    Containers(crate::containers::Docker),
    Hosts(crate::hosts::Fleet),
}

impl Placement {
    fn new(a: &Args, suite: &Suite, bus: bool) -> Result<Placement, String> {
        Ok(match &a.target() {
            Target::Local => Placement::Local,
            Target::Containers => {
                let spec = crate::containers::with_limits(&suite.containers, &a.limits)?;
                Placement::Containers(crate::containers::Docker::setup(&spec, bus)?)
            }
            Target::Hosts(file) => {
                Placement::Hosts(crate::hosts::Fleet::setup(file, &suite.tuning, a.tune)?)
            }
        })
    }

    fn start_redis(&self) -> Result<RedisProcess, String> {
        match self {
            Placement::Local => RedisProcess::start(),
            Placement::Containers(d) => d.start_redis(),
            Placement::Hosts(f) => f.start_redis(),
        }
    }

    fn start_server(&self, side: &Side, i: u64, args: &[String]) -> Result<ServerProcess, String> {
        match self {
            Placement::Local => ServerProcess::start(&side.server_bin, args),
            Placement::Containers(d) => d.start_server(i, args),
            Placement::Hosts(f) => f.start_server(i, args),
        }
    }

    /// Where the workers run, when not here.
    fn launch(&self) -> Result<Option<rtbench_record::launch::Launch>, String> {
        Ok(match self {
            Placement::Local => None,
            Placement::Containers(d) => Some(d.launch()),
            Placement::Hosts(f) => Some(f.launch()?),
        })
    }

    fn deployment(&self) -> rtbench_record::Deployment {
        match self {
            Placement::Local => rtbench_record::Deployment::default(),
            Placement::Containers(d) => d.deployment(),
            Placement::Hosts(f) => f.deployment(),
        }
    }
}

/// Which server a run starts, and where its record goes.
pub struct Side {
    pub server_bin: PathBuf,
    /// The commit the server was built from, when not this checkout's.
    pub commit: Option<String>,
    /// The record's directory, used as given.
    pub dir: Option<PathBuf>,
}

impl Default for Side {
    fn default() -> Side {
        Side {
            server_bin: crate::server_bin(),
            commit: None,
            dir: None,
        }
    }
}

/// What every bench invocation sets up before its runs, versus or not.
pub struct Prepared {
    pub suite: Suite,
    /// The suite's name: its file's stem.
    pub name: String,
    /// The variants to run; `[None]` for a suite without variants.
    pub variants: Vec<Option<Variant>>,
    /// One live page for the whole invocation, whichever run is going.
    pub live: dashboard::State,
}

/// Reads the suite, makes Ctrl-C end a run rather than the xtask, builds
/// the release binaries, serves the live page, and picks the variants.
pub fn prepare(a: &Args) -> Result<Prepared, String> {
    let path = suite::resolve(&a.suite)?;
    let suite = suite::load(&path)?;
    let name = path
        .file_stem()
        .map_or("suite".into(), |s| s.to_string_lossy().into_owned());
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    crate::build_release()?;
    let live: dashboard::State = Arc::new(Mutex::new(dashboard::History::default()));
    match dashboard::serve(&a.dashboard, live.clone()) {
        Ok(addr) => eprintln!("xtask: live dashboard: http://{addr}/"),
        Err(e) => eprintln!("xtask: no live dashboard: {e}"),
    }
    let variants: Vec<Option<Variant>> = match &a.variant {
        Some(want) => match suite.variants.iter().find(|v| v.name == *want) {
            Some(v) => vec![Some(v.clone())],
            None => {
                let names: Vec<&str> = suite.variants.iter().map(|v| v.name.as_str()).collect();
                return Err(format!(
                    "suite `{name}` has no variant `{want}`; variants: {}",
                    names.join(", ")
                ));
            }
        },
        None if suite.variants.is_empty() => vec![None],
        None => suite.variants.iter().cloned().map(Some).collect(),
    };
    Ok(Prepared {
        suite,
        name,
        variants,
        live,
    })
}

/// Runs every variant of a suite; exits 130 when interrupted. (`--versus`
/// is `versus::task`'s.)
pub fn task(a: Args) -> Result<(), String> {
    let Prepared {
        suite,
        name,
        variants,
        live: state,
    } = prepare(&a)?;
    let needs = &suite.setup;
    crate::setup::ensure_debian(&needs.apt, &format!("suite {name}"))?;
    for p in &needs.pip {
        crate::setup::ensure_python_module(&p.module, &p.package, &format!("suite {name}"))?;
    }
    for package in &needs.cargo {
        crate::cargo(&["build", "--release", "--quiet", "-p", package])?;
    }
    if a.roofline {
        let dir = crate::roofline::measure(&crate::roofline::Args {
            host_net: a.host_net,
            ..crate::roofline::Args::default()
        })?;
        eprintln!("xtask: roofline measured: {}", dir.display());
    }
    for v in &variants {
        let (dir, complete) = run_one(&suite, &name, v.as_ref(), &a, &state, &Side::default())?;
        println!("{}", dir.display());
        if !complete && INTERRUPTED.load(Ordering::SeqCst) != 0 {
            std::process::exit(130);
        }
    }
    Ok(())
}

/// Connections a server process is given at most: its open-files capacity
/// less a margin.
fn connections_per_process() -> u64 {
    preflight::server_capacity() * 95 / 100
}

pub fn run_one(
    suite: &Suite,
    name: &str,
    variant: Option<&Variant>,
    a: &Args,
    state: &dashboard::State,
    side: &Side,
) -> Result<(PathBuf, bool), String> {
    let mut load = suite.load.clone();
    suite::apply(&a.overrides(), &mut load)?;
    let total = load.total_arrivals();
    let subject = Subject::parse(
        a.server
            .as_deref()
            .or(variant.and_then(|v| v.server.as_deref()))
            .or(suite.server.subject.as_deref())
            .unwrap_or("rtbench"),
    )?;
    if let Some(v) = variant {
        if let Some(p) = v.protocol {
            load.target.protocol = p;
        }
        if let Some(e) = v.echo_interval_s {
            load.session.echo_interval_s = e;
        }
        if let Some(r) = v.reconnect {
            load.session.reconnect = r;
        }
    }
    if let Some(p) = a.protocol {
        load.target.protocol = p;
    }
    if load.target.protocol == rtbench_record::scenario::Protocol::Raw
        && !load.publishers.is_empty()
    {
        eprintln!(
            "xtask: protocol raw: the suite's publishers are left out (they publish Appwrite events)"
        );
        load.publishers.clear();
    }
    if !subject.is_rtbench() {
        if a.target() != Target::Local {
            return Err(format!(
                "{}: a server other than rtbench runs locally only",
                subject.label()
            ));
        }
        if a.size.processes.is_some_and(|p| p > 1) || a.versus.is_some() {
            return Err(format!(
                "{}: --processes and --versus are for rtbench-server",
                subject.label()
            ));
        }
    }
    // A plan that kills servers gets as many spare processes, so the
    // survivors can hold every connection.
    let processes = if subject.is_rtbench() {
        a.size.processes.unwrap_or_else(|| {
            total.div_ceil(connections_per_process()).max(1) + crate::faults::spares(&suite.faults)
        })
    } else {
        1
    };
    if (suite.server.shared_port || !suite.faults.is_empty())
        && (a.target() != Target::Local || !subject.is_rtbench())
    {
        return Err(
            "a shared port and a fault plan need rtbench-server processes started here (no --target, no --hosts, --server rtbench)"
                .into(),
        );
    }
    let mut server_args = suite.server.args.clone();
    // The server's cap as a whole, when the variant sets one.
    let mut cap: Option<u64> = None;
    if let Some(v) = variant {
        server_args.extend(v.server_args.iter().cloned());
        if let Some(p) = v.ping_interval_s {
            load.session.ping_interval_s = p;
        }
        cap = v.cap_fraction.map(|f| (total as f64 * f).ceil() as u64);
    }
    if cap.is_some() && !subject.is_rtbench() {
        return Err(
            "a connection cap is rtbench-server's --max-connections: run it with --server rtbench"
                .into(),
        );
    }
    let label = match variant {
        Some(v) => format!("{name} ({})", v.name),
        None => name.to_string(),
    };
    if let Ok(mut h) = state.lock() {
        h.reset();
    }
    eprintln!(
        "xtask: bench {label}: {total} connections, {processes} server process(es), server {}",
        subject.label()
    );

    // Several processes share events over Redis, as Appwrite's do; so do
    // publishers that publish straight to the bus.
    let bus = processes > 1
        || load
            .publishers
            .iter()
            .any(|p| p.via == rtbench_record::scenario::Via::Bus);
    if bus && a.target() == Target::Local {
        crate::setup::ensure(&[crate::setup::REDIS])?;
    }
    // Checked before anything starts: targets exist, restarts follow kills.
    let mut plan = crate::faults::Plan::new(
        suite.faults.clone(),
        processes,
        bus,
        suite.server.shared_port,
    )?;
    let (tuning, tune_errors) = tuning::run(&suite.tuning, a.tune);
    if !tune_errors.is_empty() {
        return Err(format!(
            "--tune could not apply:\n{}",
            tune_errors.join("\n")
        ));
    }
    // `--tune` runs here in a network namespace sized for the run.
    let namespaced = a.tune && !a.host_net && a.target() == Target::Local;
    let checks = preflight::run(&Needs {
        connections: total,
        sources: expand_sources(&load.target.sources)?.len(),
        server_processes: processes,
        namespace: namespaced,
    });
    preflight::verdict(&checks)?;
    // A run begins on a quiet machine, and says how busy it was: a large
    // run waits up to 3 minutes for the last one's sockets to be torn down,
    // a small one a few seconds.
    let patience = Duration::from_secs((total / 5_000).clamp(3, 180));
    let busy_before = sample::wait_until_quiet(20.0, patience);
    // Declared before every process of the run: dropped (removed) after them.
    let netns = if namespaced {
        let ns = crate::netns::Namespace::create(total, &suite.tuning)?;
        eprintln!(
            "xtask: network namespace {}: {} buckets in its socket hash",
            ns.name, ns.ehash_buckets
        );
        Some(ns)
    } else {
        None
    };
    // Before anything is written or started: an engine or host that does not
    // answer is one line. Declared before what it starts, so that it is
    // dropped (and removes what it made) after them.
    let placement = Placement::new(a, suite, bus)?;

    let stamp = compact_utc(now_ns());
    // Runs elsewhere are their own history: `-containers`, `-hosts`.
    let placed = match a.target() {
        Target::Local => "",
        Target::Containers => "-containers",
        Target::Hosts(_) => "-hosts",
    };
    let dir = match (&side.dir, &a.out, variant) {
        (Some(d), _, _) => d.clone(),
        (None, out, variant) => match (out, variant) {
            (Some(o), None) => o.clone(),
            (Some(o), Some(v)) => PathBuf::from(format!("{}-{}", o.display(), v.name)),
            (None, v) => root().join("results").join(name).join(match v {
                Some(v) => format!("{stamp}-{}-{}{placed}", crate::record::host_id(), v.name),
                None => format!("{stamp}-{}{placed}", crate::record::host_id()),
            }),
        },
    };
    if dir.exists() {
        return Err(format!("{} exists already", dir.display()));
    }
    let tmp = partial_dir(&dir);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    record::write_json(&tmp.join("preflight.json"), &checks)?;

    let mut redis = if bus {
        Some(placement.start_redis()?)
    } else {
        None
    };
    if let Some(r) = &redis {
        server_args.extend(["--bus".into(), r.url()]);
        load.target.bus = Some(r.url());
    }
    if processes > 1 {
        server_args.extend(["--threads".into(), "1".into()]);
    }
    let mut servers = Vec::new();
    // One port for every process (SO_REUSEPORT) when the suite says so.
    let shared_port = if suite.server.shared_port {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        server_args.splice(
            0..0,
            [
                "--listen".to_string(),
                format!("127.0.0.1:{port}"),
                "--reuse-port".into(),
            ],
        );
        Some(port)
    } else {
        None
    };
    let mut args_of: Vec<Vec<String>> = Vec::new();
    let rtbench_processes = match &subject {
        Subject::Rtbench => processes,
        Subject::Command(line) => {
            servers.push(ServerProcess::start_command(line)?);
            0
        }
        Subject::Url(_) => 0,
    };
    for i in 0..rtbench_processes {
        let mut args = server_args.clone();
        if shared_port.is_some() {
            // Each process's own address for its /metrics: the shared port
            // answers from whichever process the kernel picks.
            let admin = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?;
            args.extend(["--admin-listen".into(), admin.to_string()]);
        }
        if let Some(cap) = cap {
            // Split exactly: the first `cap % processes` take one more.
            let share = cap / processes + u64::from(i < cap % processes);
            args.extend(["--max-connections".into(), share.to_string()]);
        }
        servers.push(placement.start_server(side, i, &args)?);
        args_of.push(args);
    }
    load.target.urls = match &subject {
        Subject::Url(url) => vec![url.clone()],
        _ if shared_port.is_some() => vec![format!("ws://{}", servers[0].addr)],
        _ => servers.iter().map(|s| format!("ws://{}", s.addr)).collect(),
    };
    let launch = placement.launch()?;
    if launch.is_some() {
        // Workers elsewhere connect from their own address.
        load.target.sources.clear();
    }
    let mut resolved = suite.clone();
    resolved.load = load.clone();
    resolved.server.args = servers.first().map(|s| s.args.clone()).unwrap_or_default();
    resolved.server.subject = Some(subject.label());
    std::fs::write(
        tmp.join("scenario.toml"),
        toml::to_string(&resolved).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let load_file = tmp.join("load.toml");
    std::fs::write(&load_file, load.to_toml()).map_err(|e| e.to_string())?;

    let launch_file = match &launch {
        Some(l) => {
            let f = tmp.join("launch.json");
            record::write_json(&f, l)?;
            Some(f)
        }
        None => None,
    };
    let server_args = servers.first().map(|s| s.args.clone()).unwrap_or_default();
    let mut env = environment(
        &tuning,
        a,
        &server_args,
        &subject,
        &suite.tuning,
        processes,
        side,
    );
    env.deployment = placement.deployment();
    env.machine_busy_before_pct = busy_before;
    env.roofline =
        rtbench_record::roofline::newest(&root().join("results"), &crate::record::host_id())
            .map(|(n, _)| n);
    env.network_namespace = netns.as_ref().map(|ns| rtbench_record::NetworkNamespace {
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
    });
    record::write_json(&tmp.join("environment.json"), &env)?;

    let mut sampler = Sampler::new(
        servers.iter().map(|s| (s.pid(), s.metrics_addr)).collect(),
        redis.as_ref().map(RedisProcess::pid),
    );
    let mut samples: Vec<Sample> = vec![sampler.sample()];
    // The kernel's TCP counters where the servers' sockets live (their
    // network namespace when they run in one), before and after the load.
    // Redis first: a fault plan may kill any server, never Redis.
    let net_dir = redis
        .as_ref()
        .map(RedisProcess::pid)
        .into_iter()
        .chain(servers.iter().map(|s| s.pid()))
        .find(|&p| p != 0)
        .map_or("/proc/net".to_string(), |p| format!("/proc/{p}/net"));
    let tcp_before = rtbench_record::host::tcp_counters(&net_dir);
    let load_dir = tmp.join("loadgen");
    let mut loadgen = start_loadgen(&load_file, &load_dir, launch_file.as_deref())?;
    let load_started = Instant::now();
    let load_offset_s = samples[0].t_s;
    let mut forwarded = false;
    let mut exits: Vec<rtbench_record::ProcessExit> = Vec::new();
    let mut schedule_origin: Option<Instant> = None;
    let exit = loop {
        // Every process the run started is watched: one that ends early is
        // said at once and named in the record.
        let t_s = load_offset_s + load_started.elapsed().as_secs_f64();
        let mut ended: Vec<(String, u32, String)> = servers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((format!("server {i}"), s.pid(), s.poll_exit()?)))
            // A process the plan killed ended as planned.
            .filter(|(_, pid, _)| !plan.killed.contains(pid))
            .collect();
        if let Some(r) = redis.as_mut()
            && let Some(status) = r.poll_exit()
        {
            ended.push(("redis".into(), r.pid(), status));
        }
        for (role, pid, status) in ended {
            eprintln!(
                "xtask: FAULT at {t_s:.1} s: {role} (pid {pid}) ended: {status}; the run goes on without it and is not complete"
            );
            exits.push(rtbench_record::ProcessExit {
                t_s,
                role,
                pid,
                status,
            });
        }
        // The schedule's clock: from the load generator's first second on,
        // this process's own (a paused process must not stop the plan).
        if schedule_origin.is_none()
            && let Some(t) = schedule_second(&partial_dir(&load_dir))
        {
            schedule_origin = Some(Instant::now() - Duration::from_secs_f64(t));
        }
        if let Some(origin) = schedule_origin {
            let t = origin.elapsed().as_secs_f64();
            plan.step(t, t_s, &mut servers, redis.as_ref(), |i| {
                placement.start_server(side, i as u64, &args_of[i])
            })?;
            for (i, s) in servers.iter().enumerate() {
                sampler.set_server(i, s.pid(), s.metrics_addr, !plan.killed.contains(&s.pid()));
            }
        }
        std::thread::sleep(Duration::from_millis(250));
        let sig = INTERRUPTED.load(Ordering::SeqCst);
        if sig != 0 && !forwarded {
            forwarded = true;
            eprintln!(
                "xtask: interrupted: stopping the load generator (it writes an incomplete record)"
            );
            // SAFETY: signalling our own child.
            unsafe { libc::kill(loadgen.id() as i32, libc::SIGINT) };
        }
        if let Some(status) = loadgen.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if samples
            .last()
            .is_none_or(|s| sampler_due(s, load_started, load_offset_s))
        {
            let s = sampler.sample();
            publish_state(state, &s, &partial_dir(&load_dir), &label, &exits);
            samples.push(s);
        }
    };
    plan.finish();
    samples.push(sampler.sample());
    let tcp_after = rtbench_record::host::tcp_counters(&net_dir);
    // The servers' work over the whole run, read once the load has stopped
    // (every process answers then): deliveries to set against what the
    // clients received, syscalls and wake-ups for the costs.
    let totals: Option<sample::Work> = servers
        .iter()
        .map(|s| {
            let v = crate::server::metrics_within(
                s.metrics_addr,
                &sample::WORK,
                Duration::from_secs(5),
            )
            .ok()?;
            let v: Option<Vec<u64>> = v.into_iter().collect();
            v?.try_into().ok()
        })
        .try_fold(
            [0u64; sample::WORK.len()],
            |acc, v: Option<sample::Work>| {
                let v = v?;
                Some(std::array::from_fn(|k| acc[k] + v[k]))
            },
        );
    let server_deliveries = totals.map(|t| t[3]);
    for s in &mut servers {
        s.stop(Duration::from_secs(15));
    }
    drop(servers);
    drop(redis);
    rtbench_record::series::write_csv(&tmp.join(record::SERVER_CSV), &samples)?;

    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    let load_summary = read_load_summary(&load_dir).map_err(|e| {
        format!(
            "the load generator left no record ({exit}): {e}; see {}",
            partial_dir(&load_dir).display()
        )
    })?;
    // The hold on the sampler's clock: the load generator's schedule starts a
    // moment after it is launched, and it records exactly when.
    let schedule_s = load_summary
        .schedule_start_unix_ns
        .saturating_sub(sampler.start_unix_ns) as f64
        / 1e9;
    let hold_from = schedule_s + load.arrivals_end_s() + 1.0;
    let hold_to = schedule_s + load.hold_end_s() - 0.5;
    let mut summary = summarize(
        name,
        variant,
        suite,
        a,
        &load_summary,
        &samples,
        (hold_from, hold_to),
        interrupted,
        totals,
    );
    summary.errors.lost = server_deliveries.map(|d| d as i64 - load_summary.events.received as i64);
    summary.kernel_tcp = tcp_after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(tcp_before.get(k).copied().unwrap_or(*v));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect();
    // A machine saturated while connections arrive makes connect latency
    // a measure of the machine: the limit says so, whatever the hold did.
    let arrivals_busy = mean(
        samples
            .iter()
            .filter(|s| s.t_s >= schedule_s + 1.0 && s.t_s <= schedule_s + load.arrivals_end_s())
            .map(|s| s.machine_cpu_pct),
    );
    if let Some(busy) = arrivals_busy.filter(|b| *b >= SATURATED_PCT)
        && !summary.client_bottleneck.bottleneck
    {
        lead_limit(
            &mut summary.limit,
            format!(
                "the machine's CPU while connections arrived: {busy:.0}% busy at {:.0} arrivals/s (the servers' and the clients' kernel share it); connect latency is the saturated machine's",
                load_summary.connections.connect_rate,
            ),
            "; over the hold, ",
        );
    }
    // Connection attempts the kernel dropped at a full accept queue wait
    // for a SYN retransmit (1 s, then 3 s, ...): connect latency then
    // measures the server's accepting, not its work.
    if let Some(&dropped) = summary.kernel_tcp.get("TcpExt.ListenOverflows")
        && !summary.client_bottleneck.bottleneck
    {
        lead_limit(
            &mut summary.limit,
            format!(
                "the servers' accept queues: the kernel dropped {dropped} connection attempts at a full queue (ListenOverflows), each retried after a SYN timeout"
            ),
            "; ",
        );
    }
    if !plan.done.is_empty() {
        let rows: Vec<rtbench_record::load::TimeseriesRow> =
            rtbench_record::series::read_csv(&load_dir.join("timeseries.csv")).unwrap_or_default();
        summary.failover = crate::faults::failover(
            &plan.done,
            &rows,
            &samples,
            schedule_s,
            load.hold_end_s(),
            &load_summary,
        );
    }
    if !plan.killed.is_empty() {
        // A killed process's delivery count died with it: the servers'
        // deliveries against the clients' would be meaningless.
        summary.errors.lost = None;
    }
    summary.faults_injected = std::mem::take(&mut plan.done);
    summary.server_under_test = subject.label();
    summary.unmeasured = subject.unmeasured();
    let end_s = samples.last().map_or(0.0, |s| s.t_s);
    exits.extend(
        load_summary
            .worker_exits
            .iter()
            .map(|w| rtbench_record::ProcessExit {
                t_s: end_s,
                role: match w.host.as_str() {
                    "" | "localhost" => format!("worker {}", w.worker),
                    host => format!("worker {} on {host}", w.worker),
                },
                pid: w.pid,
                status: w.status.clone(),
            }),
    );
    if !exits.is_empty() {
        summary.complete = false;
    }
    summary.process_exits = exits;
    record::write_json(&tmp.join("summary.json"), &summary)?;
    std::fs::rename(&tmp, &dir).map_err(|e| format!("moving {} into place: {e}", tmp.display()))?;
    print_headline(&summary);
    Ok((dir, summary.complete))
}

fn sampler_due(last: &Sample, started: Instant, offset: f64) -> bool {
    started.elapsed().as_secs_f64() + offset >= last.t_s + 1.0
}

fn start_loadgen(scenario: &Path, out: &Path, launch: Option<&Path>) -> Result<Child, String> {
    let mut cmd = crate::loadgen_run(scenario, out);
    if let Some(l) = launch {
        cmd.arg("--launch").arg(l);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start the load generator: {e}"))
}

/// Merges the load generator's latest second with the server sample.
/// Puts `head` before the limit found so far, joined by `joiner`.
fn lead_limit(limit: &mut Option<String>, head: String, joiner: &str) {
    *limit = Some(match limit.take() {
        Some(rest) => format!("{head}{joiner}{rest}"),
        None => head,
    });
}

/// The load generator's current schedule second, from its live file.
fn schedule_second(load_partial: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(load_partial.join("live.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["t"].as_f64()
}

fn publish_state(
    state: &dashboard::State,
    s: &Sample,
    load_partial: &Path,
    label: &str,
    exits: &[rtbench_record::ProcessExit],
) {
    let mut v: serde_json::Value = std::fs::read_to_string(load_partial.join("live.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let t = v.get("t").and_then(serde_json::Value::as_u64);
    if let (Some(obj), Ok(serde_json::Value::Object(sv))) =
        (v.as_object_mut(), serde_json::to_value(s))
    {
        obj.extend(sv);
        obj.insert("scenario".into(), label.into());
        obj.insert(
            "cores".into(),
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .into(),
        );
        let faults: Vec<String> = exits
            .iter()
            .map(|e| {
                format!(
                    "FAULT at {:.1} s: {} (pid {}) ended: {}",
                    e.t_s, e.role, e.pid, e.status
                )
            })
            .collect();
        obj.insert("faults".into(), faults.into());
    }
    if let Ok(mut g) = state.lock() {
        g.update(t, v.to_string());
    }
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    name: &str,
    variant: Option<&Variant>,
    suite: &Suite,
    a: &Args,
    l: &rtbench_record::load::Summary,
    samples: &[Sample],
    hold: (f64, f64),
    interrupted: i32,
    totals: Option<sample::Work>,
) -> BenchSummary {
    let before = samples.first().cloned().unwrap_or_default();
    // Memory is judged while the connections are held: closing allocates too
    // (close frames, timers), and that is not what holding a connection costs.
    let in_hold: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_s >= hold.0 && s.t_s <= hold.1)
        .collect();
    let judged: Vec<&Sample> = if in_hold.is_empty() {
        samples.iter().collect()
    } else {
        in_hold.clone()
    };
    // The server's own count; a server that exports none (not rtbench) is
    // judged by the clients' count of open connections.
    let peak_conns = match judged.iter().map(|s| s.server_connections).max() {
        Some(n) if n > 0 => n,
        _ => l.connections.peak_open,
    };
    let rss_peak = judged.iter().map(|s| s.server_rss_kib).max().unwrap_or(0);
    let mem_peak = judged.iter().map(|s| s.mem_used_kib).max().unwrap_or(0);
    let holding: Vec<f64> = in_hold.iter().map(|s| s.server_cpu_pct).collect();
    let per = |delta: u64| {
        if peak_conns > 0 {
            delta as f64 / peak_conns as f64
        } else {
            0.0
        }
    };
    BenchSummary {
        format_version: record::FORMAT_VERSION,
        scenario: name.to_string(),
        variant: variant.map(|v| v.name.clone()),
        description: suite.description.trim().to_string(),
        complete: l.complete && interrupted == 0,
        stopped_by: match interrupted {
            0 => l.stopped_by.clone(),
            libc::SIGINT => Some("SIGINT".into()),
            _ => Some("SIGTERM".into()),
        },
        started_at: l.started_at.clone(),
        host: crate::record::host_id(),
        overrides: a.overrides(),
        connections: Connections {
            target: l.connections.target,
            peak: l.connections.peak_open,
            held: l.connections.held,
            failed: l.connections.failed,
            time_to_target_s: l.connections.time_to_target_s,
        },
        connect_ms: record::latency(&l.connect_ms),
        delivery_ms: record::latency(&l.delivery_ms),
        round_trip_ms: record::latency(&l.echo_ms),
        reconnect_ms: record::latency(&l.reconnect_ms),
        deliveries_per_s: l.events.per_second,
        server: ServerFigures {
            processes: samples.first().map_or(1, |s| s.per_process.len() as u64),
            per_process: per_process(samples, &judged),
            redis: samples
                .iter()
                .any(|s| s.redis_rss_kib > 0)
                .then(|| RedisFigures {
                    rss_peak_kib: judged.iter().map(|s| s.redis_rss_kib).max().unwrap_or(0),
                    cpu_holding_pct: mean(in_hold.iter().map(|s| s.redis_cpu_pct)),
                }),
            rss_before_kib: before.server_rss_kib,
            rss_peak_kib: rss_peak,
            kib_per_connection: per(rss_peak.saturating_sub(before.server_rss_kib)),
            cpu_holding_pct: mean(holding.iter().copied()),
        },
        system: SystemFigures {
            mem_used_before_kib: before.mem_used_kib,
            mem_used_peak_kib: mem_peak,
            kib_per_connection: per(mem_peak.saturating_sub(before.mem_used_kib)),
            tcp_mem_peak_kib: judged.iter().map(|s| s.tcp_mem_kib).max().unwrap_or(0),
        },
        errors: record::errors(l),
        client_bottleneck: l.client_bottleneck.clone(),
        costs: costs(&in_hold, totals, l),
        loadgen: rtbench_record::LoadgenFigures {
            kib_per_connection: (l.connections.peak_open > 0)
                .then_some(l.loadgen.kib_per_connection),
            workers: l.workers,
            cpu_s: l.loadgen.cpu_s,
            worker_cpu_max_pct: l.loadgen.worker_cpu_max_pct,
        },
        limit: limit(&in_hold, l),
        server_under_test: "rtbench".into(),
        unmeasured: Vec::new(),
        process_exits: Vec::new(),
        kernel_tcp: Default::default(),
        faults_injected: Vec::new(),
        failover: None,
    }
}

/// What limited the run: the load generator (its self-check fired), the
/// machine's CPU (busy over the hold while the client kept its schedule:
/// the server's figures are its limit here), or nothing.
fn limit(in_hold: &[&Sample], l: &rtbench_record::load::Summary) -> Option<String> {
    if l.client_bottleneck.bottleneck {
        return Some(format!(
            "the load generator: {}",
            l.client_bottleneck.reasons.join("; ")
        ));
    }
    let busy = mean(in_hold.iter().skip(1).map(|s| s.machine_cpu_pct))?;
    let server = mean(in_hold.iter().skip(1).map(|s| s.server_cpu_pct)).unwrap_or(0.0);
    Some(if busy >= SATURATED_PCT {
        format!(
            "the machine's CPU: {busy:.0}% busy over the hold (the servers {:.2} cores) while the load generator kept its schedule; the server's figures are its limit on this machine",
            server / 100.0
        )
    } else {
        format!(
            "none: the machine's CPU was {busy:.0}% busy over the hold (the servers {:.2} cores); more load would find more",
            server / 100.0
        )
    })
}

/// Machine CPU busy (100 = every core) from which a run is CPU-bound.
const SATURATED_PCT: f64 = 90.0;

/// What the work cost. Per delivery: the servers' CPU over the hold
/// divided by the deliveries the clients received per second, and their
/// syscalls and wake-ups over the whole run divided by their deliveries
/// (`totals`: `sample::WORK`'s counters, read at the end).
/// In a run without events, the same per ping, over the hold. The load
/// generator's syscalls are divided the same way over its whole run.
fn costs(
    in_hold: &[&Sample],
    totals: Option<sample::Work>,
    l: &rtbench_record::load::Summary,
) -> rtbench_record::Costs {
    let cpu_pct = mean(in_hold.iter().skip(1).map(|s| s.server_cpu_pct));
    let per = |x: f64, n: f64| (n > 0.0).then(|| x / n);
    let c = &l.counters;
    let loadgen_syscalls = (c.reads + c.writes) as f64;
    let mut out = rtbench_record::Costs::default();
    if l.events.received > 0 {
        out.deliveries = totals.map_or(l.events.received, |t| t[3]);
        out.server_cpu_us_per_delivery = cpu_pct.and_then(|p| per(p * 1e4, l.events.per_second));
        if let Some([reads, writes, wakeups, deliveries, ..]) = totals {
            out.server_syscalls_per_delivery = per((reads + writes) as f64, deliveries as f64);
            out.server_wakeups_per_delivery = per(wakeups as f64, deliveries as f64);
        }
        out.loadgen_syscalls_per_delivery = per(loadgen_syscalls, l.events.received as f64);
    } else if let (Some(first), Some(last)) = (in_hold.first(), in_hold.last()) {
        let pings = last.server_pongs.saturating_sub(first.server_pongs);
        let span = last.t_s - first.t_s;
        let syscalls = (last.server_reads + last.server_writes)
            .saturating_sub(first.server_reads + first.server_writes);
        out.pings = pings;
        out.server_cpu_us_per_ping = cpu_pct.and_then(|p| per(p * 1e4, pings as f64 / span));
        out.server_syscalls_per_ping = per(syscalls as f64, pings as f64);
        out.loadgen_syscalls_per_ping = per(loadgen_syscalls, c.pongs as f64);
    }
    out
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| sum / n as f64)
}

/// Each server process: its peak connections and RSS while holding, and the
/// CPU it used over the whole run.
fn per_process(samples: &[Sample], judged: &[&Sample]) -> Vec<ProcessFigures> {
    let n = samples.first().map_or(0, |s| s.per_process.len());
    (0..n)
        .map(|i| ProcessFigures {
            connections_peak: judged
                .iter()
                .filter_map(|s| s.per_process.get(i))
                .map(|p| p.0)
                .max()
                .unwrap_or(0),
            rss_peak_kib: judged
                .iter()
                .filter_map(|s| s.per_process.get(i))
                .map(|p| p.1)
                .max()
                .unwrap_or(0),
            cpu_s: samples
                .last()
                .and_then(|s| s.per_process.get(i))
                .map_or(0.0, |p| p.2),
        })
        .collect()
}

fn environment(
    tuning: &std::collections::BTreeMap<String, tuning::Setting>,
    a: &Args,
    server_args: &[String],
    subject: &Subject,
    profile: &std::collections::BTreeMap<String, String>,
    processes: u64,
    side: &Side,
) -> Environment {
    let cmd = |c: &str, args: &[&str]| {
        Command::new(c)
            .args(args)
            .current_dir(root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mut sysctls: std::collections::BTreeMap<String, Option<String>> = [
        "fs.file-max",
        "fs.nr_open",
        "net.core.somaxconn",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.netfilter.nf_conntrack_max",
    ]
    .iter()
    .map(|k| (k.to_string(), tuning::read(k)))
    .collect();
    for k in profile.keys() {
        sysctls.insert(k.clone(), tuning::read(k));
    }
    let mut soft = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut soft) };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Environment {
        format_version: record::FORMAT_VERSION,
        host: crate::record::host_id(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
            .unwrap_or("")
            .trim()
            .to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_kib: preflight::meminfo("MemTotal").unwrap_or(0),
        nofile_soft: soft.rlim_cur,
        nofile_hard: soft.rlim_max,
        sysctls,
        tuning: tuning.clone(),
        tuning_applied: a.tune,
        rustc: cmd("rustc", &["--version"]),
        git_commit: side
            .commit
            .clone()
            .unwrap_or_else(|| cmd("git", &["rev-parse", "HEAD"])),
        // A versus side is built from a clean worktree of its commit. Files
        // git does not track (records being written, say) build nothing: a
        // tree is dirty when a tracked file differs from the commit.
        git_dirty: side.commit.is_none()
            && !cmd("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        server_version: if subject.is_rtbench() {
            cmd(side.server_bin.to_str().unwrap_or(""), &["--version"])
        } else {
            subject.label()
        },
        server_args: server_args.to_vec(),
        server_processes: processes,
        loadgen_version: cmd(
            root()
                .join("target/release/rtbench-loadgen")
                .to_str()
                .unwrap_or(""),
            &["--version"],
        ),
        overrides: a.overrides(),
        deployment: Default::default(),
        network_namespace: None,
        roofline: None,
        machine_busy_before_pct: None,
    }
}

fn print_headline(s: &BenchSummary) {
    let c = &s.connections;
    eprintln!(
        "xtask: {}{} {}: peak {} / {} connections, held {}, failed {}, time to target {}",
        s.scenario,
        s.variant
            .as_ref()
            .map_or(String::new(), |v| format!(" ({v})")),
        if s.complete { "complete" } else { "INCOMPLETE" },
        c.peak,
        c.target,
        c.held,
        c.failed,
        c.time_to_target_s
            .map_or("not reached".into(), |t| format!("{t:.0} s")),
    );
    eprintln!(
        "xtask: connect p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms; delivery p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms, {:.0} deliveries/s",
        s.connect_ms.p50,
        s.connect_ms.p99,
        s.connect_ms.p999,
        s.delivery_ms.p50,
        s.delivery_ms.p99,
        s.delivery_ms.p999,
        s.deliveries_per_s
    );
    eprintln!(
        "xtask: server {:.2} KiB/connection, CPU while holding {}; whole machine {:.2} KiB/connection",
        s.server.kib_per_connection,
        s.server
            .cpu_holding_pct
            .map_or("unknown (no sample in the hold)".into(), |c| format!(
                "{c:.1}%"
            )),
        s.system.kib_per_connection
    );
    if s.reconnect_ms.count > 0 {
        eprintln!(
            "xtask: reconnect (loss to open again) p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms ({} reconnections)",
            s.reconnect_ms.p50, s.reconnect_ms.p99, s.reconnect_ms.p999, s.reconnect_ms.count
        );
    }
    if s.round_trip_ms.count > 0 {
        eprintln!(
            "xtask: round trip (ping or echo) p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms ({} samples)",
            s.round_trip_ms.p50, s.round_trip_ms.p99, s.round_trip_ms.p999, s.round_trip_ms.count
        );
    }
    if s.server_under_test != "rtbench" {
        eprintln!("xtask: server under test: {}", s.server_under_test);
    }
    for u in &s.unmeasured {
        eprintln!("xtask: not measured: {u}");
    }
    for e in &s.process_exits {
        eprintln!(
            "xtask: FAULT: {} (pid {}) ended at {:.1} s: {}",
            e.role, e.pid, e.t_s, e.status
        );
    }
    let c = &s.costs;
    let show = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
    if c.deliveries > 0 {
        eprintln!(
            "xtask: per delivery: server {} us CPU, {} syscalls, {} wake-ups; load generator {} syscalls",
            show(c.server_cpu_us_per_delivery),
            show(c.server_syscalls_per_delivery),
            show(c.server_wakeups_per_delivery),
            show(c.loadgen_syscalls_per_delivery)
        );
    } else if c.pings > 0 {
        eprintln!(
            "xtask: per ping: server {} us CPU, {} syscalls; load generator {} syscalls",
            show(c.server_cpu_us_per_ping),
            show(c.server_syscalls_per_ping),
            show(c.loadgen_syscalls_per_ping)
        );
    }
    if !s.kernel_tcp.is_empty() {
        let counts: Vec<String> = s
            .kernel_tcp
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        eprintln!(
            "xtask: kernel TCP counters over the run: {}",
            counts.join(", ")
        );
    }
    if let Some(l) = &s.limit {
        eprintln!("xtask: limit: {l}");
    }
    for r in &s.client_bottleneck.reasons {
        eprintln!("xtask: CLIENT BOTTLENECK: {r}");
    }
}

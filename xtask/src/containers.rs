//! `cargo xtask bench <suite> --on containers`: the server, Redis and
//! every load generator worker as containers on a private (internal) Docker
//! network, each with fixed resources, so a run is the same on a laptop and a
//! CI runner. The containers are made and removed with `testcontainers`; the
//! engine's API (`bollard`, which it carries) does the little it does not:
//! the run's internal network, a container's pid and state.
//!
//! The load generator's controller stays on this machine. Each worker
//! container runs `rtbench-loadgen worker --listen`, and the launch plan
//! names its address: the controller connects, sends the plan, reads the
//! JSON lines, and closes its side to stop it.
//!
//! Images are built here, from the release binaries and the shared libraries
//! they load (`FROM scratch`, `engine::build_image`), so nothing needs a
//! registry; Redis's image is built the same way from Debian's
//! redis-server. Every container and the network carry the label
//! `rtbench.run=<xtask pid>-<n>` and their owner (`rtbench.owner`). They
//! are removed when the run ends, also on failure and Ctrl-C (`Drop`); if
//! the xtask is killed, by its reaper, a process of its own session that
//! waits for the xtask's end (`engine::reaper`); and whatever both missed,
//! by the next run, when its owner is gone (`engine::owner_gone`). Each
//! container's output is kept in the record, under `containers/`.

use anyhow::Context as _;

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rtbench_record::launch::{Launch, WorkerLaunch};
use rtbench_record::{Containers, Deployment, HostRecord, Limits, ProcessExit, Role};
use testcontainers::bollard;
use testcontainers::core::WaitFor;
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, ContainerRequest, GenericImage, ImageExt};

use crate::engine::{Engine, LABEL, log_file, memory_bytes};
use crate::oom::OomKill;
use crate::server::{Elsewhere, REDIS_ARGS, RedisProcess, ServerProcess};

const SERVER_PORT: u16 = 8080;
const REDIS_PORT: u16 = 6379;
/// Where a worker container waits for its controller.
const WORKER_PORT: u16 = 7700;
/// The record's folder of container output (a swarm service's too).
pub const LOGS: &str = "containers";
/// How long a container has to say it is up (its first log line) after it
/// starts.
const STARTUP: Duration = Duration::from_secs(30);

pub struct Docker {
    run: String,
    /// What every container and the network carry: the run, and its owner.
    labels: HashMap<String, String>,
    /// Removes the run if this process ends without doing so (`Drop`).
    reaper: Option<std::process::Child>,
    network: String,
    image: GenericImage,
    redis_image: Option<GenericImage>,
    spec: Containers,
    hosts: RefCell<Vec<HostRecord>>,
    engine: Arc<Engine>,
    /// Where each container's output is written, once the record exists.
    logs: OnceCell<PathBuf>,
    /// The worker containers, removed with the run.
    workers: RefCell<Vec<Container<GenericImage>>>,
    /// Every container of the run: its process's pid here, and its name.
    started: RefCell<Vec<(u32, String)>>,
}

/// `name:tag`, as the record names an image.
fn descriptor(image: &GenericImage) -> String {
    use testcontainers::Image;
    format!("{}:{}", image.name(), image.tag())
}

/// A container as the engine describes it.
struct Inspected {
    ip: Option<IpAddr>,
    /// Its process's pid in this machine's /proc.
    pid: u32,
    /// How it ended, when it has.
    ended: Option<String>,
    /// The kernel's OOM killer ended it (its memory limit).
    oom_killed: bool,
}

/// What `--on containers` asks of the engine beyond what testcontainers does.
impl Engine {
    /// The run's network: internal (no route off this machine), labelled.
    fn create_network(&self, name: &str, labels: &HashMap<String, String>) -> anyhow::Result<()> {
        let request = bollard::models::NetworkCreateRequest {
            name: name.into(),
            internal: Some(true),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.rt
            .block_on(self.api.create_network(request))
            .map(drop)
            .map_err(|e| anyhow::anyhow!("creating network {name}: {e:#}"))
    }

    /// A container's state, its address on `network` among it.
    fn inspect(&self, name: &str, network: &str) -> Result<Inspected, bollard::errors::Error> {
        let c = self.rt.block_on(self.api.inspect_container(name, None))?;
        let ip = c
            .network_settings
            .and_then(|n| n.networks?.remove(network)?.ip_address)
            .and_then(|ip| ip.parse().ok());
        let state = c.state.unwrap_or_default();
        Ok(Inspected {
            ip,
            pid: state.pid.unwrap_or(0).max(0) as u32,
            ended: (state.running == Some(false))
                .then(|| format!("exit status: {}", state.exit_code.unwrap_or(-1))),
            oom_killed: state.oom_killed == Some(true),
        })
    }
}

impl Docker {
    /// Builds the images and creates the network. `redis`: the run has
    /// several server processes and needs the bus.
    pub fn setup(spec: &Containers, redis: bool) -> anyhow::Result<Docker> {
        let engine = Arc::new(Engine::connect("--on containers")?);
        // What a killed xtask (and its reaper) left: runs of this machine
        // whose xtask is gone.
        engine.sweep();
        let (run, labels) = crate::engine::new_run();
        // From here on, whatever happens to this process, the run goes.
        let reaper = crate::engine::start_reaper(&run)?;
        let (image, redis_image) = crate::engine::run_images(redis, "--on containers")?;
        let network = format!("rtbench-{run}");
        engine.create_network(&network, &labels)?;
        Ok(Docker {
            run,
            labels,
            reaper: Some(reaper),
            network,
            image,
            redis_image,
            spec: spec.clone(),
            hosts: Default::default(),
            engine,
            logs: OnceCell::new(),
            workers: Default::default(),
            started: Default::default(),
        })
    }

    /// Each container's output goes to `dir/containers/<role>.log` from now
    /// on; `dir` is where the launch file is written too.
    pub fn keep_logs_in(&self, dir: &Path) {
        let _ = self.logs.set(dir.join(LOGS));
    }

    /// A container of the run: `image` running `cmd`, named `name`, with
    /// `limits`, on the run's network, up once `up` appears in its output.
    fn start(
        &self,
        image: &GenericImage,
        name: &str,
        role: &str,
        limits: &Limits,
        cmd: Vec<String>,
        up: WaitFor,
    ) -> anyhow::Result<(Container<GenericImage>, IpAddr, u32)> {
        let nofile = self.spec.nofile as i64;
        let cpus = limits.cpus;
        let memory = limits.memory.as_deref().map(memory_bytes).transpose()?;
        let sysctls: HashMap<String, String> = self.spec.sysctls.clone().into_iter().collect();
        let mut request: ContainerRequest<GenericImage> = image
            .clone()
            .with_wait_for(up)
            .with_cmd(cmd)
            .with_container_name(name)
            .with_network(&self.network)
            .with_labels(self.labels.clone())
            .with_ulimit("nofile", nofile, Some(nofile))
            .with_startup_timeout(STARTUP)
            .with_host_config_modifier(move |h| {
                h.nano_cpus = cpus.map(|c| (c * 1e9) as i64);
                h.memory = memory;
                h.sysctls = (!sysctls.is_empty()).then(|| sysctls.clone());
            });
        if let Some(dir) = self.logs.get() {
            request = request.with_log_consumer(log_file(&dir.join(format!("{role}.log")))?);
        }
        let container = request
            .start()
            .map_err(|e| anyhow::anyhow!("container {name}: {e:#}"))?;
        let inspected = self
            .engine
            .inspect(name, &self.network)
            .map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?;
        let (ip, pid) = (inspected.ip, inspected.pid);
        let ip = ip.with_context(|| format!("{name} has no address on {}", self.network))?;
        self.started.borrow_mut().push((pid, name.to_string()));
        self.hosts
            .borrow_mut()
            .push(host_record(role_of(role), &format!("{name} {ip}")));
        Ok((container, ip, pid))
    }

    pub fn start_server(&self, i: u64, args: &[String]) -> anyhow::Result<ServerProcess> {
        let name = format!("rtbench-{}-server-{i}", self.run);
        let mut full = vec!["--listen".to_string(), format!("0.0.0.0:{SERVER_PORT}")];
        full.extend_from_slice(args);
        let cmd = std::iter::once("/bin/rtbench-server".to_string())
            .chain(full.iter().cloned())
            .collect();
        let (container, ip, pid) = self.start(
            &self.image,
            &name,
            &format!("server-{i}"),
            &self.spec.server,
            cmd,
            WaitFor::message_on_stderr("rtbench-server: listening on"),
        )?;
        Ok(ServerProcess::held_elsewhere(
            self.held(container, &name),
            SocketAddr::new(ip, SERVER_PORT),
            pid,
            full,
        ))
    }

    pub fn start_redis(&self) -> anyhow::Result<RedisProcess> {
        let image = self
            .redis_image
            .as_ref()
            .context("no Redis image was built")?;
        let name = format!("rtbench-{}-redis", self.run);
        let cmd = [
            "/bin/redis-server",
            "--port",
            &REDIS_PORT.to_string(),
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
        ]
        .into_iter()
        .chain(REDIS_ARGS)
        .map(String::from)
        .collect();
        let (container, ip, pid) = self.start(
            image,
            &name,
            "redis",
            &self.spec.redis,
            cmd,
            WaitFor::message_on_stdout("Ready to accept connections"),
        )?;
        RedisProcess::held_elsewhere(
            self.held(container, &name),
            SocketAddr::new(ip, REDIS_PORT),
            pid,
        )
    }

    fn held(&self, container: Container<GenericImage>, name: &str) -> Box<dyn Elsewhere> {
        Box::new(RunningContainer {
            container: Some(container),
            name: name.into(),
            network: self.network.clone(),
            engine: self.engine.clone(),
        })
    }

    /// Starts one worker container each, waiting for its controller; the
    /// launch plan names their addresses.
    pub fn launch(&self) -> anyhow::Result<Launch> {
        let mut workers = Vec::new();
        for w in 0..self.spec.workers.max(1) {
            let name = format!("rtbench-{}-worker-{w}", self.run);
            let role = format!("worker-{w}");
            let cmd = [
                "/bin/rtbench-loadgen".to_string(),
                "worker".into(),
                "--listen".into(),
                format!("0.0.0.0:{WORKER_PORT}"),
            ]
            .into();
            let (container, ip, _) = self.start(
                &self.image,
                &name,
                &role,
                &self.spec.worker,
                cmd,
                WaitFor::message_on_stderr(rtbench_record::launch::WAITING_FOR_CONTROLLER),
            )?;
            self.workers.borrow_mut().push(container);
            workers.push(WorkerLaunch {
                host: name,
                argv: Vec::new(),
                connect: Some(SocketAddr::new(ip, WORKER_PORT)),
                // Relative to the launch file, which is in the record too.
                log: Some(PathBuf::from(format!("{LOGS}/{role}.log"))),
                clock_offset_ns: 0,
            });
        }
        Ok(Launch { workers })
    }

    /// The OOM kill of the container that ran `exit`'s process (a server's
    /// or Redis's by its pid, a worker's by its host, the container's
    /// name), as the engine says: the container's memory limit.
    pub fn oom_killed(&self, exit: &ProcessExit) -> Option<OomKill> {
        let started = self.started.borrow();
        let (pid, name) = started.iter().find(|(pid, name)| {
            (exit.pid != 0 && *pid == exit.pid)
                || matches!(&exit.role, Role::Worker { host: Some(h), .. } if h == name)
        })?;
        let inspected = self.engine.inspect(name, &self.network).ok()?;
        inspected.oom_killed.then(|| OomKill {
            pid: *pid,
            name: name.clone(),
            cgroup: true,
        })
    }

    pub fn deployment(&self) -> Deployment {
        Deployment {
            kind: "containers".into(),
            containers: Some(self.spec.clone()),
            images: std::iter::once(descriptor(&self.image))
                .chain(self.redis_image.as_ref().map(descriptor))
                .collect(),
            hosts: self.hosts.borrow().clone(),
        }
    }
}

impl Drop for Docker {
    /// Removes every container and the network of the run, whatever happened.
    fn drop(&mut self) {
        self.workers.borrow_mut().clear();
        self.engine
            .remove_runs(|labels| labels.get(LABEL) == Some(&self.run));
        if let Some(mut reaper) = self.reaper.take() {
            // Its stdin's end: it looks once more, finds nothing, and exits.
            drop(reaper.stdin.take());
            let _ = reaper.wait();
        }
    }
}

/// A server or Redis container as the run holds it.
struct RunningContainer {
    container: Option<Container<GenericImage>>,
    name: String,
    network: String,
    engine: Arc<Engine>,
}

impl Elsewhere for RunningContainer {
    fn exit(&mut self) -> Option<String> {
        self.container.as_ref()?;
        match self.engine.inspect(&self.name, &self.network) {
            Ok(inspected) => inspected.ended,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Some("its container is gone".into()),
            // The engine did not answer this time: asked again next sample.
            Err(_) => None,
        }
    }

    fn stop(&mut self, grace: Duration) {
        if let Some(c) = self.container.take() {
            let _ = c.stop_with_timeout(Some(grace.as_secs().max(1) as i32));
            // Dropped: removed.
        }
    }
}

/// The host record's role for a container's: `server-0` is a server.
fn role_of(role: &str) -> &str {
    match role.split('-').next() {
        Some("worker") => "client",
        Some(r) => r,
        None => role,
    }
}

/// Containers share this kernel's clock: no offset to estimate.
fn host_record(role: &str, address: &str) -> HostRecord {
    HostRecord {
        role: role.into(),
        address: address.into(),
        clock_offset_ns: 0,
        clock_error_ns: 0,
        tuning: Default::default(),
        node: None,
    }
}

/// The suite's `[containers]` with `--limit` applied: `server.cpus=1`,
/// `worker.memory=512m`, `redis.cpus=0.5`, `workers=4`, `nofile=20000`,
/// `sysctl.net.core.somaxconn=4096`.
pub fn with_limits(spec: &Containers, limits: &[String]) -> anyhow::Result<Containers> {
    let mut c = spec.clone();
    for l in limits {
        let (key, value) = l
            .split_once('=')
            .with_context(|| format!("--limit {l}: expected ROLE.KEY=VALUE"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("--limit {l}: `{v}` is not a number"))
        };
        match key.split_once('.') {
            Some(("sysctl", name)) => {
                c.sysctls.insert(name.into(), value.into());
            }
            Some((role, field)) => {
                let limits = match role {
                    "server" => &mut c.server,
                    "worker" => &mut c.worker,
                    "redis" => &mut c.redis,
                    r => {
                        return Err(anyhow::anyhow!(
                            "--limit {l}: role `{r}` is not server, worker or redis"
                        ));
                    }
                };
                match field {
                    "cpus" => limits.cpus = Some(num(value)?),
                    "memory" => {
                        memory_bytes(value).map_err(|e| anyhow::anyhow!("--limit {l}: {e:#}"))?;
                        limits.memory = Some(value.into());
                    }
                    f => return Err(anyhow::anyhow!("--limit {l}: `{f}` is not cpus or memory")),
                }
            }
            None => match key {
                "workers" => c.workers = num(value)?.max(1.0) as u64,
                "nofile" => c.nofile = num(value)? as u64,
                k => {
                    return Err(anyhow::anyhow!(
                        "--limit {l}: `{k}` is not workers, nofile, sysctl.NAME or ROLE.KEY"
                    ));
                }
            },
        }
    }
    Ok(c)
}

/// `spec` made able to hold `connections`: worker containers enough that
/// each holds its share under the containers' open-files limit
/// (`rtbench_record::launch::workers_needed`, the suite's `workers` at
/// least), and an ephemeral port range wide enough for that share.
pub fn for_connections(mut spec: Containers, connections: u64) -> Containers {
    let needed = rtbench_record::launch::workers_needed(connections, spec.nofile);
    if needed > spec.workers {
        eprintln!(
            "xtask: {needed} worker containers, not {}: {connections} connections at most {} each under nofile {}",
            spec.workers,
            rtbench_record::launch::worker_capacity(spec.nofile),
            spec.nofile
        );
        spec.workers = needed;
    }
    // Linux's connect() takes even ephemeral ports first; once a
    // destination has them all, each connect scans the whole range. A
    // worker may send its whole share to one server (worker w of W takes
    // every W-th arrival, and arrival a goes to server a mod servers), and
    // a container's default range (32768-60999) has 14,116 even ports:
    // measured, 2 workers of 15,000 connected at 2,000/s up to 14,100 each,
    // then at 120/s. 1025-65535 has 32,255, more than a worker holds.
    spec.sysctls
        .entry(PORT_RANGE.into())
        .or_insert_with(|| WIDE_PORT_RANGE.into());
    spec
}

/// The sysctl of a container's ephemeral ports, and the range it gets
/// unless the suite or `--limit` says otherwise.
const PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
const WIDE_PORT_RANGE: &str = "1025 65535";

#[cfg(test)]
mod tests {
    #[test]
    fn memory_sizes_read_as_docker_reads_them() {
        assert_eq!(super::memory_bytes("512m").ok(), Some(512 << 20));
        assert_eq!(super::memory_bytes("1G").ok(), Some(1 << 30));
        assert_eq!(super::memory_bytes("1.5g").ok(), Some(3 << 29));
        assert_eq!(super::memory_bytes("2GiB").ok(), Some(2 << 30));
        assert_eq!(super::memory_bytes("64 mb").ok(), Some(64 << 20));
        assert_eq!(super::memory_bytes("65536k").ok(), Some(65536 << 10));
        assert_eq!(super::memory_bytes("1t").ok(), Some(1 << 40));
        assert_eq!(super::memory_bytes("1000").ok(), Some(1000));
        for bad in ["m", "1x", "1gg", "", "0"] {
            assert!(super::memory_bytes(bad).is_err(), "{bad}");
        }
        // Refused where the flag is read, before anything is built.
        let e = super::with_limits(&Default::default(), &["worker.memory=1x".into()]).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("--limit worker.memory=1x: memory `1x` is not a size"),
            "{e:#}"
        );
    }

    #[test]
    fn worker_containers_hold_their_shares_under_their_open_files_limit() {
        let spec = super::with_limits(&Default::default(), &["workers=2".into()]).unwrap();
        // Issue 26: 40,000 on the two containers of the default took
        // 20,000 each under a limit of 20,000 and failed 26.
        let workers = |n| super::for_connections(spec.clone(), n).workers;
        assert_eq!(workers(40_000), 3);
        assert_eq!(workers(100_000), 6);
        // Never fewer than the suite asks for.
        assert_eq!(workers(2_000), 2);
        let small = super::with_limits(&spec, &["nofile=600".into()]).unwrap();
        assert_eq!(super::for_connections(small, 1_500).workers, 3);
    }

    #[test]
    fn a_worker_container_has_even_ports_for_its_whole_share() {
        let spec = super::for_connections(Default::default(), 100_000);
        let range = &spec.sysctls[super::PORT_RANGE];
        let (lo, hi) = range.split_once(' ').unwrap();
        // At least this many even ports, whatever the ends.
        let even = (hi.parse::<u64>().unwrap() - lo.parse::<u64>().unwrap()) / 2;
        assert!(
            even >= rtbench_record::launch::worker_capacity(spec.nofile),
            "{range}"
        );
        // What the suite or --limit sets stands.
        let set = super::with_limits(
            &Default::default(),
            &["sysctl.net.ipv4.ip_local_port_range=2000 3000".into()],
        )
        .unwrap();
        assert_eq!(
            super::for_connections(set, 10).sysctls[super::PORT_RANGE],
            "2000 3000"
        );
    }

    #[test]
    fn limits_apply_and_name_a_bad_one() {
        let c = super::with_limits(
            &Default::default(),
            &[
                "server.cpus=1.5".into(),
                "worker.memory=256m".into(),
                "workers=3".into(),
                "sysctl.net.core.somaxconn=4096".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            (
                c.server.cpus,
                c.worker.memory.as_deref(),
                c.workers,
                c.nofile
            ),
            (Some(1.5), Some("256m"), 3, 20_000)
        );
        assert_eq!(c.sysctls["net.core.somaxconn"], "4096");
        let e = super::with_limits(&Default::default(), &["server.cpu=1".into()]).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("`cpu` is not cpus or memory"), "{e:#}");
    }
}

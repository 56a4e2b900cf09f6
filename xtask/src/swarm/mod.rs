//! `cargo xtask bench <suite> --on swarm`: every part of a run (Redis, the
//! server processes, each load generator worker) a Docker Swarm service,
//! made through the engine's API (`bollard`) on a manager, the images
//! pushed to a registry every node pulls from by digest (`registry`).
//!
//! Placement is by node label (`nodes`): the servers and Redis on the
//! nodes labelled `rtbench.role=server`, the workers on those labelled
//! `rtbench.role=load`, round robin; a swarm of one node takes every part.
//! Each part is a service of one task pinned to its node (`service`), on
//! the node's own network stack (`host`), so connections go from a load
//! node's kernel to the server node's with nothing between them: an
//! overlay network would put VXLAN, and for a service's virtual address
//! IPVS, on every packet (measured: README, Many machines). One service
//! per worker rather than a replicated job: the controller must know each
//! worker's node before the run starts (which worker samples which node,
//! how many connections share a node's ports), and a job's tasks go where
//! the scheduler puts them.
//!
//! The controller stays here and reaches each worker as in containers:
//! `rtbench-loadgen worker --listen <node address>:0`, whose address is
//! read from its output. A node whose engine stops or whose network is cut
//! is named, with every part it held, in the record's `process_exits`
//! (`lost`). Services carry the run's labels and go with the run, its
//! reaper, or the next run's sweep (`engine`), as containers do.

use anyhow::Context as _;

mod nodes;
mod registry;
mod service;
pub mod tune;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtbench_record::launch::{Launch, WorkerLaunch};
use rtbench_record::series::HostSample;
use rtbench_record::{Containers, Deployment, HostRecord, Limits, ProcessExit, Role};
use testcontainers::bollard::models::{LocalNodeState, NodeState};

use crate::containers::LOGS;
use crate::engine::Engine;
use crate::server::{Elsewhere, REDIS_ARGS, RedisProcess, ServerProcess};

use nodes::Node;
pub use nodes::{NodeRole, ROLE_LABEL};
use registry::{Pushed, Registry};

/// How long a part has to say it is up: its node may pull the image first.
const STARTUP: Duration = Duration::from_secs(120);
/// Redis listens here on its node's address (no port 0 in Redis).
const REDIS_PORT: u16 = 6379;

pub struct Swarm {
    run: String,
    labels: HashMap<String, String>,
    /// Removes the run if this process ends without doing so (`Drop`).
    reaper: Option<std::process::Child>,
    engine: Arc<Engine>,
    spec: Containers,
    registry: Registry,
    nodes: Vec<Node>,
    image: Pushed,
    redis_image: Option<Pushed>,
    /// Each node's record: its role, address, facts and tuning.
    hosts: Vec<HostRecord>,
    /// Where each service's output is written, once the record exists.
    logs: OnceCell<PathBuf>,
    /// Every part started: its service, node and role.
    parts: RefCell<Vec<Placed>>,
    /// The nodes without a worker, each sampled by a service of its own
    /// (`rtbench-loadgen sample-host`): node index, its output.
    samplers: RefCell<Vec<(usize, service::Output)>>,
    /// The nodes already said to be lost.
    lost: RefCell<BTreeSet<String>>,
    last_look: Cell<Option<Instant>>,
}

/// A part of the run as placed.
struct Placed {
    service: String,
    node: usize,
    role: Role,
}

impl Swarm {
    /// Checks the swarm (refused in one line: not a swarm manager, too few
    /// labelled nodes, a registry that does not answer, nodes that cannot
    /// take their share), builds and pushes the images. `bus`: the run has
    /// several server processes and needs Redis; `connections`: the run's
    /// total, which sets the workers (`containers::for_connections`).
    pub fn setup(
        spec: &Containers,
        bus: bool,
        registry: Option<&str>,
        tune: &tune::Tuning,
    ) -> anyhow::Result<Swarm> {
        let engine = Arc::new(Engine::connect("--on swarm")?);
        let nodes = manager_nodes(&engine)?;
        let this_addr = nodes
            .iter()
            .find(|n| n.this_engine)
            .map(|n| n.addr)
            .or_else(|| this_node_address(&engine))
            .context("--on swarm: this engine's node has no swarm address: docker info")?;
        let registry = Registry::resolve(registry, this_addr)?;
        registry.check()?;
        let mut spec = spec.clone();
        // On the nodes' own network stacks a container's `net.*` are its
        // node's: set them on the nodes (`--tune`), not per container.
        spec.sysctls.clear();
        let load_nodes = nodes.iter().filter(|n| n.role.takes_load()).count() as u64;
        spec.workers = spec.workers.max(load_nodes);
        engine.sweep();
        let (run, labels) = crate::engine::new_run();
        // From here on, whatever happens to this process, the run goes.
        let reaper = crate::engine::start_reaper(&run)?;
        let mut swarm = Swarm {
            run,
            labels,
            reaper: Some(reaper),
            engine,
            spec,
            registry,
            hosts: Vec::new(),
            image: Pushed {
                repository: String::new(),
                digest: String::new(),
            },
            redis_image: None,
            nodes,
            logs: OnceCell::new(),
            parts: Default::default(),
            samplers: Default::default(),
            lost: Default::default(),
            last_look: Cell::new(None),
        };
        // Dropped on an error from here: its services and tags go.
        let _built = crate::engine::run_images(bus, "--on swarm")?;
        swarm.image = registry::push(&swarm.engine, &swarm.registry, "rtbench/bench")?;
        if bus {
            swarm.redis_image = Some(registry::push(
                &swarm.engine,
                &swarm.registry,
                "rtbench/redis",
            )?);
        }
        swarm.hosts = tune::nodes(&swarm, tune)?;
        Ok(swarm)
    }

    /// Each service's output goes to `dir/containers/<part>.log` from now on.
    pub fn keep_logs_in(&self, dir: &std::path::Path) {
        let _ = self.logs.set(dir.join(LOGS));
    }

    /// Indexes of the nodes that take servers (`servers`) or the load.
    fn nodes_for(&self, servers: bool) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                let r = self.nodes[i].role;
                if servers {
                    r.takes_servers()
                } else {
                    r.takes_load()
                }
            })
            .collect()
    }

    /// Starts `part` (`server-0`) on node `node` and waits for its line
    /// starting with `up`, which it returns.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        part: &str,
        role: Role,
        node: usize,
        image: &Pushed,
        cmd: Vec<String>,
        limits: &Limits,
        up: &str,
    ) -> anyhow::Result<String> {
        let n = &self.nodes[node];
        let name = format!("rtbench-{}-{part}", self.run);
        let log = self.logs.get().map(|d| d.join(format!("{part}.log")));
        let output = service::create(
            &self.engine,
            &service::Part {
                name: name.clone(),
                image: image.reference(self.registry.for_node(n.this_engine)),
                cmd,
                node_id: &n.facts.id,
                limits,
                nofile: self.spec.nofile,
                mounts: Vec::new(),
            },
            &self.labels,
            log.as_deref(),
        )?;
        self.parts.borrow_mut().push(Placed {
            service: name.clone(),
            node,
            role,
        });
        service::wait_for_line(
            &self.engine,
            &name,
            &format!("{part} on node {}", n.hostname()),
            &output,
            up,
            STARTUP,
        )
    }

    pub fn start_server(&self, i: u64, args: &[String]) -> anyhow::Result<ServerProcess> {
        let servers = self.nodes_for(true);
        let node = servers[i as usize % servers.len()];
        let addr = self.nodes[node].addr;
        let mut full = vec!["--listen".to_string(), SocketAddr::new(addr, 0).to_string()];
        full.extend_from_slice(args);
        let cmd = std::iter::once("/bin/rtbench-server".to_string())
            .chain(full.iter().cloned())
            .collect();
        let prefix = "rtbench-server: listening on ";
        let line = self.start(
            &format!("server-{i}"),
            Role::Server(i),
            node,
            &self.image,
            cmd,
            &self.spec.server,
            prefix,
        )?;
        let listening = address_in(&line, prefix)?;
        // Its pid is another machine's: it is sampled through its /metrics.
        Ok(ServerProcess::held_elsewhere(
            self.held(&format!("server-{i}")),
            listening,
            0,
            full,
        ))
    }

    pub fn start_redis(&self) -> anyhow::Result<RedisProcess> {
        let image = self
            .redis_image
            .as_ref()
            .context("no Redis image was pushed")?;
        let node = self.nodes_for(true)[0];
        let addr = self.nodes[node].addr;
        let cmd = [
            "/bin/redis-server".to_string(),
            "--port".into(),
            REDIS_PORT.to_string(),
            "--bind".into(),
            addr.to_string(),
            "--protected-mode".into(),
            "no".into(),
        ]
        .into_iter()
        .chain(REDIS_ARGS.map(String::from))
        .collect();
        self.start(
            "redis",
            Role::Redis,
            node,
            image,
            cmd,
            &self.spec.redis,
            "Ready to accept connections",
        )?;
        let redis = self.held("redis");
        RedisProcess::held_elsewhere(redis, SocketAddr::new(addr, REDIS_PORT), 0)
    }

    fn held(&self, part: &str) -> Box<dyn Elsewhere> {
        Box::new(RunningService {
            engine: self.engine.clone(),
            service: format!("rtbench-{}-{part}", self.run),
        })
    }

    /// Starts one service per worker, round robin over the load nodes,
    /// each waiting for its controller on its node's address; the launch
    /// plan names them by node, so one worker per node samples it.
    pub fn launch(&self) -> anyhow::Result<Launch> {
        let load = self.nodes_for(false);
        let mut workers = Vec::new();
        for (w, node) in nodes::spread(self.spec.workers.max(1), &load)
            .into_iter()
            .enumerate()
        {
            let n = &self.nodes[node];
            let part = format!("worker-{w}");
            let cmd = [
                "/bin/rtbench-loadgen".to_string(),
                "worker".into(),
                "--listen".into(),
                SocketAddr::new(n.addr, 0).to_string(),
            ]
            .into();
            let waiting = rtbench_record::launch::WAITING_FOR_CONTROLLER;
            let line = self.start(
                &part,
                Role::Worker {
                    index: w as u64,
                    host: Some(n.hostname().to_string()),
                },
                node,
                &self.image,
                cmd,
                &self.spec.worker,
                waiting,
            )?;
            workers.push(WorkerLaunch {
                host: n.hostname().to_string(),
                argv: Vec::new(),
                connect: Some(address_in(&line, waiting)?),
                // Relative to the launch file, which is in the record too.
                log: Some(PathBuf::from(format!("{LOGS}/{part}.log"))),
                // One kernel's clock in the test; NTP's elsewhere (README).
                clock_offset_ns: 0,
            });
        }
        self.sample_the_others(&load)?;
        Ok(Launch { workers })
    }

    /// A sampler on each node that runs no worker (a worker samples its
    /// own), so every node of the run has its seconds in `hosts.csv`.
    fn sample_the_others(&self, load: &[usize]) -> anyhow::Result<()> {
        for node in (0..self.nodes.len()).filter(|i| !load.contains(i)) {
            let n = &self.nodes[node];
            let name = format!("rtbench-{}-sampler-{node}", self.run);
            let output = service::create(
                &self.engine,
                &service::Part {
                    name: name.clone(),
                    image: self.image.reference(self.registry.for_node(n.this_engine)),
                    cmd: ["/bin/rtbench-loadgen", "sample-host"]
                        .map(String::from)
                        .into(),
                    node_id: &n.facts.id,
                    limits: &Default::default(),
                    nofile: 1024,
                    mounts: Vec::new(),
                },
                &self.labels,
                None,
            )?;
            let what = format!("the sampler of node {}", n.hostname());
            service::wait_for_line(&self.engine, &name, &what, &output, "\"t_s\"", STARTUP)?;
            self.samplers.borrow_mut().push((node, output));
        }
        Ok(())
    }

    /// The seconds the samplers read, on the schedule's clock (second 1
    /// ends one second after `schedule_start_unix_ns`), named by node.
    pub fn host_samples(&self, schedule_start_unix_ns: u64) -> Vec<HostSample> {
        let start_s = (schedule_start_unix_ns + 500_000_000) / 1_000_000_000;
        let mut rows = Vec::new();
        for (node, output) in self.samplers.borrow().iter() {
            for line in output.all() {
                let Ok(mut s) = serde_json::from_str::<HostSample>(&line) else {
                    continue;
                };
                if s.t_s <= start_s {
                    continue;
                }
                s.t_s -= start_s;
                s.host = self.nodes[*node].hostname().to_string();
                rows.push(s);
            }
        }
        rows
    }

    /// The parts on nodes that went down since the last look (once a
    /// second at most), each named with its node; said at once.
    pub fn lost(&self, t_s: f64) -> Vec<ProcessExit> {
        if self
            .last_look
            .get()
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Vec::new();
        }
        self.last_look.set(Some(Instant::now()));
        let Ok(all) = self.engine.rt.block_on(
            self.engine
                .api
                .list_nodes(None::<testcontainers::bollard::query_parameters::ListNodesOptions>),
        ) else {
            return Vec::new();
        };
        let mut exits = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let state = all
                .iter()
                .find(|e| e.id.as_deref() == Some(&n.facts.id))
                .and_then(|e| e.status.as_ref()?.state);
            if state == Some(NodeState::READY) || !self.lost.borrow_mut().insert(n.facts.id.clone())
            {
                continue;
            }
            let how = state.map_or("gone from the swarm".into(), |s| {
                format!("{s:?}").to_lowercase()
            });
            for p in self.parts.borrow().iter().filter(|p| p.node == i) {
                let status = format!(
                    "its node {} ({}) is {how}: its engine stopped or its network was cut",
                    n.hostname(),
                    n.addr
                );
                eprintln!(
                    "xtask: FAULT at {t_s:.1} s: {} ({}) lost: {status}; the run goes on without it and is not complete",
                    p.role, p.service
                );
                exits.push(ProcessExit {
                    t_s,
                    role: p.role.clone(),
                    pid: 0,
                    status,
                    cause: None,
                });
            }
        }
        exits
    }

    pub fn deployment(&self) -> Deployment {
        let reference = |p: &Pushed| p.reference(self.registry.for_node(false));
        Deployment {
            kind: "swarm".into(),
            containers: Some(self.spec.clone()),
            images: std::iter::once(reference(&self.image))
                .chain(self.redis_image.as_ref().map(reference))
                .collect(),
            hosts: self.hosts.clone(),
        }
    }
}

impl Drop for Swarm {
    /// Removes every service of the run (their containers go on their
    /// nodes) and what the push left on this engine.
    fn drop(&mut self) {
        let run = self.run.clone();
        self.engine
            .remove_runs(|labels| labels.get(crate::engine::LABEL) == Some(&run));
        for p in std::iter::once(&self.image).chain(self.redis_image.as_ref()) {
            if !p.digest.is_empty() {
                registry::untag(&self.engine, &self.registry, p);
            }
        }
        if let Some(mut reaper) = self.reaper.take() {
            drop(reaper.stdin.take());
            let _ = reaper.wait();
        }
    }
}

/// The swarm's usable nodes, once this engine is known to be a manager of
/// one (refused in one line otherwise).
fn manager_nodes(engine: &Engine) -> anyhow::Result<Vec<Node>> {
    let info = engine
        .rt
        .block_on(engine.api.info())
        .map_err(|e| anyhow::anyhow!("--on swarm: the engine does not answer: {e:#}"))?;
    let swarm = info.swarm.unwrap_or_default();
    if swarm.local_node_state != Some(LocalNodeState::ACTIVE) {
        return Err(anyhow::Error::msg(
            "--on swarm: this engine is not in swarm mode: docker swarm init --advertise-addr ADDRESS, then join and label the other machines (README: Many machines)",
        ));
    }
    if swarm.control_available != Some(true) {
        return Err(anyhow::Error::msg(
            "--on swarm: this engine is a worker of its swarm, not a manager: run the bench where a manager answers (or DOCKER_HOST=ssh://MANAGER)",
        ));
    }
    let all = engine
        .rt
        .block_on(
            engine
                .api
                .list_nodes(None::<testcontainers::bollard::query_parameters::ListNodesOptions>),
        )
        .map_err(|e| anyhow::anyhow!("--on swarm: listing the nodes: {e:#}"))?;
    nodes::usable(&all, swarm.node_id.as_deref().unwrap_or(""))
}

fn this_node_address(engine: &Engine) -> Option<IpAddr> {
    let info = engine.rt.block_on(engine.api.info()).ok()?;
    info.swarm?.node_addr?.parse().ok()
}

/// The address after `prefix` in a line such as `rtbench-server: listening
/// on 10.0.0.2:41235 with 2 threads`.
fn address_in(line: &str, prefix: &str) -> anyhow::Result<SocketAddr> {
    let rest = line.split_once(prefix).map_or("", |(_, r)| r).trim();
    let word = rest.split_whitespace().next().unwrap_or("");
    word.parse()
        .map_err(|_| anyhow::anyhow!("--on swarm: no address in `{line}`"))
}

/// A server or Redis service as the run holds it.
struct RunningService {
    engine: Arc<Engine>,
    service: String,
}

impl Elsewhere for RunningService {
    fn exit(&mut self) -> Option<String> {
        service::task(&self.engine, &self.service)?.ended
    }

    fn stop(&mut self, grace: Duration) {
        // The engine stops its container (SIGTERM, then SIGKILL after its
        // stop grace period, 10 s) as it removes the service.
        let _ = grace;
        service::remove(&self.engine, &self.service);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_read_from_the_lines_that_say_them() {
        assert_eq!(
            super::address_in(
                "rtbench-server: listening on 10.78.0.1:41235 with 2 threads",
                "rtbench-server: listening on "
            )
            .ok(),
            Some("10.78.0.1:41235".parse().unwrap())
        );
        let waiting = rtbench_record::launch::WAITING_FOR_CONTROLLER;
        assert_eq!(
            super::address_in(&format!("{waiting} 10.78.0.2:7001"), waiting).ok(),
            Some("10.78.0.2:7001".parse().unwrap())
        );
        assert!(super::address_in("nothing here", "x").is_err());
    }
}

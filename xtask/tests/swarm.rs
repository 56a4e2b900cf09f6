//! `cargo xtask bench smoke --on swarm` on a swarm of three nodes built on
//! this one machine: this machine's engine is the manager (and the server
//! node); two more `dockerd`s, each in a network namespace of its own with
//! its own hostname, data root, exec root, socket and daemon.json, join it
//! as workers (the load nodes). A registry (Debian's docker-registry) on
//! this machine serves the images, which the workers pull by digest.
//! Traffic stays on loopback and the namespaces' own addresses.
//!
//! The engine is shared with other tests: the swarm is left (and the
//! network it made removed) only when this test made it, and nothing but
//! the run's labelled services and containers is ever removed.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ONE_AT_A_TIME, xtask};
use rtbench_record::{Environment, read_summary};

/// The namespaces' subnet; the manager's side is `.1`.
const NET: &str = "10.78.0";

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn sh(line: &str) {
    run(Command::new("sh").arg("-c").arg(line));
}

fn docker(args: &[&str]) -> String {
    run(Command::new("docker").args(args))
}

/// A free TCP port on `ip` now (for what cannot bind port 0 itself).
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The swarm, its registry and its namespaces; torn down on drop.
struct Cluster {
    tag: String,
    dir: PathBuf,
    /// The registry's port, on every address of this machine.
    registry_port: u16,
    registry: Option<Child>,
    dockerds: Vec<Child>,
    /// This test put the engine in swarm mode (and so takes it out).
    made_swarm: bool,
    /// The networks the engine had before.
    networks_before: BTreeSet<String>,
    /// A lock file held while the cluster exists: one at a time on this
    /// machine, whichever checkout runs it.
    _lock: std::fs::File,
}

impl Cluster {
    fn node_socket(&self, i: u32) -> String {
        format!("unix://{}/n{i}/sock", self.dir.display())
    }

    fn node_docker(&self, i: u32, args: &[&str]) -> String {
        run(Command::new("docker")
            .arg("-H")
            .arg(self.node_socket(i))
            .args(args))
    }

    fn new(dir: &Path) -> Cluster {
        let lock = std::fs::File::create("/tmp/rtbench-swarm-test.lock").unwrap();
        // SAFETY: flock on a descriptor this function owns.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
            0
        );
        let state = docker(&[
            "info",
            "-f",
            "{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}}",
        ]);
        if state.starts_with("active") && state.ends_with(&format!("{NET}.1")) {
            // A killed run of this test left its swarm: take it down.
            docker(&["swarm", "leave", "--force"]);
        }
        let state = docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]);
        assert_eq!(
            state, "inactive",
            "this engine is in a swarm this test did not make: it leaves it alone"
        );
        let networks_before = docker(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .map(String::from)
            .collect();
        let tag = format!("rsw{}", std::process::id() % 100_000);
        let mut c = Cluster {
            tag: tag.clone(),
            dir: dir.to_path_buf(),
            registry_port: 0,
            registry: None,
            dockerds: Vec::new(),
            made_swarm: false,
            networks_before,
            _lock: lock,
        };
        c.namespaces();
        c.start_registry();
        for i in [2, 3] {
            c.start_dockerd(i);
        }
        c
    }

    /// A switch namespace with a bridge (Docker's firewall rules do not
    /// apply in it); this machine at .1, the nodes at .2 and .3.
    fn namespaces(&self) {
        let (tag, sw) = (&self.tag, format!("{}sw", self.tag));
        sh(&format!(
            "ip netns add {sw} && ip -n {sw} link set lo up && ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up \
             && ip link add {tag}h0 type veth peer name p0 netns {sw} && ip addr add {NET}.1/24 dev {tag}h0 \
             && ip link set {tag}h0 mtu 1400 up && ip -n {sw} link set p0 mtu 1400 master br0 up"
        ));
        for i in [2, 3] {
            let ns = format!("{tag}n{i}");
            sh(&format!(
                "ip netns add {ns} && ip -n {ns} link set lo up && ip link add eth0 netns {ns} type veth peer name p{i} netns {sw} \
                 && ip -n {ns} addr add {NET}.{i}/24 dev eth0 && ip -n {ns} link set eth0 mtu 1400 up \
                 && ip -n {sw} link set p{i} mtu 1400 master br0 up"
            ));
        }
    }

    /// Debian's docker-registry on every address (the manager pushes to
    /// 127.0.0.1, the nodes pull from .1), on a port the kernel picks.
    fn start_registry(&mut self) {
        let config = self.dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 0.0.0.0:0\n",
                self.dir.join("registry").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Debian's docker-registry (cargo xtask ci installs it)");
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if let Some(rest) = l.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split('"').next().unwrap_or("").to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        self.registry_port = addr.rsplit(':').next().unwrap().parse().unwrap();
        self.registry = Some(child);
    }

    /// `dockerd` in namespace n{i}, with hostname rtbench-n{i}: entered with
    /// nsenter (`ip netns exec` would mount a /sys without the cgroups),
    /// in a mount namespace of its own so that its mounts go with it.
    fn start_dockerd(&mut self, i: u32) {
        let d = self.dir.join(format!("n{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let daemon = serde_json::json!({
            "data-root": d.join("root"),
            "exec-root": d.join("x"),
            "pidfile": d.join("pid"),
            "hosts": [self.node_socket(i)],
            "bridge": "none",
            "iptables": false,
            "ip-masq": false,
            "storage-driver": "fuse-overlayfs",
            "mtu": 1400,
            "cgroup-parent": format!("{}-n{i}", self.tag),
            "insecure-registries": [format!("{NET}.1:{}", self.registry_port)],
        });
        let config = d.join("daemon.json");
        std::fs::write(&config, daemon.to_string()).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}n{i}", self.tag))
            .args([
                "--",
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
            ])
            .arg(format!(
                "hostname rtbench-n{i} && exec dockerd --config-file {}",
                config.display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("dockerd.log")).unwrap())
            .spawn()
            .unwrap();
        self.dockerds.push(child);
        let t0 = Instant::now();
        while !Command::new("docker")
            .arg("-H")
            .arg(self.node_socket(i))
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "dockerd n{i} did not answer: see {}",
                d.join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// This engine as the manager, on its namespace-facing address; the
    /// two nodes joined as workers.
    fn init_and_join(&mut self) {
        let port = free_port(&format!("{NET}.1"));
        docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            &format!("{NET}.1"),
            "--listen-addr",
            &format!("{NET}.1:{port}"),
        ]);
        self.made_swarm = true;
        let token = docker(&["swarm", "join-token", "-q", "worker"]);
        for i in [2, 3] {
            let ip = format!("{NET}.{i}");
            let listen = format!("{ip}:{}", free_port(&format!("{NET}.1")));
            self.node_docker(
                i,
                &[
                    "swarm",
                    "join",
                    "--token",
                    &token,
                    "--advertise-addr",
                    &ip,
                    "--listen-addr",
                    &listen,
                    &format!("{NET}.1:{port}"),
                ],
            );
        }
    }

    fn label(&self) {
        let me = docker(&["info", "-f", "{{.Swarm.NodeID}}"]);
        docker(&["node", "update", "--label-add", "rtbench.role=server", &me]);
        for i in [2, 3] {
            docker(&[
                "node",
                "update",
                "--label-add",
                "rtbench.role=load",
                &format!("rtbench-n{i}"),
            ]);
        }
    }

    /// Stops node n{i}'s engine (SIGTERM, as `systemctl stop docker`).
    fn stop_engine(&self, i: u32) {
        let pid: i32 = std::fs::read_to_string(self.dir.join(format!("n{i}/pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signalling a dockerd this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let quiet = |cmd: &mut Command| {
            let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        if self.made_swarm {
            quiet(Command::new("docker").args(["swarm", "leave", "--force"]));
            // What swarm mode made and leaving it keeps (no other network:
            // other tests make theirs on this engine meanwhile).
            for n in ["docker_gwbridge", "ingress"] {
                if !self.networks_before.contains(n) {
                    quiet(Command::new("docker").args(["network", "rm", n]));
                }
            }
        }
        for d in &mut self.dockerds {
            let _ = d.kill();
            let _ = d.wait();
        }
        if let Some(r) = &mut self.registry {
            let _ = r.kill();
            let _ = r.wait();
        }
        let tag = &self.tag;
        // Whatever still runs in the node namespaces (containerd's shims,
        // their containers, fuse-overlayfs), then the namespaces.
        quiet(Command::new("sh").arg("-c").arg(format!(
            "for n in {tag}n2 {tag}n3; do ip netns pids $n 2>/dev/null | xargs -r kill -9; done; sleep 1; \
             for n in {tag}n2 {tag}n3 {tag}sw; do ip netns del $n; done; ip link del {tag}h0"
        )));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn environment(dir: &Path) -> Environment {
    serde_json::from_str(&std::fs::read_to_string(dir.join("environment.json")).unwrap()).unwrap()
}

/// `cargo xtask bench smoke --on swarm --registry :PORT --out OUT` with `extra`.
fn smoke_on_swarm(c: &Cluster, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = xtask(&[
        "bench",
        "smoke",
        "--on",
        "swarm",
        "--registry",
        &format!(":{}", c.registry_port),
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ]);
    cmd.args(extra);
    cmd
}

/// Its one `xtask: --on swarm` line, when it was refused before anything
/// was written.
fn refusal(c: &Cluster, out: &Path) -> String {
    let o = smoke_on_swarm(c, out, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(!out.exists() && !rtbench_record::load::partial_dir(out).exists());
    stderr
        .lines()
        .find(|l| l.starts_with("xtask: --on swarm"))
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_string()
}

/// Nothing of a run is left on any engine: no service, no labelled
/// container, no tag of the registry on this one.
fn assert_nothing_left(c: &Cluster, nodes: &[u32]) {
    let t0 = Instant::now();
    loop {
        let services = docker(&["service", "ls", "-q", "--filter", "label=rtbench.run"]);
        let ps = [
            "ps",
            "-a",
            "--filter",
            "label=rtbench.run",
            "--format",
            "{{.Names}} {{.Status}}",
        ];
        let mut containers = docker(&ps);
        for &i in nodes {
            containers += &c.node_docker(i, &ps);
        }
        if services.is_empty() && containers.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "left 30 s after the run: services {services:?}, containers {containers:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let tags = docker(&["images", "--format", "{{.Repository}}"]);
    assert!(
        !tags.contains(&format!(":{}/", c.registry_port)),
        "registry tags left: {tags}"
    );
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Docker swarm, dockerd in network namespaces, a registry"]
fn smoke_on_a_swarm_of_three_nodes_and_a_node_lost_mid_hold() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::scratch("swarm").parent().unwrap().to_path_buf();
    let mut c = Cluster::new(&dir);

    // Refusals, one line each, before anything is written.
    let line = refusal(&c, &dir.join("off"));
    assert!(
        line.starts_with("xtask: --on swarm: this engine is not in swarm mode: docker swarm init"),
        "{line}"
    );
    c.init_and_join();
    let line = refusal(&c, &dir.join("unlabelled"));
    assert_eq!(
        line,
        "xtask: --on swarm: no ready node of the 3 carries rtbench.role=server: docker node update --label-add rtbench.role=server NODE (README: Many machines)"
    );
    c.label();

    // The run: server on this node, a worker on each load node.
    let out = dir.join("record");
    let o = smoke_on_swarm(&c, &out, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let s = read_summary(&out).unwrap();
    assert!(s.complete, "{stderr}");
    assert_eq!((s.connections.held, s.connections.failed), (2000, 0));
    assert!(s.delivery_ms.count > 0 && s.errors.misdelivered == 0 && s.errors.duplicates == 0);
    // The server on another node (as far as the run knows) is sampled
    // through its /metrics.
    assert!(s.server.rss_peak_kib > 0, "{s:?}");
    let d = environment(&out).deployment;
    assert_eq!(d.kind, "swarm");
    // Every node named with what its engine says of it.
    let mut named: Vec<(String, String, String)> = d
        .hosts
        .iter()
        .map(|h| {
            let n = h.node.as_ref().unwrap_or_else(|| panic!("{h:?}"));
            assert!(
                n.engine_version.starts_with("20.10") && n.cpus >= 1.0 && n.memory_bytes > 1 << 30,
                "{n:?}"
            );
            // Each node's settings were read there.
            let somaxconn = &h.tuning["net.core.somaxconn"];
            assert!(
                somaxconn.before.is_some() && somaxconn.before == somaxconn.after,
                "{h:?}"
            );
            (n.hostname.clone(), h.role.clone(), h.address.clone())
        })
        .collect();
    named.sort();
    let this_host = run(&mut Command::new("hostname"));
    let mut want = vec![
        (this_host.clone(), "server".to_string(), format!("{NET}.1")),
        ("rtbench-n2".into(), "client".into(), format!("{NET}.2")),
        ("rtbench-n3".into(), "client".into(), format!("{NET}.3")),
    ];
    want.sort();
    assert_eq!(named, want);
    // The image by digest, from the registry, pulled so by the load nodes.
    let image = &d.images[0];
    let prefix = format!("{NET}.1:{}/rtbench/bench@sha256:", c.registry_port);
    assert!(image.starts_with(&prefix), "{:?}", d.images);
    let digest = image.split('@').nth(1).unwrap();
    for i in [2, 3] {
        let digests = c.node_docker(i, &["images", "--digests", "--format", "{{.Digest}}"]);
        assert!(digests.lines().any(|l| l == digest), "n{i}: {digests}");
    }
    // The server ran here, on this node's swarm address; a worker on each
    // load node, reached there by the controller.
    let server_log = std::fs::read_to_string(out.join("containers/server-0.log")).unwrap();
    assert!(
        server_log.contains(&format!("rtbench-server: listening on {NET}.1:")),
        "{server_log}"
    );
    let launch = rtbench_record::launch::Launch::read(&out.join("launch.json")).unwrap();
    let mut placed: Vec<(String, String)> = launch
        .workers
        .iter()
        .map(|w| (w.host.clone(), w.connect.unwrap().ip().to_string()))
        .collect();
    placed.sort();
    assert_eq!(
        placed,
        [
            ("rtbench-n2".to_string(), format!("{NET}.2")),
            ("rtbench-n3".to_string(), format!("{NET}.3"))
        ]
    );
    // Each load node sampled every second into hosts.csv.
    let rows: Vec<rtbench_record::series::HostSample> = rtbench_record::series::read_csv(
        &out.join("loadgen").join(rtbench_record::load::HOSTS_CSV),
    )
    .unwrap();
    for host in ["rtbench-n2", "rtbench-n3"] {
        assert!(
            rows.iter().filter(|r| r.host == host).count() >= 7,
            "{host}: {rows:?}"
        );
    }
    assert_nothing_left(&c, &[2, 3]);

    // A load node's engine stopped while the connections are held: the run
    // names the node and its worker, and is not complete (exit 3).
    let out = dir.join("lost");
    let mut child = smoke_on_swarm(&c, &out, &["--hold", "30"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let held = line.starts_with("t=3s");
        seen.push(line);
        if held {
            break;
        }
    }
    c.stop_engine(3);
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    let seen = seen.join("\n");
    assert_eq!(status.code(), Some(3), "{seen}");
    let s = read_summary(&out).unwrap();
    assert!(!s.complete, "{seen}");
    let launch = rtbench_record::launch::Launch::read(&out.join("launch.json")).unwrap();
    let on_n3 = launch
        .workers
        .iter()
        .position(|w| w.host == "rtbench-n3")
        .unwrap();
    assert_eq!(s.process_exits.len(), 1, "{:?}\n{seen}", s.process_exits);
    let e = &s.process_exits[0];
    assert_eq!(
        e.role.to_string(),
        format!("worker {on_n3} on rtbench-n3"),
        "{e:?}"
    );
    assert!(
        e.status.starts_with(&format!(
            "its node rtbench-n3 ({NET}.3) is down: its engine stopped or its network was cut"
        )),
        "{e:?}"
    );
    // The other load node's worker held its share to the end.
    assert_eq!(s.connections.failed, 0, "{seen}");
    assert_nothing_left(&c, &[2]);
    drop(c);

    // The engine as the test found it.
    assert_eq!(
        docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]),
        "inactive"
    );
    assert!(!Path::new(&format!("/run/netns/rsw{}n2", std::process::id() % 100_000)).exists());
}

//! `cargo xtask bench <suite> --on containers`: the server, Redis and
//! every load generator worker as containers on a private (internal) Docker
//! network, each with fixed resources, so a run is the same on a laptop and a
//! CI runner. The load generator's controller stays on this machine and
//! starts each worker with `docker run -i` (`rtbench-loadgen run --launch`):
//! the plan goes in on the container's stdin, its JSON lines come back on
//! the container's output stream.
//!
//! Images are built here, from the release binaries and the shared libraries
//! they load (`FROM scratch`), so nothing needs a registry; Redis's image is
//! built the same way from Debian's redis-server. Every container and the
//! network carry the label `rtbench.run=<id>` and are removed when the run
//! ends, also on failure and Ctrl-C (`Drop`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rtbench_record::launch::{Launch, WorkerLaunch};
use rtbench_record::{Containers, Deployment, HostRecord, Limits};

use crate::root;
use crate::server::{REDIS_ARGS, RedisProcess, ServerProcess};

const SERVER_PORT: u16 = 8080;
const REDIS_PORT: u16 = 6379;

pub struct Docker {
    run: String,
    network: String,
    image: String,
    redis_image: Option<String>,
    spec: Containers,
    hosts: std::cell::RefCell<Vec<HostRecord>>,
}

/// Checks the engine answers: one clear line before anything starts.
pub fn check_engine() -> Result<(), String> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| format!("--on containers needs the docker command: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "--on containers: no Docker engine answers ({})",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("docker version failed")
        ));
    }
    Ok(())
}

impl Docker {
    /// Builds the images and creates the network. `redis`: the run has
    /// several server processes and needs the bus.
    pub fn setup(spec: &Containers, redis: bool) -> Result<Docker, String> {
        check_engine()?;
        let run = format!(
            "{}-{}",
            std::process::id(),
            rtbench_protocol::time::now_ns() % 1_000_000
        );
        let release = root().join("target/release");
        let image = build_image(
            "rtbench/bench",
            &[
                (release.join("rtbench-server"), "rtbench-server"),
                (release.join("rtbench-loadgen"), "rtbench-loadgen"),
            ],
        )?;
        let redis_image = if redis {
            let bin = which("redis-server").ok_or("--on containers: the Redis image is built from Debian's redis-server: apt-get install -y redis-server")?;
            Some(build_image("rtbench/redis", &[(bin, "redis-server")])?)
        } else {
            None
        };
        let network = format!("rtbench-{run}");
        docker(&[
            "network",
            "create",
            "--internal",
            "--label",
            &format!("rtbench.run={run}"),
            &network,
        ])?;
        Ok(Docker {
            run,
            network,
            image,
            redis_image,
            spec: spec.clone(),
            hosts: Default::default(),
        })
    }

    /// `docker run` options every container of the run gets, with `limits`.
    fn run_args(&self, name: &str, limits: &Limits) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "run".into(),
            "--rm".into(),
            "--name".into(),
            name.into(),
            "--network".into(),
            self.network.clone(),
            "--label".into(),
            format!("rtbench.run={}", self.run),
            "--ulimit".into(),
            format!("nofile={0}:{0}", self.spec.nofile),
        ];
        if let Some(c) = limits.cpus {
            a.extend(["--cpus".into(), c.to_string()]);
        }
        if let Some(m) = &limits.memory {
            a.extend(["--memory".into(), m.clone()]);
        }
        for (k, v) in &self.spec.sysctls {
            a.extend(["--sysctl".into(), format!("{k}={v}")]);
        }
        a
    }

    pub fn start_server(&self, i: u64, args: &[String]) -> Result<ServerProcess, String> {
        let name = format!("rtbench-{}-server-{i}", self.run);
        let mut full = vec!["--listen".to_string(), format!("0.0.0.0:{SERVER_PORT}")];
        full.extend_from_slice(args);
        let mut cmd = Command::new("docker");
        cmd.args(self.run_args(&name, &self.spec.server))
            .arg(&self.image)
            .arg("/bin/rtbench-server")
            .args(&full);
        let hosts = &self.hosts;
        ServerProcess::start_via(cmd, full, false, |_, _| {
            let (ip, pid) = inspect(&name)?;
            hosts
                .borrow_mut()
                .push(host_record("server", &format!("{name} {ip}")));
            Ok((
                SocketAddr::new(
                    ip.parse()
                        .map_err(|_| format!("{name}: bad address {ip}"))?,
                    SERVER_PORT,
                ),
                pid,
            ))
        })
    }

    pub fn start_redis(&self) -> Result<RedisProcess, String> {
        let image = self
            .redis_image
            .as_ref()
            .ok_or("no Redis image was built")?;
        let name = format!("rtbench-{}-redis", self.run);
        let mut cmd = Command::new("docker");
        cmd.args(self.run_args(&name, &self.spec.redis))
            .arg(image)
            .args([
                "/bin/redis-server",
                "--port",
                &REDIS_PORT.to_string(),
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
            ])
            .args(REDIS_ARGS);
        let child = crate::server::die_with_parent(&mut cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("docker run {name}: {e}"))?;
        // The address is known once the container exists.
        let t0 = std::time::Instant::now();
        let (ip, pid) = loop {
            match inspect(&name) {
                Ok(v) if !v.0.is_empty() => break v,
                _ if t0.elapsed() > std::time::Duration::from_secs(20) => {
                    return Err(format!("{name} did not start within 20 s"));
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        };
        self.hosts
            .borrow_mut()
            .push(host_record("redis", &format!("{name} {ip}")));
        let addr = SocketAddr::new(
            ip.parse()
                .map_err(|_| format!("{name}: bad address {ip}"))?,
            REDIS_PORT,
        );
        RedisProcess::adopt(child, addr, pid)
    }

    /// One `docker run -i` command line per worker container.
    pub fn launch(&self) -> Launch {
        let workers = (0..self.spec.workers.max(1))
            .map(|w| {
                let name = format!("rtbench-{}-worker-{w}", self.run);
                self.hosts.borrow_mut().push(host_record("client", &name));
                let mut argv = vec!["docker".to_string()];
                argv.extend(self.run_args(&name, &self.spec.worker));
                argv.insert(2, "-i".into());
                argv.extend([
                    self.image.clone(),
                    "/bin/rtbench-loadgen".into(),
                    "worker".into(),
                ]);
                WorkerLaunch {
                    host: name,
                    argv,
                    clock_offset_ns: 0,
                }
            })
            .collect();
        Launch { workers }
    }

    pub fn deployment(&self) -> Deployment {
        Deployment {
            kind: "containers".into(),
            containers: Some(self.spec.clone()),
            images: std::iter::once(self.image.clone())
                .chain(self.redis_image.clone())
                .collect(),
            hosts: self.hosts.borrow().clone(),
        }
    }
}

impl Drop for Docker {
    /// Removes every container and the network of the run, whatever happened.
    fn drop(&mut self) {
        let label = format!("label=rtbench.run={}", self.run);
        if let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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
    }
}

/// (IP on the run's network, pid in this machine's /proc).
fn inspect(name: &str) -> Result<(String, u32), String> {
    let out = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} {{.State.Pid}}",
        name,
    ])?;
    let mut f = out.split_whitespace();
    match (f.next(), f.next().and_then(|p| p.parse().ok())) {
        (Some(ip), Some(pid)) => Ok((ip.to_string(), pid)),
        _ => Ok((String::new(), 0)),
    }
}

/// Builds `FROM scratch` with the binaries under /bin and every library
/// they load (as `ldd` lists them) at its own path. Returns `name:tag`.
fn build_image(name: &str, bins: &[(PathBuf, &str)]) -> Result<String, String> {
    let ctx = root()
        .join("target/containers")
        .join(name.replace('/', "-"));
    let _ = std::fs::remove_dir_all(&ctx);
    let rootfs = ctx.join("rootfs");
    for (bin, as_name) in bins {
        crate::copy_file(bin, &rootfs.join("bin").join(as_name))?;
        for lib in libraries(bin)? {
            crate::copy_file(&lib, &rootfs.join(lib.strip_prefix("/").unwrap_or(&lib)))?;
        }
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n")
        .map_err(|e| e.to_string())?;
    let tag = "latest";
    let image = format!("{name}:{tag}");
    eprintln!(
        "xtask: building image {image} from {}",
        bins.iter()
            .map(|b| b.0.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(&ctx)
        .output()
        .map_err(|e| format!("docker build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker build {image}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(image)
}

/// The shared libraries `bin` loads, the dynamic loader among them.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| format!("ldd {}: {e}", bin.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The suite's `[containers]` with `--limit` applied: `server.cpus=1`,
/// `worker.memory=512m`, `redis.cpus=0.5`, `workers=4`, `nofile=20000`,
/// `sysctl.net.core.somaxconn=4096`.
pub fn with_limits(spec: &Containers, limits: &[String]) -> Result<Containers, String> {
    let mut c = spec.clone();
    for l in limits {
        let (key, value) = l
            .split_once('=')
            .ok_or(format!("--limit {l}: expected ROLE.KEY=VALUE"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("--limit {l}: `{v}` is not a number"))
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
                        return Err(format!(
                            "--limit {l}: role `{r}` is not server, worker or redis"
                        ));
                    }
                };
                match field {
                    "cpus" => limits.cpus = Some(num(value)?),
                    "memory" => limits.memory = Some(value.into()),
                    f => return Err(format!("--limit {l}: `{f}` is not cpus or memory")),
                }
            }
            None => match key {
                "workers" => c.workers = num(value)?.max(1.0) as u64,
                "nofile" => c.nofile = num(value)? as u64,
                k => {
                    return Err(format!(
                        "--limit {l}: `{k}` is not workers, nofile, sysctl.NAME or ROLE.KEY"
                    ));
                }
            },
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
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
        assert!(e.contains("`cpu` is not cpus or memory"), "{e}");
    }
}

//! The Docker engine's API as `--on containers` and `--on swarm` both use
//! it: one connection with a runtime of its own (the xtask is not async),
//! the labels every object of a run carries (`rtbench.run`, and its owner
//! `rtbench.owner`), the sweep that removes a run's containers, services
//! and networks, the reaper that does so when the xtask is killed, and the
//! images built here `FROM scratch` from the release binaries and the
//! shared libraries they load.

use anyhow::Context as _;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use testcontainers::bollard;
use testcontainers::core::logs::LogFrame;
use testcontainers::runners::SyncBuilder;
use testcontainers::{GenericBuildableImage, GenericImage};

/// Every container, service and network of a run carries it, valued with
/// the run.
pub const LABEL: &str = "rtbench.run";
/// And this, valued with the xtask that made them (`this_owner`).
pub const OWNER: &str = "rtbench.owner";

/// A new run's name (`<xtask pid>-<n>`) and the labels its objects carry.
pub fn new_run() -> (String, HashMap<String, String>) {
    let run = format!(
        "{}-{}",
        std::process::id(),
        rtbench_protocol::time::now_ns() % 1_000_000
    );
    let labels = HashMap::from([
        (LABEL.to_string(), run.clone()),
        (OWNER.to_string(), this_owner()),
    ]);
    (run, labels)
}

/// The engine's API with a runtime of its own: one worker thread, so that
/// what follows a service's output goes on between the xtask's calls.
pub struct Engine {
    pub api: bollard::Docker,
    pub rt: tokio::runtime::Runtime,
}

impl Engine {
    /// The engine `DOCKER_HOST` names, or this machine's; `flag` (`--on
    /// containers`) starts the one line that says none answers.
    pub fn connect(flag: &str) -> anyhow::Result<Engine> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("building the engine client's tokio runtime")?;
        let api = bollard::Docker::connect_with_local_defaults()
            .map_err(|e| anyhow::anyhow!("{flag}: no Docker engine answers ({e:#})"))?;
        let engine = Engine { api, rt };
        engine
            .rt
            .block_on(engine.api.version())
            .map_err(|e| anyhow::anyhow!("{flag}: no Docker engine answers ({e:#})"))?;
        Ok(engine)
    }

    /// Removes what killed xtasks (and their reapers) left: the runs of
    /// this machine whose owner is gone.
    pub fn sweep(&self) {
        self.remove_runs(|labels| labels.get(OWNER).is_some_and(|o| owner_gone(o)));
    }

    /// Removes the services, containers and networks of every run whose
    /// labels `gone` holds for.
    pub fn remove_runs(&self, gone: impl Fn(&HashMap<String, String>) -> bool) {
        use bollard::query_parameters::{
            ListContainersOptions, ListNetworksOptions, ListServicesOptions, RemoveContainerOptions,
        };
        let filters = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
        let label_of = |labels: Option<HashMap<String, String>>| gone(&labels.unwrap_or_default());
        self.rt.block_on(async {
            // A swarm's services first: removing one removes its tasks'
            // containers on every node. (The engine answers 503 when it is
            // not a swarm manager: nothing to remove.)
            let services = self
                .api
                .list_services(Some(ListServicesOptions {
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .unwrap_or_default();
            for s in services {
                if label_of(s.spec.and_then(|s| s.labels))
                    && let Some(id) = s.id
                {
                    let _ = self.api.delete_service(&id).await;
                }
            }
            let containers = self
                .api
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .unwrap_or_default();
            for c in containers {
                if label_of(c.labels)
                    && let Some(id) = c.id
                {
                    let _ = self
                        .api
                        .remove_container(
                            &id,
                            Some(RemoveContainerOptions {
                                force: true,
                                v: true,
                                ..Default::default()
                            }),
                        )
                        .await;
                }
            }
            let networks = self
                .api
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(filters),
                }))
                .await
                .unwrap_or_default();
            for n in networks {
                if label_of(n.labels)
                    && let Some(name) = n.name
                {
                    let _ = self.api.remove_network(&name).await;
                }
            }
        });
    }
}

/// `cargo xtask containers-reaper RUN`: waits for its stdin to end (the
/// xtask that started it ending, however it ends), then removes every
/// service, container and network of RUN.
pub fn reaper(run: &str) -> anyhow::Result<()> {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    Engine::connect("the reaper")?
        .remove_runs(|labels| labels.get(LABEL).map(String::as_str) == Some(run));
    Ok(())
}

/// Starts this binary as the run's reaper, in a session of its own (a
/// Ctrl-C or a kill of this process group leaves it), holding the write end
/// of its stdin.
pub fn start_reaper(run: &str) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("the reaper: {e:#}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["containers-reaper", run])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| anyhow::anyhow!("starting the containers' reaper: {e:#}"))
}

/// This process as a run's owner: the boot, the pid namespace, the pid and
/// its start time, so that a pid reused later, or one seen from another
/// namespace or machine, is never taken for it.
fn this_owner() -> String {
    let pid = std::process::id();
    format!(
        "{} {} {pid} {}",
        boot_id(),
        pid_namespace(),
        process_start(pid).unwrap_or(0)
    )
}

/// An owner (`this_owner`) that was this machine's and namespace's and
/// whose process has ended. Anything else (another machine sharing the
/// engine, another namespace) is left alone.
pub fn owner_gone(owner: &str) -> bool {
    let f: Vec<&str> = owner.split(' ').collect();
    let [boot, ns, pid, start] = f[..] else {
        return false;
    };
    if boot != boot_id() || ns != pid_namespace() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) => process_start(pid).map(|s| s.to_string()) != Some(start.to_string()),
        Err(_) => false,
    }
}

fn boot_id() -> String {
    rtbench_sys::host::boot_id().unwrap_or_default()
}

fn pid_namespace() -> String {
    rtbench_sys::process::pid_namespace().unwrap_or_default()
}

/// A process's start time (clock ticks after boot), None when it is gone.
fn process_start(pid: u32) -> Option<u64> {
    rtbench_sys::process::Stat::read(rtbench_sys::process::Process::Pid(pid))
        .ok()
        .map(|s| s.start_ticks)
}

/// Writes what a container prints (stdout and stderr, as they come) to `path`.
pub fn log_file(path: &Path) -> anyhow::Result<impl Fn(&LogFrame) + Send + Sync + 'static> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e:#}", dir.display()))?;
    }
    let file =
        std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
    let file = Mutex::new(file);
    Ok(move |frame: &LogFrame| {
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(frame.bytes());
    })
}

/// A memory size as Docker reads one (`512m`, `1.5g`, `2GiB`, `65536k`,
/// plain bytes): a number, then optionally k, m, g, t or p (powers of 1024),
/// `i` and `b`.
pub fn memory_bytes(size: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("memory `{size}` is not a size such as 512m, 1.5g or 2GiB");
    let s = size.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let mut unit = unit.trim_start().chars().peekable();
    let shift = match unit.peek().map(char::to_ascii_lowercase) {
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        _ => 0,
    };
    if shift > 0 {
        unit.next();
    }
    let rest: String = unit.collect::<String>().to_ascii_lowercase();
    if !matches!(rest.as_str(), "" | "b" | "ib" | "i") {
        return Err(bad());
    }
    let bytes = number * (1u64 << shift) as f64;
    if !(1.0..9.2e18).contains(&bytes) {
        return Err(anyhow::anyhow!("memory `{size}` is out of range"));
    }
    Ok(bytes as i64)
}

/// A run's images: `rtbench/bench` (the release server and load
/// generator) and, when `redis`, `rtbench/redis` from Debian's
/// redis-server. `flag` (`--on containers`) starts a refusal.
pub fn run_images(redis: bool, flag: &str) -> anyhow::Result<(GenericImage, Option<GenericImage>)> {
    let release = crate::root().join("target/release");
    let image = build_image(
        "rtbench/bench",
        &[
            (release.join("rtbench-server"), "rtbench-server"),
            (release.join("rtbench-loadgen"), "rtbench-loadgen"),
        ],
    )?;
    let redis_image = if redis {
        let bin = which("redis-server").with_context(|| format!("{flag}: the Redis image is built from Debian's redis-server: apt-get install -y redis-server"))?;
        Some(build_image("rtbench/redis", &[(bin, "redis-server")])?)
    } else {
        None
    };
    Ok((image, redis_image))
}

/// Builds `FROM scratch` with the binaries under /bin and every library
/// they load (as `ldd` lists them) at its own path.
pub fn build_image(name: &str, bins: &[(PathBuf, &str)]) -> anyhow::Result<GenericImage> {
    let mut build = GenericBuildableImage::new(name, "latest")
        .with_dockerfile_string("FROM scratch\nCOPY rootfs/ /\n");
    for (bin, as_name) in bins {
        if !bin.is_file() {
            return Err(anyhow::anyhow!("{}: not built", bin.display()));
        }
        build = build.with_file(bin, format!("rootfs/bin/{as_name}"));
        for lib in libraries(bin)? {
            let inside = format!("rootfs{}", lib.display());
            build = build.with_file(lib, inside);
        }
    }
    eprintln!(
        "xtask: building image {name}:latest from {}",
        bins.iter()
            .map(|b| b.0.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    build
        .build_image()
        .map_err(|e| anyhow::anyhow!("building image {name}: {e:#}"))
}

/// The shared libraries `bin` loads, the dynamic loader among them.
fn libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| anyhow::anyhow!("ldd {}: {e:#}", bin.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

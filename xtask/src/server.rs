//! The server (and Redis) as processes seen from outside: start them, find
//! their addresses, read their RSS, CPU and metrics, stop them. Used by
//! `memprobe` and `bench`.

use anyhow::Context as _;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rtbench_sys::process::Process;

/// How long a server started from a command line may take to accept:
/// RabbitMQ boots its Erlang VM and plugins in 15-45 s on a busy 2-core machine.
const COMMAND_READY: Duration = Duration::from_secs(120);

/// A process this one did not start as a child, held through whoever runs
/// it (a container, through the Docker engine).
pub trait Elsewhere {
    /// How it ended, once it has (asked again after, it may say again);
    /// None while it runs.
    fn exit(&mut self) -> Option<String>;
    /// Asks it to stop (SIGTERM), kills it after `grace`, and removes it.
    fn stop(&mut self, grace: Duration);
}

/// A server process of the run: local, held through the client that
/// started it elsewhere (`ssh`), or through the engine of its container.
pub struct ServerProcess {
    child: Option<Child>,
    elsewhere: Option<Box<dyn Elsewhere>>,
    /// Closing it stops a process started over ssh (its remote shell waits
    /// for stdin's end, then stops the server); None: stop with SIGTERM.
    stdin: Option<ChildStdin>,
    /// Its pid in this machine's /proc, or 0 when it runs on another machine
    /// (then RSS and CPU come from its /metrics).
    pid: u32,
    pub addr: SocketAddr,
    /// Where this process alone answers /metrics: `addr`, unless the port
    /// is shared with other processes (then its `--admin-listen`).
    pub metrics_addr: SocketAddr,
    pub args: Vec<String>,
    /// Its exit was reported (`poll_exit`).
    exit_seen: bool,
}

/// The `--admin-listen` address among a server's arguments.
fn admin_address(args: &[String]) -> Option<SocketAddr> {
    let i = args.iter().position(|a| a == "--admin-listen")?;
    args.get(i + 1)?.parse().ok()
}

/// A child's end in words: `exit status: 1`, `signal 9 (SIGKILL)`.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => {
            // SAFETY: strsignal returns a static or thread-local string.
            let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) };
            format!("signal {sig} ({})", name.to_string_lossy())
        }
        None => status.to_string(),
    }
}

/// The exit of `child` or of the process `elsewhere` holds, once: None
/// while it runs and after it was seen.
fn poll_exit(
    child: &mut Option<Child>,
    elsewhere: &mut Option<Box<dyn Elsewhere>>,
    seen: &mut bool,
) -> Option<String> {
    if *seen {
        return None;
    }
    let status = match (child, elsewhere) {
        (Some(child), _) => describe_exit(child.try_wait().ok()??),
        (None, Some(held)) => held.exit()?,
        (None, None) => return None,
    };
    *seen = true;
    Some(status)
}

impl ServerProcess {
    /// Starts the server binary `bin` on an ephemeral loopback port with `args`.
    pub fn start(bin: &std::path::Path, args: &[String]) -> anyhow::Result<ServerProcess> {
        // An ephemeral port unless the caller chose one.
        let mut full = if args.iter().any(|a| a == "--listen") {
            Vec::new()
        } else {
            vec!["--listen".to_string(), "127.0.0.1:0".into()]
        };
        full.extend_from_slice(args);
        let mut cmd = Command::new(bin);
        crate::netns::enter(cmd.args(&full));
        at_server_priority(&mut cmd);
        ServerProcess::start_via(cmd, full, false, |addr, pid| Ok((addr, pid)))
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", bin.display()))
    }

    /// Starts the server through `cmd` (which ends in the server and its
    /// `args`). `resolve` turns the address the server reports and the
    /// client's pid into the address to use and the pid to sample.
    pub fn start_via(
        mut cmd: Command,
        args: Vec<String>,
        stop_by_stdin: bool,
        resolve: impl FnOnce(SocketAddr, u32) -> anyhow::Result<(SocketAddr, u32)>,
    ) -> anyhow::Result<ServerProcess> {
        let mut child = die_with_parent(&mut cmd)
            .stdin(if stop_by_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start the server: {e:#}"))?;
        let stdin = child.stdin.take();
        let mut p = ServerProcess {
            pid: child.id(),
            elsewhere: None,
            stdin,
            addr: ([0, 0, 0, 0], 0).into(),
            metrics_addr: ([0, 0, 0, 0], 0).into(),
            args,
            child: None,
            exit_seen: false,
        };
        let stderr = child.stderr.take().expect("piped");
        p.child = Some(child);
        let reported = listening_address(stderr)?;
        (p.addr, p.pid) = resolve(reported, p.pid)?;
        p.metrics_addr = admin_address(&p.args).unwrap_or(p.addr);
        Ok(p)
    }

    /// Starts any server from a shell command line (its placeholders
    /// already filled in, `Subject::command_lines`) that listens on loopback
    /// `port`; ready when that port accepts a connection (a broker may take
    /// a while: up to `COMMAND_READY`). Its stderr's last lines explain a
    /// server that never got there.
    pub fn start_command(line: &str, port: u16) -> anyhow::Result<ServerProcess> {
        let line = line.to_string();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("exec {line}")]);
        crate::netns::enter(&mut cmd);
        at_server_priority(&mut cmd);
        // SAFETY: it allocates nothing (two system calls): the server may
        // hold as many descriptors as this machine lets one process have.
        unsafe {
            cmd.pre_exec(rtbench_sys::limits::raise_open_files_after_fork);
        }
        let mut child = die_with_parent(&mut cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start `{line}`: {e:#}"))?;
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let keep = tail.clone();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                t.push(l);
                if t.len() > 10 {
                    t.remove(0);
                }
            }
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let t = tail.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
                return Err(anyhow::anyhow!(
                    "`{line}` exited ({status}) before accepting on {addr}:\n{t}"
                ));
            }
            if crate::netns::connect(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if t0.elapsed() > COMMAND_READY {
                let _ = child.kill();
                let t = tail.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
                return Err(anyhow::anyhow!(
                    "`{line}` did not accept on {addr} within {} s:\n{t}",
                    COMMAND_READY.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ServerProcess {
            pid: child.id(),
            elsewhere: None,
            stdin: None,
            addr,
            metrics_addr: addr,
            args: vec![line],
            child: Some(child),
            exit_seen: false,
        })
    }

    /// A server that `held` runs (a container): it listens at `addr` and
    /// has `pid` in this machine's /proc.
    pub fn held_elsewhere(
        held: Box<dyn Elsewhere>,
        addr: SocketAddr,
        pid: u32,
        args: Vec<String>,
    ) -> ServerProcess {
        ServerProcess {
            child: None,
            elsewhere: Some(held),
            stdin: None,
            pid,
            addr,
            metrics_addr: admin_address(&args).unwrap_or(addr),
            args,
            exit_seen: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How it ended, the first time it is seen to have (a server that dies
    /// during a run); None while it runs.
    pub fn poll_exit(&mut self) -> Option<String> {
        poll_exit(&mut self.child, &mut self.elsewhere, &mut self.exit_seen)
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        if self.pid == 0 {
            return Ok(self.metric("rtbench_process_resident_memory_bytes")? / 1024);
        }
        rss_kib(self.pid)
    }

    pub fn metric(&self, name: &str) -> anyhow::Result<u64> {
        metric(self.metrics_addr, name)
    }

    /// SIGTERM (or, over ssh, the end of its stdin), then SIGKILL if it has
    /// not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut held) = self.elsewhere.take() {
            held.stop(grace);
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.stdin.take().is_none() {
            let _ =
                rtbench_sys::process::signal(child.id(), rtbench_sys::process::Signal::Terminate);
        }
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Makes a child receive SIGTERM if this process dies, so that no run leaves
/// orphans behind even when the xtask itself is killed.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// Runs a child at `SERVER_NICE`, as every process under test runs (a
/// server, a broker, the Redis bus, the roofline's sides): a shared
/// machine's daemons do not preempt it. Refused unless root: the child then
/// keeps this process's niceness, and the record says which it got.
pub fn at_server_priority(cmd: &mut Command) -> &mut Command {
    // SAFETY: one system call, nothing allocated: safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            rtbench_sys::process::set_niceness_after_fork(rtbench_record::launch::SERVER_NICE)
        })
    }
}

/// Reads the server's `listening on ADDR` line; keeps draining its stderr.
fn listening_address(stderr: impl Read + Send + 'static) -> anyhow::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("rtbench-server: listening on ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::Error::msg("the server did not report its address within 10 s"))?;
    addr.parse()
        .map_err(|_| anyhow::anyhow!("the server reported a bad address `{addr}`"))
}

/// A redis-server for the run's event bus: Debian's binary, no persistence.
/// Local (an ephemeral loopback port) or held through the client that
/// started it elsewhere, like `ServerProcess`.
pub struct RedisProcess {
    child: Option<Child>,
    elsewhere: Option<Box<dyn Elsewhere>>,
    stdin: Option<ChildStdin>,
    url: String,
    /// As for `ServerProcess`: 0 when on another machine.
    pid: u32,
    exit_seen: bool,
}

/// redis-server's flags for the bus, after the address ones.
pub const REDIS_ARGS: [&str; 6] = ["--save", "", "--appendonly", "no", "--maxclients", "10000"];

impl RedisProcess {
    pub fn start() -> anyhow::Result<RedisProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| anyhow::anyhow!("no free port for redis: {e:#}"))?
            .port();
        RedisProcess::start_on(port)
    }

    /// A fault plan's Redis restart (local runs): this one killed, a new
    /// one started on the same port, so the servers' bus reconnects to it.
    pub fn restart(&mut self) -> anyhow::Result<RedisProcess> {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .filter(|_| self.child.is_some() && self.elsewhere.is_none())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "a Redis restart runs only on this machine (Redis at {})",
                    self.url
                )
            })?;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        RedisProcess::start_on(port)
    }

    fn start_on(port: u16) -> anyhow::Result<RedisProcess> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(REDIS_ARGS);
        crate::netns::enter(&mut cmd);
        at_server_priority(&mut cmd);
        RedisProcess::start_via(cmd, ([127, 0, 0, 1], port).into(), false, Ok)
            .map_err(|e| anyhow::anyhow!("{e:#}; install it: apt-get install -y redis-server"))
    }

    /// Starts redis through `cmd`; it must come to listen at `addr`.
    pub fn start_via(
        mut cmd: Command,
        addr: SocketAddr,
        stop_by_stdin: bool,
        pid: impl FnOnce(u32) -> anyhow::Result<u32>,
    ) -> anyhow::Result<RedisProcess> {
        let mut child = die_with_parent(&mut cmd)
            .stdin(if stop_by_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start redis-server ({e:#})"))?;
        let own = child.id();
        RedisProcess {
            stdin: child.stdin.take(),
            pid: pid(own)?,
            url: format!("redis://{addr}"),
            child: Some(child),
            elsewhere: None,
            exit_seen: false,
        }
        .listening_at(addr)
    }

    /// Holds a redis that `held` runs (a container), once it listens at `addr`.
    pub fn held_elsewhere(
        held: Box<dyn Elsewhere>,
        addr: SocketAddr,
        pid: u32,
    ) -> anyhow::Result<RedisProcess> {
        RedisProcess {
            stdin: None,
            pid,
            url: format!("redis://{addr}"),
            child: None,
            elsewhere: Some(held),
            exit_seen: false,
        }
        .listening_at(addr)
    }

    /// Itself once it accepts connections at `addr` (within 10 s).
    fn listening_at(self, addr: SocketAddr) -> anyhow::Result<RedisProcess> {
        let r = self;
        let t0 = Instant::now();
        while crate::netns::connect(&addr, Duration::from_millis(500)).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(anyhow::anyhow!(
                    "redis-server did not start listening at {addr} within 10 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }

    /// As `ServerProcess::poll_exit`.
    pub fn poll_exit(&mut self) -> Option<String> {
        poll_exit(&mut self.child, &mut self.elsewhere, &mut self.exit_seen)
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        if let Some(mut held) = self.elsewhere.take() {
            held.stop(Duration::from_secs(5));
        }
        if let Some(mut c) = self.child.take() {
            if self.stdin.take().is_some() {
                // Over ssh: the end of stdin stops it; give it a moment.
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(5) && !matches!(c.try_wait(), Ok(Some(_)))
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether `redis-server` can be started from here.
pub fn redis_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    rtbench_sys::process::rss_bytes(Process::Pid(pid))
        .map(|b| b / 1024)
        .with_context(|| format!("reading the RSS of process {pid}"))
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    rtbench_sys::process::cpu_seconds(Process::Pid(pid)).ok()
}

/// Reads one unlabelled value from the server's /metrics.
pub fn metric(addr: SocketAddr, name: &str) -> anyhow::Result<u64> {
    metric_within(addr, name, Duration::from_secs(5))
}

/// `metric`, giving up after `limit` for each of connecting and reading.
pub fn metric_within(addr: SocketAddr, name: &str, limit: Duration) -> anyhow::Result<u64> {
    metrics_within(addr, &[name], limit)?[0].with_context(|| format!("/metrics has no `{name}`"))
}

/// Several unlabelled values from one read of /metrics, each `None` where
/// the server does not export it (another server, an older build); `Err`
/// only when /metrics itself could not be read.
pub fn metrics_within(
    addr: SocketAddr,
    names: &[&str],
    limit: Duration,
) -> anyhow::Result<Vec<Option<u64>>> {
    let mut s =
        crate::netns::connect(&addr, limit).map_err(|e| anyhow::anyhow!("/metrics: {e:#}"))?;
    s.set_read_timeout(Some(limit))
        .context("/metrics: setting a read timeout")?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .context("/metrics: sending the request")?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("/metrics: {e:#}"))?;
    Ok(names
        .iter()
        .map(|name| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        })
        .collect())
}

//! `cargo xtask memprobe [--connections N] [--rate R]`: memory per idle connection,
//! on both sides.
//!
//! Builds the release server and load generator, starts the server, reads its
//! RSS, lets the load generator open N connections (each subscribed to one
//! channel, then silent) and reads the server's RSS again while they are held:
//! (RSS with N − RSS before) / N is the server's headline figure. The load
//! generator's record gives its own figure, measured the same way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root};

pub fn run(args: &[String]) -> Result<(), String> {
    let (mut n, mut rate) = (10_000u64, 5_000u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |flag: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{flag} needs a number"))?;
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match a.as_str() {
            "--connections" => n = number("--connections")?,
            "--rate" => rate = number("--rate")?,
            other => return Err(format!("memprobe: unknown argument `{other}`")),
        }
    }
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "rtbench-server",
        "-p",
        "rtbench-loadgen",
    ])?;
    let mut server = Server::start()?;
    let result = probe(&server, n, rate.max(1));
    server.stop();
    result
}

fn probe(server: &Server, n: u64, rate: u64) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss_kib()?;
    let dir = std::env::temp_dir().join(format!("rtbench-memprobe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let arrivals_s = n as f64 / rate as f64;
    let scenario = format!(
        "description = \"memprobe: {n} idle connections\"\n[target]\nurls = [\"ws://{}\"]\nsources = [\"127.0.0.2/28\"]\n\
         [[phases]]\nduration_s = {arrivals_s}\nrate = {rate}\n[hold]\nduration_s = 4\n[session]\nchannels = [\"files\"]\n",
        server.addr
    );
    let scenario_file = dir.join("memprobe.toml");
    std::fs::write(&scenario_file, scenario).map_err(|e| e.to_string())?;
    let run_dir = dir.join("run");
    let mut loadgen = Command::new(root().join("target/release/rtbench-loadgen"))
        .arg("run")
        .arg(&scenario_file)
        .arg("--out")
        .arg(&run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the load generator: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs_f64(arrivals_s + 30.0);
    while metric(server.addr, "rtbench_connections")? < n {
        if Instant::now() > deadline || loadgen.try_wait().map_err(|e| e.to_string())?.is_some() {
            let _ = loadgen.kill();
            return Err(format!(
                "the server never held {n} connections; see {}",
                run_dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let with = server.rss_kib()?;
    let held = metric(server.addr, "rtbench_connections")?;
    let status = loadgen.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "the load generator failed ({status}); see {}",
            run_dir.display()
        ));
    }
    let summary = rtbench_loadgen::record::read_summary(&run_dir)?;
    let per = with.saturating_sub(before) as f64 / held as f64;
    println!(
        "memprobe: release rtbench-server, {held} idle connections (1 channel each, no traffic)"
    );
    println!("  server RSS before      {before} KiB");
    println!("  server RSS with {held:<6} {with} KiB");
    println!("  server KiB/connection  {per:.2}");
    println!(
        "  loadgen KiB/connection {:.2}  (workers' RSS {} -> {} KiB, {} worker(s))",
        summary.loadgen.kib_per_connection,
        summary.loadgen.start_rss_kib,
        summary.loadgen.peak_rss_kib,
        summary.workers
    );
    println!(
        "  connect p50/p99        {:.2} / {:.2} ms at {rate}/s",
        summary.connect_ms.p50, summary.connect_ms.p99
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Result<Server, String> {
        let bin = root().join("target/release/rtbench-server");
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--projects", "console"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let addr = listening_address(child.stderr.take().expect("piped"))?;
        Ok(Server { child, addr })
    }

    fn rss_kib(&self) -> Result<u64, String> {
        rss_kib(self.child.id())
    }

    fn stop(&mut self) {
        // SAFETY: kill() on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Reads the server's `listening on ADDR` line; keeps draining its stderr.
pub fn listening_address(stderr: impl Read + Send + 'static) -> Result<SocketAddr, String> {
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
        .map_err(|_| "the server did not report its address within 10 s")?;
    addr.parse()
        .map_err(|_| format!("the server reported a bad address `{addr}`"))
}

pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// Reads one unlabelled value from the server's /metrics.
pub fn metric(addr: SocketAddr, name: &str) -> Result<u64, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("/metrics: {e}"))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("/metrics: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| format!("/metrics has no `{name}`"))
}

//! `cargo xtask memprobe [--connections N]`: the server's memory per idle connection.
//!
//! Builds the release server, starts it, reads its RSS, opens N WebSocket
//! connections (each subscribed to one channel, then silent) and reads the RSS
//! again: (RSS with N − RSS before) / N is the headline figure. The client side
//! is plain blocking sockets in this process, so nothing here needs a WebSocket
//! library; N is bounded by this process's open-files limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root};

pub fn run(args: &[String]) -> Result<(), String> {
    let mut n: usize = 10_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--connections" => {
                let v = it.next().ok_or("--connections needs a number")?;
                n = v
                    .parse()
                    .map_err(|_| format!("--connections: `{v}` is not a number"))?;
            }
            other => return Err(format!("memprobe: unknown argument `{other}`")),
        }
    }
    let nofile = raise_open_files();
    if n as u64 + 64 > nofile {
        return Err(format!(
            "memprobe: {n} connections need {n} descriptors here but this process may open {nofile}; use --connections {}",
            nofile.saturating_sub(64)
        ));
    }
    cargo(&["build", "--release", "--quiet", "-p", "rtbench-server"])?;
    let mut server = Server::start()?;
    let result = probe(&server, n);
    server.stop();
    result
}

fn probe(server: &Server, n: usize) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss_kib()?;
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        conns.push(connect(server.addr).map_err(|e| format!("connection {i}: {e}"))?);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let with = server.rss_kib()?;
    let held = metric(server.addr, "rtbench_connections")?;
    if held != n as u64 {
        return Err(format!(
            "the server reports {held} connections, expected {n}"
        ));
    }
    let per = (with.saturating_sub(before)) as f64 / n as f64;
    println!("memprobe: release rtbench-server, {n} idle connections (1 channel each, no traffic)");
    println!(
        "  connected in          {connect_secs:.2} s ({:.0}/s, one client thread)",
        n as f64 / connect_secs
    );
    println!("  server RSS before     {before} KiB");
    println!("  server RSS with {n:<6} {with} KiB");
    println!("  server KiB/connection {per:.2}");
    if let Some(tcp) = sockstat_tcp_mem_pages() {
        println!(
            "  kernel TCP buffers    {} KiB (sockstat `mem`, both ends, not in RSS)",
            tcp * 4
        );
    }
    drop(conns);
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
        let stderr = child.stderr.take().expect("piped");
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
            .map_err(|_| "the server did not report its address within 10 s".to_string())?;
        let addr = addr
            .parse()
            .map_err(|_| format!("the server reported a bad address `{addr}`"))?;
        Ok(Server { child, addr })
    }

    fn rss_kib(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("{path}: no VmRSS line"))
    }

    fn stop(&mut self) {
        // SAFETY: kill() on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Opens one WebSocket and waits for the `connected` frame.
fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET /v1/realtime?project=console&channels[]=files HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: cnRiZW5jaC1tZW1wcm9iZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    let mut got = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !contains(&got, b"\"connected\"") {
        let k = s.read(&mut buf)?;
        if k == 0 {
            return Err(std::io::Error::other(format!(
                "closed before `connected`: {}",
                String::from_utf8_lossy(&got)
            )));
        }
        got.extend_from_slice(&buf[..k]);
    }
    if !got.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other(format!(
            "no upgrade: {}",
            String::from_utf8_lossy(&got)
        )));
    }
    Ok(s)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads one unlabelled value from the server's /metrics.
fn metric(addr: SocketAddr, name: &str) -> Result<u64, String> {
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

/// Pages of kernel memory TCP sockets use, from /proc/net/sockstat.
fn sockstat_tcp_mem_pages() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let tcp = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = tcp.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mem" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// Raises this process's soft open-files limit to the hard one; returns it.
fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

//! `cargo xtask abuse [--seconds N]`: the server under hostile clients while
//! normal ones use it.
//!
//! Starts the release server (default limits), a normal load (the load
//! generator: signed-in clients on a few channels, events published over
//! HTTP) and, at the same time, every kind of hostile client this project
//! has met, each as a few threads that keep at it for the whole run:
//! subscribe floods (long ids, many and long channels), request heads and
//! event bodies sent a byte at a time, frames that never finish, clients
//! that never read, ping floods, garbage frames, and TCP connections that
//! never send a request. It prints what the normal clients saw (connect and
//! delivery latency, failures), the server's RSS against what its limits
//! allow, which limits bit, and its panic count.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::server::ServerProcess;

/// Hostile clients of each kind.
const EACH: usize = 8;
/// Clients of the normal load.
const NORMAL: u64 = 1_000;
/// Messages per connection per minute the server allows (Appwrite: 32).
const MESSAGE_RATE: u32 = 120;

/// `cargo xtask abuse`'s command line.
#[derive(Debug, Clone, clap::Args)]
// `-5` reaches the value's parser, which says what is wrong with it.
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Seconds the hostile clients keep at it, 5 or more
    #[arg(long, value_name = "N", default_value_t = 30.0, value_parser = five_seconds_or_more)]
    pub seconds: f64,
}

/// Under 5 s the normal load has not finished arriving.
fn five_seconds_or_more(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 5.0)
        .ok_or_else(|| "not a number of 5 or more".to_string())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let seconds = a.seconds;
    crate::build_release()?;
    // Appwrite's abuse protection on (messages per connection per minute):
    // without it a ping flood is work the server must do.
    let args = [
        "--projects",
        "console",
        "--message-rate",
        &MESSAGE_RATE.to_string(),
    ]
    .map(String::from);
    let mut server = ServerProcess::start(&crate::server_bin(), &args)?;
    let result = abuse(&server, seconds);
    server.stop(Duration::from_secs(10));
    result
}

fn abuse(server: &ServerProcess, seconds: f64) -> anyhow::Result<()> {
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = server.rss_kib()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (hostile, made) = start_hostile(server.addr, &stop);
    // The normal load, while the hostile clients go on.
    let normal = normal_load(server, seconds, rss_before);
    stop.store(true, Relaxed);
    for h in hostile {
        let _ = h.join();
    }
    let (s, rss_max) = normal?;
    report(server.addr, seconds, &s, (rss_before, rss_max), &made)
}

/// Connections made so far by the hostile clients of each kind.
type Made = Vec<(Kind, Arc<AtomicU64>)>;

/// `EACH` hostile clients of every kind, each trying again until `stop`.
fn start_hostile(
    addr: std::net::SocketAddr,
    stop: &Arc<AtomicBool>,
) -> (Vec<std::thread::JoinHandle<()>>, Made) {
    let mut hostile = Vec::new();
    let mut made = Vec::new();
    for kind in Kind::ALL {
        let done = Arc::new(AtomicU64::new(0));
        for i in 0..EACH {
            let (stop, done) = (stop.clone(), done.clone());
            hostile.push(std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let _ = kind.once(addr, i, &stop);
                    done.fetch_add(1, Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }));
        }
        made.push((kind, done));
    }
    (hostile, made)
}

/// Runs `NORMAL` ordinary clients against the server; returns their
/// summary and the server's largest RSS meanwhile.
fn normal_load(
    server: &ServerProcess,
    seconds: f64,
    rss_before: u64,
) -> anyhow::Result<(rtbench_record::load::Summary, u64)> {
    let addr = server.addr;
    let dir = std::env::temp_dir().join(format!("rtbench-abuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e:#}", dir.display()))?;
    let scenario = format!(
        "description = \"abuse: the normal clients\"\n[target]\nurls = [\"ws://{addr}\"]\nsources = [\"127.0.0.2/30\"]\n\
         [[phases]]\nduration_s = 2\nrate = {}\n[hold]\nduration_s = {}\n[session]\nchannel_pattern = \"chat.{{}}\"\nchannel_count = 10\n\
         channels_per_user = 2\nauth = \"jwt\"\nping_interval_s = 2\n[[publishers]]\nrate = 50\npayload_bytes = 200\nstart_s = 2\n",
        NORMAL / 2,
        seconds - 2.0
    );
    let file = dir.join("normal.toml");
    std::fs::write(&file, scenario).map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
    let run_dir = dir.join("run");
    let mut loadgen = crate::loadgen_run(&file, &run_dir)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the load generator: {e:#}"))?;
    let t0 = Instant::now();
    let mut rss_max = rss_before;
    while loadgen
        .try_wait()
        .map_err(|e| anyhow::anyhow!("waiting for the load generator: {e:#}"))?
        .is_none()
    {
        rss_max = rss_max.max(server.rss_kib().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(250));
        if t0.elapsed() > Duration::from_secs_f64(seconds + 60.0) {
            let _ = loadgen.kill();
            return Err(anyhow::Error::msg("the normal load did not finish"));
        }
    }
    let s = rtbench_record::load::read_summary(&run_dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((s, rss_max))
}

/// What the normal clients saw, the server's memory against what the
/// limits allow, the limits that bit; an error if the server panicked.
fn report(
    addr: std::net::SocketAddr,
    seconds: f64,
    s: &rtbench_record::load::Summary,
    (rss_before, rss_max): (u64, u64),
    made: &Made,
) -> anyhow::Result<()> {
    let m = |name: &str| crate::server::metric(addr, name).unwrap_or(0);
    println!(
        "abuse: {seconds:.0} s, {EACH} hostile clients of each of {} kinds, {NORMAL} normal clients",
        Kind::ALL.len()
    );
    println!(
        "  normal clients: connected {}/{} failed {}, connect p50/p99 {:.2}/{:.2} ms",
        s.connections.connected,
        s.connections.target,
        s.connections.failed,
        s.connect_ms.p50,
        s.connect_ms.p99
    );
    println!(
        "  normal deliveries: {} received, p50/p99/p99.9 {:.2}/{:.2}/{:.2} ms, misdelivered {}, duplicates {}",
        s.events.received,
        s.delivery_ms.p50,
        s.delivery_ms.p99,
        s.delivery_ms.p999,
        s.events.misdelivered,
        s.events.duplicates
    );
    // What the limits let the hostile clients hold at once: a partial frame
    // and a fragmented message (64 KB each) or a full outbound queue (1 MiB)
    // or subscriptions (64 KiB) per hostile WebSocket, and a request body
    // buffer (at most 64 KiB ahead of what arrived) per slow body.
    let allowed_kib = rss_before + (EACH as u64) * (2 * 64 + 1024 + 64 + 64) + 16 * 1024;
    println!(
        "  server RSS: {rss_before} KiB before, {rss_max} KiB at most (the limits allow about {allowed_kib} KiB)"
    );
    let mut bit = Vec::new();
    for l in [
        "subscriptions",
        "channels",
        "channel_bytes",
        "subscription_id_bytes",
        "subscription_bytes",
        "handshakes",
        "http_connections",
        "request_timeout",
        "frame_timeout",
        "idle_timeout",
        "event_bytes",
        "message_bytes",
        "message_rate",
    ] {
        let n = m(&format!("rtbench_limit_hits_total{{limit=\"{l}\"}}"));
        if n > 0 {
            bit.push(format!("{l} {n}"));
        }
    }
    println!("  limits that bit: {}", bit.join(", "));
    println!(
        "  slow consumers closed {}, bad handshakes {}, panics {}",
        m("rtbench_slow_consumers_closed_total"),
        m("rtbench_bad_handshakes_total"),
        m("rtbench_panics_total")
    );
    let made: Vec<String> = made
        .iter()
        .map(|(k, n)| format!("{k:?} {}", n.load(Relaxed)))
        .collect();
    println!("  hostile connections made: {}", made.join(", "));
    if m("rtbench_panics_total") > 0 {
        return Err(anyhow::Error::msg("the server panicked"));
    }
    Ok(())
}

/// The hostile clients.
#[derive(Debug, Clone, Copy)]
enum Kind {
    SubscribeFlood,
    SlowHead,
    SlowBody,
    PartialFrame,
    NeverReads,
    PingFlood,
    Garbage,
    SilentTcp,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::SubscribeFlood,
        Kind::SlowHead,
        Kind::SlowBody,
        Kind::PartialFrame,
        Kind::NeverReads,
        Kind::PingFlood,
        Kind::Garbage,
        Kind::SilentTcp,
    ];

    /// One connection of this kind, until the server ends it or the run stops.
    fn once(self, addr: SocketAddr, i: usize, stop: &AtomicBool) -> std::io::Result<()> {
        let pause = |ms| std::thread::sleep(Duration::from_millis(ms));
        match self {
            Kind::SubscribeFlood => {
                let mut s = websocket(addr, "chat.0")?;
                let mut n = 0u64;
                while !stop.load(Relaxed) {
                    n += 1;
                    let channels: Vec<String> = (0..50)
                        .map(|k| format!("\"flood-{i}-{n}-{k}-{}\"", "x".repeat(200)))
                        .collect();
                    let msg = format!(
                        r#"{{"type":"subscribe","data":[{{"subscriptionId":"{}","channels":[{}]}}]}}"#,
                        "i".repeat(100) + &n.to_string(),
                        channels.join(",")
                    );
                    send_frame(&mut s, 0x1, msg.as_bytes())?;
                    drain(&mut s)?;
                }
            }
            Kind::SlowHead => {
                let mut s = TcpStream::connect(addr)?;
                for b in
                    b"GET /v1/realtime?project=console&channels[]=files HTTP/1.1\r\nHost: x\r\n"
                {
                    if stop.load(Relaxed) {
                        break;
                    }
                    s.write_all(&[*b])?;
                    pause(300);
                }
            }
            Kind::SlowBody => {
                let mut s = TcpStream::connect(addr)?;
                s.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nx-appwrite-key: rtbench-dev-key\r\nContent-Length: 1000000\r\n\r\n")?;
                while !stop.load(Relaxed) {
                    s.write_all(b" ")?;
                    pause(200);
                }
            }
            Kind::PartialFrame => {
                let mut s = websocket(addr, "files")?;
                // A 1,000-byte text frame begun and never finished.
                s.write_all(&[0x81, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4, b'{'])?;
                while !stop.load(Relaxed) {
                    pause(200);
                    s.write_all(b" ")?;
                }
            }
            Kind::NeverReads => {
                // On the channel the normal load's events go to; never reads.
                let _s = websocket(addr, "chat.1")?;
                while !stop.load(Relaxed) {
                    pause(200);
                }
            }
            Kind::PingFlood => {
                let mut s = websocket(addr, "files")?;
                while !stop.load(Relaxed) {
                    for _ in 0..100 {
                        send_frame(&mut s, 0x1, br#"{"type":"ping"}"#)?;
                    }
                    drain(&mut s)?;
                }
            }
            Kind::Garbage => {
                let mut s = websocket(addr, "files")?;
                let junk: Vec<u8> = (0..64u32)
                    .map(|k| (k.wrapping_mul(2654435761) >> 7) as u8)
                    .collect();
                s.write_all(&junk)?;
                drain(&mut s)?;
                pause(50);
            }
            Kind::SilentTcp => {
                let _s = TcpStream::connect(addr)?;
                while !stop.load(Relaxed) {
                    pause(200);
                }
            }
        }
        Ok(())
    }
}

/// A WebSocket to the server subscribed to `channel`, greeting read.
fn websocket(addr: SocketAddr, channel: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "GET /v1/realtime?project=console&channels[]={channel} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&b[..n]);
    }
    Ok(s)
}

fn send_frame(s: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    s.write_all(&rtbench_protocol::frame::encode_masked(
        opcode,
        payload,
        [1, 2, 3, 4],
    ))
}

/// Reads what is waiting without blocking long; an ended connection is an error.
fn drain(s: &mut TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_millis(5)))?;
    let mut b = [0u8; 65536];
    match s.read(&mut b) {
        Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

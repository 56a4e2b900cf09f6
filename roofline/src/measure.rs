//! `run`: every measurement, each repeated, with its sides in processes of
//! their own (each holds at most what the open-files limit allows, so large
//! counts use several).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use rtbench_record::roofline::{Fanout, Measured, Paced, Pairs, Pings, RoundTrips, Spread};
use rtbench_sys::host::Meminfo;
use rtbench_sys::process::Process;

use crate::Flags;

/// Connections one process takes (the open-files limit here is 20,000).
const PER_PROCESS: u64 = 19_000;
/// Source addresses the connecting sides use, so ports never run short.
const SOURCES: u8 = 16;
/// Fan-out: message sizes and messages per write.
const FANOUT: [(usize, usize); 5] = [(200, 1), (200, 4), (200, 16), (400, 1), (400, 4)];
/// The wide fan-out's message size and messages per write: one write per
/// delivery, the shape of a fan-out bench's deliveries.
const WIDE: (usize, usize) = (200, 1);
/// The paced fan-out: writes per event overall (the fanout suite's events
/// reach about 100 connections: 50,693 deliveries/s at 500 events/s), and
/// the offered rates, as shares of the saturated one-write figure over as
/// many connections measured in the same run.
const PER_EVENT: u64 = 100;
const PACED_SHARES: [f64; 5] = [0.125, 0.25, 0.5, 0.75, 0.9];
/// Round trips: connections with a request in flight, request size.
const ROUND_TRIP_CONNECTIONS: u64 = 1_000;
const REQUEST_BYTES: usize = 16;
/// Pings: seconds between one connection's requests (the SDKs' ping), and
/// how many intervals a measurement lasts (every connection pings twice).
const PING_INTERVAL_S: f64 = 20.0;
const PING_INTERVALS: f64 = 2.0;

/// A started side: its stdin (closing it stops it) and its lines.
struct Side {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Side {
    fn start(args: &[String]) -> Result<Side> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start `{}`", args.join(" ")))?;
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        Ok(Side {
            child,
            stdin,
            lines,
        })
    }

    /// The next line's words after `word`.
    fn expect(&mut self, word: &str) -> Result<Vec<String>> {
        let line = self
            .lines
            .next()
            .and_then(Result::ok)
            .with_context(|| format!("a side ended before saying `{word}`"))?;
        let mut parts = line.split_whitespace().map(String::from);
        match parts.next() {
            Some(w) if w == word => Ok(parts.collect()),
            _ => Err(anyhow!("expected `{word} ...`, got `{line}`")),
        }
    }

    fn port(&mut self) -> Result<SocketAddr> {
        let p = self.expect("port")?;
        let port: u16 = p
            .first()
            .and_then(|p| p.parse().ok())
            .context("a bad port line")?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn say(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .with_context(|| format!("telling a side `{line}`"))
    }

    /// Closes its stdin: it reports (if it does) and ends.
    fn stop(&mut self) {
        self.stdin.take();
    }

    /// Its RSS in KiB; 0 once it has ended.
    fn rss_kib(&self) -> u64 {
        rtbench_sys::process::rss_bytes(Process::Pid(self.child.id())).map_or(0, |b| b / 1024)
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// (MemTotal − MemAvailable, Slab) in KiB, from one reading; 0 for what
/// cannot be read.
fn used_kib() -> (u64, u64) {
    match Meminfo::read() {
        Ok(m) => (m.used_kib().unwrap_or(0), m.kib("Slab").unwrap_or(0)),
        Err(_) => (0, 0),
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits (up to a minute) until the machine's CPU is under 10% busy over
/// a second. Why: the kernel frees a measurement's closed sockets in the
/// background, for seconds after 100,000 pairs; the next measurement
/// would share the machine with that teardown (and see its memory come
/// back mid-run).
fn settle() {
    use rtbench_sys::host::{busy_pct, cpu_jiffies};
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let before = cpu_jiffies().ok();
        std::thread::sleep(Duration::from_secs(1));
        if busy_pct(before, cpu_jiffies().ok()) < 10.0 {
            break;
        }
    }
    // Freed sockets stay in the slab caches' partly empty slabs, which
    // MemAvailable counts as used: the next run's pairs would reuse them and
    // look free. SLUB gives empty slabs back when asked (root only).
    if let Ok(caches) = std::fs::read_dir("/sys/kernel/slab") {
        for c in caches.flatten() {
            let _ = std::fs::write(c.path().join("shrink"), "1");
        }
    }
}

pub fn run(f: &Flags) -> Result<Measured> {
    let mut opening = Vec::new();
    let mut memory = Vec::new();
    let mut slab = Vec::new();
    for run in 0..f.repeat {
        settle();
        let (rate, kib, slab_kib) = pairs(f.pairs)?;
        opening.push(rate);
        // Only the first run's machine memory counts: the memory a run's
        // sockets freed comes back to MemAvailable while the next run
        // allocates (a repeat read 0.7-1.3 KiB per pair against 5.9 on a
        // fresh machine); the slab figure is steady and kept for each.
        if run == 0 {
            memory.push(kib);
        }
        slab.push(slab_kib);
    }
    let mut fanout = Vec::new();
    let wide = f
        .wide
        .iter()
        .filter(|n| **n > 0)
        .map(|&n| (WIDE.0, WIDE.1, n));
    for (size, batch, connections) in FANOUT
        .iter()
        .map(|&(size, batch)| (size, batch, f.connections))
        .chain(wide)
    {
        let mut runs = Vec::new();
        for _ in 0..f.repeat {
            settle();
            runs.push(spray(f, size, batch, connections, None)?.per_s);
        }
        fanout.push(Fanout {
            size,
            per_write: batch,
            connections,
            deliveries_per_s: Spread::of(runs),
        });
    }
    let paced = paced(f, &mut fanout)?;
    let mut trips = Vec::new();
    for _ in 0..f.repeat {
        settle();
        trips.push(round_trips(f)?);
    }
    let pings = if f.pings > 0 {
        let mut runs = Vec::new();
        for _ in 0..f.repeat {
            settle();
            runs.push(pings(f.pings)?);
        }
        let spread = |i: fn(&PingRun) -> f64| Spread::of(runs.iter().map(i).collect());
        Some(Pings {
            connections: f.pings,
            interval_s: PING_INTERVAL_S,
            request_bytes: REQUEST_BYTES,
            offered_per_s: f.pings as f64 / PING_INTERVAL_S,
            per_second: spread(|r| r.per_second),
            machine_busy_pct: spread(|r| r.busy_pct),
            machine_us_per_trip: spread(|r| r.us_per_trip),
        })
    } else {
        None
    };
    Ok(Measured {
        pairs: Pairs {
            count: f.pairs,
            per_second: Spread::of(opening),
            kernel_kib_per_pair: Spread::of(memory),
            slab_kib_per_pair: Spread::of(slab),
        },
        fanout,
        round_trips: RoundTrips {
            connections: ROUND_TRIP_CONNECTIONS,
            request_bytes: REQUEST_BYTES,
            per_second: Spread::of(trips),
        },
        pings,
        paced,
    })
}

/// Opens `n` connection pairs: their rate, and the kernel memory each holds
/// (the machine's memory in use, MemTotal − MemAvailable as a bench's
/// "machine memory" reads it, less what the processes hold).
fn pairs(n: u64) -> Result<(f64, f64, f64)> {
    let processes = n.div_ceil(PER_PROCESS).max(1);
    let mut listeners = Vec::new();
    let mut targets = Vec::new();
    for _ in 0..processes {
        let mut l = Side::start(&args(&["listen"]))?;
        targets.push(l.port()?);
        listeners.push(l);
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = used_kib();
    let base_rss: u64 = listeners.iter().map(Side::rss_kib).sum();
    let mut connectors = Vec::new();
    for (i, to) in targets.iter().enumerate() {
        let count = n / processes + u64::from((i as u64) < n % processes);
        let from = format!("127.0.0.{}", 2 + i as u8 % SOURCES);
        connectors.push(Side::start(&args(&[
            "connect",
            "--to",
            &to.to_string(),
            "--pairs",
            &count.to_string(),
            "--from",
            &from,
        ]))?);
    }
    let mut slowest = 0.0f64;
    for c in &mut connectors {
        let got = c.expect("opened")?;
        slowest = slowest.max(
            got.get(1)
                .and_then(|s| s.parse().ok())
                .context("a bad opened line")?,
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = used_kib();
    let rss: u64 = listeners
        .iter()
        .chain(&connectors)
        .map(Side::rss_kib)
        .sum::<u64>()
        - base_rss;
    let kernel = after.0.saturating_sub(before.0).saturating_sub(rss) as f64 / n as f64;
    let slab = after.1.saturating_sub(before.1) as f64 / n as f64;
    for s in connectors.iter_mut().chain(listeners.iter_mut()) {
        s.stop();
    }
    Ok((n as f64 / slowest.max(1e-9), kernel, slab))
}

/// What one spray measured.
struct Sprayed {
    /// Messages the readers received, and per second.
    messages: f64,
    per_s: f64,
    /// Paced: the stamped messages' latencies (µs), every reader's merged.
    latency_us: Option<Histogram<u64>>,
    /// The machine's CPU busy while the writers wrote, % of all cores, and
    /// the CPU seconds the writers and the readers took.
    busy_pct: f64,
    writer_cpu_s: f64,
    reader_cpu_s: f64,
}

/// Writers send `size`-byte messages to readers over `connections`
/// connections, `batch` per write: as fast as they can, or at `pace`
/// messages per second in events of `PER_EVENT` spread over the writers.
/// One writer and one reader up to `PER_PROCESS` connections; beyond, as
/// many pairs as the open-files limit needs, every writer from its own
/// source address (each connection takes an ephemeral port of it), all
/// writing at once.
fn spray(
    f: &Flags,
    size: usize,
    batch: usize,
    connections: u64,
    pace: Option<f64>,
) -> Result<Sprayed> {
    use rtbench_sys::host::{busy_pct, cpu_jiffies};
    let processes = connections.div_ceil(PER_PROCESS).max(1);
    let rate = pace.map_or(0.0, |r| r / processes as f64).to_string();
    let event = (PER_EVENT / processes).max(1).to_string();
    let mut sinks = Vec::new();
    let mut sprayers = Vec::new();
    for i in 0..processes {
        let share = (connections / processes + u64::from(i < connections % processes)).to_string();
        let size = size.to_string();
        let mut sink = Side::start(&args(&[
            "sink",
            "--connections",
            &share,
            "--size",
            &size,
            "--rate",
            &rate,
        ]))?;
        let to = sink.port()?;
        sinks.push(sink);
        sprayers.push(Side::start(&args(&[
            "spray",
            "--to",
            &to.to_string(),
            "--connections",
            &share,
            "--size",
            &size,
            "--batch",
            &batch.to_string(),
            "--seconds",
            &f.seconds.to_string(),
            "--rate",
            &rate,
            "--event",
            &event,
            "--from",
            &format!("127.0.0.{}", 2 + i as u8 % SOURCES),
        ]))?);
    }
    for s in &mut sprayers {
        s.expect("ready")?;
    }
    let (writers_before, readers_before) = (cpu_s(&sprayers), cpu_s(&sinks));
    let machine_before = cpu_jiffies().ok();
    for s in &mut sprayers {
        s.say("go")?;
    }
    for s in &mut sprayers {
        s.expect("sent")?;
    }
    let busy_pct = busy_pct(machine_before, cpu_jiffies().ok());
    std::thread::sleep(Duration::from_millis(300));
    let writer_cpu_s = cpu_s(&sprayers) - writers_before;
    let reader_cpu_s = cpu_s(&sinks) - readers_before;
    let (mut bytes, mut span, mut latency_us) = (0.0f64, 0.0f64, None);
    for sink in &mut sinks {
        sink.stop();
        let got = sink.expect("received")?;
        let field = |i: usize| -> Result<f64> {
            got.get(i)
                .and_then(|b| b.parse::<f64>().ok())
                .with_context(|| format!("a bad received line: {got:?}"))
        };
        bytes += field(0)?;
        span = span.max(field(1)?);
        if pace.is_some() {
            let h = decode(
                got.get(2)
                    .context("a received line without its latencies")?,
            )?;
            latency_us
                .get_or_insert_with(|| h.clone())
                .add(&h)
                .context("merging latencies")?;
        }
    }
    Ok(Sprayed {
        messages: bytes / size as f64,
        per_s: bytes / size as f64 / span.max(1e-9),
        latency_us,
        busy_pct,
        writer_cpu_s,
        reader_cpu_s,
    })
}

/// The CPU seconds `sides` have taken so far (0 for one that has ended).
fn cpu_s(sides: &[Side]) -> f64 {
    sides
        .iter()
        .map(|s| rtbench_sys::process::cpu_seconds(Process::Pid(s.child.id())).unwrap_or(0.0))
        .sum()
}

/// A sink's latency histogram, as `Timing::encoded` wrote it.
fn decode(text: &str) -> Result<Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .context("a sink's latencies are not base64")?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| anyhow!("a sink's latencies do not decode: {e:?}"))
}

/// The paced fan-out over `f.paced` connections at each of
/// `PACED_SHARES` of the saturated one-write figure over as many (measured
/// first, into `fanout`, unless `--wide` already did).
fn paced(f: &Flags, fanout: &mut Vec<Fanout>) -> Result<Vec<Paced>> {
    if f.paced == 0 {
        return Ok(Vec::new());
    }
    let (size, per_write) = WIDE;
    let measured = |fanout: &[Fanout]| {
        fanout
            .iter()
            .find(|w| (w.size, w.per_write, w.connections) == (size, per_write, f.paced))
            .map(|w| w.deliveries_per_s.median)
    };
    if measured(fanout).is_none() {
        let mut runs = Vec::new();
        for _ in 0..f.repeat {
            settle();
            runs.push(spray(f, size, per_write, f.paced, None)?.per_s);
        }
        fanout.push(Fanout {
            size,
            per_write,
            connections: f.paced,
            deliveries_per_s: Spread::of(runs),
        });
    }
    let saturated = measured(fanout).expect("measured above");
    let mut out = Vec::new();
    for share in PACED_SHARES {
        let offered = saturated * share;
        let mut runs = Vec::new();
        for _ in 0..f.repeat {
            settle();
            runs.push(spray(f, size, per_write, f.paced, Some(offered))?);
        }
        let spread = |v: &dyn Fn(&Sprayed) -> f64| Spread::of(runs.iter().map(v).collect());
        let ms = |q: f64| {
            move |r: &Sprayed| {
                r.latency_us
                    .as_ref()
                    .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1e3)
            }
        };
        let per_delivery = |cpu_s: f64, r: &Sprayed| cpu_s * 1e6 / r.messages.max(1.0);
        out.push(Paced {
            connections: f.paced,
            size,
            per_event: PER_EVENT as usize,
            offered_per_s: offered,
            share_of_saturated: share,
            delivered_per_s: spread(&|r| r.per_s),
            p50_ms: spread(&ms(0.5)),
            p99_ms: spread(&ms(0.99)),
            p999_ms: spread(&ms(0.999)),
            machine_busy_pct: spread(&|r| r.busy_pct),
            writer_us_per_delivery: spread(&|r| per_delivery(r.writer_cpu_s, r)),
            reader_us_per_delivery: spread(&|r| per_delivery(r.reader_cpu_s, r)),
        });
    }
    Ok(out)
}

/// Request/response exchanges per second over `ROUND_TRIP_CONNECTIONS`.
fn round_trips(f: &Flags) -> Result<f64> {
    let mut echo = Side::start(&args(&["echo"]))?;
    let to = echo.port()?;
    let mut asker = Side::start(&args(&[
        "ask",
        "--to",
        &to.to_string(),
        "--connections",
        &ROUND_TRIP_CONNECTIONS.to_string(),
        "--size",
        &REQUEST_BYTES.to_string(),
        "--seconds",
        &f.seconds.to_string(),
        "--from",
        "127.0.0.2",
    ]))?;
    let got = asker.expect("trips")?;
    echo.stop();
    let trips: f64 = got
        .first()
        .and_then(|t| t.parse().ok())
        .context("a bad trips line")?;
    let secs: f64 = got
        .get(1)
        .and_then(|s| s.parse().ok())
        .context("a bad trips line")?;
    Ok(trips / secs.max(1e-9))
}

/// One measurement of paced round trips.
struct PingRun {
    per_second: f64,
    /// The machine's CPU busy over the measurement, % of all cores.
    busy_pct: f64,
    /// The machine's CPU time per round trip, µs.
    us_per_trip: f64,
}

/// `n` connections, each sending a request every `PING_INTERVAL_S`, over
/// as many echo and asker processes as the open-files limit needs.
fn pings(n: u64) -> Result<PingRun> {
    use rtbench_sys::host::{busy_pct, cpu_jiffies};
    let processes = n.div_ceil(PER_PROCESS).max(1);
    let seconds = (PING_INTERVAL_S * PING_INTERVALS).to_string();
    let mut sides = Vec::new();
    let mut askers = Vec::new();
    for i in 0..processes {
        let mut echo = Side::start(&args(&["echo"]))?;
        let to = echo.port()?;
        sides.push(echo);
        let count = n / processes + u64::from(i < n % processes);
        askers.push(Side::start(&args(&[
            "ask",
            "--to",
            &to.to_string(),
            "--connections",
            &count.to_string(),
            "--size",
            &REQUEST_BYTES.to_string(),
            "--seconds",
            &seconds,
            "--interval",
            &PING_INTERVAL_S.to_string(),
            "--from",
            &format!("127.0.0.{}", 2 + i as u8 % SOURCES),
        ]))?);
    }
    for a in &mut askers {
        a.expect("ready")?;
    }
    let before = cpu_jiffies().ok();
    let t0 = std::time::Instant::now();
    for a in &mut askers {
        a.say("go")?;
    }
    let mut trips = 0.0;
    for a in &mut askers {
        let got = a.expect("trips")?;
        trips += got
            .first()
            .and_then(|t| t.parse::<f64>().ok())
            .context("a bad trips line")?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let busy = busy_pct(before, cpu_jiffies().ok());
    for s in &mut sides {
        s.stop();
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let per_second = trips / secs.max(1e-9);
    Ok(PingRun {
        per_second,
        busy_pct: busy,
        us_per_trip: busy / 100.0 * cores * 1e6 / per_second.max(1e-9),
    })
}

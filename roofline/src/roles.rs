//! The processes a measurement starts. Each prints one line when ready
//! (`port N` for a listening side) and one line of figures when done, and
//! ends when its stdin does, as the load generator's workers do.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::Flags;

/// Set when stdin ends: the orchestrator's stop signal.
fn stop_on_stdin_end() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        flag.store(true, Relaxed);
    });
    stop
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Raises the open-files soft limit to the hard one: a side that cannot
/// would measure its own limit, not the machine's.
fn raise_open_files() -> Result<()> {
    rtbench_sys::limits::raise_open_files()
        .map(drop)
        .context("raising the open-files soft limit to the hard one")
}

/// A listener on an ephemeral loopback port with a deep backlog.
fn bind() -> Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .context("creating a TCP socket")?;
    s.set_reuse_address(true).context("setting SO_REUSEADDR")?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .context("binding 127.0.0.1:0")?;
    s.listen(65_535)
        .context("listening with a backlog of 65535")?;
    Ok(s.into())
}

fn port(l: &TcpListener) -> Result<u16> {
    Ok(l.local_addr()
        .context("reading the listener's address")?
        .port())
}

/// A connection to `to` from `from` (any port of it, chosen at connect);
/// with `nonblocking`, the connect is started and left in progress.
fn dial(
    to: SocketAddr,
    from: Option<std::net::IpAddr>,
    nonblocking: bool,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(nonblocking)?;
    if let Some(ip) = from {
        rtbench_sys::socket::bind_address_no_port(&s)?;
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match s.connect(&to.into()) {
        Err(e) if nonblocking && e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        r => r?,
    }
    let _ = s.set_tcp_nodelay(true);
    Ok(s.into())
}

/// Holds a socket the way an event-driven server does: registered in an
/// epoll instance (the kernel keeps an entry per registration).
fn hold(poll: &Poll, s: &TcpStream, token: usize) -> Result<()> {
    let fd = s.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), Token(token), Interest::READABLE)
        .context("registering a held connection with epoll")
}

/// `listen`: accepts every connection, answers its one-byte hello with one
/// byte (as a server answers an upgrade), and holds it in epoll until stdin
/// ends. Event-driven, like a server: many connections are in progress at
/// once, so the opening rate measures the machine, not one round trip.
pub fn listen() -> Result<()> {
    raise_open_files()?;
    let l = bind()?;
    l.set_nonblocking(true)
        .context("making the listener non-blocking")?;
    say(&format!("port {}", port(&l)?));
    let stop = stop_on_stdin_end();
    let mut poll = Poll::new().context("creating an epoll instance")?;
    const LISTENER: Token = Token(usize::MAX);
    let lfd = l.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&lfd), LISTENER, Interest::READABLE)
        .context("registering the listener with epoll")?;
    let mut held: Vec<(TcpStream, bool)> = Vec::new();
    let mut events = Events::with_capacity(1024);
    while !stop.load(Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .context("waiting in epoll_wait")?;
        for ev in &events {
            if ev.token() == LISTENER {
                while let Ok((s, _)) = l.accept() {
                    if s.set_nonblocking(true).is_ok() && hold(&poll, &s, held.len()).is_ok() {
                        held.push((s, false));
                    }
                }
                continue;
            }
            let Some((s, answered)) = held.get_mut(ev.token().0) else {
                continue;
            };
            let mut hello = [0u8; 16];
            if !*answered && matches!((&*s).read(&mut hello), Ok(n) if n > 0) {
                *answered = (&*s).write(b"y").is_ok();
            }
        }
    }
    Ok(())
}

/// Connection attempts a connector keeps in progress at once.
const IN_FLIGHT: usize = 256;

/// `connect`: opens `--pairs` connections to `--to` as fast as it can,
/// `IN_FLIGHT` at a time, each with a one-byte hello answered by one byte
/// (the smallest exchange an upgrade is), holds them in epoll, reports how
/// long opening took, and keeps them until stdin ends.
pub fn connect(f: &Flags) -> Result<()> {
    raise_open_files()?;
    let to = f.to.context("connect needs --to")?;
    let stop = stop_on_stdin_end();
    let mut poll = Poll::new().context("creating an epoll instance")?;
    let t0 = Instant::now();
    let pairs = f.pairs as usize;
    // Each connection: its socket and whether its answer came.
    let mut held: Vec<(TcpStream, bool)> = Vec::with_capacity(pairs);
    let (mut in_flight, mut done) = (0usize, 0usize);
    let mut events = Events::with_capacity(1024);
    while done < pairs {
        while in_flight < IN_FLIGHT && held.len() < pairs {
            let s = dial(to, f.from, true).with_context(|| format!("connect {to}"))?;
            let fd = s.as_raw_fd();
            poll.registry()
                .register(
                    &mut SourceFd(&fd),
                    Token(held.len()),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .context("registering a connection with epoll")?;
            held.push((s, false));
            in_flight += 1;
        }
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .context("waiting in epoll_wait")?;
        for ev in &events {
            let Some((s, answered)) = held.get_mut(ev.token().0) else {
                continue;
            };
            if *answered {
                continue;
            }
            if ev.is_error() {
                bail!("connect {to}: {:?}", s.take_error());
            }
            if ev.is_writable() {
                // Connected: the hello, once (writable edges repeat).
                let fd = s.as_raw_fd();
                poll.registry()
                    .reregister(&mut SourceFd(&fd), ev.token(), Interest::READABLE)
                    .context("re-registering a connection for reading")?;
                (&*s)
                    .write_all(b"x")
                    .with_context(|| format!("hello over {to}"))?;
            }
            let mut answer = [0u8; 1];
            if ev.is_readable() && matches!((&*s).read(&mut answer), Ok(1)) {
                *answered = true;
                in_flight -= 1;
                done += 1;
            }
        }
    }
    say(&format!(
        "opened {} {:.6}",
        held.len(),
        t0.elapsed().as_secs_f64()
    ));
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How long the sink lets messages gather between reads, as the load
/// generator's workers do while holding (`loadgen/src/worker/reactor.rs`):
/// a reader woken for every message costs the writer its wake-ups and
/// preemptions, which no client the benches run makes it pay. Like the
/// workers, a sink whose looks find fewer than `GATHER.0` connections ready
/// doubles its wait, up to `READ_PACING_MAX`, and halves it past `GATHER.1`.
const READ_PACING: Duration = Duration::from_millis(1);
const READ_PACING_MAX: Duration = Duration::from_millis(8);
const GATHER: (usize, usize) = (8, 64);

/// `sink`: accepts `--connections` connections and reads everything sent
/// on them (paced as `READ_PACING` says); reports the bytes and the time
/// from the first to the last, and with `--rate`, the latency histogram of
/// the stamped `--size`-byte messages (`Timing`).
pub fn sink(f: &Flags) -> Result<()> {
    raise_open_files()?;
    let l = bind()?;
    say(&format!("port {}", port(&l)?));
    let stop = stop_on_stdin_end();
    let mut conns = Vec::new();
    for _ in 0..f.connections {
        let (s, _) = l.accept().context("accepting a connection")?;
        s.set_nonblocking(true)
            .context("making a connection non-blocking")?;
        conns.push(s);
    }
    let mut timing = if f.rate > 0.0 {
        for s in &conns {
            rtbench_sys::socket::receive_timestamps(s).context("asking for receive stamps")?;
        }
        Some(Timing::new(conns.len(), f.size)?)
    } else {
        None
    };
    let mut poll = Poll::new().context("creating an epoll instance")?;
    for (i, s) in conns.iter().enumerate() {
        let fd = s.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            .context("registering a connection with epoll")?;
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut bytes, mut first, mut last) = (0u64, None::<Instant>, Instant::now());
    let mut pacing = READ_PACING;
    while !stop.load(Relaxed) {
        std::thread::sleep(pacing);
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .context("waiting in epoll_wait")?;
        let ready = events.iter().count();
        pacing = if ready < GATHER.0 {
            (pacing * 2).min(READ_PACING_MAX)
        } else if ready > GATHER.1 {
            (pacing / 2).max(READ_PACING)
        } else {
            pacing
        };
        for ev in events.iter() {
            let i = ev.token().0;
            let mut s = &conns[i];
            loop {
                let got = match &timing {
                    Some(_) => rtbench_sys::socket::recv_stamped(s, &mut buf),
                    None => s.read(&mut buf).map(|n| (n, None)),
                };
                match got {
                    Ok((0, _)) | Err(_) => break,
                    Ok((n, stamp)) => {
                        bytes += n as u64;
                        last = Instant::now();
                        first.get_or_insert(last);
                        if let (Some(t), Some(at)) = (timing.as_mut(), stamp) {
                            t.read(i, &buf[..n], at);
                        }
                        if n < buf.len() {
                            break;
                        }
                    }
                }
            }
        }
    }
    let span = first.map_or(0.0, |t| (last - t).as_secs_f64());
    match timing {
        Some(t) => say(&format!("received {bytes} {span:.6} {}", t.encoded())),
        None => say(&format!("received {bytes} {span:.6}")),
    }
    Ok(())
}

/// The latencies of stamped messages on many connections: each message is
/// `size` bytes and opens with the wall-clock ns its event was sent (u64,
/// little-endian); each is timed by the kernel receive stamp of the read
/// that brought its stamp, in µs, as a bench times its deliveries.
struct Timing {
    size: usize,
    /// Each connection's offset into the message it is receiving.
    offset: Vec<u32>,
    latency_us: hdrhistogram::Histogram<u64>,
}

impl Timing {
    fn new(connections: usize, size: usize) -> Result<Timing> {
        stamp_fits(size)?;
        Ok(Timing {
            size,
            offset: vec![0; connections],
            // Up to an hour, in µs (a bound must be set: a histogram
            // created unbounded clamps to its first range, 2).
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .context("creating a histogram")?,
        })
    }

    /// `data` arrived on `conn` at `received_ns`. A stamp split across two
    /// reads goes untimed (a read takes all a socket holds, and a paced
    /// socket holds a few messages, so it splits only past 256 KiB).
    fn read(&mut self, conn: usize, data: &[u8], received_ns: u64) {
        let offset = self.offset[conn] as usize;
        let mut start = (self.size - offset) % self.size;
        while let Some(stamp) = data.get(start..start + STAMP_BYTES) {
            let sent_ns = u64::from_le_bytes(stamp.try_into().expect("STAMP_BYTES long"));
            let us = received_ns.saturating_sub(sent_ns) / 1_000;
            self.latency_us.saturating_record(us.max(1));
            start += self.size;
        }
        self.offset[conn] = ((offset + data.len()) % self.size) as u32;
    }

    /// The histogram, serialized (V2, deflated) in base64.
    fn encoded(&self) -> String {
        use base64::Engine;
        use hdrhistogram::serialization::Serializer;
        let mut bytes = Vec::new();
        hdrhistogram::serialization::V2DeflateSerializer::new()
            .serialize(&self.latency_us, &mut bytes)
            .expect("in-memory serialization");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// A stamped message's stamp: the wall-clock ns its event was sent.
const STAMP_BYTES: usize = 8;

/// Refuses a stamped message size that cannot hold its stamp.
fn stamp_fits(size: usize) -> Result<()> {
    if size < STAMP_BYTES {
        bail!("stamped messages need --size {STAMP_BYTES} or more, not {size}");
    }
    Ok(())
}

/// `spray`: connects `--connections` to `--to` and writes `--size`-byte
/// messages round robin, `--batch` per write, for `--seconds`: as fast as
/// it can, or with `--rate`, `--event` writes every `event / rate` seconds,
/// the messages of each stamped with the wall-clock time it was sent.
pub fn spray(f: &Flags) -> Result<()> {
    raise_open_files()?;
    let to = f.to.context("spray needs --to")?;
    if f.rate > 0.0 {
        stamp_fits(f.size)?;
    }
    let mut conns = Vec::new();
    for _ in 0..f.connections {
        conns.push(dial(to, f.from, false).with_context(|| format!("connect {to}"))?);
    }
    say("ready");
    // Wait for the go (one line on stdin) so the sink has every connection.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let mut msg = vec![b'x'; f.size * f.batch];
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(f.seconds);
    let gap = if f.rate > 0.0 {
        Duration::try_from_secs_f64(f.event as f64 / f.rate)
            .with_context(|| format!("--event {} at --rate {}", f.event, f.rate))?
    } else {
        Duration::ZERO
    };
    let (mut writes, mut events) = (0u64, 0u32);
    let mut next = conns.iter().cycle();
    'writing: while Instant::now() < until {
        let burst = if f.rate > 0.0 {
            let due = t0 + gap * events;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            events += 1;
            let sent_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            msg[..STAMP_BYTES].copy_from_slice(&sent_ns.to_le_bytes());
            f.event
        } else {
            conns.len()
        };
        for mut s in next.by_ref().take(burst) {
            if s.write_all(&msg).is_err() {
                break 'writing;
            }
            writes += 1;
        }
    }
    say(&format!("sent {}", writes * f.batch as u64));
    Ok(())
}

/// `echo`: accepts connections and sends every byte back.
pub fn echo() -> Result<()> {
    raise_open_files()?;
    let l = bind()?;
    l.set_nonblocking(true)
        .context("making the listener non-blocking")?;
    say(&format!("port {}", port(&l)?));
    let stop = stop_on_stdin_end();
    let mut poll = Poll::new().context("creating an epoll instance")?;
    let lfd = l.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&lfd), Token(usize::MAX), Interest::READABLE)
        .context("registering the listener with epoll")?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .context("waiting in epoll_wait")?;
        for ev in events.iter() {
            if ev.token() == Token(usize::MAX) {
                while let Ok((s, _)) = l.accept() {
                    let _ = s.set_nonblocking(true);
                    let _ = s.set_nodelay(true);
                    let fd = s.as_raw_fd();
                    let _ = poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(conns.len()),
                        Interest::READABLE,
                    );
                    conns.push(s);
                }
                continue;
            }
            let mut s = &conns[ev.token().0];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() || n < buf.len() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// `ask`: `--connections` to `--to`, each with one `--size`-byte request
/// in flight, for `--seconds`: reports the round trips completed. With
/// `--interval S`, paced instead: it says `ready` once connected, starts
/// at a line on stdin, and each connection sends one request every S
/// seconds whether or not its last was answered, the connections' turns
/// spread evenly (a client's ping timer); sends and reads are made at
/// most once a millisecond, as the load generator's workers pace theirs.
/// Paced, it then waits up to a second for the answers still owed and
/// reports the requests sent and answered in all.
pub fn ask(f: &Flags) -> Result<()> {
    raise_open_files()?;
    let to = f.to.context("ask needs --to")?;
    let mut conns = Vec::new();
    for _ in 0..f.connections {
        conns.push(dial(to, f.from, false).with_context(|| format!("connect {to}"))?);
    }
    let mut poll = Poll::new().context("creating an epoll instance")?;
    for (i, s) in conns.iter().enumerate() {
        s.set_nonblocking(true)
            .context("making a connection non-blocking")?;
        let fd = s.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            .context("registering a connection with epoll")?;
    }
    let request = vec![b'?'; f.size];
    let paced = f.interval > 0.0;
    if paced {
        say("ready");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    } else {
        for mut s in &conns {
            s.write_all(&request)
                .with_context(|| format!("sending a request to {to}"))?;
        }
    }
    let mut got = vec![0usize; conns.len()];
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(f.seconds);
    // Paced: the k-th request overall is due k x interval / connections
    // seconds in, on connection k mod connections.
    let gap = f.interval / conns.len().max(1) as f64;
    let (mut trips, mut sent) = (0u64, 0u64);
    let mut window = None;
    let owed_until = until + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if now >= until && window.is_none() {
            window = Some((trips, t0.elapsed().as_secs_f64()));
        }
        if now >= until && (!paced || trips >= sent || now >= owed_until) {
            break;
        }
        let wait = if paced {
            std::thread::sleep(READ_PACING);
            let now = t0.elapsed().as_secs_f64().min(f.seconds);
            while (sent as f64) * gap < now {
                let _ = (&conns[sent as usize % conns.len()]).write_all(&request);
                sent += 1;
            }
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        poll.poll(&mut events, Some(wait))
            .context("waiting in epoll_wait")?;
        for ev in events.iter() {
            let i = ev.token().0;
            let mut s = &conns[i];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got[i] += n;
                while got[i] >= f.size {
                    got[i] -= f.size;
                    trips += 1;
                    if !paced {
                        let _ = s.write_all(&request);
                    }
                }
                if n < buf.len() {
                    break;
                }
            }
        }
    }
    let (in_window, secs) = window.unwrap_or((trips, t0.elapsed().as_secs_f64()));
    say(&format!("trips {in_window} {secs:.6} {sent} {trips}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-byte message stamped `sent_ns`.
    fn message(sent_ns: u64) -> Vec<u8> {
        let mut m = vec![b'x'; 16];
        m[..STAMP_BYTES].copy_from_slice(&sent_ns.to_le_bytes());
        m
    }

    #[test]
    fn each_message_is_timed_from_its_own_stamp_wherever_reads_split_it() {
        let ms = 1_000_000u64;
        let stream: Vec<u8> = [1, 2, 3, 4].iter().flat_map(|s| message(s * ms)).collect();
        let mut t = Timing::new(2, 16).unwrap();
        // Connection 0 reads [0, 26), [26, 52), [52, 64): the second message's
        // stamp is whole in the first read, the fourth's is split.
        t.read(0, &stream[..26], 11 * ms);
        // Connection 1, between them, keeps its own place.
        t.read(1, &stream, 5 * ms);
        t.read(0, &stream[26..52], 13 * ms);
        t.read(0, &stream[52..], 14 * ms);
        let h = &t.latency_us;
        assert_eq!(h.len(), 7, "4 on connection 1, 3 on 0 (one stamp split)");
        for (us, count) in [
            (10_000, 2),
            (9_000, 1),
            (4_000, 1),
            (3_000, 1),
            (2_000, 1),
            (1_000, 1),
        ] {
            assert_eq!(h.count_at(us), count, "{us} us");
        }
    }

    #[test]
    fn messages_too_short_for_a_stamp_are_refused_by_name() {
        let e = Timing::new(1, 4)
            .err()
            .expect("4 bytes cannot hold a stamp");
        assert_eq!(
            e.to_string(),
            "stamped messages need --size 8 or more, not 4"
        );
    }
}

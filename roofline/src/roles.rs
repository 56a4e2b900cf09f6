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
/// on them (paced as `READ_PACING` says); reports the bytes
/// and the time from the first to the last.
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
            let mut s = &conns[ev.token().0];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        bytes += n as u64;
                        last = Instant::now();
                        first.get_or_insert(last);
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
    let span = first.map_or(0.0, |t| (last - t).as_secs_f64());
    say(&format!("received {bytes} {span:.6}"));
    Ok(())
}

/// `spray`: connects `--connections` to `--to` and writes `--size`-byte
/// messages round robin, `--batch` per write, for `--seconds`.
pub fn spray(f: &Flags) -> Result<()> {
    raise_open_files()?;
    let to = f.to.context("spray needs --to")?;
    let mut conns = Vec::new();
    for _ in 0..f.connections {
        conns.push(dial(to, f.from, false).with_context(|| format!("connect {to}"))?);
    }
    say("ready");
    // Wait for the go (one line on stdin) so the sink has every connection.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let msg = vec![b'x'; f.size * f.batch];
    let until = Instant::now() + Duration::from_secs_f64(f.seconds);
    let mut writes = 0u64;
    'outer: loop {
        for mut s in &conns {
            if s.write_all(&msg).is_err() {
                break 'outer;
            }
            writes += 1;
        }
        if Instant::now() >= until {
            break;
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

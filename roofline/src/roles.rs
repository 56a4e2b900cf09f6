//! The processes a measurement starts. Each prints one line when ready
//! (`port N` for a listening side) and one line of figures when done, and
//! ends when its stdin does, as the load generator's workers do.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

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

/// Raises the open-files soft limit to the hard one.
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A listener on an ephemeral loopback port with a deep backlog.
fn bind() -> Result<TcpListener, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| e.to_string())?;
    s.set_reuse_address(true).map_err(|e| e.to_string())?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .map_err(|e| e.to_string())?;
    s.listen(65_535).map_err(|e| e.to_string())?;
    Ok(s.into())
}

fn port(l: &TcpListener) -> Result<u16, String> {
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A connection to `to` from `from` (any port of it, chosen at connect).
fn dial(to: SocketAddr, from: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = from {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid fd and an int value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    s.connect(&to.into())?;
    let _ = s.set_tcp_nodelay(true);
    Ok(s.into())
}

/// Holds a socket the way an event-driven server does: registered in an
/// epoll instance (the kernel keeps an entry per registration).
fn hold(poll: &Poll, s: &TcpStream, token: usize) -> Result<(), String> {
    let fd = s.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), Token(token), Interest::READABLE)
        .map_err(|e| e.to_string())
}

/// `listen`: accepts every connection, answers its one-byte hello with one
/// byte (as a server answers an upgrade), and holds it in epoll until stdin
/// ends.
pub fn listen() -> Result<(), String> {
    raise_open_files();
    let l = bind()?;
    say(&format!("port {}", port(&l)?));
    let stop = stop_on_stdin_end();
    std::thread::spawn(move || {
        let Ok(poll) = Poll::new() else { return };
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept() {
            let mut hello = [0u8; 1];
            if s.read_exact(&mut hello).is_err() || s.write_all(b"y").is_err() {
                continue;
            }
            if hold(&poll, &s, held.len()).is_ok() {
                held.push(s);
            }
        }
    });
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `connect`: opens `--pairs` connections to `--to` as fast as it can, each
/// with a one-byte hello answered by one byte (the smallest exchange an
/// upgrade is), holds them in epoll, reports how long opening took, and
/// keeps them until stdin ends.
pub fn connect(f: &Flags) -> Result<(), String> {
    raise_open_files();
    let to = f.to.ok_or("connect needs --to")?;
    let stop = stop_on_stdin_end();
    let poll = Poll::new().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(f.pairs as usize);
    for i in 0..f.pairs as usize {
        let mut s = dial(to, f.from).map_err(|e| format!("connect {to}: {e}"))?;
        let mut answer = [0u8; 1];
        s.write_all(b"x")
            .and_then(|_| s.read_exact(&mut answer))
            .map_err(|e| format!("hello over {to}: {e}"))?;
        hold(&poll, &s, i)?;
        held.push(s);
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

/// `sink`: accepts `--connections` connections and reads everything sent
/// on them; reports the bytes and the time from the first to the last.
pub fn sink(f: &Flags) -> Result<(), String> {
    raise_open_files();
    let l = bind()?;
    say(&format!("port {}", port(&l)?));
    let stop = stop_on_stdin_end();
    let mut conns = Vec::new();
    for _ in 0..f.connections {
        let (s, _) = l.accept().map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        conns.push(s);
    }
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    for (i, s) in conns.iter().enumerate() {
        let fd = s.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut bytes, mut first, mut last) = (0u64, None::<Instant>, Instant::now());
    while !stop.load(Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
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
pub fn spray(f: &Flags) -> Result<(), String> {
    raise_open_files();
    let to = f.to.ok_or("spray needs --to")?;
    let mut conns = Vec::new();
    for _ in 0..f.connections {
        conns.push(dial(to, f.from).map_err(|e| format!("connect {to}: {e}"))?);
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
pub fn echo() -> Result<(), String> {
    raise_open_files();
    let l = bind()?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    say(&format!("port {}", port(&l)?));
    let stop = stop_on_stdin_end();
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let lfd = l.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&lfd), Token(usize::MAX), Interest::READABLE)
        .map_err(|e| e.to_string())?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
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
/// in flight, for `--seconds`: reports the round trips completed.
pub fn ask(f: &Flags) -> Result<(), String> {
    raise_open_files();
    let to = f.to.ok_or("ask needs --to")?;
    let mut conns = Vec::new();
    for _ in 0..f.connections {
        conns.push(dial(to, f.from).map_err(|e| format!("connect {to}: {e}"))?);
    }
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    for (i, s) in conns.iter().enumerate() {
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let fd = s.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
    }
    let request = vec![b'?'; f.size];
    let mut got = vec![0usize; conns.len()];
    for mut s in &conns {
        s.write_all(&request).map_err(|e| e.to_string())?;
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(f.seconds);
    let mut trips = 0u64;
    while Instant::now() < until {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
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
                    let _ = s.write_all(&request);
                }
                if n < buf.len() {
                    break;
                }
            }
        }
    }
    say(&format!("trips {trips} {:.6}", t0.elapsed().as_secs_f64()));
    Ok(())
}

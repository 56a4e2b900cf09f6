//! `rtbench-roofline`: what this machine does with plain TCP sockets and no
//! WebSocket at all, the ceiling every WebSocket figure here sits under.
//!
//! `rtbench-roofline run` measures, with server-like and client-like sides
//! as separate processes (as a bench runs them), each several times:
//!
//! - connection pairs: how many the machine opens per second, and the
//!   kernel memory each holds (both ends);
//! - fan-out: messages per second from one process to another over many
//!   connections, one `write` per message and several per `write`;
//! - round trips: request/response exchanges per second over many
//!   connections (the path an application-level ping takes);
//! - paced fan-out, when asked (`--paced N`): one write per delivery over N
//!   connections at rising shares of the saturated rate, each delivery
//!   timed from its send stamp to its kernel receive stamp: bare TCP's own
//!   latency against offered load, and its knee;
//! - pings, when asked (`--pings N`): N connections each sending one
//!   request every 20 s, as the SDKs ping, spread over as many processes
//!   as a bench uses: the machine's CPU per round trip in the shape of an
//!   idle run with pings, which a closed loop over few hot connections
//!   does not show.
//!
//! It prints the figures as JSON (`rtbench_record::roofline::Roofline`);
//! `cargo xtask roofline` writes them as a record. The other subcommands are
//! the processes `run` starts.

mod measure;
mod roles;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let flags = match Flags::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rtbench-roofline: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd.as_str() {
        "run" => measure::run(&flags)
            .map(|r| println!("{}", serde_json::to_string_pretty(&r).expect("serializes"))),
        "listen" => roles::listen(),
        "connect" => roles::connect(&flags),
        "sink" => roles::sink(&flags),
        "spray" => roles::spray(&flags),
        "echo" => roles::echo(),
        "ask" => roles::ask(&flags),
        other => Err(anyhow::anyhow!("unknown command `{other}`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtbench-roofline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: rtbench-roofline run [--pairs N] [--seconds S] [--repeat R] [--connections C] [--wide N[,N...]] [--paced N] [--pings N]";

/// The flags every subcommand reads (each takes the ones it needs).
#[derive(Debug, Clone)]
pub struct Flags {
    /// Connection pairs to open (`run`), or connections to open (`connect`).
    pub pairs: u64,
    /// Seconds each throughput measurement lasts.
    pub seconds: f64,
    /// How many times each figure is measured.
    pub repeat: u32,
    /// Connections of the fan-out and round-trip measurements.
    pub connections: u64,
    /// Connections of each wide fan-out (`run`; none, or 0: not
    /// measured): one write per delivery over as many connections as a
    /// bench holds, in writer and reader processes of `PER_PROCESS` each.
    pub wide: Vec<u64>,
    /// Message size in bytes, and messages per write (`spray`).
    pub size: usize,
    pub batch: usize,
    /// Connections of the paced fan-out (`run`; 0: not measured).
    pub paced: u64,
    /// Messages per second (`spray`; 0: as fast as it writes), and writes
    /// per event, each event's messages stamped with its send time. A
    /// `sink` given a rate times the stamps of `--size`-byte messages.
    pub rate: f64,
    pub event: usize,
    /// Connections of the paced round trips (`run`; 0: not measured).
    pub pings: u64,
    /// Seconds between one connection's requests (`ask`; 0: each sends
    /// its next as soon as its answer comes, a closed loop).
    pub interval: f64,
    /// Where a client role connects, and from which source address.
    pub to: Option<std::net::SocketAddr>,
    pub from: Option<std::net::IpAddr>,
}

impl Flags {
    fn parse(args: &[String]) -> anyhow::Result<Flags> {
        let mut f = Flags {
            pairs: 100_000,
            seconds: 5.0,
            repeat: 3,
            connections: 9_000,
            wide: Vec::new(),
            size: 200,
            batch: 1,
            paced: 0,
            rate: 0.0,
            event: 1,
            pings: 0,
            interval: 0.0,
            to: None,
            from: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = it
                .next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))?;
            let bad = || anyhow::anyhow!("{a}: `{v}` is not valid");
            match a.as_str() {
                "--pairs" => f.pairs = v.parse().map_err(|_| bad())?,
                "--seconds" => {
                    f.seconds = v.parse().ok().filter(|s: &f64| *s > 0.0).ok_or_else(bad)?
                }
                "--repeat" => f.repeat = v.parse().ok().filter(|r| *r > 0).ok_or_else(bad)?,
                "--connections" => {
                    f.connections = v.parse().ok().filter(|c| *c > 0).ok_or_else(bad)?
                }
                "--wide" => {
                    f.wide = v
                        .split(',')
                        .map(|n| n.trim().parse())
                        .collect::<Result<_, _>>()
                        .map_err(|_| bad())?
                }
                "--size" => f.size = v.parse().ok().filter(|s| *s > 0).ok_or_else(bad)?,
                "--batch" => f.batch = v.parse().ok().filter(|b| *b > 0).ok_or_else(bad)?,
                "--pings" => f.pings = v.parse().map_err(|_| bad())?,
                "--paced" => f.paced = v.parse().map_err(|_| bad())?,
                "--rate" => f.rate = v.parse().ok().filter(|r: &f64| *r >= 0.0).ok_or_else(bad)?,
                "--event" => f.event = v.parse().ok().filter(|e| *e > 0).ok_or_else(bad)?,
                "--interval" => {
                    f.interval = v.parse().ok().filter(|s: &f64| *s >= 0.0).ok_or_else(bad)?
                }
                "--to" => f.to = Some(v.parse().map_err(|_| bad())?),
                "--from" => f.from = Some(v.parse().map_err(|_| bad())?),
                _ => anyhow::bail!("unknown flag `{a}`"),
            }
        }
        Ok(f)
    }
}

//! `cargo xtask roofline [--pairs N] [--repeat R] [--seconds S] [--wide N[,N...]] [--paced N] [--pings N] [--out DIR] [--host-net]`:
//! this machine's limits with plain TCP sockets, the ceiling every bench
//! figure is read against.
//!
//! Builds `rtbench-roofline`, runs it in a network namespace sized as a
//! bench's would be for `--pairs` connections (unless `--host-net`), and
//! writes `results/roofline/<UTC time>-<host>/roofline.json`. A bench record
//! names the host's newest roofline (`Environment::roofline`); the site shows
//! each headline as a share of it.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use rtbench_protocol::time::{appwrite_timestamp, compact_utc, now_ns};
use rtbench_record::roofline::{self, Measured, Roofline};

use crate::{flags, netns, preflight, root};

/// `cargo xtask roofline`'s command line; `bench --roofline` uses the
/// defaults. 100,000 pairs are about 0.6 GiB of kernel memory and a few
/// seconds to open.
#[derive(Debug, Clone, clap::Args)]
// `-5` reaches the value's parser, which says what is wrong with it.
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Connection pairs held open (the namespace is sized for them)
    #[arg(long, value_name = "N", default_value_t = Args::default().pairs, value_parser = flags::whole_number_from_1::<u64>)]
    pub pairs: u64,
    /// Times each figure is measured
    #[arg(long, value_name = "R", default_value_t = Args::default().repeat, value_parser = flags::whole_number_from_1::<u32>)]
    pub repeat: u32,
    /// Seconds per throughput measurement
    #[arg(long, value_name = "S", default_value_t = Args::default().seconds, value_parser = flags::positive_number)]
    pub seconds: f64,
    /// Also measure fan-out at one write per delivery over N connections
    /// (a comma-separated list for several), writers and readers in
    /// processes of 19,000 each, as a bench holds them: the figure a fan-out
    /// or broadcast run of that size is read against (0: not measured)
    #[arg(long, value_name = "N", value_delimiter = ',', default_values_t = Args::default().wide)]
    pub wide: Vec<u64>,
    /// Also time fan-out deliveries paced at 12.5, 25, 50, 75 and 90% of
    /// the saturated one-write rate over N connections, in events of 100
    /// writes, each stamped when sent and timed at the reader's kernel
    /// receive: bare TCP's latency against offered load, the curve a
    /// fan-out sweep's knee is read against [default: 0, not measured]
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub paced: u64,
    /// Also time round trips paced as the SDKs' pings: N connections, each
    /// sending a 16-byte request every 20 s over 40 s, across as many
    /// processes as a bench uses (the namespace is sized for them too)
    /// [default: 0, not measured]
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub pings: u64,
    /// The record's directory [default: results/roofline/<UTC time>-<host>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stay on the host's network stack, no namespace [default: off]
    #[arg(long)]
    pub host_net: bool,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            pairs: 100_000,
            repeat: 3,
            seconds: 5.0,
            // The fanout and broadcast suites' connections.
            wide: vec![100_000],
            paced: 0,
            pings: 0,
            out: None,
            host_net: false,
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let dir = measure(&a)?;
    let r = Roofline::read(&dir)?;
    print(&r);
    println!("{}", dir.display());
    Ok(())
}

/// Measures and writes a roofline record; returns its directory.
pub fn measure(a: &Args) -> anyhow::Result<PathBuf> {
    crate::cargo(&["build", "--release", "--quiet", "-p", "rtbench-roofline"])?;
    // Both ends of every pair are on this machine.
    let most = a
        .pairs
        .max(a.pings)
        .max(a.paced)
        .max(a.wide.iter().copied().max().unwrap_or(0));
    let kib_needed = most * 2 * 3 + 256 * 1024;
    if let Some(avail) = preflight::meminfo("MemAvailable")
        && kib_needed > avail
    {
        return Err(anyhow::anyhow!(
            "{most} pairs need about {} MiB of kernel memory; {} MiB available: use fewer --pairs or --pings",
            kib_needed / 1024,
            avail / 1024
        ));
    }
    let ns = if a.host_net {
        None
    } else {
        netns::available()?;
        // A bench's port range and queues (the largest suite's), so opening
        // rates compare like with like; not its socket buffers, which would
        // change what fan-out measures.
        let suite = crate::suite::load(&root().join("suites/idle-1m.toml"))?;
        let keep = [
            "net.ipv4.ip_local_port_range",
            "net.core.somaxconn",
            "net.ipv4.tcp_max_syn_backlog",
            "net.core.netdev_max_backlog",
        ];
        let mut settings = suite.tuning.clone();
        settings.retain(|k, _| keep.contains(&k.as_str()));
        Some(netns::Namespace::create(most, &settings)?)
    };
    let mut cmd = command(a);
    netns::enter(&mut cmd);
    // Its sides stand for a server and its clients: the servers' niceness.
    crate::server::at_server_priority(&mut cmd);
    eprintln!(
        "xtask: roofline: {} pairs, fan-out, round trips{}, each {} time(s){}",
        a.pairs,
        if a.pings > 0 {
            format!(", {} connections pinging every 20 s", a.pings)
        } else {
            String::new()
        },
        a.repeat,
        ns.as_ref()
            .map(|n| format!(", in namespace {} ({} buckets)", n.name, n.ehash_buckets))
            .unwrap_or_default()
    );
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run rtbench-roofline: {e:#}"))?;
    if !out.status.success() {
        return Err(anyhow::anyhow!("rtbench-roofline failed ({})", out.status));
    }
    let measured: Measured = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("rtbench-roofline printed what is not its figures: {e:#}"))?;
    let now = now_ns();
    let host = crate::record::host_id();
    let r = Roofline {
        format_version: roofline::FORMAT_VERSION,
        host: host.clone(),
        measured_at: appwrite_timestamp(now),
        kernel: rtbench_sys::host::kernel_release().unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_kib: preflight::meminfo("MemTotal").unwrap_or(0),
        ehash_buckets: ns.as_ref().map(|n| n.ehash_buckets),
        measured,
    };
    let dir = a.out.clone().unwrap_or_else(|| {
        root()
            .join("results")
            .join(roofline::DIR)
            .join(format!("{}-{host}", compact_utc(now)))
    });
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e:#}", dir.display()))?;
    rtbench_record::write_json(&dir.join(roofline::FILE), &r)?;
    Ok(dir)
}

/// The measuring process, asked for what `a` names.
fn command(a: &Args) -> Command {
    let mut cmd = Command::new(root().join("target/release/rtbench-roofline"));
    cmd.args([
        "run",
        "--pairs",
        &a.pairs.to_string(),
        "--repeat",
        &a.repeat.to_string(),
        "--seconds",
        &a.seconds.to_string(),
        "--pings",
        &a.pings.to_string(),
        "--paced",
        &a.paced.to_string(),
        "--wide",
        &a.wide
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ])
    .stdin(Stdio::null())
    .stderr(Stdio::inherit());
    cmd
}

fn print(r: &Roofline) {
    let m = &r.measured;
    let spread = |s: &roofline::Spread, unit: &str| {
        format!(
            "{:.0}{unit} (min {:.0}, max {:.0}, {} runs)",
            s.median,
            s.min,
            s.max,
            s.runs.len()
        )
    };
    let kib =
        |s: &roofline::Spread| format!("{:.2} KiB (min {:.2}, max {:.2})", s.median, s.min, s.max);
    let ms = |s: &roofline::Spread| format!("{:.2} ms (max {:.2})", s.median, s.max);
    let us = |s: &roofline::Spread| format!("{:.1} us", s.median);
    println!(
        "pairs: {} opened at {}; per pair, both ends: machine memory {}, kernel slab {}",
        m.pairs.count,
        spread(&m.pairs.per_second, "/s"),
        kib(&m.pairs.kernel_kib_per_pair),
        kib(&m.pairs.slab_kib_per_pair)
    );
    for f in &m.fanout {
        println!(
            "fan-out: {} B x{} per write over {} connections: {}",
            f.size,
            f.per_write,
            f.connections,
            spread(&f.deliveries_per_s, " deliveries/s")
        );
    }
    for p in &m.paced {
        println!(
            "paced fan-out: {} B over {} connections, events of {}, {:.0} deliveries/s offered ({:.1}% of saturated): {}; p50 {} p99 {} p99.9 {}; machine CPU busy {}; per delivery, writers {} readers {}",
            p.size,
            p.connections,
            p.per_event,
            p.offered_per_s,
            p.share_of_saturated * 100.0,
            spread(&p.delivered_per_s, "/s"),
            ms(&p.p50_ms),
            ms(&p.p99_ms),
            ms(&p.p999_ms),
            spread(&p.machine_busy_pct, "%"),
            us(&p.writer_us_per_delivery),
            us(&p.reader_us_per_delivery)
        );
    }
    println!(
        "round trips: {} B over {} connections: {}",
        m.round_trips.request_bytes,
        m.round_trips.connections,
        spread(&m.round_trips.per_second, "/s")
    );
    if let Some(p) = &m.pings {
        println!(
            "pings: {} B every {:.0} s over {} connections ({:.0}/s offered): {}; machine CPU busy {}; machine CPU per round trip {}",
            p.request_bytes,
            p.interval_s,
            p.connections,
            p.offered_per_s,
            spread(&p.per_second, "/s"),
            spread(&p.machine_busy_pct, "%"),
            spread(&p.machine_us_per_trip, " us")
        );
    }
}

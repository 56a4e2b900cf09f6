//! `cargo xtask memprobe [--connections N] [--rate R] [--auth guest|jwt]`:
//! memory per idle connection, on both sides, and how much of it the server
//! gives back once the connections close.
//!
//! Builds the release server and load generator, starts the server, warms it
//! up (200 connections of the same session, opened and closed: the code
//! their path runs is paged in), reads its RSS, lets the load generator open
//! N connections (each subscribed to one channel, then silent) and reads the
//! server's RSS again while they are held:
//! (RSS with N − RSS before) / N is the server's headline figure. The load
//! generator's record gives its own figure, measured the same way. Once the
//! load generator has closed its connections, the server's RSS is read a
//! third time: what of the growth remains is memory the server keeps after a
//! peak (`ARCHITECTURE.md` says how it gives the rest back).
//!
//! `--auth` chooses the session: a guest (the seed's), or a signed-in user
//! with a JWT naming the user and one team of 100, each connection a
//! different user (the costliest case: no user's names are shared).

use anyhow::Context as _;

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::flags;
use crate::server::ServerProcess;

/// `cargo xtask memprobe`'s command line.
#[derive(Debug, Clone, clap::Args)]
// `-5` reaches the value's parser, which says what is wrong with it.
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Idle connections held while the server's RSS is read
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = flags::whole_number_from_1::<u64>)]
    pub connections: u64,
    /// Connections opened per second
    #[arg(long, value_name = "R", default_value_t = 5_000, value_parser = flags::whole_number_from_1::<u64>)]
    pub rate: u64,
    /// The connections' session
    #[arg(long, value_enum, default_value_t = Auth::Guest)]
    pub auth: Auth,
}

/// Who the probe's connections are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    /// No token: the roles `any` and `guests`.
    Guest,
    /// A JWT per connection: its own user, one team (with the role `owner`).
    Jwt,
}

impl Auth {
    /// The scenario's `[session]` lines beyond the channel.
    fn session(self) -> &'static str {
        match self {
            Auth::Guest => "",
            Auth::Jwt => {
                "auth = \"jwt\"\nteams = 100\nteams_per_user = 1\nteam_roles = [\"owner\"]\n"
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Auth::Guest => "guests",
            Auth::Jwt => "signed in: JWT, own user, 1 team",
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    crate::build_release()?;
    let mut server = ServerProcess::start(
        &crate::server_bin(),
        // The probe's clients send nothing after connecting.
        &[
            "--projects".into(),
            "console".into(),
            "--idle-timeout-s".into(),
            "0".into(),
        ],
    )?;
    let result = probe(&server, &a);
    server.stop(Duration::from_secs(10));
    result
}

/// Connections opened by the warm-up before the base is read.
const WARM_UP: u64 = 200;

fn probe(server: &ServerProcess, a: &Args) -> anyhow::Result<()> {
    let (n, rate) = (a.connections, a.rate);
    let dir = std::env::temp_dir().join(format!("rtbench-memprobe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    // A few connections of the same session first, closed again: the code
    // their path runs is paged in once, for any number of connections, and
    // is not what a connection costs.
    let (mut warm_up, warm_up_dir) = load(server, a, &dir, "warm-up", WARM_UP, 1.0)?;
    let status = warm_up
        .wait()
        .context("waiting for the warm-up load generator")?;
    if !status.success() {
        return Err(anyhow::anyhow!(
            "the warm-up's load generator failed ({status}); see {}",
            warm_up_dir.display()
        ));
    }
    wait_until_closed(server)?;
    std::thread::sleep(Duration::from_secs(1));
    let before = server.rss_kib()?;
    let (mut loadgen, run_dir) = load(server, a, &dir, "run", n, 4.0)?;
    let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / rate as f64 + 30.0);
    while server.metric("rtbench_connections")? < n {
        if Instant::now() > deadline
            || loadgen
                .try_wait()
                .context("checking on the load generator")?
                .is_some()
        {
            let _ = loadgen.kill();
            return Err(anyhow::anyhow!(
                "the server never held {n} connections; see {}",
                run_dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let with = server.rss_kib()?;
    let held = server.metric("rtbench_connections")?;
    let status = loadgen.wait().context("waiting for the load generator")?;
    if !status.success() {
        return Err(anyhow::anyhow!(
            "the load generator failed ({status}); see {}",
            run_dir.display()
        ));
    }
    let after = rss_once_closed(server)?;
    let summary = rtbench_record::load::read_summary(&run_dir)?;
    let grown = with.saturating_sub(before);
    let per_kib = grown as f64 / held as f64;
    let kept = after.saturating_sub(before);
    println!(
        "memprobe: release rtbench-server, {held} idle connections ({}; 1 channel each, no traffic)",
        a.auth.describe()
    );
    println!("  server RSS before      {before} KiB");
    println!("  server RSS with {held:<6} {with} KiB");
    println!(
        "  server KiB/connection  {per_kib:.2}  ({:.0} bytes)",
        per_kib * 1024.0
    );
    println!(
        "  server RSS after close {after} KiB (12 s later): {kept} KiB of the {grown} KiB growth kept ({:.0}%)",
        100.0 * kept as f64 / grown.max(1) as f64
    );
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

/// Starts the load generator: `n` connections of `a`'s session at its
/// rate, held `hold_s`, then closed; its record goes to `dir/name`.
fn load(
    server: &ServerProcess,
    a: &Args,
    dir: &std::path::Path,
    name: &str,
    n: u64,
    hold_s: f64,
) -> anyhow::Result<(std::process::Child, std::path::PathBuf)> {
    let arrivals_s = n as f64 / a.rate as f64;
    let scenario = format!(
        "description = \"memprobe: {n} idle connections\"\n[target]\nurls = [\"ws://{}\"]\nsources = [\"127.0.0.2/28\"]\n\
         [[phases]]\nduration_s = {arrivals_s}\nrate = {}\n[hold]\nduration_s = {hold_s}\n[session]\nchannels = [\"files\"]\n{}",
        server.addr,
        a.rate,
        a.auth.session()
    );
    let scenario_file = dir.join(format!("{name}.toml"));
    std::fs::write(&scenario_file, scenario)
        .with_context(|| scenario_file.display().to_string())?;
    let run_dir = dir.join(name);
    let child = crate::loadgen_run(&scenario_file, &run_dir)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the load generator: {e:#}"))?;
    Ok((child, run_dir))
}

fn wait_until_closed(server: &ServerProcess) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("rtbench_connections")? > 0 {
        if Instant::now() > deadline {
            return Err(anyhow::Error::msg(
                "the server still holds connections 30 s after the load generator ended",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The server's RSS once it holds no connection and the deadlines its
/// connections left behind have passed (a request head's is the longest,
/// 10 s by default): what it keeps after the peak, not what it is still
/// letting go of.
fn rss_once_closed(server: &ServerProcess) -> anyhow::Result<u64> {
    wait_until_closed(server)?;
    std::thread::sleep(Duration::from_secs(12));
    server.rss_kib()
}

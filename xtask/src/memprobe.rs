//! `cargo xtask memprobe [--connections N] [--rate R]`: memory per idle connection,
//! on both sides.
//!
//! Builds the release server and load generator, starts the server, reads its
//! RSS, lets the load generator open N connections (each subscribed to one
//! channel, then silent) and reads the server's RSS again while they are held:
//! (RSS with N − RSS before) / N is the server's headline figure. The load
//! generator's record gives its own figure, measured the same way.

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
}

pub fn run(a: Args) -> Result<(), String> {
    let (n, rate) = (a.connections, a.rate);
    crate::build_release()?;
    let mut server = ServerProcess::start(
        &crate::server_bin(),
        &["--projects".into(), "console".into()],
    )?;
    let result = probe(&server, n, rate);
    server.stop(Duration::from_secs(10));
    result
}

fn probe(server: &ServerProcess, n: u64, rate: u64) -> Result<(), String> {
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
    let mut loadgen = crate::loadgen_run(&scenario_file, &run_dir)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the load generator: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs_f64(arrivals_s + 30.0);
    while server.metric("rtbench_connections")? < n {
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
    let held = server.metric("rtbench_connections")?;
    let status = loadgen.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "the load generator failed ({status}); see {}",
            run_dir.display()
        ));
    }
    let summary = rtbench_record::load::read_summary(&run_dir)?;
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

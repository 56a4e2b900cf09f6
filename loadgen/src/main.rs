//! The `rtbench-loadgen` binary: `run` (the controller) and `worker`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rtbench_loadgen::{controller, worker};

#[derive(Parser)]
#[command(
    name = "rtbench-loadgen",
    version,
    about = "Open-model WebSocket load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario and write its run directory.
    Run {
        /// The scenario file (TOML; schema in loadgen/README.md).
        scenario: PathBuf,
        /// Target URL, replacing the scenario's (repeat for several, used round-robin).
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Run directory to write (default: runs/<scenario>-<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker processes (default: enough to stay under the open-files limit).
        #[arg(long)]
        workers: Option<u64>,
        /// Where each worker runs: a JSON file of command lines (`ssh HOST ...`) or
        /// addresses of workers listening for their controller (in containers);
        /// default: local processes.
        #[arg(long)]
        launch: Option<PathBuf>,
    },
    /// A worker process: reads its plan on stdin, reports JSON lines on stdout
    /// (or both over one TCP connection, with --listen).
    #[command(hide = true)]
    Worker {
        /// Instead of stdin and stdout, wait for the controller's one TCP
        /// connection at this address and talk over it (a worker that someone
        /// else started, as in a container). Default: stdin and stdout.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Answers each line on stdin with this machine's CLOCK_REALTIME in ns:
    /// the controller estimates a remote worker's clock offset through it.
    #[command(hide = true)]
    Clock,
    /// Prints this machine's memory, CPU, load and sockets as a JSON line
    /// every second (a machine of the run without a worker: a swarm's
    /// server node).
    #[command(hide = true)]
    SampleHost,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Run {
            scenario,
            targets,
            out,
            workers,
            launch,
        } => {
            match controller::run(controller::RunArgs {
                scenario,
                targets,
                out,
                workers,
                launch,
            }) {
                Ok((dir, complete)) => {
                    println!("{}", dir.display());
                    if complete {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(130)
                    }
                }
                Err(e) => {
                    eprintln!("rtbench-loadgen: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Clock => {
            use std::io::{BufRead, Write};
            let mut out = std::io::stdout().lock();
            for line in std::io::stdin().lock().lines() {
                if line.is_err()
                    || writeln!(out, "{}", rtbench_protocol::time::now_ns())
                        .and_then(|_| out.flush())
                        .is_err()
                {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::SampleHost => match worker::sample_every_second() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rtbench-loadgen sample-host: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Worker { listen } => match worker::main(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rtbench-loadgen worker: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

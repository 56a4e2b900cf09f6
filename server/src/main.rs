//! The `rtbench-server` binary: settings, open-files limit, runtime, signals.

use std::process::ExitCode;

use clap::Parser;
use rtbench_server::{Config, Server, limits};

fn main() -> ExitCode {
    rtbench_server::memory::configure();
    let config = Config::parse();
    match rtbench_sys::limits::raise_open_files() {
        Ok(l) => {
            eprintln!(
                "rtbench-server: open files: soft limit {} raised to {} (hard limit {})",
                l.soft_before, l.soft, l.hard
            );
            if config.max_connections as u64 > limits::connection_capacity(&l) {
                eprintln!(
                    "rtbench-server: --max-connections {} exceeds what {} descriptors allow: this process holds at most {} connections; run more processes with --reuse-port",
                    config.max_connections,
                    l.soft,
                    limits::connection_capacity(&l)
                );
            }
        }
        Err(e) => {
            // Refused rather than run below the limit the run was planned for.
            eprintln!("rtbench-server: cannot raise the open-files limit: {e}");
            return ExitCode::FAILURE;
        }
    }
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtbench-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Watched before "listening" is printed: a signal sent as soon as
        // that line is read must find the handler, not kill the process
        // without its close frames.
        let signalled = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rtbench-server: cannot watch signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let server = match Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rtbench-server: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "rtbench-server: listening on {} with {threads} threads",
            server.local_addr()
        );
        signalled.await;
        eprintln!(
            "rtbench-server: shutting down: closing {} connections with 1001",
            server.connections()
        );
        let left = server.shutdown().await;
        eprintln!("rtbench-server: stopped ({left} connections did not close in time)");
        ExitCode::SUCCESS
    })
}

/// Installs the SIGTERM and SIGINT handlers now; the future ends at the
/// first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

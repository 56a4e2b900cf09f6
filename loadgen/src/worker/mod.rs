//! A worker process: makes its share of the arrivals, holds the connections,
//! and reports to its controller.
//!
//! A worker is a plain process that talks only through stdin and stdout (its
//! plan in, JSON lines out), or through one TCP connection it waits for
//! (`--listen`), so the same worker runs under the local controller, over
//! SSH or in a container. It is single-threaded on purpose:
//! scale comes from more workers (the open-files limit forces that anyway),
//! and one thread means no locks on the receive path and a CPU figure that
//! says plainly when the worker is saturated. The controller's side closing, SIGINT or SIGTERM
//! stop it early: arrivals stop, connections close, the final report is still
//! written, marked incomplete.

mod churn;
mod clock;
mod closing;
mod connect;
mod host;
mod reactor;
mod ready;
mod reconnect;
mod report;
mod run;
mod state;
mod ticker;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rtbench_record::launch::{WAITING_FOR_CONTROLLER, WORKER_RESERVED_FDS, worker_capacity};

use crate::hold;
use crate::sys;
use crate::wire::{Plan, Report, Start};
use state::Worker;

pub use host::sample_every_second;

/// `rtbench-loadgen worker`: reads the plan from its controller, gets
/// ready, says so, waits for the start time and runs the plan. `listen`:
/// the controller connects over TCP there instead of holding stdin and
/// stdout.
pub fn main(listen: Option<SocketAddr>) -> Result<(), String> {
    let mut input = controller_channel(listen)?;
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading the plan: {e}"))?;
    let mut plan: Plan = serde_json::from_str(&line)
        .map_err(|e| format!("the plan from the controller is not valid: {e}"))?;
    clock::set_offset(plan.clock_offset_ns);
    // The log names the process, so whoever reads it can check it is gone.
    eprintln!(
        "rtbench-loadgen worker {}: pid {}",
        plan.worker,
        std::process::id()
    );
    fits_open_files(&plan, sys::raise_open_files()?)?;
    sys::raise_priority();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let _entered = rt.enter();
    let (holds, readiness) = hold::new(state::plan_capacity(&plan))
        .map_err(|e| format!("cannot make the hold reactor: {e}"))?;
    ready::reach_targets(&plan.scenario)?;
    report::emit(&Report::Ready {
        worker: plan.worker,
    });
    line.clear();
    if input
        .read_line(&mut line)
        .map_err(|e| format!("reading the start: {e}"))?
        == 0
    {
        return Ok(()); // the controller gave up before the start
    }
    let start: Start = serde_json::from_str(&line)
        .map_err(|e| format!("the start from the controller is not valid: {e}"))?;
    plan.start_unix_ns = start.start_unix_ns;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        // The controller's side closing is its stop signal.
        let flag = interrupted.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut input, &mut std::io::sink());
            flag.store(true, Ordering::Relaxed);
        });
    }
    let w = Rc::new(Worker::new(plan, holds, interrupted)?);
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run::run(w, readiness));
    Ok(())
}

/// A worker whose share of the connections its open-files limit cannot
/// hold refuses the run before the ready barrier, instead of failing the
/// last of its arrivals once it runs (`open_files_limit`).
fn fits_open_files(plan: &Plan, nofile: u64) -> Result<(), String> {
    let share = state::plan_capacity(plan) as u64;
    if share <= worker_capacity(nofile) {
        return Ok(());
    }
    Err(format!(
        "worker {} on {}: its share is {share} connections, but it may open {nofile} files ({WORKER_RESERVED_FDS} kept for itself): raise its open-files limit or run more workers",
        plan.worker,
        sys::hostname()
    ))
}

/// What the controller says, as lines: stdin, or the one connection
/// accepted at `listen` (whose other half then carries the reports).
fn controller_channel(listen: Option<SocketAddr>) -> Result<Box<dyn BufRead + Send>, String> {
    let Some(addr) = listen else {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    };
    let listener = TcpListener::bind(addr).map_err(|e| format!("--listen {addr}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("--listen {addr}: {e}"))?;
    // Whoever started the worker waits for this line before naming it to
    // the controller. It waits for as long as its starter lets it.
    eprintln!("{WAITING_FOR_CONTROLLER} {addr}");
    let (conn, peer) = listener
        .accept()
        .map_err(|e| format!("--listen {addr}: {e}"))?;
    drop(listener);
    eprintln!("rtbench-loadgen worker: controller {peer} connected");
    // Ticks are heartbeats: each goes out when written.
    let _ = conn.set_nodelay(true);
    let out = conn
        .try_clone()
        .map_err(|e| format!("--listen {addr}: {e}"))?;
    report::report_to(Box::new(out));
    Ok(Box::new(BufReader::new(conn)))
}

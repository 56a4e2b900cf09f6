//! A process of the run that dies mid-run is named in the record (time,
//! role, status) and the run is not complete: a server, Redis, a load
//! generator worker, each killed with SIGKILL by the test while the real
//! xtask runs a two-process bench.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{ONE_AT_A_TIME, scratch, xtask};
use xtask::record::read_summary;

/// (pid, parent pid, command name) of every process.
fn processes() -> Vec<(u32, u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().into_string().ok()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces.
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let comm = stat[open + 1..close].to_string();
            let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect()
}

fn children(parent: u32, comm: &str) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, ppid, c)| *ppid == parent && c == comm)
        .map(|(pid, _, _)| pid)
        .collect()
}

fn start_bench(out: &Path) -> Child {
    xtask(&[
        "bench",
        "idle-1m",
        "--variant",
        "sdk-ping",
        "--connections",
        "2000",
        "--rate",
        "1000",
        "--processes",
        "2",
        "--hold",
        "6",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// Waits until `find` names a pid (the bench has built and started it).
fn wait_for(what: &str, find: impl Fn() -> Option<u32>) -> u32 {
    let t0 = Instant::now();
    loop {
        if let Some(pid) = find() {
            return pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no {what} appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the bench, kills what `victim` finds once connections are open,
/// and returns the record's exits and the bench's stderr.
fn kill_during_run(
    name: &str,
    victim: impl Fn(u32) -> Option<u32>,
) -> (xtask::record::BenchSummary, String) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch(name);
    let bench = start_bench(&out);
    let xtask_pid = bench.id();
    let pid = wait_for(name, || victim(xtask_pid));
    // Into the arrivals (2 s of them), so the process held connections.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling a process of our own test run.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let o = bench.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    // A variant's record is `--out` with the variant's name appended.
    let record = PathBuf::from(format!("{}-sdk-ping", out.display()));
    let s = read_summary(&record).unwrap_or_else(|e| panic!("{e}\n{err}"));
    assert!(
        !s.complete,
        "a run that lost a process is not complete:\n{err}"
    );
    assert_eq!(s.stopped_by, None, "not an interruption:\n{err}");
    assert_eq!(s.process_exits.len(), 1, "{:?}\n{err}", s.process_exits);
    let e = &s.process_exits[0];
    assert_eq!(e.pid, pid, "{e:?}");
    assert!(e.status.starts_with("signal 9"), "{e:?}");
    (s, err)
}

#[test]
fn a_server_killed_mid_run_is_named_with_time_role_and_status() {
    let (s, err) = kill_during_run("server", |xtask| {
        children(xtask, "rtbench-server").into_iter().max()
    });
    let e = &s.process_exits[0];
    assert!(e.role == "server 0" || e.role == "server 1", "{e:?}");
    assert!(e.t_s > 0.0 && e.t_s < 60.0, "{e:?}");
    assert!(
        err.contains("xtask: FAULT at") && err.contains(&e.role),
        "{err}"
    );
}

#[test]
fn a_redis_killed_mid_run_is_named() {
    let (s, _) = kill_during_run("redis", |xtask| {
        children(xtask, "redis-server").first().copied()
    });
    assert_eq!(s.process_exits[0].role, "redis");
}

#[test]
fn a_worker_killed_mid_run_is_named() {
    let (s, _) = kill_during_run("worker", |xtask| {
        let controller = *children(xtask, "rtbench-loadgen").first()?;
        children(controller, "rtbench-loadgen").first().copied()
    });
    assert!(
        s.process_exits[0].role.starts_with("worker "),
        "{:?}",
        s.process_exits
    );
}

//! `bench --server`: a server other than rtbench, started from a command
//! line or already running at a URL, benchmarked by the real xtask. The peer
//! is the workspace's tokio-tungstenite echo server, a real process.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ONE_AT_A_TIME, scratch, xtask};
use rtbench_record::read_summary;
use rtbench_sys::process::{Process, exe, pids};

fn peer_bin() -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "rtbench-peer-tungstenite",
        ])
        .current_dir(xtask::root())
        .status()
        .unwrap();
    assert!(status.success());
    xtask::root().join("target/release/rtbench-peer-tungstenite")
}

/// Live processes running `bin`.
fn running(bin: &PathBuf) -> Vec<u32> {
    pids()
        .unwrap()
        .into_iter()
        .filter(|&pid| exe(Process::Pid(pid)).is_ok_and(|e| e == *bin))
        .collect()
}

fn smoke_against(server: &str, out: &std::path::Path) -> std::process::Output {
    xtask(&[
        "bench",
        "smoke",
        "--server",
        server,
        "--protocol",
        "raw",
        "--scale",
        "0.25",
        "--hold",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap()
}

/// The run's record, having checked it succeeded, is complete and held
/// every one of smoke's 500 connections at a quarter scale; and its stderr.
fn complete_smoke(
    o: &std::process::Output,
    out: &std::path::Path,
) -> (rtbench_record::BenchSummary, String) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let s = read_summary(out).unwrap();
    assert!(s.complete, "{s:?}");
    assert_eq!(
        (s.connections.peak, s.connections.failed),
        (500, 0),
        "{err}"
    );
    (s, err)
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): a real bench"]
fn a_server_started_from_a_command_line_is_benchmarked_sampled_and_stopped() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let peer = peer_bin();
    let before = running(&peer);
    let out = scratch("command");
    let o = smoke_against(&format!("command:{} --port {{port}}", peer.display()), &out);
    let (s, _) = complete_smoke(&o, &out);
    assert_eq!(
        s.server_under_test,
        format!("command: {} --port {{port}}", peer.display())
    );
    // Sampled from /proc like rtbench-server: tokio-tungstenite's defaults
    // allocate a 128 KiB read buffer per connection up front.
    assert!(
        s.server.kib_per_connection > 64.0,
        "server memory was not sampled: {:?}",
        s.server
    );
    assert!(s.server.cpu_holding_pct.is_some(), "{:?}", s.server);
    assert_eq!(s.unmeasured.len(), 1, "{:?}", s.unmeasured);
    assert!(s.unmeasured[0].contains("/metrics"), "{:?}", s.unmeasured);
    assert_eq!(running(&peer), before, "the bench stops what it started");
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): a real bench"]
fn a_server_given_by_url_is_benchmarked_and_the_record_names_what_it_could_not_measure() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let peer = peer_bin();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server: Child = Command::new(&peer)
        .args(["--port", &port.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the peer never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = scratch("url");
    let url = format!("ws://127.0.0.1:{port}/");
    let o = smoke_against(&format!("url:{url}"), &out);
    let still_running = server.try_wait().unwrap().is_none();
    let _ = server.kill();
    let _ = server.wait();
    let (s, err) = complete_smoke(&o, &out);
    assert_eq!(s.server_under_test, format!("url: {url}"));
    assert_eq!(s.unmeasured.len(), 2, "{:?}", s.unmeasured);
    assert!(
        s.unmeasured[0].starts_with("server memory and CPU"),
        "{:?}",
        s.unmeasured
    );
    assert!(err.contains("not measured: server memory and CPU"), "{err}");
    assert!(
        still_running,
        "a server given by URL is not the bench's to stop"
    );
}

#[test]
fn a_bad_server_spec_and_a_command_that_exits_are_refused_with_the_reason() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch("bad");
    let o = smoke_against("nginx", &out);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("server `nginx`: expected `rtbench`"), "{err}");

    let o = smoke_against("command:sh -c 'echo no such server >&2; exit 3'", &out);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("exited (exit status: 3) before accepting") && err.contains("no such server"),
        "{err}"
    );
    assert!(!out.exists());
}

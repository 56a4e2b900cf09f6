//! The load generator end to end: the real `rtbench-loadgen` binary (controller
//! and worker processes) against the real server on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rtbench_loadgen::record::{Summary, read_summary};
use rtbench_server::{Config, Server};

/// A server on an ephemeral loopback port, on its own runtime.
struct TestServer {
    addr: std::net::SocketAddr,
    rt: tokio::runtime::Runtime,
    server: Option<Server>,
}

impl TestServer {
    fn start() -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(Server::start(Config::for_listen(
                "127.0.0.1:0".parse().unwrap(),
            )))
            .expect("server starts");
        TestServer {
            addr: server.local_addr(),
            rt,
            server: Some(server),
        }
    }

    fn metric(&self, name: &str) -> u64 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtbench-loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn loadgen(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rtbench-loadgen"));
    c.args(args);
    c
}

/// Writes `scenario`, runs it, returns the output and the run directory.
fn run(dir: &Path, scenario: &str, extra: &[&str]) -> (Output, PathBuf) {
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let out = dir.join("run");
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = loadgen(&args).output().unwrap();
    (output, out)
}

fn summary_of(output: &Output, out: &Path) -> Summary {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_summary(out).unwrap()
}

#[test]
fn every_connection_receives_connected_across_two_workers() {
    let server = TestServer::start();
    let dir = scratch("connected");
    let sc = format!(
        r#"
description = "every connection is greeted"
[target]
urls = ["ws://{}"]
[[phases]]
duration_s = 1
rate = 1000
[hold]
duration_s = 1
[session]
channels = ["files"]
"#,
        server.addr
    );
    let (output, out) = run(&dir, &sc, &["--workers", "2"]);
    let s = summary_of(&output, &out);
    assert!(s.complete);
    assert_eq!(
        (
            s.connections.target,
            s.connections.connected,
            s.connections.failed
        ),
        (1000, 1000, 0)
    );
    assert_eq!(s.connections.peak_open, 1000);
    // Both workers' histograms merged: one connect sample per connection.
    assert_eq!(s.connect_ms.count, 1000);
    assert!(s.connect_ms.p50 > 0.0);
    assert_eq!(s.workers, 2);
    assert_eq!(server.metric("rtbench_connections_total"), 1000);
    // The record is complete on disk.
    for f in [
        "scenario.toml",
        "summary.json",
        "timeseries.csv",
        "errors.json",
        "histograms/connect.hdr",
        "histograms/connect.txt",
        "workers/worker-1.log",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    assert!(csv.starts_with(rtbench_loadgen::record::TIMESERIES_HEADER));
    assert!(csv.lines().count() >= 2);
}

#[test]
fn fanout_reaches_each_permitted_subscriber_exactly_once() {
    let server = TestServer::start();
    let dir = scratch("fanout");
    let sc = format!(
        r#"
[target]
urls = ["ws://{}"]
[[phases]]
duration_s = 1
rate = 300
[hold]
duration_s = 2
[session]
channel_pattern = "chat.{{}}"
channel_count = 20
channels_per_user = 2
auth = "jwt"
users = 150
teams = 5
teams_per_user = 1
[[publishers]]
rate = 40
payload_bytes = 150
roles = [{{ role = "any" }}, {{ role = "team" }}, {{ role = "user" }}, {{ role = "users" }}, {{ role = "guests" }}]
"#,
        server.addr
    );
    let (output, out) = run(&dir, &sc, &[]);
    let s = summary_of(&output, &out);
    assert_eq!(s.connections.connected, 300);
    assert!(s.events.published >= 70, "{:?}", s.events);
    assert!(s.events.received > 0);
    assert_eq!(
        s.events.received, s.events.server_deliveries,
        "every delivery the server made arrived"
    );
    assert_eq!(s.events.lost, Some(0));
    assert_eq!(s.events.duplicates, 0);
    assert_eq!(
        s.events.misdelivered, 0,
        "a connection received an event it may not read"
    );
    assert_eq!(s.delivery_ms.count, s.events.received);
    assert_eq!(server.metric("rtbench_deliveries_total"), s.events.received);
}

#[test]
fn raw_mode_holds_and_echoes_against_a_plain_websocket_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let dir = scratch("raw");
    let sc = format!(
        r#"
[target]
urls = ["ws://{addr}/echo"]
protocol = "raw"
[[phases]]
duration_s = 0.5
rate = 100
[hold]
duration_s = 1.5
[session]
echo_interval_s = 0.2
"#
    );
    let (output, out) = run(&dir, &sc, &[]);
    let s = summary_of(&output, &out);
    assert_eq!((s.connections.connected, s.connections.failed), (50, 0));
    assert!(s.counters.echoes >= 50, "{:?}", s.counters);
    assert_eq!(s.echo_ms.count, s.counters.echoes);
}

#[test]
fn ctrl_c_leaves_an_incomplete_record_and_no_workers() {
    let server = TestServer::start();
    let dir = scratch("ctrlc");
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        format!(
            "[target]\nurls=[\"ws://{}\"]\n[[phases]]\nduration_s=1\nrate=200\n[hold]\nduration_s=60\n[session]\nchannels=[\"files\"]\n",
            server.addr
        ),
    )
    .unwrap();
    let out = dir.join("run");
    let mut child = loadgen(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--workers",
        "2",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Wait until the connections are held.
    let t0 = Instant::now();
    while server.metric("rtbench_connections") < 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "connections never arrived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the load generator did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let s = read_summary(&out).unwrap();
    assert!(!s.complete);
    assert_eq!(s.stopped_by.as_deref(), Some("SIGINT"));
    assert_eq!(s.connections.connected, 200);
    // Workers closed their connections and exited.
    let t0 = Instant::now();
    while server.metric("rtbench_connections") > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "connections left open after the run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pgrep = Command::new("pgrep")
        .args(["-f", "rtbench-loadgen worker"])
        .output()
        .unwrap();
    let ours = String::from_utf8_lossy(&pgrep.stdout)
        .lines()
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|st| st.split_whitespace().nth(3) == Some(&child.id().to_string()))
        })
        .count();
    assert_eq!(ours, 0, "worker processes outlived the run");
}

#[test]
fn a_scenario_beyond_the_address_budget_is_refused_before_starting() {
    let dir = scratch("budget");
    let (output, out) = run(
        &dir,
        "[target]\nurls=[\"ws://127.0.0.1:9\"]\n[[phases]]\nduration_s=10\nrate=100000\n[session]\nchannels=[\"files\"]\n",
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("needs 1000000 connections to one server address"),
        "{err}"
    );
    assert!(err.contains("target.sources"), "{err}");
    assert!(!out.exists() && !rtbench_loadgen::record::partial_dir(&out).exists());
}

#[test]
fn a_bad_scenario_names_file_line_and_field() {
    let dir = scratch("bad");
    let (output, _) = run(
        &dir,
        "[target]\nurls=[\"ws://127.0.0.1:9\"]\n[[phases]]\nduration_s=1\nrat=5\n",
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("scenario.toml:5:") && err.contains("unknown field `rat`"),
        "{err}"
    );
}

#[test]
fn unreachable_targets_fail_within_the_connect_timeout() {
    // A listener that completes TCP handshakes but never answers HTTP.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = scratch("unreachable");
    let sc = format!(
        "[target]\nurls=[\"ws://{}\", \"ws://{refused}\"]\nconnect_timeout_s=1\n[[phases]]\nduration_s=1\nrate=10\n[session]\nchannels=[\"files\"]\n",
        silent.local_addr().unwrap()
    );
    let t0 = Instant::now();
    let (output, out) = run(&dir, &sc, &[]);
    let elapsed = t0.elapsed();
    let s = summary_of(&output, &out);
    assert_eq!(s.connections.connected, 0);
    assert_eq!(
        s.counters.failed.get("timeout"),
        Some(&5),
        "{:?}",
        s.counters.failed
    );
    assert_eq!(
        s.counters.failed.get("refused"),
        Some(&5),
        "{:?}",
        s.counters.failed
    );
    // Bounded: 1 s of arrivals, a 1 s timeout, start-up and close; never a hang.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    drop(silent);
}

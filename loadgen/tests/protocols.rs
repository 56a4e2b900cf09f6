//! Every protocol against its real server, with the real `rtbench-loadgen`
//! (controller and two workers) on loopback.
//!
//! Brokers (`peers/`, installed by `cargo xtask ci` from the `brokers`
//! suite's `[setup]`): the publisher publishes N events through the broker's
//! own path to M subscribers of one channel, and each subscriber receives
//! each event exactly once, its latency recorded; then, on the same broker,
//! the broker is killed while the clients hold, and every connection (and the
//! publisher's) is counted as closed, not left silent.
//!
//! Raw echo: Node's `ws` sending every message back as a binary frame has
//! each echo matched; a server answering with something else is flagged
//! with what it sent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rtbench_record::load::{Summary, read_summary};

/// Subscribers, and events each must receive.
const M: u64 = 20;
const N: u64 = 60;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtbench-protocols-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process of the test's own on a loopback port; killed when dropped.
struct Peer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Peer {
    /// Starts `argv` (`{port}` filled in) and waits until its port accepts.
    fn start(dir: &Path, argv: &[&str]) -> Peer {
        let port = free_port();
        let log = dir.join("server.log");
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("server.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {argv:?} (cargo xtask ci installs the brokers): {e}")
            });
        let mut peer = Peer { child, port, log };
        // RabbitMQ boots its VM and plugins in 15-45 s on a busy machine.
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = peer.child.try_wait().unwrap() {
                panic!("{argv:?} exited ({status}): {}", peer.log_tail());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{argv:?} did not accept on {port} within 120 s: {}",
                peer.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGKILL: the broker is gone at once, as a crash leaves it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn loadgen_run(dir: &Path, scenario: &str) -> Command {
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_rtbench-loadgen"));
    c.args(["run", file.to_str().unwrap(), "--out"])
        .arg(dir.join("run"))
        .args(["--workers", "2"]);
    c
}

fn summary(dir: &Path, output: &Output) -> Summary {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_summary(&dir.join("run")).unwrap()
}

/// M subscribers of `room-1`, the protocol's keepalive every half second,
/// N events published from 7 s to 10 s (the hold ends at 12 s). The publisher
/// connects at once and is silent until then but for its keepalive: a broker
/// that enforces the keepalive it announced (Mosquitto) closes it otherwise.
fn exact_scenario(protocol: &str, port: u16) -> String {
    format!(
        r#"
[target]
urls = ["ws://127.0.0.1:{port}"]
protocol = "{protocol}"
connect_timeout_s = 20
[[phases]]
duration_s = 1
rate = {M}
[hold]
duration_s = 11
[session]
channels = ["room-1"]
ping_interval_s = 0.5
[[publishers]]
rate = 20
start_s = 7
stop_s = 10
"#
    )
}

/// What every broker must do: N events to M subscribers, each exactly once,
/// the keepalive kept; then, killed mid-run, every connection counted closed.
fn publishes_to_every_subscriber_once_and_a_killed_broker_is_closed(
    name: &str,
    protocol: &str,
    argv: &[&str],
) {
    let dir = scratch(name);
    let mut broker = Peer::start(&dir, argv);

    let output = loadgen_run(&dir, &exact_scenario(protocol, broker.port))
        .output()
        .unwrap();
    let s = summary(&dir, &output);
    let c = &s.counters;
    assert_eq!(
        (s.connections.connected, s.connections.failed),
        (M, 0),
        "{:?}",
        c.failed
    );
    assert_eq!((s.events.scheduled, s.events.published), (N, N));
    assert_eq!(
        (s.events.received, s.delivery_ms.count),
        (N * M, N * M),
        "every subscriber, every event, each timed"
    );
    assert_eq!((s.events.duplicates, s.events.misdelivered), (0, 0));
    assert_eq!(
        s.events.received_by_subscriber,
        [(N as u32, M)].into(),
        "each of the {M} subscribers received all {N}"
    );
    assert!(
        s.events.publish_errors.is_empty(),
        "{:?}",
        s.events.publish_errors
    );
    // The protocol's keepalive kept every connection: none dropped, each
    // ping answered where the protocol answers them (Socket.IO: the server
    // pings and the clients answered).
    assert!(c.closed_by_server.is_empty(), "{:?}", c.closed_by_server);
    assert_eq!(c.pings_skipped, 0);
    match protocol {
        "socketio" => assert!(c.server_pings >= M, "{c:?}"),
        "stomp" => assert_eq!(c.pongs, 0, "STOMP heart-beats are not answered"),
        // A ping sent in the last tick before the close can go unanswered
        // when the broker closes first (CI saw 452 pongs of 453 pings from
        // mosquitto once, whose websockets layer writes on a later
        // writable turn): at most one per connection may be owed.
        _ => assert!(c.pongs <= c.pings && c.pings - c.pongs <= M, "{c:?}"),
    }

    // The same broker killed while M clients and the publisher hold.
    let run = dir.join("killed");
    std::fs::create_dir_all(&run).unwrap();
    let scenario = exact_scenario(protocol, broker.port)
        .replace("duration_s = 11", "duration_s = 17")
        .replace("stop_s = 10", "stop_s = 16");
    let child = loadgen_run(&run, &scenario)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let live = run.join("run.partial/live.json");
    let t0 = Instant::now();
    loop {
        let now: serde_json::Value = std::fs::read_to_string(&live)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        // Every client in, and events flowing.
        if now["open"].as_u64() == Some(M) && now["t"].as_f64().is_some_and(|t| t >= 8.0) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "never held {M}: {now}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.kill();
    let output = child.wait_with_output().unwrap();
    let s = summary(&run, &output);
    assert_eq!(
        s.counters.closed_by_server,
        [("no_close_frame".to_string(), M)].into(),
        "each connection counted as closed by the broker"
    );
    assert_eq!(s.connections.held, 0);
    assert_eq!(
        s.events
            .publish_errors
            .get("broker closed the publishing connection"),
        Some(&1),
        "{:?}",
        s.events.publish_errors
    );
    assert!(s.events.published < s.events.scheduled);
}

#[test]
#[ignore = "starts nats-server (Debian's; cargo xtask ci installs it)"]
fn nats() {
    let run = root().join("peers/nats/run.sh");
    publishes_to_every_subscriber_once_and_a_killed_broker_is_closed(
        "nats",
        "nats",
        &[run.to_str().unwrap(), "{port}"],
    );
}

#[test]
#[ignore = "starts mosquitto (Debian's; cargo xtask ci installs it)"]
fn mqtt_mosquitto() {
    let run = root().join("peers/mosquitto/run.sh");
    publishes_to_every_subscriber_once_and_a_killed_broker_is_closed(
        "mosquitto",
        "mqtt",
        &[run.to_str().unwrap(), "{port}"],
    );
}

#[test]
#[ignore = "starts RabbitMQ with Web-MQTT (Debian's; cargo xtask ci installs it; 15-45 s to boot)"]
fn mqtt_rabbitmq() {
    let run = root().join("peers/rabbitmq/run.sh");
    publishes_to_every_subscriber_once_and_a_killed_broker_is_closed(
        "rabbitmq-mqtt",
        "mqtt",
        &[run.to_str().unwrap(), "mqtt", "{port}"],
    );
}

#[test]
#[ignore = "starts RabbitMQ with Web-STOMP (Debian's; cargo xtask ci installs it; 15-45 s to boot)"]
fn stomp_rabbitmq() {
    let run = root().join("peers/rabbitmq/run.sh");
    publishes_to_every_subscriber_once_and_a_killed_broker_is_closed(
        "rabbitmq-stomp",
        "stomp",
        &[run.to_str().unwrap(), "stomp", "{port}"],
    );
}

#[test]
#[ignore = "starts python-socketio under uvicorn (PyPI; cargo xtask ci installs them)"]
fn socketio() {
    let app = root().join("peers/socketio/app.py");
    publishes_to_every_subscriber_once_and_a_killed_broker_is_closed(
        "socketio",
        "socketio",
        &[
            "python3",
            app.to_str().unwrap(),
            "{port}",
            "--ping-interval",
            "1",
        ],
    );
}

#[test]
#[ignore = "starts the Centrifuge server cargo xtask ci builds from Debian's Go packages"]
fn centrifuge() {
    let bin = root().join("target/peers/centrifuge");
    assert!(
        bin.exists(),
        "{} is missing: `cargo xtask ci` (or `cargo xtask bench brokers`) builds it",
        bin.display()
    );
    publishes_to_every_subscriber_once_and_a_killed_broker_is_closed(
        "centrifuge",
        "centrifuge",
        &[bin.to_str().unwrap(), "{port}"],
    );
}

/// 50 raw clients, an echo every 0.2 s each for 1.5 s.
fn echo_scenario(port: u16) -> String {
    format!(
        r#"
[target]
urls = ["ws://127.0.0.1:{port}/"]
protocol = "raw"
[[phases]]
duration_s = 0.5
rate = 100
[hold]
duration_s = 1.5
[session]
echo_interval_s = 0.2
"#
    )
}

#[test]
#[ignore = "starts Node with Debian's node-ws (cargo xtask ci installs them)"]
fn raw_echoes_that_node_ws_sends_back_as_binary_all_match() {
    let dir = scratch("node-ws-binary");
    let server = root().join("peers/node-ws/server.js");
    let node = Peer::start(
        &dir,
        &["node", server.to_str().unwrap(), "{port}", "--binary"],
    );
    let output = loadgen_run(&dir, &echo_scenario(node.port))
        .output()
        .unwrap();
    let s = summary(&dir, &output);
    let c = &s.counters;
    assert_eq!((s.connections.connected, s.connections.failed), (50, 0));
    assert!(c.echoes_sent >= 100, "{c:?}");
    assert_eq!((c.echoes, c.unmatched), (c.echoes_sent, 0), "{c:?}");
    assert_eq!(s.echo_ms.count, c.echoes);
    assert_eq!(s.echo_mismatch, None);
}

#[test]
fn a_raw_run_whose_frames_come_back_but_never_match_is_flagged_with_what_they_were() {
    // A server that answers each message with it reversed, as binary.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() {
                        let mut back = m.into_data().to_vec();
                        back.reverse();
                        let reply = tokio_tungstenite::tungstenite::Message::binary(back);
                        if ws.send(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let dir = scratch("mismatch");
    let output = loadgen_run(&dir, &echo_scenario(port)).output().unwrap();
    let s = summary(&dir, &output);
    let c = &s.counters;
    assert!(c.echoes_sent >= 100, "{c:?}");
    assert_eq!((c.echoes, c.unmatched), (0, c.echoes_sent), "{c:?}");
    let flag = s.echo_mismatch.expect("the run is flagged");
    assert!(
        flag.contains(&format!(
            "{} frames came back and none matched",
            c.unmatched
        )) && flag.contains("binary frame of")
            && flag.contains(":ohce-hcnebtr"),
        "{flag}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("ECHOES NEVER MATCHED"),
        "said at the end of the run too"
    );
}

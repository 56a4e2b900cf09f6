//! `cargo xtask sweep` against a server made slow on purpose: one echo at a
//! time, each taking a fixed service time, so its capacity is known
//! exactly (1 / service time) and a sweep must bracket it.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ONE_AT_A_TIME, scratch, xtask};
use rtbench_record::sweep::Sweep;

/// Each echo holds the one "core" for this long: 150 echoes/s at most.
const SERVICE: Duration = Duration::from_micros(6_667);

/// A WebSocket echo server that serves one message at a time, taking
/// `SERVICE` for each, on a thread per connection; returns its address.
fn slow_echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let core = Arc::new(Mutex::new(()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let core = core.clone();
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                while let Ok(msg) = ws.read() {
                    if msg.is_close() {
                        break;
                    }
                    if msg.is_text() || msg.is_binary() {
                        let _busy = core.lock().unwrap_or_else(|e| e.into_inner());
                        std::thread::sleep(SERVICE);
                        if ws.send(msg).is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): four real benches"]
fn a_sweep_finds_a_slow_servers_knee_within_one_step() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let addr = slow_echo_server();
    let out = scratch("sweep");
    let server = format!("url:ws://{addr}/");
    // 100 clients echoing every 2 s (50/s), then 100/s, 200/s: the
    // capacity, 150/s, lies between the second and the third step.
    let o = xtask(&[
        "sweep",
        "smoke",
        "--protocol",
        "raw",
        "--server",
        &server,
        "--over",
        "pings",
        "--slo",
        "roundtrip.p99 <= 100ms",
        "--from",
        "50",
        "--steps",
        "4",
        "--refine",
        "0",
        "--connections",
        "100",
        "--hold",
        "6",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let sweep = Sweep::read(&out).unwrap_or_else(|e| panic!("{e}\n{err}"));
    let offered: Vec<f64> = sweep.steps.iter().map(|s| s.offered).collect();
    assert_eq!(offered, [50.0, 100.0, 200.0], "{err}");
    assert_eq!(
        (sweep.knee.last_pass, sweep.knee.first_fail),
        (Some(100.0), Some(200.0)),
        "{err}"
    );
    let capacity = 1.0 / SERVICE.as_secs_f64();
    assert!(100.0 < capacity && capacity < 200.0);
    // Each step is a record of its own, and says what it achieved.
    for s in &sweep.steps {
        let step = rtbench_record::read_summary(&out.join(&s.dir)).unwrap();
        assert!(step.complete, "{}: {err}", s.dir);
        assert!(!s.client_bottleneck, "{:?}", s.client_reasons);
    }
    assert!(sweep.steps[0].achieved > 40.0, "{:?}", sweep.steps[0]);
}

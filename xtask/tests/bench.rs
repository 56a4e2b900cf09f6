//! `cargo xtask bench` end to end: the real xtask binary builds and runs the
//! release server and load generator and writes a record that reads back
//! through the types that define it.

// One Chromium driver for the site's browser test and this one.
#[path = "../../site/tests/chromium/mod.rs"]
mod chromium;
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ONE_AT_A_TIME, scratch, xtask};
use rtbench_record::{Environment, read_summary};
use rtbench_sys::process::{Process, exe, pids};

/// Processes running the workspace's release binaries.
fn our_processes() -> Vec<String> {
    let bins =
        ["rtbench-server", "rtbench-loadgen"].map(|b| xtask::root().join("target/release").join(b));
    pids()
        .unwrap()
        .into_iter()
        .filter_map(|pid| {
            let exe = exe(Process::Pid(pid)).ok()?;
            bins.contains(&exe)
                .then(|| format!("{pid} {}", exe.display()))
        })
        .collect()
}

fn environment(dir: &Path) -> Environment {
    serde_json::from_str(&std::fs::read_to_string(dir.join("environment.json")).unwrap()).unwrap()
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): a real bench"]
fn bench_smoke_writes_a_complete_record() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch("smoke");
    let o = xtask(&[
        "bench",
        "smoke",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = read_summary(&out).unwrap();
    assert!(s.complete, "{s:?}");
    assert_eq!(s.format_version, rtbench_record::FORMAT_VERSION);
    assert_eq!(
        (
            s.connections.target,
            s.connections.peak,
            s.connections.failed
        ),
        (2000, 2000, 0)
    );
    assert!(s.connect_ms.p50 > 0.0 && s.connect_ms.count == 2000);
    assert!(s.delivery_ms.p50 > 0.0 && s.deliveries_per_s > 0.0);
    assert_eq!(
        (s.errors.misdelivered, s.errors.duplicates, s.errors.lost),
        (0, 0, Some(0))
    );
    assert!(s.server.rss_peak_kib > s.server.rss_before_kib && s.server.kib_per_connection > 0.0);
    // Whole-machine memory per connection is a figure for large runs: at 2,000
    // connections (~15 MB) it is within the page cache's noise, so only check it was read.
    assert!(s.system.mem_used_peak_kib > 0);
    let env = environment(&out);
    assert!(env.server_version.starts_with("rtbench-server"), "{env:?}");
    assert!(
        !env.git_commit.is_empty()
            && env.cores > 0
            && env.tuning.contains_key("net.core.somaxconn")
    );
    let samples: Vec<xtask::sample::Sample> =
        rtbench_record::series::read_csv(&out.join("server.csv")).unwrap();
    assert!(samples.len() > 5, "{samples:?}");
    assert_eq!(
        samples.iter().map(|s| s.server_connections).max(),
        Some(2000),
        "the servers' count peaks at the run's connections"
    );
    let load = rtbench_record::load::read_summary(&out.join("loadgen")).unwrap();
    assert_eq!(load.connections.connected, 2000);
    assert!(
        our_processes().is_empty(),
        "left running: {:?}",
        our_processes()
    );
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): a real bench"]
fn scale_is_applied_and_recorded() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch("scale");
    let o = xtask(&[
        "bench",
        "smoke",
        "--scale",
        "0.25",
        "--hold",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = read_summary(&out).unwrap();
    assert_eq!(s.overrides.scale, Some(0.25));
    assert_eq!(s.overrides.hold_s, Some(1.0));
    assert_eq!(s.connections.target, 500);
    assert_eq!(environment(&out).overrides.scale, Some(0.25));
}

/// A small smoke run with objectives: its exit status and its record.
fn smoke_with_slo(
    name: &str,
    slo: &[&str],
) -> (std::process::Output, rtbench_record::BenchSummary) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch(name);
    let mut args = vec![
        "bench",
        "smoke",
        "--scale",
        "0.25",
        "--hold",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ];
    for s in slo {
        args.extend(["--slo", s]);
    }
    let o = xtask(&args).output().unwrap();
    let s = read_summary(&out)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&o.stderr)));
    (o, s)
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): two real benches"]
fn a_failed_objective_exits_2_and_a_met_one_exits_0() {
    // Met: no connection failed, and deliveries took under a minute.
    let (o, s) = smoke_with_slo("slo-met", &["failed == 0", "delivery.p99 <= 60s"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(s.complete, "{err}");
    assert_eq!(s.slo.len(), 2, "{:?}", s.slo);
    assert!(s.slo.iter().all(|o| o.pass), "{:?}", s.slo);
    assert_eq!(s.slo[0].measured, Some(0.0));
    // Missed: no delivery takes under a nanosecond; the run itself is complete.
    let (o, s) = smoke_with_slo("slo-missed", &["delivery.p50 <= 0.000001ms", "failed == 0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(s.complete, "{err}");
    assert_eq!(
        s.slo.iter().map(|o| o.pass).collect::<Vec<_>>(),
        [false, true],
        "{:?}",
        s.slo
    );
    // The measured value is the delivery p50 the record states.
    assert_eq!(s.slo[0].measured, Some(s.delivery_ms.p50), "{:?}", s.slo);
    assert!(
        err.contains("xtask: SLO FAIL: delivery.p50 <= 0.000001ms"),
        "{err}"
    );
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): a bench in a network namespace"]
fn tune_runs_inside_a_network_namespace_sized_for_the_run_and_removes_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch("netns");
    // One left by a run killed before it could clean up: no process has
    // this pid (above the kernel's largest).
    let stale = "rtbench-4194305";
    let made = Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(made.success());
    let o = xtask(&[
        "bench",
        "smoke",
        "--tune",
        "--scale",
        "0.25",
        "--hold",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = read_summary(&out).unwrap();
    assert!(s.complete, "{s:?}");
    assert_eq!((s.connections.peak, s.connections.failed), (500, 0));
    let ns = environment(&out)
        .network_namespace
        .expect("the record names the run's network namespace");
    assert!(ns.name.starts_with("rtbench-"), "{ns:?}");
    // 500 connections: both ends are 1,000 sockets; the floor is 65,536 buckets.
    assert_eq!(ns.ehash_buckets, 65_536);
    assert_eq!(
        ns.sysctls.get("net.core.somaxconn"),
        Some(&Some("4096".to_string())),
        "the suite's setting was applied inside: {ns:?}"
    );
    assert!(
        !xtask::netns::leftovers().contains(&stale.to_string()),
        "a killed run's namespace is removed by the next"
    );
    assert!(
        !xtask::netns::leftovers().contains(&ns.name),
        "namespace {} left; the bench said:\n{}",
        ns.name,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        our_processes().is_empty(),
        "left running: {:?}",
        our_processes()
    );
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): a bench and Chromium"]
fn ctrl_c_leaves_an_incomplete_record_and_no_processes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch("ctrlc");
    let mut child = xtask(&[
        "bench",
        "smoke",
        "--hold",
        "120",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let page = loop {
        let line = lines
            .next()
            .expect("the xtask printed its dashboard")
            .unwrap();
        if let Some(rest) = line.strip_prefix("xtask: live dashboard: http://") {
            break rest.trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    // The live page streams the run's state; wait until every connection is open.
    let mut events = std::net::TcpStream::connect(&page).unwrap();
    write!(events, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = BufReader::new(events.try_clone().unwrap());
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run never reached 2,000 open connections"
        );
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        if let Some(data) = l.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if v["open"].as_u64() == Some(2000) && v["server_connections"].as_u64() == Some(2000) {
                break;
            }
        }
    }
    let mut html = String::new();
    let mut s = std::net::TcpStream::connect(&page).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.read_to_string(&mut html).unwrap();
    assert!(html.contains("EventSource(\"events\")"));
    live_page_charts_grow(&format!("http://{page}/"), &out);

    rtbench_sys::process::signal(child.id(), rtbench_sys::process::Signal::Interrupt).unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "bench did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130));
    let s = read_summary(&out).unwrap();
    assert!(!s.complete);
    assert_eq!(s.stopped_by, Some(rtbench_record::StopCause::Sigint));
    assert_eq!(s.connections.peak, 2000);
    assert!(
        our_processes().is_empty(),
        "left running: {:?}",
        our_processes()
    );
}

#[test]
fn a_preflight_refusal_names_the_limit_and_the_fix() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch("refused");
    // Fifty million connections fit in no machine this runs on (at about
    // 6 KiB each, 300 GB), however it is tuned: the memory check refuses.
    let o = xtask(&[
        "bench",
        "idle-1m",
        "--connections",
        "50000000",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("this run cannot reach its target"), "{err}");
    let memory = err
        .lines()
        .find(|l| l.starts_with("preflight: FAIL memory: estimate"))
        .unwrap_or_else(|| panic!("the memory check did not refuse:\n{err}"));
    assert!(memory.contains("MiB available"), "{memory}");
    assert!(
        err.contains("fix: run fewer connections: --connections "),
        "{err}"
    );
    assert!(!out.exists() && !rtbench_record::load::partial_dir(&out).exists());
    assert!(our_processes().is_empty());
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): a multi-process bench"]
fn a_bench_across_several_server_processes_completes_without_failures() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch("processes");
    let o = xtask(&[
        "bench",
        "idle-1m",
        "--connections",
        "30000",
        "--rate",
        "6000",
        "--hold",
        "2",
        "--processes",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--dashboard",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for variant in ["no-ping", "sdk-ping"] {
        let dir = PathBuf::from(format!("{}-{variant}", out.display()));
        let s = read_summary(&dir).unwrap();
        assert!(s.complete, "{variant}: {s:?}");
        assert_eq!(
            (s.connections.peak, s.connections.failed),
            (30_000, 0),
            "{variant}"
        );
        assert_eq!(s.server.processes, 3);
        // The load generator spreads connections evenly over the processes' ports.
        assert!(
            s.server
                .per_process
                .iter()
                .all(|p| p.connections_peak == 10_000),
            "{:?}",
            s.server.per_process
        );
        assert!(s.server.redis.as_ref().is_some_and(|r| r.rss_peak_kib > 0));
        assert_eq!(environment(&dir).server_processes, 3);
    }
    assert!(
        our_processes().is_empty(),
        "left running: {:?}",
        our_processes()
    );
}

/// What the live page has drawn: each chart's id and its points per line.
const CHARTS: &str = r#"JSON.stringify([...document.querySelectorAll('#charts svg')].map(s =>
  [s.id, [...s.querySelectorAll('polyline')].map(p => p.getAttribute('points').split(' ').filter(x => x).length)]))"#;

/// The live page in Chromium while the run goes on: the run's charts are
/// drawn from its first second, and they grow as seconds pass.
fn live_page_charts_grow(url: &str, dir: &Path) {
    let (_browser, mut cdp) = chromium::Cdp::open(&dir.with_extension("profile"));
    cdp.call("Page.navigate", serde_json::json!({ "url": url }));
    cdp.wait_event("Page.loadEventFired");
    let points = |cdp: &mut chromium::Cdp| -> Vec<(String, Vec<u64>)> {
        serde_json::from_value(cdp.eval_json(CHARTS)).unwrap()
    };
    let t0 = Instant::now();
    let before = loop {
        let p = points(&mut cdp);
        if p.iter()
            .any(|(id, l)| id == "chart-connections" && l.iter().any(|&n| n >= 2))
        {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no chart drawn: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ids: Vec<&str> = before.iter().map(|(id, _)| id.as_str()).collect();
    for want in [
        "chart-connections",
        "chart-connect",
        "chart-memory",
        "chart-cpu",
        "chart-traffic",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    let count = |p: &[(String, Vec<u64>)]| p.iter().flat_map(|(_, l)| l).sum::<u64>();
    let t0 = Instant::now();
    loop {
        let after = points(&mut cdp);
        if count(&after) > count(&before) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the charts did not grow: {before:?} then {after:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let problems = chromium::problems(&cdp.events);
    assert!(problems.is_empty(), "{problems:?}");
}

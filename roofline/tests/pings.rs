//! The paced round trips (`ask --interval`) against the real `echo` side
//! over loopback: each connection sends one request per interval, every
//! request is answered, and the report counts both exactly.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const EXE: &str = env!("CARGO_BIN_EXE_rtbench-roofline");

#[test]
fn paced_pings_send_one_request_per_connection_per_interval_and_count_every_answer() {
    let mut echo = Command::new(EXE)
        .arg("echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(echo.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap();
    let port = port.strip_prefix("port ").expect("a port line").to_string();
    let mut ask = Command::new(EXE)
        .args([
            "ask",
            "--to",
            &format!("127.0.0.1:{port}"),
            "--connections",
            "100",
            "--size",
            "16",
            "--seconds",
            "3",
            "--interval",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(ask.stdout.take().unwrap()).lines();
    assert_eq!(said.next().unwrap().unwrap(), "ready");
    writeln!(ask.stdin.as_mut().unwrap(), "go").unwrap();
    let report = said.next().unwrap().unwrap();
    let words: Vec<&str> = report.split_whitespace().collect();
    assert_eq!(words.len(), 5, "{report}");
    assert_eq!(words[0], "trips", "{report}");
    let secs: f64 = words[2].parse().unwrap();
    // 100 connections, one request a second each, for 3 s: 300 sent, all
    // answered (the window's own count is at most that).
    assert_eq!((words[3], words[4]), ("300", "300"), "{report}");
    assert!(words[1].parse::<u64>().unwrap() <= 300, "{report}");
    assert!((3.0..5.0).contains(&secs), "{report}");
    assert!(ask.wait().unwrap().success());
    drop(echo.stdin.take());
    assert!(echo.wait().unwrap().success());
}

//! The live page during a run (Tsung's was at :8091 and refreshed by hand):
//! `GET /` is one HTML page with no dependencies, `GET /events` streams the
//! run's state once a second as server-sent events.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The latest state, as one JSON object; replaced every second.
pub type State = Arc<Mutex<String>>;

/// Serves the page on `addr` in background threads; returns the bound address.
pub fn serve(addr: &str, state: State) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("dashboard on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let state = state.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &state);
            });
        }
    });
    Ok(bound)
}

fn handle(mut s: TcpStream, state: &State) -> std::io::Result<()> {
    let mut first = String::new();
    let mut reader = BufReader::new(s.try_clone()?);
    reader.read_line(&mut first)?;
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l)? == 0 || l == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/");
    if path == "/events" {
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n")?;
        loop {
            let data = state.lock().map(|g| g.clone()).unwrap_or_default();
            s.write_all(format!("data: {data}\n\n").as_bytes())?;
            s.flush()?;
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let body = PAGE.as_bytes();
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rtbench: live run</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em} table{border-collapse:collapse} td{padding:.2em 1em .2em 0}
td.v{font-variant-numeric:tabular-nums;text-align:right;font-weight:600}
.bar{height:14px;background:#eee;width:420px} .bar div{height:14px;background:#3a7}
</style></head><body>
<h1>rtbench: <span id="scenario">waiting for the run</span></h1>
<div class="bar"><div id="bar" style="width:0"></div></div>
<table id="t"></table>
<script>
const rows=[["t","elapsed s"],["open","connections open"],["target","target"],["connecting","connecting"],
["failed","failed"],["closed_by_server","closed by server"],["connect_p50_ms","connect p50 ms (this second)"],
["connect_p99_ms","connect p99 ms (this second)"],["deliveries","deliveries"],["delivery_p99_ms","delivery p99 ms (this second)"],
["server_rss_kib","server RSS KiB"],["server_cpu_pct","server CPU %"],["mem_used_kib","system memory used KiB"],
["worker_cpu_max_pct","busiest load generator worker CPU %"]];
const t=document.getElementById("t");
for(const [k,label] of rows){const tr=t.insertRow();tr.insertCell().textContent=label;const c=tr.insertCell();c.className="v";c.id=k;}
new EventSource("events").onmessage=e=>{const d=JSON.parse(e.data);
 if(d.scenario)document.getElementById("scenario").textContent=d.scenario;
 for(const [k] of rows){const el=document.getElementById(k);if(el&&d[k]!==undefined)el.textContent=typeof d[k]==="number"?(+d[k].toFixed(2)).toLocaleString():d[k];}
 if(d.target)document.getElementById("bar").style.width=Math.min(100,100*d.open/d.target)+"%";};
</script></body></html>
"#;

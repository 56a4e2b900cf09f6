//! The live page during a run (Tsung's was at :8091 and refreshed by hand):
//! `GET /` is one HTML page with no dependencies that draws the whole run
//! so far as charts, in the results site's look; `GET /events` streams every
//! second's state as server-sent events (the whole history first, so a page
//! opened late still shows the run from its start).

use anyhow::Context as _;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The run's seconds so far, each one JSON object; a new variant's run
/// starts a new history.
#[derive(Default)]
pub struct History {
    points: Vec<String>,
    last_t: Option<u64>,
    /// Bumped on every change, so a stream sends only what changed.
    version: u64,
    /// Bumped when a new run starts, so streams start over.
    generation: u64,
}

pub type State = Arc<Mutex<History>>;

impl History {
    /// Adds second `t`'s state, or replaces the newest point when it is
    /// for the same second (the load generator's second did not advance).
    pub fn update(&mut self, t: Option<u64>, point: String) {
        if t.is_some() && self.last_t == t {
            self.points.pop();
        }
        self.last_t = t;
        self.points.push(point);
        self.version += 1;
    }

    /// Starts a new run's history.
    pub fn reset(&mut self) {
        self.points.clear();
        self.last_t = None;
        self.generation += 1;
    }
}

/// Serves the page on `addr` in background threads; returns the bound address.
pub fn serve(addr: &str, state: State) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("dashboard on {addr}: {e:#}"))?;
    let bound = listener
        .local_addr()
        .context("the dashboard listener's address")?;
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
        let (mut generation, mut sent, mut version) = (u64::MAX, 0, u64::MAX);
        loop {
            let (reset, fresh) = match state.lock() {
                Ok(h) if h.generation == generation && h.version == version => (false, Vec::new()),
                Ok(h) => {
                    let reset = h.generation != generation;
                    if reset {
                        (generation, sent) = (h.generation, 0);
                    }
                    version = h.version;
                    // A replaced newest point is sent again.
                    let from = sent
                        .min(h.points.len())
                        .min(h.points.len().saturating_sub(1));
                    let fresh: Vec<String> = h.points[from..].to_vec();
                    sent = h.points.len();
                    (reset, fresh)
                }
                Err(_) => return Ok(()),
            };
            if reset {
                s.write_all(b"event: reset\ndata: {}\n\n")?;
            }
            for p in fresh {
                s.write_all(format!("data: {p}\n\n").as_bytes())?;
            }
            s.flush()?;
            std::thread::sleep(Duration::from_millis(500));
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

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rtbench: live run</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1560px}
h1{font-size:1.3em}
#stats{display:flex;flex-wrap:wrap;gap:4px 18px;margin:10px 0} #stats div{font-size:12px;color:#555}
#stats b{display:block;font-size:16px;color:#222;font-variant-numeric:tabular-nums}
.bar{height:14px;background:#eee;width:420px} .bar div{height:14px;background:#3a7}
#warnings{color:#b00;font-weight:600} #warnings:empty{display:none}
.charts{display:flex;flex-wrap:wrap;gap:8px} .charts svg{background:#fff;border:1px solid #eee}
</style></head><body>
<h1>rtbench: <span id="scenario">waiting for the run</span></h1>
<div class="bar"><div id="bar" style="width:0"></div></div>
<ul id="warnings"></ul>
<div id="stats"></div>
<div class="charts" id="charts"></div>
<script>
// The site's palette and chart size (site/src/chart.rs).
const PALETTE=["#1f77b4","#d62728","#2ca02c","#ff7f0e","#9467bd","#8c564b","#e377c2","#7f7f7f"];
const W=760,H=320,L=70,R=12,T=36,B=36;
const MiB=v=>v/1024;
// A latency of 0 means no sample that second: no point, not a dip to 0.
const ms=v=>v>0?v:null;
// Each chart: id, title, y axis, [label, value of a second], shown only when needed.
const CHARTS=[
 ["connections","Connections","connections",[["target",d=>d.target],["open",d=>d.open],["connecting",d=>d.connecting],["failed",d=>d.failed]]],
 ["connect","Connect latency (this second)","ms",[["p50",d=>ms(d.connect_p50_ms)],["p99",d=>ms(d.connect_p99_ms)]]],
 ["deliveries","Deliveries per second","deliveries/s",[["deliveries/s",d=>d.deliveries_per_s]],d=>d.deliveries>0],
 ["delivery","Delivery latency (this second)","ms",[["p50",d=>ms(d.delivery_p50_ms)],["p99",d=>ms(d.delivery_p99_ms)]],d=>d.deliveries>0],
 ["memory","Memory","MiB",[["server RSS",d=>MiB(d.server_rss_kib)],["machine used",d=>MiB(d.mem_used_kib)],["load generator RSS",d=>MiB(d.loadgen_rss_kib)]]],
 ["cpu","CPU","% of a core",[["server",d=>d.server_cpu_pct],["busiest load generator worker",d=>d.worker_cpu_max_pct],["machine",d=>d.machine_cpu_pct*(d.cores||1)]]],
 ["traffic","Client traffic","MiB/s",[["received",d=>d.received_bytes_per_s/1048576],["sent",d=>d.sent_bytes_per_s/1048576]]],
];
const rows=[["t","elapsed s"],["open","connections open"],["target","target"],["connecting","connecting"],
["failed","failed"],["closed_by_server","closed by server"],["connect_p50_ms","connect p50 ms (this second)"],
["connect_p99_ms","connect p99 ms (this second)"],["deliveries","deliveries"],["delivery_p99_ms","delivery p99 ms (this second)"],
["server_rss_kib","server RSS KiB"],["server_cpu_pct","server CPU %"],["mem_used_kib","system memory used KiB"],
["worker_cpu_max_pct","busiest load generator worker CPU %"]];
const stats=document.getElementById("stats");
for(const [k,label] of rows){const box=document.createElement("div");const b=document.createElement("b");b.id=k;box.append(b,label);stats.appendChild(box);}
let points=[];
const short=v=>{const a=Math.abs(v);return a>=1e6?(v/1e6).toFixed(1)+"M":a>=1e3?(v/1e3).toFixed(1)+"k":a>=10||v===0?v.toFixed(0):v.toFixed(2);};
function svg(tag,attrs,text){const e=document.createElementNS("http://www.w3.org/2000/svg",tag);for(const k in attrs)e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;return e;}
function draw(){
 const box=document.getElementById("charts");
 for(const [id,title,ydesc,series,when] of CHARTS){
  let el=document.getElementById("chart-"+id);
  if(when&&!points.some(when)){if(el)el.remove();continue;}
  if(!el){el=svg("svg",{id:"chart-"+id,width:W,height:H,viewBox:`0 0 ${W} ${H}`});box.appendChild(el);}
  while(el.firstChild)el.removeChild(el.firstChild);
  const xs=points.map(p=>p.t||0),lines=series.map(([n,f])=>points.map(p=>{const v=f(p);return Number.isFinite(v)?v:null;}));
  const ys=lines.flat().filter(v=>v!==null);
  const x0=Math.min(0,...xs),x1=Math.max(x0+1,...xs),y1=Math.max(1,...ys)*1.08;
  const px=x=>L+(x-x0)/(x1-x0)*(W-L-R),py=y=>H-B-y/y1*(H-T-B);
  el.appendChild(svg("text",{x:W/2,y:22,"text-anchor":"middle","font-family":"sans-serif","font-size":17},title));
  for(let i=0;i<=4;i++){const y=y1*i/4;el.appendChild(svg("line",{x1:L,x2:W-R,y1:py(y),y2:py(y),stroke:"#eee"}));
   el.appendChild(svg("text",{x:L-6,y:py(y)+4,"text-anchor":"end","font-family":"sans-serif","font-size":11},short(y)));}
  for(let i=0;i<=5;i++){const x=Math.round(x0+(x1-x0)*i/5);el.appendChild(svg("text",{x:px(x),y:H-B+16,"text-anchor":"middle","font-family":"sans-serif","font-size":11},short(x)));}
  el.appendChild(svg("text",{x:W/2,y:H-4,"text-anchor":"middle","font-family":"sans-serif","font-size":12},"seconds"));
  el.appendChild(svg("text",{x:14,y:H/2,"text-anchor":"middle","font-family":"sans-serif","font-size":12,transform:`rotate(-90 14 ${H/2})`},ydesc));
  el.appendChild(svg("rect",{x:L,y:T,width:W-L-R,height:H-T-B,fill:"none",stroke:"#000"}));
  lines.forEach((ys,k)=>{
   const pts=ys.map((y,i)=>y===null?null:`${px(xs[i]).toFixed(1)},${py(y).toFixed(1)}`).filter(p=>p);
   el.appendChild(svg("polyline",{points:pts.join(" "),fill:"none",stroke:PALETTE[k],"stroke-width":2,"data-series":series[k][0]}));
   el.appendChild(svg("rect",{x:L+10,y:T+8+k*16,width:12,height:3,fill:PALETTE[k]}));
   el.appendChild(svg("text",{x:L+28,y:T+13+k*16,"font-family":"sans-serif","font-size":12},series[k][0]));
  });
 }
}
const es=new EventSource("events");
es.addEventListener("reset",()=>{points=[];draw();});
es.onmessage=e=>{const d=JSON.parse(e.data),last=points[points.length-1];
 if(last&&last.t===d.t)points[points.length-1]=d;else points.push(d);
 if(d.scenario)document.getElementById("scenario").textContent=d.scenario;
 for(const [k] of rows){const el=document.getElementById(k);if(el&&d[k]!==undefined)el.textContent=typeof d[k]==="number"?(+d[k].toFixed(2)).toLocaleString():d[k];}
 if(d.target)document.getElementById("bar").style.width=Math.min(100,100*d.open/d.target)+"%";
 const w=document.getElementById("warnings");w.replaceChildren(...[...(d.faults||[]),...(d.warnings||[])].map(x=>{const li=document.createElement("li");li.textContent=x;return li;}));
 draw();};
</script></body></html>
"##;

//! Publishing stamped events through the server's `POST /v1/events`.
//!
//! Publishing follows an open model too: event i is due at start + i / rate,
//! spread over a few keep-alive connections; a connection that falls behind
//! sends late and the lag is recorded. Each payload carries the wall-clock
//! time it was sent (the stamp receivers subtract), a run-wide sequence number
//! (duplicates), and the role it was published for (misdeliveries).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scenario::{Publisher, ReadRole, Scenario};
use crate::stamp;
use crate::sys::now_ns;
use crate::target::Endpoint;
use crate::users::{Population, mix};

#[derive(Debug, Default, Clone)]
pub struct Published {
    pub events: u64,
    /// Sum of the deliveries the server reported for the events.
    pub server_deliveries: u64,
    /// Events whose response did not say how many received them (a server
    /// publishing through a shared bus cannot know).
    pub unreported: u64,
    pub errors: BTreeMap<String, u64>,
    pub lag_max_ns: u64,
}

/// Runs every publisher of `sc` until the hold ends or `stop` is set.
pub async fn run(sc: Rc<Scenario>, start_ns: u64, stop: Rc<Cell<bool>>) -> Published {
    let out = Rc::new(RefCell::new(Published::default()));
    let seq = Rc::new(Cell::new(0u64));
    let endpoints: Vec<Endpoint> = match sc
        .target
        .urls
        .iter()
        .map(|u| Endpoint::parse(u, sc.target.protocol))
        .collect()
    {
        Ok(e) => e,
        Err(e) => {
            out.borrow_mut().errors.insert(e, 1);
            return out.take();
        }
    };
    let channels = Rc::new(Population::new(&sc).all_channels());
    let mut tasks = Vec::new();
    for (pi, p) in sc.publishers.iter().enumerate() {
        let rate = if p.per_channel {
            p.rate * channels.len() as f64
        } else {
            p.rate
        };
        let begin_s = p.start_s.unwrap_or_else(|| sc.arrivals_end_s());
        let end_ns = start_ns + (sc.hold_end_s() * 1e9) as u64;
        for lane in 0..p.connections {
            let ctx = Lane {
                sc: sc.clone(),
                publisher: pi,
                channels: channels.clone(),
                // Lanes spread over the targets, as publishers would over a cluster.
                endpoint: endpoints[lane as usize % endpoints.len()].clone(),
                out: out.clone(),
                seq: seq.clone(),
                stop: stop.clone(),
            };
            let first_ns = start_ns + (begin_s * 1e9) as u64;
            tasks.push(tokio::task::spawn_local(ctx.run(
                first_ns,
                end_ns,
                rate,
                lane,
                p.connections,
            )));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    out.take()
}

struct Lane {
    sc: Rc<Scenario>,
    publisher: usize,
    channels: Rc<Vec<String>>,
    endpoint: Endpoint,
    out: Rc<RefCell<Published>>,
    seq: Rc<Cell<u64>>,
    stop: Rc<Cell<bool>>,
}

impl Lane {
    /// Sends events `lane`, `lane + lanes`, ... of the publisher's schedule.
    async fn run(self, first_ns: u64, end_ns: u64, rate: f64, lane: u64, lanes: u64) {
        let mut conn: Option<TcpStream> = None;
        let mut i = lane;
        loop {
            let due = first_ns + (i as f64 / rate * 1e9) as u64;
            if due >= end_ns || self.stop.get() {
                return;
            }
            let now = now_ns();
            if due > now {
                tokio::time::sleep(Duration::from_nanos(due - now)).await;
                if self.stop.get() {
                    return;
                }
            }
            {
                let mut o = self.out.borrow_mut();
                o.lag_max_ns = o.lag_max_ns.max(now_ns().saturating_sub(due));
            }
            let seq = self.seq.get();
            self.seq.set(seq + 1);
            let body = self.document(&self.sc.publishers[self.publisher], seq, i);
            match self.post(&mut conn, &body).await {
                Ok(n) => {
                    let mut o = self.out.borrow_mut();
                    o.events += 1;
                    match n {
                        Some(n) => o.server_deliveries += n,
                        None => o.unreported += 1,
                    }
                }
                Err(e) => {
                    conn = None;
                    *self.out.borrow_mut().errors.entry(e).or_default() += 1;
                }
            }
            i += lanes;
        }
    }

    fn document(&self, p: &Publisher, seq: u64, i: u64) -> String {
        let sc = &self.sc;
        let pick = mix(seq.wrapping_add(0x5eed));
        let total: f64 = p.roles.iter().map(|r| r.weight).sum();
        let mut x = (pick % 1_000_000) as f64 / 1_000_000.0 * total;
        let role = p.roles.iter().find(|r| {
            x -= r.weight;
            x < 0.0
        });
        let users = if sc.session.users > 0 {
            sc.session.users
        } else {
            sc.total_arrivals().max(1)
        };
        let to = match role.map_or(ReadRole::Any, |r| r.role) {
            ReadRole::Any => "any".to_string(),
            ReadRole::Guests => "guests".to_string(),
            ReadRole::Users => "users".to_string(),
            ReadRole::Team => format!("team:t{}", mix(pick) % sc.session.teams.max(1)),
            ReadRole::User => format!("user:u{}", mix(pick) % users),
        };
        let channel = if p.per_channel {
            &self.channels[(i % self.channels.len() as u64) as usize]
        } else {
            &self.channels[(mix(pick ^ 0xc4a1) % self.channels.len() as u64) as usize]
        };
        let payload = stamp::payload(now_ns(), seq, &to, p.payload_bytes);
        serde_json::json!({
            "project": sc.target.project,
            "roles": [to],
            "permissionsChanged": false,
            "userId": null,
            "data": {"events": ["rtbench.event"], "channels": [channel], "payload": serde_json::value::RawValue::from_string(payload).expect("stamp is JSON")}
        })
        .to_string()
    }

    /// One keep-alive POST; returns the deliveries the server reports, if it does.
    async fn post(&self, conn: &mut Option<TcpStream>, body: &str) -> Result<Option<u64>, String> {
        if conn.is_none() {
            let s = TcpStream::connect(self.endpoint.addr)
                .await
                .map_err(|e| format!("connect: {}", e.kind()))?;
            let _ = s.set_nodelay(true);
            *conn = Some(s);
        }
        let s = conn.as_mut().expect("connected above");
        let req = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {}\r\nx-appwrite-key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.endpoint.host,
            self.sc.target.admin_key,
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {}", e.kind()))?;
        let mut buf = Vec::with_capacity(256);
        loop {
            if s.read_buf(&mut buf)
                .await
                .map_err(|e| format!("read: {}", e.kind()))?
                == 0
            {
                return Err("server closed the publishing connection".into());
            }
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(&buf) {
                let len: usize = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                let status = resp.code.unwrap_or(0);
                while buf.len() < n + len {
                    if s.read_buf(&mut buf)
                        .await
                        .map_err(|e| format!("read: {}", e.kind()))?
                        == 0
                    {
                        return Err("server closed mid-response".into());
                    }
                }
                let body = &buf[n..n + len];
                if status != 200 {
                    return Err(format!("http_{status}"));
                }
                let v: serde_json::Value =
                    serde_json::from_slice(body).map_err(|_| "bad response body".to_string())?;
                return Ok(v["deliveries"].as_u64());
            }
        }
    }
}

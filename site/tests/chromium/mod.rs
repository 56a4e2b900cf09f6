//! Headless Chromium (Debian's `chromium`, or `CHROMIUM`) driven over the
//! DevTools protocol: shared by the site's browser test and the xtask's
//! live page test (included there by path), so there is one driver.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::Message;

/// Kills the browser whatever the test does.
pub struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

pub struct Cdp {
    ws: Socket,
    next_id: u64,
    session: Option<String>,
    /// Events that arrived while waiting for a reply.
    pub events: Vec<Value>,
}

impl Cdp {
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let v = self.recv();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn recv(&mut self) -> Value {
        loop {
            // The socket's read timeout (30 s) fails a silent browser; a
            // read a signal interrupted is tried again (tungstenite keeps
            // what it had read of the frame).
            let m = match self.ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                    continue;
                }
                Err(e) => panic!("chromium answers within 30 s: {e:?}"),
            };
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    pub fn wait_event(&mut self, method: &str) {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            self.events.remove(i);
            return;
        }
        loop {
            let v = self.recv();
            if v["method"] == method {
                return;
            }
            self.events.push(v);
        }
    }
}

fn start_chromium(profile: &Path) -> (Browser, String) {
    // `CHROMIUM` names another build (e.g. google-chrome on GitHub's runners).
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let child = Command::new(&bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{bin}` ({e}): install Debian's `chromium` (`cargo xtask ci` does) or set CHROMIUM"));
    let browser = Browser(child);
    // Chromium writes its port and browser path once it listens.
    let file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(&file)
            && let [port, path] = s.lines().collect::<Vec<_>>()[..]
        {
            return (browser, format!("ws://127.0.0.1:{port}{path}"));
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "chromium did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Cdp {
    /// Starts Chromium with a profile in `profile` and attaches to a new
    /// blank page with its page, runtime and log events on.
    pub fn open(profile: &Path) -> (Browser, Cdp) {
        let (browser, url) = start_chromium(profile);
        let (ws, _) = tungstenite::connect(url.as_str()).unwrap();
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut cdp = Cdp {
            ws,
            next_id: 0,
            session: None,
            events: Vec::new(),
        };
        let target = cdp.call("Target.createTarget", json!({"url": "about:blank"}));
        let session = cdp.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        cdp.session = Some(session["sessionId"].as_str().unwrap().to_string());
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            cdp.call(domain, json!({}));
        }
        (browser, cdp)
    }

    /// Evaluates `expression` (which returns a JSON string) in the page.
    pub fn eval_json(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        serde_json::from_str(r["result"]["value"].as_str().unwrap_or("null")).unwrap()
    }
}

/// Console errors and warnings, exceptions and failed loads among `events`.
pub fn problems(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            match e["method"].as_str()? {
                "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
                "Runtime.consoleAPICalled"
                    if matches!(p["type"].as_str(), Some("error" | "assert" | "warning")) =>
                {
                    Some(format!("console.{}: {}", p["type"], p["args"]))
                }
                "Log.entryAdded"
                    if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) =>
                {
                    Some(format!("log: {} {}", p["entry"]["text"], p["entry"]["url"]))
                }
                _ => None,
            }
        })
        .collect()
}

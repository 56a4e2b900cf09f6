//! What a bench measures: rtbench-server (the default), any server started
//! from a command line, or a server already running at a URL.
//!
//! Chosen by `--server`, else the variant's `server`, else the suite's
//! `[server] subject`:
//! - `rtbench`: this checkout's server, as many processes as the run needs,
//!   with its flags and `/metrics`;
//! - `command:LINE`: one process started with `sh -c "exec LINE"`, `{port}`
//!   replaced by a free loopback port, ready once that port accepts, stopped
//!   with SIGTERM; its memory and CPU sampled from `/proc` like ours;
//! - `url:ws://HOST:PORT/PATH`: nothing started; the record says what could
//!   not be measured (the server's memory and CPU).
//!
//! `{root}` in a command line is the workspace root, so a suite can name the
//! peers' scripts and binaries wherever the checkout is. A command may run
//! as several processes (a broker that scales out: a NATS cluster,
//! Socket.IO over Redis; `--processes` or a variant's `processes`), each
//! given its own `{port}` and `{index}`, a second free port `{peer_port}`
//! and everyone's (`{peer_ports}`, comma-separated) to find each other, and
//! `{bus}`, the run's Redis (`redis://HOST:PORT`), when the line asks for it.

use anyhow::Context as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Rtbench,
    Command(String),
    Url(String),
}

impl Subject {
    pub fn parse(spec: &str) -> anyhow::Result<Subject> {
        let spec = spec.trim();
        if spec == "rtbench" {
            return Ok(Subject::Rtbench);
        }
        if let Some(line) = spec.strip_prefix("command:") {
            let line = line.trim();
            if line.is_empty() {
                return Err(anyhow::Error::msg("server `command:` needs a command line"));
            }
            let root = crate::root();
            return Ok(Subject::Command(
                line.replace("{root}", &root.display().to_string()),
            ));
        }
        if let Some(url) = spec.strip_prefix("url:") {
            let url = url.trim();
            if !url.starts_with("ws://") {
                return Err(anyhow::anyhow!(
                    "server `url:{url}`: only ws:// URLs are supported"
                ));
            }
            return Ok(Subject::Url(url.to_string()));
        }
        Err(anyhow::anyhow!(
            "server `{spec}`: expected `rtbench`, `command:LINE` (with {{port}}) or `url:ws://HOST:PORT/PATH`"
        ))
    }

    /// Whether the run must start Redis for it (`{bus}` in its line).
    pub fn needs_bus(&self) -> bool {
        matches!(self, Subject::Command(line) if line.contains("{bus}"))
    }

    pub fn is_rtbench(&self) -> bool {
        *self == Subject::Rtbench
    }

    /// As the record states it.
    pub fn label(&self) -> String {
        match self {
            Subject::Rtbench => "rtbench".into(),
            Subject::Command(line) => format!("command: {line}"),
            Subject::Url(url) => format!("url: {url}"),
        }
    }

    /// The figures this subject leaves unmeasured, as the record lists them.
    pub fn unmeasured(&self) -> Vec<String> {
        match self {
            Subject::Rtbench => Vec::new(),
            Subject::Command(_) => {
                vec!["server deliveries and syscalls (it exports no rtbench /metrics)".into()]
            }
            Subject::Url(_) => vec![
                "server memory and CPU (a server given by URL: no process to sample)".into(),
                "server deliveries and syscalls (it exports no rtbench /metrics)".into(),
            ],
        }
    }
}

/// The command lines of `processes` processes of `line`, each with the
/// loopback port it will listen on; placeholders as the module says.
pub fn command_lines(
    line: &str,
    processes: u64,
    bus: Option<&str>,
) -> anyhow::Result<Vec<(String, u16)>> {
    if line.contains("{bus}") && bus.is_none() {
        return Err(anyhow::anyhow!(
            "`{line}` needs the run's Redis ({{bus}}) and has none"
        ));
    }
    // Every port chosen before any process starts: each must know the others'.
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..processes * 2 {
        // Held until all are chosen, so none is chosen twice.
        let l = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| anyhow::anyhow!("no free port: {e:#}"))?;
        ports.push(l.local_addr().context("no free port")?.port());
        listeners.push(l);
    }
    drop(listeners);
    let (own, peers) = ports.split_at(processes as usize);
    let peer_ports: Vec<String> = peers.iter().map(u16::to_string).collect();
    Ok((0..processes as usize)
        .map(|i| {
            let filled = line
                .replace("{port}", &own[i].to_string())
                .replace("{index}", &i.to_string())
                .replace("{peer_ports}", &peer_ports.join(","))
                .replace("{peer_port}", &peer_ports[i])
                .replace("{bus}", bus.unwrap_or(""));
            (filled, own[i])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(Subject::parse("rtbench").unwrap(), Subject::Rtbench);
        assert_eq!(
            Subject::parse("url:ws://127.0.0.1:9/x").unwrap(),
            Subject::Url("ws://127.0.0.1:9/x".into())
        );
        let Subject::Command(line) = Subject::parse("command:{root}/peer --port {port}").unwrap()
        else {
            panic!("a command");
        };
        assert!(line.ends_with("/peer --port {port}") && !line.contains("{root}"));
        let e = Subject::parse("nginx").unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("`nginx`") && e.contains("command:LINE"), "{e:#}");
        assert!(
            Subject::parse("url:http://x")
                .unwrap_err()
                .to_string()
                .contains("ws://")
        );
        assert!(Subject::parse("command: ").is_err());
    }

    #[test]
    fn each_process_of_a_command_gets_its_own_ports_and_everyones_peer_ports() {
        let lines = command_lines(
            "run {port} {index} {peer_port} {peer_ports} {bus}",
            3,
            Some("redis://127.0.0.1:6"),
        )
        .unwrap();
        assert_eq!(lines.len(), 3);
        let mut ports: Vec<u16> = lines.iter().map(|l| l.1).collect();
        let words: Vec<Vec<&str>> = lines.iter().map(|l| l.0.split(' ').collect()).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(w[1], lines[i].1.to_string());
            assert_eq!(w[2], i.to_string());
            assert_eq!(w[4], words[0][4], "everyone's peer ports alike");
            assert_eq!(w[4].split(',').nth(i), Some(w[3]));
            assert_eq!(w[5], "redis://127.0.0.1:6");
            ports.push(w[3].parse().unwrap());
        }
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 6, "six distinct ports");
        assert!(Subject::parse("command:x {bus}").unwrap().needs_bus());
        assert!(
            command_lines("x {bus}", 1, None)
                .unwrap_err()
                .to_string()
                .contains("{bus}")
        );
    }
}

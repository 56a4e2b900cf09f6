//! Each node's kernel settings, read (and with `--tune` written) on the
//! node itself by a one-shot service: a `FROM scratch` image holding
//! Debian's `dash`, `cat` (a sysctl file answers one read at its start, so
//! not dash's byte-at-a-time `read`) and `sleep`, the node's /proc/sys
//! bound into it writable (root writes it; no added capability), on the
//! node's own network stack (so `net.*` are the node's). It prints each
//! setting before and after, then waits to be removed: a task that ended
//! leaves its container behind on a remote node when its service goes (a
//! swarm job does too). The record keeps them per node, and the preflight
//! reads them: a node that falls short of what its share of the run needs
//! is refused in one line that names it and the fix.

use anyhow::Context as _;

use std::collections::BTreeMap;

use rtbench_record::{HostRecord, Setting};
use rtbench_sys::sysctl;

use crate::preflight;
use crate::tuning::LOOPBACK_NOTRACK;

use super::nodes::Node;
use super::{Swarm, registry, service};

/// What the nodes are asked to hold and set.
pub struct Tuning<'a> {
    /// The suite's `[tuning]`.
    pub wanted: &'a BTreeMap<String, String>,
    /// `--tune`: write them.
    pub apply: bool,
    pub connections: u64,
    pub server_processes: u64,
}

/// What the preflight reads on every node besides the suite's settings.
const READ: [&str; 3] = ["fs.nr_open", "fs.file-max", "net.ipv4.ip_local_port_range"];
/// Where the job sees the node's /proc/sys.
const INSIDE: &str = "/rtbench/sys";

/// The job's script: `$1` is `apply` or `read`, then `PATH=VALUE` pairs
/// (PATH under /proc/sys); one `rtbench-sysctl PATH|BEFORE|AFTER` line
/// each, then `rtbench-sysctl-done`. dash's builtins, cat and sleep: the
/// image holds nothing else.
const SCRIPT: &str = r#"mode=$1; shift
for kv in "$@"; do
  p=${kv%%=*}; v=${kv#*=}; f=/rtbench/sys/$p
  before=; after=
  [ -e "$f" ] || { echo "rtbench-sysctl $p|missing|missing"; continue; }
  before=$(cat "$f")
  if [ "$mode" = apply ] && [ -n "$v" ]; then echo "$v" > "$f" || echo "rtbench-sysctl-refused $p"; fi
  after=$(cat "$f")
  echo "rtbench-sysctl $p|$before|$after"
done
echo rtbench-sysctl-done
exec sleep infinity"#;

/// Runs the job on every node of `swarm`; returns each node's record, or
/// refuses the run naming each node that falls short.
pub fn nodes(swarm: &Swarm, t: &Tuning) -> anyhow::Result<Vec<HostRecord>> {
    let bin = |b: &str| {
        crate::engine::which(b).with_context(|| format!(
            "--on swarm: the nodes' settings are read with Debian's {b}: apt-get install -y dash coreutils"
        ))
    };
    let _built = crate::engine::build_image(
        "rtbench/tune",
        &[
            (bin("dash")?, "sh"),
            (bin("cat")?, "cat"),
            (bin("sleep")?, "sleep"),
        ],
    )?;
    let image = registry::push(&swarm.engine, &swarm.registry, "rtbench/tune")?;
    let settings: BTreeMap<String, String> = t
        .wanted
        .iter()
        .filter(|(k, _)| *k != LOOPBACK_NOTRACK)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut names: Vec<String> = settings.keys().cloned().collect();
    names.extend(
        READ.iter()
            .map(|s| s.to_string())
            .filter(|k| !settings.contains_key(k)),
    );
    let mut records = Vec::new();
    let mut refusals = Vec::new();
    for (i, node) in swarm.nodes.iter().enumerate() {
        let read = match read_node(swarm, i, &image, &names, t) {
            Ok(read) => read,
            Err(e) => {
                registry::untag(&swarm.engine, &swarm.registry, &image);
                return Err(e);
            }
        };
        refusals.extend(shortfalls(node, &read, share(swarm, i, t)));
        records.push(record(node, &settings, &read));
    }
    registry::untag(&swarm.engine, &swarm.registry, &image);
    if refusals.is_empty() {
        Ok(records)
    } else {
        Err(anyhow::Error::msg(refusals.join("\n")))
    }
}

/// Each setting's (before, after).
type Readings = BTreeMap<String, (Option<String>, Option<String>)>;

/// Runs the job on node `i`: `names` read, and with `--tune` the wanted
/// ones written.
fn read_node(
    swarm: &Swarm,
    i: usize,
    image: &registry::Pushed,
    names: &[String],
    t: &Tuning,
) -> anyhow::Result<Readings> {
    let node = &swarm.nodes[i];
    let pairs = names.iter().map(|k| {
        let v = match t.apply {
            true => t.wanted.get(k).map_or("", String::as_str),
            false => "",
        };
        format!("{}={v}", relative(k))
    });
    let mode = if t.apply { "apply" } else { "read" };
    let cmd = ["/bin/sh", "-c", SCRIPT, "sh", mode]
        .map(String::from)
        .into_iter()
        .chain(pairs)
        .collect();
    let root = sysctl::path("x");
    let root = root.parent().expect("under /proc/sys");
    let lines = service::run_until(
        &swarm.engine,
        &service::Part {
            name: format!("rtbench-{}-tune-{i}", swarm.run),
            image: image.reference(swarm.registry.for_node(node.this_engine)),
            cmd,
            node_id: &node.facts.id,
            limits: &Default::default(),
            nofile: 1024,
            mounts: vec![(root.display().to_string(), INSIDE.into())],
        },
        &format!("reading node {}'s settings", node.hostname()),
        &swarm.labels,
        "rtbench-sysctl-done",
    )?;
    if let Some(refused) = lines
        .iter()
        .find_map(|l| l.strip_prefix("rtbench-sysctl-refused "))
    {
        return Err(anyhow::anyhow!(
            "--tune on node {}: {refused} could not be written (the job runs as root with the node's /proc/sys bound writable)",
            node.hostname()
        ));
    }
    Ok(parse(&lines, names))
}

/// `node` as the record names it, with the suite's settings there.
fn record(node: &Node, settings: &BTreeMap<String, String>, read: &Readings) -> HostRecord {
    HostRecord {
        role: node.role.as_str().into(),
        address: node.addr.to_string(),
        clock_offset_ns: 0,
        clock_error_ns: 0,
        tuning: settings
            .iter()
            .map(|(k, v)| {
                let (before, after) = read.get(k).cloned().unwrap_or_default();
                let wanted = v.clone();
                (
                    k.clone(),
                    Setting {
                        wanted,
                        before,
                        after,
                    },
                )
            })
            .collect(),
        node: Some(node.facts.clone()),
    }
}

/// `net.core.somaxconn` as a path under /proc/sys: `net/core/somaxconn`.
fn relative(name: &str) -> String {
    name.replace('.', "/")
}

/// Each setting's (before, after) from the job's lines.
fn parse(lines: &[String], names: &[String]) -> Readings {
    let fold = |v: &str| -> Option<String> {
        (v != "missing").then(|| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("rtbench-sysctl "))
        .filter_map(|l| {
            let mut f = l.splitn(3, '|');
            let (p, before, after) = (f.next()?, f.next()?, f.next()?);
            let name = names.iter().find(|n| relative(n) == p)?;
            Some((name.clone(), (fold(before), fold(after))))
        })
        .collect()
}

/// What node `i` of the swarm holds of the run: its connections (the load
/// nodes' share, or the servers' on a server node), its server
/// processes and its workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub connections: u64,
    pub servers: u64,
    pub workers: u64,
    /// The most connections its workers open to any one server address.
    pub to_one_server: u64,
    pub nofile: u64,
}

fn share(swarm: &Swarm, i: usize, t: &Tuning) -> Share {
    let servers = swarm.nodes_for(true);
    let load = swarm.nodes_for(false);
    let count = |parts: u64, nodes: &[usize]| {
        super::nodes::spread(parts, nodes)
            .iter()
            .filter(|&&n| n == i)
            .count() as u64
    };
    let workers = swarm.spec.workers.max(1);
    let on_servers = count(t.server_processes, &servers);
    let on_load = count(workers, &load);
    let c = t.connections;
    let of = |part: u64, whole: u64| c * part / whole.max(1);
    let mine: Vec<u64> = super::nodes::spread(workers, &load)
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n == i)
        .map(|(w, _)| w as u64)
        .collect();
    Share {
        connections: of(on_servers, t.server_processes).max(of(on_load, workers)),
        servers: on_servers,
        workers: on_load,
        to_one_server: to_one_server(&mine, workers, t.server_processes, c),
        nofile: swarm.spec.nofile,
    }
}

/// The most of `connections` that the workers `mine` (of `workers`) open to
/// one of `servers` addresses: worker w takes arrivals a = w mod workers,
/// and arrival a goes to server a mod servers, so w reaches server s only
/// when w = s modulo their gcd, with one arrival in lcm of them.
fn to_one_server(mine: &[u64], workers: u64, servers: u64, connections: u64) -> u64 {
    let servers = servers.max(1);
    let gcd = {
        let (mut a, mut b) = (workers, servers);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a.max(1)
    };
    let each = connections.div_ceil(workers / gcd * servers);
    (0..servers)
        .map(|s| mine.iter().filter(|&&w| w % gcd == s % gcd).count() as u64 * each)
        .max()
        .unwrap_or(0)
}

/// Why `node` cannot take `share`, one line each naming it and the fix.
pub fn shortfalls(node: &Node, read: &Readings, share: Share) -> Vec<String> {
    let value = |k: &str| read.get(k).and_then(|(_, after)| after.clone());
    let num = |k: &str| value(k)?.split(' ').next()?.parse::<u64>().ok();
    let on = node.hostname();
    let mut out = Vec::new();
    if let Some(nr) = num("fs.nr_open").filter(|&nr| nr < share.nofile) {
        out.push(format!(
            "--on swarm: node {on} lets a process open at most {nr} files, its services are given {}: sysctl -w fs.nr_open=20000500 on {on} (or --tune)",
            share.nofile
        ));
    }
    let need = share.connections + 10_000;
    if let Some(max) = num("fs.file-max").filter(|&m| m < need) {
        out.push(format!(
            "--on swarm: node {on} has {max} descriptors system-wide (fs.file-max), its share of the run needs {need}: sysctl -w fs.file-max={} on {on} (or --tune)",
            need.max(12_000_500)
        ));
    }
    if share.workers > 0
        && let Some(range) = value("net.ipv4.ip_local_port_range")
    {
        let ports: Vec<u64> = range.split(' ').filter_map(|p| p.parse().ok()).collect();
        // connect() takes even ports first and scans the whole range for
        // each once they are gone (measured in containers: 2,000/s, then
        // 120/s): the even half is what a destination can take at speed.
        let even = match ports[..] {
            [lo, hi] => hi.saturating_sub(lo).div_ceil(2),
            _ => 0,
        };
        let need = share.to_one_server;
        if even < need {
            out.push(format!(
                "--on swarm: node {on}'s ephemeral ports ({range}: {even} even) cannot take its {need} connections to one server address: sysctl -w net.ipv4.ip_local_port_range=\"1025 65535\" on {on} (or --tune), or add a node labelled rtbench.role=load"
            ));
        }
    }
    let kib = share.connections as f64
        * (preflight::KERNEL_KIB_PER_SOCKET
            + if share.workers > 0 {
                preflight::LOADGEN_KIB_PER_CONNECTION
            } else {
                preflight::SERVER_KIB_PER_CONNECTION
            })
        + ((share.servers * preflight::SERVER_BASE_MIB
            + share.workers * preflight::WORKER_BASE_MIB)
            * 1024) as f64;
    let need_mib = kib as u64 / 1024;
    let has_mib = node.facts.memory_bytes >> 20;
    if has_mib > 0 && need_mib > has_mib * 9 / 10 {
        out.push(format!(
            "--on swarm: node {on} has {has_mib} MiB, its share of the run ({} connections) needs about {need_mib} MiB: label another node rtbench.role={}, or run fewer --connections",
            share.connections,
            if share.workers > 0 { "load" } else { "server" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::nodes::NodeRole;
    use super::*;
    use rtbench_record::NodeFacts;

    fn node(memory_mib: u64) -> Node {
        Node {
            facts: NodeFacts {
                id: "x".into(),
                hostname: "load-1".into(),
                engine_version: "20.10".into(),
                cpus: 2.0,
                memory_bytes: memory_mib << 20,
            },
            addr: "10.0.0.3".parse().unwrap(),
            role: NodeRole::Load,
            this_engine: false,
        }
    }

    fn read(pairs: &[(&str, &str)]) -> Readings {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), (Some(v.to_string()), Some(v.to_string()))))
            .collect()
    }

    #[test]
    fn a_node_that_falls_short_is_named_with_the_fix() {
        let share = Share {
            connections: 50_000,
            servers: 0,
            workers: 3,
            to_one_server: 50_000,
            nofile: 20_000,
        };
        let short = read(&[
            ("fs.nr_open", "1048576"),
            ("fs.file-max", "9223372036854775807"),
            ("net.ipv4.ip_local_port_range", "32768 60999"),
        ]);
        assert_eq!(
            shortfalls(&node(4096), &short, share),
            [
                "--on swarm: node load-1's ephemeral ports (32768 60999: 14116 even) cannot take its 50000 connections to one server address: sysctl -w net.ipv4.ip_local_port_range=\"1025 65535\" on load-1 (or --tune), or add a node labelled rtbench.role=load"
            ]
        );
        // Over several server addresses it fits; in 128 MiB it does not.
        let spread = Share {
            to_one_server: 10_000,
            ..share
        };
        let small = shortfalls(&node(128), &short, spread);
        assert_eq!(small.len(), 1, "{small:?}");
        assert!(
            small[0].starts_with("--on swarm: node load-1 has 128 MiB, its share of the run (50000 connections) needs about ")
                && small[0].ends_with(": label another node rtbench.role=load, or run fewer --connections"),
            "{small:?}"
        );
        let low = read(&[("fs.nr_open", "1024"), ("fs.file-max", "20000")]);
        let lines = shortfalls(&node(4096), &low, spread);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("sysctl -w fs.nr_open=20000500 on load-1"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("sysctl -w fs.file-max=12000500 on load-1"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_worker_sends_its_whole_share_to_one_server_when_their_counts_agree() {
        // 100,000 over 6 workers and 6 servers: worker w reaches server w
        // only; a node with workers 0, 2 and 4 opens 16,667 to each.
        assert_eq!(to_one_server(&[0, 2, 4], 6, 6, 100_000), 16_667);
        // 2 workers, 1 server: each worker's half to the one address.
        assert_eq!(to_one_server(&[0, 1], 2, 1, 2_000), 2_000);
        assert_eq!(to_one_server(&[1], 2, 1, 2_000), 1_000);
        // 4 workers, 2 servers: worker 1 reaches server 1 alone.
        assert_eq!(to_one_server(&[1], 4, 2, 4_000), 1_000);
        // 2 workers, 3 servers (coprime): each worker reaches all three.
        assert_eq!(to_one_server(&[0], 2, 3, 6_000), 1_000);
    }

    #[test]
    fn the_jobs_lines_read_back_by_name() {
        let names = vec!["net.core.somaxconn".to_string(), "fs.nr_open".to_string()];
        let lines = vec![
            "rtbench-sysctl net/core/somaxconn|4096|65535".to_string(),
            "rtbench-sysctl fs/nr_open|missing|missing".to_string(),
            "something else".to_string(),
        ];
        let r = parse(&lines, &names);
        assert_eq!(
            r["net.core.somaxconn"],
            (Some("4096".into()), Some("65535".into()))
        );
        assert_eq!(r["fs.nr_open"], (None, None));
    }
}

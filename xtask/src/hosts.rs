//! `cargo xtask bench <suite> --hosts HOSTS.toml`: the server(s), Redis and
//! the load generator's workers on real machines, reached with the system
//! `ssh`, so `~/.ssh/config`, agents and known_hosts work as they already do.
//!
//! ```toml
//! user = "bench"                          # optional: the login on every host
//! ssh_options = ["-i", "~/.ssh/bench"]    # optional: given to every ssh call
//! workers_per_client = 1                  # optional
//! [[server]]
//! ssh = "srv1"                            # what ssh connects to
//! address = "10.0.0.2"                    # where the others reach it (default: ssh)
//! [[client]]
//! ssh = "10.0.0.3"
//! ```
//!
//! Every host is checked first (one clear line if one cannot be reached).
//! The binaries are copied to `/tmp/rtbench-run-<id>/` on each host; `--tune`
//! applies the suite's sysctls there, recording them before and after; each
//! host's clock offset is estimated against this one and the workers
//! correct their timestamps by it. Servers and Redis run under a shell that
//! stops them when their ssh session's stdin ends; workers stop on it by
//! themselves. At the end the directory is removed from every host.

use anyhow::Context as _;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use rtbench_record::launch::{Launch, WorkerLaunch};
use rtbench_record::{Deployment, HostRecord, Setting};
use serde::Deserialize;

use crate::root;
use crate::server::{REDIS_ARGS, RedisProcess, ServerProcess};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsFile {
    pub user: Option<String>,
    #[serde(default)]
    pub ssh_options: Vec<String>,
    #[serde(default = "one")]
    pub workers_per_client: u64,
    pub server: Vec<Host>,
    pub client: Vec<Host>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub ssh: String,
    pub address: Option<String>,
}

impl Host {
    fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.ssh)
    }
}

pub struct Fleet {
    file: HostsFile,
    dir: String,
    /// Per ssh destination: role, offset, error, tuning.
    records: Vec<HostRecord>,
}

const REDIS_PORT: u16 = 6379;

impl Fleet {
    pub fn setup(
        path: &Path,
        tuning: &BTreeMap<String, String>,
        tune: bool,
    ) -> anyhow::Result<Fleet> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--hosts {}: {e:#}", path.display()))?;
        let file: HostsFile = toml::from_str(&src).map_err(|e| {
            let line = e
                .span()
                .map_or(0, |s| src[..s.start].matches('\n').count() + 1);
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
        })?;
        if file.server.is_empty() || file.client.is_empty() {
            return Err(anyhow::anyhow!(
                "{}: name at least one [[server]] and one [[client]]",
                path.display()
            ));
        }
        let dir = format!(
            "/tmp/rtbench-run-{}-{}",
            std::process::id(),
            rtbench_protocol::time::now_ns() % 1_000_000
        );
        let mut fleet = Fleet {
            file,
            dir,
            records: Vec::new(),
        };
        let hosts = fleet.all();
        // Every host answers, before anything starts anywhere.
        for (role, h) in &hosts {
            fleet
                .ssh_output(
                    &h.ssh,
                    &["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"],
                    "true",
                )
                .map_err(|e| anyhow::anyhow!("{role} host `{}` cannot be reached: {e:#}", h.ssh))?;
        }
        let release = root().join("target/release");
        for (role, h) in &hosts {
            fleet.copy(&h.ssh, &release.join("rtbench-loadgen"), "rtbench-loadgen")?;
            if *role == "server" {
                fleet.copy(&h.ssh, &release.join("rtbench-server"), "rtbench-server")?;
            }
            let tuning = fleet.tune(&h.ssh, tuning, tune)?;
            let (offset, error) = fleet.clock_offset(&h.ssh)?;
            eprintln!(
                "xtask: {role} {}: clock offset {:+.3} ms (± {:.3} ms)",
                h.ssh,
                offset as f64 / 1e6,
                error as f64 / 1e6
            );
            fleet.records.push(HostRecord {
                role: role.to_string(),
                address: h.ssh.clone(),
                clock_offset_ns: offset,
                clock_error_ns: error,
                tuning,
                node: None,
            });
        }
        Ok(fleet)
    }

    /// Distinct hosts with their role (a host may be both).
    fn all(&self) -> Vec<(&'static str, Host)> {
        let mut v: Vec<(&'static str, Host)> = Vec::new();
        for (role, list) in [("server", &self.file.server), ("client", &self.file.client)] {
            for h in list {
                if !v.iter().any(|(_, x)| x.ssh == h.ssh) {
                    v.push((role, h.clone()));
                }
            }
        }
        v
    }

    /// `ssh [options] [-l user] DEST`, as every call here starts.
    fn ssh_argv(&self, dest: &str) -> Vec<String> {
        let mut a = vec!["ssh".to_string()];
        a.extend(self.file.ssh_options.iter().cloned());
        a.extend(["-o".into(), "BatchMode=yes".into()]);
        if let Some(u) = &self.file.user {
            a.extend(["-l".into(), u.clone()]);
        }
        a.push(dest.into());
        a
    }

    fn ssh_command(&self, dest: &str) -> Command {
        let argv = self.ssh_argv(dest);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    fn ssh_output(&self, dest: &str, extra: &[&str], remote: &str) -> anyhow::Result<String> {
        let mut argv = self.ssh_argv(dest);
        // Options go before the destination.
        let at = argv.len() - 1;
        argv.splice(at..at, extra.iter().map(|s| s.to_string()));
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .arg(remote)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run ssh: {e:#}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(anyhow::Error::msg(
                err.trim()
                    .lines()
                    .last()
                    .unwrap_or("ssh failed")
                    .to_string(),
            ))
        }
    }

    fn copy(&self, dest: &str, from: &Path, name: &str) -> anyhow::Result<()> {
        let file =
            std::fs::File::open(from).map_err(|e| anyhow::anyhow!("{}: {e:#}", from.display()))?;
        let d = &self.dir;
        let status = self
            .ssh_command(dest)
            .arg(format!("mkdir -p {d} && cat > {d}/{name}.part && chmod +x {d}/{name}.part && mv {d}/{name}.part {d}/{name}"))
            .stdin(file)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run ssh: {e:#}"))?;
        if !status.success() {
            return Err(anyhow::anyhow!(
                "copying {name} to {dest} failed ({status})"
            ));
        }
        Ok(())
    }

    /// The suite's sysctls on `dest`: read, and with `apply` written.
    fn tune(
        &self,
        dest: &str,
        tuning: &BTreeMap<String, String>,
        apply: bool,
    ) -> anyhow::Result<BTreeMap<String, Setting>> {
        let mut out = BTreeMap::new();
        // Only kernel settings: the loopback pseudo-setting concerns this machine.
        for (k, v) in tuning
            .iter()
            .filter(|(k, _)| *k != crate::tuning::LOOPBACK_NOTRACK)
        {
            let read = || self.ssh_output(dest, &[], &format!("sysctl -n {k}")).ok();
            let before = read();
            if apply {
                self.ssh_output(dest, &[], &format!("sysctl -w {k}='{v}'"))
                    .map_err(|e| anyhow::anyhow!("--tune on {dest}: sysctl -w {k}={v}: {e:#}"))?;
            }
            out.insert(
                k.clone(),
                Setting {
                    wanted: v.clone(),
                    before,
                    after: read(),
                },
            );
        }
        Ok(out)
    }

    /// `dest`'s clock minus this one's: 16 request/response exchanges over
    /// one ssh session, keeping the one with the smallest round trip (its
    /// half is the error bound).
    fn clock_offset(&self, dest: &str) -> anyhow::Result<(i64, u64)> {
        let mut child = self
            .ssh_command(dest)
            .arg(format!("{}/rtbench-loadgen clock", self.dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run ssh: {e:#}"))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut best: Option<(u64, i64)> = None;
        for _ in 0..16 {
            let t0 = rtbench_protocol::time::now_ns();
            writeln!(stdin)
                .and_then(|_| stdin.flush())
                .map_err(|e| anyhow::anyhow!("clock exchange with {dest}: {e:#}"))?;
            let remote: u64 = lines
                .next()
                .and_then(Result::ok)
                .and_then(|l| l.trim().parse().ok())
                .with_context(|| format!("clock exchange with {dest}: no answer"))?;
            let t1 = rtbench_protocol::time::now_ns();
            let rtt = t1 - t0;
            let offset = remote as i64 - ((t0 / 2 + t1 / 2) as i64);
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        drop(stdin);
        let _ = child.wait();
        let (rtt, offset) = best.expect("16 exchanges");
        Ok((offset, rtt / 2))
    }

    fn offset_of(&self, dest: &str) -> i64 {
        self.records
            .iter()
            .find(|r| r.address == dest)
            .map_or(0, |r| r.clock_offset_ns)
    }

    /// A remote shell that runs `cmd` in the background and stops it (TERM,
    /// then waits) when its stdin, the ssh session's, ends.
    fn held(cmd: &str) -> String {
        format!("{cmd} & p=$!; cat > /dev/null; kill $p 2>/dev/null; wait $p")
    }

    pub fn start_server(&self, i: u64, args: &[String]) -> anyhow::Result<ServerProcess> {
        let h = &self.file.server[i as usize % self.file.server.len()];
        let mut full = vec!["--listen".to_string(), format!("{}:0", h.address())];
        full.extend_from_slice(args);
        let line = std::iter::once(format!("{}/rtbench-server", self.dir))
            .chain(full.iter().map(|a| quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = self.ssh_command(&h.ssh);
        cmd.arg(Fleet::held(&line));
        // Remote: its pid means nothing here; the sampler reads its /metrics.
        ServerProcess::start_via(cmd, full, true, |addr, _| Ok((addr, 0)))
            .map_err(|e| anyhow::anyhow!("server on {}: {e:#}", h.ssh))
    }

    /// Redis on the first server host (Debian's redis-server must be there).
    pub fn start_redis(&self) -> anyhow::Result<RedisProcess> {
        let h = &self.file.server[0];
        let line = format!(
            "redis-server --port {REDIS_PORT} --bind {} --protected-mode no ",
            h.address()
        ) + &REDIS_ARGS
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = self.ssh_command(&h.ssh);
        cmd.arg(Fleet::held(&line));
        let addr = format!("{}:{REDIS_PORT}", h.address())
            .parse()
            .map_err(|_| {
                anyhow::anyhow!("[[server]] address `{}` is not an IP address", h.address())
            })?;
        RedisProcess::start_via(cmd, addr, true, |_| Ok(0))
            .map_err(|e| anyhow::anyhow!("redis on {}: {e:#}", h.ssh))
    }

    pub fn launch(&self) -> anyhow::Result<Launch> {
        let mut workers = Vec::new();
        for h in &self.file.client {
            for _ in 0..self.file.workers_per_client.max(1) {
                let mut argv = vec!["ssh".to_string()];
                argv.extend(self.file.ssh_options.iter().cloned());
                argv.extend(["-o".into(), "BatchMode=yes".into()]);
                if let Some(u) = &self.file.user {
                    argv.extend(["-l".into(), u.clone()]);
                }
                argv.extend([
                    h.ssh.clone(),
                    format!("{}/rtbench-loadgen worker", self.dir),
                ]);
                workers.push(WorkerLaunch {
                    host: h.ssh.clone(),
                    argv,
                    connect: None,
                    log: None,
                    clock_offset_ns: self.offset_of(&h.ssh),
                });
            }
        }
        Ok(Launch { workers })
    }

    pub fn deployment(&self) -> Deployment {
        Deployment {
            kind: "hosts".into(),
            containers: None,
            images: Vec::new(),
            hosts: self.records.clone(),
        }
    }
}

impl Drop for Fleet {
    /// Kills whatever still runs from the run's directory (a frozen worker
    /// ignores anything but SIGKILL) and removes it.
    fn drop(&mut self) {
        for (_, h) in self.all() {
            // `[/]tmp/...` matches the run's processes but not this command.
            let pattern = format!("[/]{}/", &self.dir[1..]);
            let _ = self.ssh_output(
                &h.ssh,
                &["-o", "ConnectTimeout=5"],
                &format!("pkill -KILL -f '{pattern}'; rm -rf {}", self.dir),
            );
        }
    }
}

/// Single-quotes a word for the remote shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

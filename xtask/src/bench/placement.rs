//! Where a run's processes are and which server it starts: the one place
//! that tells local processes, containers, swarm services and ssh hosts
//! apart, so the run driver starts a server or Redis the same way wherever
//! it runs.

use std::path::PathBuf;

use crate::server::{RedisProcess, ServerProcess};
use crate::suite::Suite;

use super::args::{Args, RunsOn};

/// Where a run's server, Redis and load generator workers run. Dropped
/// after everything it started, it removes what it made.
pub enum Placement {
    Local,
    Containers(Box<crate::containers::Docker>),
    Swarm(Box<crate::swarm::Swarm>),
    Hosts(crate::hosts::Fleet),
}

impl Placement {
    /// `connections`: the run's total, which the workers must hold between
    /// them (containers: as many worker containers as their open-files
    /// limit requires, the suite's `workers` at least).
    pub(super) fn new(
        a: &Args,
        suite: &Suite,
        bus: bool,
        needs: &crate::preflight::Needs,
    ) -> anyhow::Result<Placement> {
        let spec = || -> anyhow::Result<rtbench_record::Containers> {
            Ok(crate::containers::for_connections(
                crate::containers::with_limits(&suite.containers, &a.limits)?,
                needs.connections,
            ))
        };
        Ok(match &a.runs_on() {
            RunsOn::Local => Placement::Local,
            RunsOn::Containers => {
                Placement::Containers(Box::new(crate::containers::Docker::setup(&spec()?, bus)?))
            }
            RunsOn::Swarm => Placement::Swarm(Box::new(crate::swarm::Swarm::setup(
                &spec()?,
                bus,
                a.registry.as_deref(),
                &crate::swarm::tune::Tuning {
                    wanted: &suite.tuning,
                    apply: a.tune,
                    connections: needs.connections,
                    server_processes: needs.server_processes,
                },
            )?)),
            RunsOn::Hosts(file) => {
                Placement::Hosts(crate::hosts::Fleet::setup(file, &suite.tuning, a.tune)?)
            }
        })
    }

    /// The record's directory exists: what its processes print elsewhere
    /// (a container's output) goes there from now on.
    pub(super) fn keep_logs_in(&self, dir: &std::path::Path) {
        match self {
            Placement::Containers(d) => d.keep_logs_in(dir),
            Placement::Swarm(s) => s.keep_logs_in(dir),
            Placement::Local | Placement::Hosts(_) => {}
        }
    }

    pub(super) fn start_redis(&self) -> anyhow::Result<RedisProcess> {
        match self {
            Placement::Local => RedisProcess::start(),
            Placement::Containers(d) => d.start_redis(),
            Placement::Swarm(s) => s.start_redis(),
            Placement::Hosts(f) => f.start_redis(),
        }
    }

    pub(super) fn start_server(
        &self,
        side: &Side,
        i: u64,
        args: &[String],
    ) -> anyhow::Result<ServerProcess> {
        match self {
            Placement::Local => ServerProcess::start(&side.server_bin, &side.args_it_knows(args)),
            Placement::Containers(d) => d.start_server(i, args),
            Placement::Swarm(s) => s.start_server(i, args),
            Placement::Hosts(f) => f.start_server(i, args),
        }
    }

    /// Where the workers run, when not here.
    pub(super) fn launch(&self) -> anyhow::Result<Option<rtbench_record::launch::Launch>> {
        Ok(match self {
            Placement::Local => None,
            Placement::Containers(d) => Some(d.launch()?),
            Placement::Swarm(s) => Some(s.launch()?),
            Placement::Hosts(f) => Some(f.launch()?),
        })
    }

    /// What the engine that ran `exit`'s process says of an OOM kill
    /// (containers); None where the kernel's log is all there is.
    pub(super) fn oom_killed(
        &self,
        exit: &rtbench_record::ProcessExit,
    ) -> Option<crate::oom::OomKill> {
        match self {
            Placement::Containers(d) => d.oom_killed(exit),
            Placement::Local | Placement::Swarm(_) | Placement::Hosts(_) => None,
        }
    }

    /// The parts whose machine was lost since the last look (a swarm
    /// node gone down), named with it; none elsewhere.
    pub(super) fn lost(&self, t_s: f64) -> Vec<rtbench_record::ProcessExit> {
        match self {
            Placement::Swarm(s) => s.lost(t_s),
            _ => Vec::new(),
        }
    }

    /// Seconds of the run's machines that no worker sampled (a swarm's
    /// server nodes), on the schedule's clock, for `hosts.csv`.
    pub(super) fn host_samples(
        &self,
        schedule_start_unix_ns: u64,
    ) -> Vec<rtbench_record::series::HostSample> {
        match self {
            Placement::Swarm(s) => s.host_samples(schedule_start_unix_ns),
            _ => Vec::new(),
        }
    }

    pub(super) fn deployment(&self) -> rtbench_record::Deployment {
        match self {
            Placement::Local => rtbench_record::Deployment::default(),
            Placement::Containers(d) => d.deployment(),
            Placement::Swarm(s) => s.deployment(),
            Placement::Hosts(f) => f.deployment(),
        }
    }
}

/// The open-files limit each server process of the run gets: its
/// container's or service's (the suite's `[containers] nofile`, `--limit`
/// applied), or this machine's hard limit (ssh hosts are taken to have the
/// same).
pub(super) fn server_nofile(a: &Args, suite: &Suite) -> anyhow::Result<u64> {
    Ok(match a.runs_on() {
        RunsOn::Containers | RunsOn::Swarm => {
            crate::containers::with_limits(&suite.containers, &a.limits)?.nofile
        }
        RunsOn::Local | RunsOn::Hosts(_) => crate::preflight::nofile_hard(),
    })
}

/// Which server a run starts, and where its record goes.
pub struct Side {
    pub server_bin: PathBuf,
    /// The commit the server was built from, when not this checkout's.
    pub commit: Option<String>,
    /// The record's directory, used as given.
    pub dir: Option<PathBuf>,
    /// The flags an older build's `--help` lists, read once.
    pub(crate) flags: std::sync::OnceLock<Vec<String>>,
}

impl Default for Side {
    fn default() -> Side {
        Side {
            server_bin: crate::server_bin(),
            commit: None,
            dir: None,
            flags: std::sync::OnceLock::new(),
        }
    }
}

impl Side {
    /// `args` less the flags an older build (`--versus`) does not have: a
    /// suite's flag for what was added since (`--idle-timeout-s 0` turning
    /// off a timeout the old build never had) would keep it from starting.
    /// Each one dropped is said; the record keeps the arguments given.
    fn args_it_knows(&self, args: &[String]) -> Vec<String> {
        if self.commit.is_none() {
            return args.to_vec();
        }
        let flags = self.flags.get_or_init(|| {
            let help = std::process::Command::new(&self.server_bin)
                .arg("--help")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            flags_in_help(&help)
        });
        let (kept, dropped) = known_args(args, flags);
        for flag in dropped {
            eprintln!(
                "xtask: {} (commit {}) has no {flag}: started without it",
                self.server_bin.display(),
                self.commit.as_deref().unwrap_or("?")
            );
        }
        kept
    }
}

/// The `--flag` names a clap `--help` lists.
fn flags_in_help(help: &str) -> Vec<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == '<')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(String::from)
        .collect()
}

/// `args` split into those whose flag is in `flags` and the flags that are
/// not (a dropped flag takes its value with it: the next argument, unless
/// that is a flag itself or the value came after `=`). With no flags known
/// (the help could not be read), every argument is kept.
fn known_args(args: &[String], flags: &[String]) -> (Vec<String>, Vec<String>) {
    if flags.is_empty() {
        return (args.to_vec(), Vec::new());
    }
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let name = a.split('=').next().unwrap_or(a);
        if name.starts_with("--") && !flags.iter().any(|f| f == name) {
            dropped.push(name.to_string());
            let value_follows =
                !a.contains('=') && args.get(i + 1).is_some_and(|v| !v.starts_with("--"));
            i += 1 + usize::from(value_follows);
            continue;
        }
        kept.push(a.clone());
        i += 1;
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_older_build_is_started_without_the_flags_it_lacks_and_their_values() {
        let help = "Options:\n      --listen <LISTEN>  Address [env: RTBENCH_LISTEN=] [default: 127.0.0.1:8080]\n      --reuse-port\n      --threads <THREADS>\n  -h, --help  Print help";
        let flags = flags_in_help(help);
        assert_eq!(
            flags,
            strings(&["--listen", "--reuse-port", "--threads", "--help"])
        );
        let args = strings(&[
            "--listen",
            "127.0.0.1:0",
            "--idle-timeout-s",
            "0",
            "--reuse-port",
            "--new-switch",
            "--threads=1",
            "--later=2",
        ]);
        let (kept, dropped) = known_args(&args, &flags);
        assert_eq!(
            kept,
            strings(&["--listen", "127.0.0.1:0", "--reuse-port", "--threads=1"])
        );
        assert_eq!(
            dropped,
            strings(&["--idle-timeout-s", "--new-switch", "--later"])
        );
        // Help that could not be read drops nothing.
        assert_eq!(known_args(&args, &[]), (args.clone(), Vec::new()));
    }
}

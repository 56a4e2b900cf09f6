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
            Placement::Local => ServerProcess::start(&side.server_bin, args),
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
}

impl Default for Side {
    fn default() -> Side {
        Side {
            server_bin: crate::server_bin(),
            commit: None,
            dir: None,
        }
    }
}

//! A suite's fault plan (`[[faults]]`): what the bench does to the run's own
//! processes while the load goes on (kill a server process, start it again,
//! pause a server or Redis for a while, restart Redis: killed and started
//! again on its port at once), at seconds of the load generator's
//! schedule, and what the storm that follows cost (`Failover`).
//!
//! Why in the bench: a deploy or a crash is the moment realtime servers are
//! judged by, and only the process that started the servers can stop and
//! restart them at a known time. A planned exit is not a fault of the run:
//! it is listed in `faults_injected`, not `process_exits`.

use std::collections::BTreeSet;

use rtbench_sys::process::Signal;

use crate::server::{RedisProcess, ServerProcess};
use crate::suite::{Action, Fault};
use rtbench_record::load::TimeseriesRow;
use rtbench_record::series::ServerSample;
use rtbench_record::{Failover, FaultDone, Latency, Role};

/// A fault's target: a server process or Redis (workers are the load, not
/// the subject).
fn victim(s: &str) -> anyhow::Result<Role> {
    match s.parse::<Role>() {
        Ok(r @ (Role::Server(_) | Role::Redis)) => Ok(r),
        _ => Err(anyhow::anyhow!(
            "fault target `{s}`: expected `server N` or `redis`"
        )),
    }
}

/// A plan being carried out.
pub struct Plan {
    pending: Vec<Fault>,
    /// Paused pids and when (schedule seconds) they resume.
    resumes: Vec<(f64, u32, Role)>,
    pub done: Vec<FaultDone>,
    /// Pids the plan killed: their exits are planned.
    pub killed: BTreeSet<u32>,
}

impl Plan {
    /// Checks the plan against the run: targets exist, a pause has a
    /// duration, a restart follows a kill of the same server and has a
    /// shared port to come back on (on a new port its clients, which keep
    /// the old address, would never find it).
    pub fn new(
        mut faults: Vec<Fault>,
        servers: u64,
        redis: bool,
        shared_port: bool,
    ) -> anyhow::Result<Plan> {
        faults.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let mut dead = BTreeSet::new();
        for f in &faults {
            let where_ = format!("fault at {} s ({:?} {})", f.at_s, f.action, f.target);
            match victim(&f.target).map_err(|e| anyhow::anyhow!("{where_}: {e:#}"))? {
                Role::Server(i) if i >= servers => {
                    return Err(anyhow::anyhow!(
                        "{where_}: this run has {servers} server process(es)"
                    ));
                }
                Role::Redis if !redis => {
                    return Err(anyhow::anyhow!(
                        "{where_}: this run has no Redis (one server process, no bus)"
                    ));
                }
                Role::Redis if f.action == Action::Kill => {
                    return Err(anyhow::anyhow!(
                        "{where_}: Redis can only be paused or restarted (the servers need their bus)"
                    ));
                }
                Role::Redis if f.action == Action::Restart => {}
                t => match f.action {
                    Action::Kill => {
                        dead.insert(t);
                    }
                    Action::Restart if !dead.remove(&t) => {
                        return Err(anyhow::anyhow!(
                            "{where_}: a restart needs a kill of it before"
                        ));
                    }
                    Action::Restart if !shared_port => {
                        return Err(anyhow::anyhow!(
                            "{where_}: a restart needs [server] shared_port = true"
                        ));
                    }
                    Action::Pause if f.for_s.is_none_or(|d| d <= 0.0) => {
                        return Err(anyhow::anyhow!("{where_}: a pause needs for_s > 0"));
                    }
                    _ => {}
                },
            }
        }
        Ok(Plan {
            pending: faults,
            resumes: Vec::new(),
            done: Vec::new(),
            killed: BTreeSet::new(),
        })
    }

    /// Does what is due at schedule second `t` (`t_s` on the record's
    /// timeline); `restart` starts server process `i` again.
    pub fn step(
        &mut self,
        t: f64,
        t_s: f64,
        servers: &mut [ServerProcess],
        redis: &mut Option<RedisProcess>,
        mut restart: impl FnMut(usize) -> anyhow::Result<ServerProcess>,
    ) -> anyhow::Result<()> {
        while let Some(&(at, pid, ref who)) = self.resumes.first()
            && at <= t
        {
            let who = who.clone();
            signal(pid, Signal::Continue);
            self.note(at, t_s, "resume", who, pid);
            self.resumes.remove(0);
        }
        while self.pending.first().is_some_and(|f| f.at_s <= t) {
            let f = self.pending.remove(0);
            let who = victim(&f.target)?;
            let pid = match who {
                Role::Server(i) => servers[i as usize].pid(),
                _ => redis.as_ref().map_or(0, RedisProcess::pid),
            };
            let pid = match f.action {
                Action::Kill => {
                    self.killed.insert(pid);
                    signal(pid, Signal::Kill);
                    pid
                }
                Action::Restart => match who {
                    Role::Server(i) => {
                        let i = i as usize;
                        servers[i] = restart(i)?;
                        servers[i].pid()
                    }
                    _ => {
                        let Some(old) = redis.as_mut() else {
                            unreachable!("checked in new")
                        };
                        self.killed.insert(pid);
                        let new = old.restart()?;
                        let pid = new.pid();
                        *redis = Some(new);
                        pid
                    }
                },
                Action::Pause => {
                    signal(pid, Signal::Stop);
                    let until = f.at_s + f.for_s.unwrap_or(0.0);
                    self.resumes.push((until, pid, who.clone()));
                    self.resumes.sort_by(|a, b| a.0.total_cmp(&b.0));
                    pid
                }
            };
            let action = format!("{:?}", f.action).to_lowercase();
            eprintln!(
                "xtask: fault plan at {:.0} s: {action} {} (pid {pid})",
                f.at_s, f.target
            );
            self.note(f.at_s, t_s, &action, who, pid);
        }
        Ok(())
    }

    fn note(&mut self, at_s: f64, t_s: f64, action: &str, target: Role, pid: u32) {
        self.done.push(FaultDone {
            at_s,
            t_s,
            action: action.into(),
            target,
            pid,
        });
    }

    /// Resumes whatever is still paused (the run is ending).
    pub fn finish(&mut self) {
        for (_, pid, _) in self.resumes.drain(..) {
            signal(pid, Signal::Continue);
        }
    }
}

/// Signals a process this bench started; one already gone is the exit the
/// watch reports, not an error of the plan.
fn signal(pid: u32, sig: Signal) {
    if pid != 0 {
        let _ = rtbench_sys::process::signal(pid, sig);
    }
}

/// The storm after the first fault, from the load generator's seconds
/// (`rows`, on the schedule's clock), the servers' samples (`samples`, on
/// the record's; `schedule_s` is the schedule's start there) and the load
/// generator's summary.
pub fn failover(
    done: &[FaultDone],
    rows: &[TimeseriesRow],
    samples: &[ServerSample],
    schedule_s: f64,
    hold_end_s: f64,
    load: &rtbench_record::load::Summary,
) -> Option<Failover> {
    let first = done.first()?.at_s;
    let before = rows.iter().rev().find(|r| (r.t_s as f64) < first)?;
    let after: Vec<&TimeseriesRow> = rows
        .iter()
        .filter(|r| r.t_s as f64 >= first && (r.t_s as f64) < hold_end_s)
        .collect();
    let lowest = after.iter().map(|r| r.open).min().unwrap_or(before.open);
    // Clients the faults disconnected: the server closes counted from the
    // first fault on (many are back within the second they were lost in,
    // so the per-second low undercounts them).
    let closed_after = rows.last().map_or(0, |r| r.closed_by_server);
    // Back to the count before, after the lowest point.
    let recovered = if lowest < before.open {
        after
            .iter()
            .skip_while(|r| r.open > lowest)
            .find(|r| r.open >= before.open)
            .map(|r| r.t_s as f64 - first)
    } else {
        Some(0.0)
    };
    let storm: Vec<&ServerSample> = samples
        .iter()
        .filter(|s| s.t_s >= schedule_s + first && s.t_s <= schedule_s + hold_end_s)
        .collect();
    let subscribers = load.connections.target;
    let published = load.events.published;
    let expected = published * subscribers;
    let by = &load.events.received_by_subscriber;
    let short: u64 = by
        .iter()
        .filter(|(r, _)| u64::from(**r) < published)
        .map(|(_, n)| n)
        .sum();
    let fewest = by.keys().next().map_or(published, |r| u64::from(*r));
    let r = &load.reconnect_ms;
    Some(Failover {
        open_before: before.open,
        open_lowest: lowest,
        connections_lost: closed_after.saturating_sub(before.closed_by_server),
        recovered_after_s: recovered,
        reconnects: load.counters.reconnects,
        reconnect_ms: Latency {
            p50: r.p50,
            p99: r.p99,
            p999: r.p999,
            count: r.count,
        },
        servers_cpu_peak_pct: storm.iter().map(|s| s.server_cpu_pct).fold(0.0, f64::max),
        servers_rss_peak_kib: storm.iter().map(|s| s.server_rss_kib).max().unwrap_or(0),
        events_expected: expected,
        events_received: load.events.received,
        events_missed: expected.saturating_sub(load.events.received),
        subscribers_missing_events: short,
        most_missed_by_one: published.saturating_sub(fewest),
        duplicates: load.events.duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(at_s: f64, action: Action, target: &str) -> Fault {
        Fault {
            at_s,
            at_share: None,
            action,
            target: target.into(),
            for_s: None,
        }
    }

    #[test]
    fn a_plan_is_checked_against_the_run() {
        let ok = vec![
            fault(30.0, Action::Restart, "server 1"),
            fault(10.0, Action::Kill, "server 1"),
        ];
        assert!(Plan::new(ok.clone(), 3, true, true).is_ok());
        let own_ports = Plan::new(ok.clone(), 3, true, false).err().unwrap();
        let own_ports = format!("{own_ports:#}");
        assert!(
            own_ports.contains("needs [server] shared_port"),
            "{own_ports}"
        );
        assert_eq!(crate::suite::spares(&ok), 1);
        let e = |plan: Vec<Fault>| format!("{:#}", Plan::new(plan, 3, true, true).err().unwrap());
        assert!(e(vec![fault(1.0, Action::Kill, "server 3")]).contains("3 server process(es)"));
        assert!(e(vec![fault(1.0, Action::Restart, "server 0")]).contains("needs a kill"));
        assert!(e(vec![fault(1.0, Action::Pause, "redis")]).contains("for_s > 0"));
        assert!(e(vec![fault(1.0, Action::Kill, "redis")]).contains("only be paused or restarted"));
        assert!(Plan::new(vec![fault(1.0, Action::Restart, "redis")], 2, true, true).is_ok());
        assert!(e(vec![fault(1.0, Action::Kill, "db 1")]).contains("expected `server N`"));
    }
}

//! The worker processes as the controller holds them: started from their
//! command lines (local, `docker run -i`, `ssh`), each given its plan on
//! stdin with its stdout read line by line into one channel; the ready
//! barrier; the start line; stopping (stdin closed), killing, and reaping
//! each exit into the record's `worker_exits`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rtbench_record::launch::{Launch, WorkerLaunch};
use rtbench_record::load::WorkerExit;
use rtbench_record::scenario::Scenario;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc::UnboundedReceiver;

use super::run_dir;
use crate::wire::{Plan, Report, Start};

/// How long every worker has to start, reach its targets and say `ready`
/// (a container's or a remote host's start included) before the run is
/// refused, naming the worker's host.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines from the workers, by worker; `None` when a worker's output ended.
pub(super) type Lines = UnboundedReceiver<(u64, Option<String>)>;

/// The started workers: each child with its stdin (closing it is the
/// worker's stop signal, so it is dropped to stop one), and its host.
pub(super) struct Workers {
    children: Vec<(Child, Option<ChildStdin>)>,
    /// Each worker's host, as the launch plan names it.
    pub(super) hosts: Vec<String>,
}

/// Every worker a local process of this binary.
pub(super) fn local_launch(workers: u64) -> Launch {
    let exe = std::env::current_exe().map_or("rtbench-loadgen".into(), |p| p.display().to_string());
    Launch {
        workers: (0..workers)
            .map(|_| WorkerLaunch {
                host: "localhost".into(),
                argv: vec![exe.clone(), "worker".into()],
                clock_offset_ns: 0,
            })
            .collect(),
    }
}

impl Workers {
    /// Starts every worker, its stderr to its log in `dir`, and sends it its
    /// plan. One worker per host samples that host.
    pub(super) async fn start(
        launch: &Launch,
        sc: &Scenario,
        dir: &Path,
    ) -> Result<(Workers, Lines), String> {
        let workers = launch.workers.len() as u64;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Option<String>)>();
        let mut children: Vec<(Child, Option<ChildStdin>)> = Vec::new();
        let mut sampled_hosts = BTreeSet::new();
        for (w, how) in (0u64..).zip(&launch.workers) {
            let log =
                std::fs::File::create(run_dir::worker_log(dir, w)).map_err(|e| e.to_string())?;
            let mut child = Command::new(&how.argv[0])
                .args(&how.argv[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start worker {w} (`{}`): {e}", how.argv.join(" ")))?;
            let plan = Plan {
                scenario: sc.clone(),
                worker: w,
                workers,
                start_unix_ns: 0,
                clock_offset_ns: how.clock_offset_ns,
                sample_host: sampled_hosts.insert(how.host.clone()),
            };
            let mut stdin = child.stdin.take().expect("piped");
            let line = serde_json::to_string(&plan).expect("plan serializes") + "\n";
            stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("worker {w}: {e}"))?;
            let stdout = child.stdout.take().expect("piped");
            let tx = tx.clone();
            tokio::task::spawn_local(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send((w, Some(l)));
                }
                let _ = tx.send((w, None));
            });
            children.push((child, Some(stdin)));
        }
        let hosts = launch.workers.iter().map(|l| l.host.clone()).collect();
        Ok((Workers { children, hosts }, rx))
    }

    /// The ready barrier: the schedule starts only once every worker runs,
    /// has reached its targets and says so. Otherwise every worker is
    /// killed and the run refused, naming the worker, its host and the end
    /// of its log.
    pub(super) async fn await_ready(&mut self, rx: &mut Lines, dir: &Path) -> Result<(), String> {
        let workers = self.children.len() as u64;
        let mut ready = BTreeSet::new();
        let ready_by = tokio::time::Instant::now() + READY_TIMEOUT;
        let mut why_not: Option<(u64, String)> = None;
        while (ready.len() as u64) < workers && why_not.is_none() {
            tokio::select! {
                line = rx.recv() => match line {
                    Some((w, Some(l))) => {
                        if matches!(serde_json::from_str::<Report>(&l), Ok(Report::Ready { .. })) {
                            ready.insert(w);
                        }
                    }
                    Some((w, None)) => why_not = Some((w, "ended before it was ready".into())),
                    None => break,
                },
                _ = tokio::time::sleep_until(ready_by) => {
                    let w = (0..workers).find(|w| !ready.contains(w)).unwrap_or(0);
                    why_not = Some((w, format!("was not ready within {} s", READY_TIMEOUT.as_secs())));
                }
            }
        }
        let Some((w, why)) = why_not else {
            return Ok(());
        };
        for w in 0..workers {
            self.kill(w);
        }
        let log = run_dir::log_tail(&run_dir::worker_log(dir, w));
        Err(format!(
            "worker {w} on {} {why}; the run did not start{}",
            self.hosts[w as usize],
            if log.is_empty() {
                String::new()
            } else {
                format!(": {log}")
            }
        ))
    }

    /// Tells every worker when the schedule starts.
    pub(super) async fn send_start(&mut self, start_ns: u64) -> Result<(), String> {
        let start = serde_json::to_string(&Start {
            start_unix_ns: start_ns,
        })
        .expect("start serializes")
            + "\n";
        for (w, (_, stdin)) in self.children.iter_mut().enumerate() {
            if let Some(s) = stdin {
                s.write_all(start.as_bytes())
                    .await
                    .map_err(|e| format!("worker {w}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Asks every worker to stop: closing a worker's stdin is its stop signal.
    pub(super) fn stop(&mut self) {
        for (_, stdin) in &mut self.children {
            stdin.take();
        }
    }

    /// Kills worker `w` (lost, or the run refused), its stdin closed first.
    pub(super) fn kill(&mut self, w: u64) {
        let (child, stdin) = &mut self.children[w as usize];
        stdin.take();
        let _ = child.start_kill();
    }

    /// Waits for every worker to exit (10 s each at most, then killed) and
    /// names each that did not end well: the lost ones with the status they
    /// were given (`lost`), the others with their exit. Returns the lines
    /// for the record's reasons and its `worker_exits`.
    pub(super) async fn reap(
        self,
        mut lost: BTreeMap<u64, String>,
    ) -> (Vec<String>, Vec<WorkerExit>) {
        let hosts = self.hosts;
        let mut died = Vec::new();
        let mut worker_exits = Vec::new();
        for (w, (mut child, _)) in self.children.into_iter().enumerate() {
            let pid = child.id().unwrap_or(0);
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let status = match lost.remove(&(w as u64)) {
                Some(why) => why,
                None if matches!(status, Ok(Ok(s)) if s.success()) => continue,
                None => {
                    let _ = child.kill().await;
                    match status {
                        Ok(Ok(s)) => {
                            use std::os::unix::process::ExitStatusExt;
                            s.signal()
                                .map_or(s.to_string(), |sig| format!("signal {sig}"))
                        }
                        Ok(Err(e)) => format!("cannot be waited for: {e}"),
                        Err(_) => "still running 10 s after the end (killed)".into(),
                    }
                }
            };
            died.push(format!(
                "worker {w} (pid {pid}, {}) ended: {status}",
                hosts[w]
            ));
            worker_exits.push(WorkerExit {
                worker: w as u64,
                pid,
                host: hosts[w].clone(),
                status,
            });
        }
        (died, worker_exits)
    }
}

//! The worker processes as the controller holds them: started from their
//! command lines (local, `ssh`) with the plan on stdin and stdout read line
//! by line, or reached over TCP where someone else started them
//! (`rtbench-loadgen worker --listen`, in a container); both kinds' lines go
//! into one channel. Then the ready barrier; the start line; stopping (the
//! controller's side closed), killing, and reaping each end into the
//! record's `worker_exits`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rtbench_record::launch::{Launch, WorkerLaunch};
use rtbench_record::load::WorkerExit;
use rtbench_record::scenario::Scenario;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::run_dir;
use crate::wire::{Plan, Report, Start};

/// How long every worker has to start, reach its targets and say `ready`
/// (a container's or a remote host's start included) before the run is
/// refused, naming the worker's host; and, before that, how long a
/// `connect` worker has to accept the controller's connection.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines from the workers, by worker; `None` when a worker's output ended.
pub(super) type Lines = UnboundedReceiver<(u64, Option<String>)>;

/// What the controller writes to a worker: its stdin or its connection.
type Input = Box<dyn AsyncWrite + Unpin>;

/// One worker as the controller holds it (not `client::Held`, a
/// connection's slot).
struct WorkerLink {
    /// The process, when this controller started it; None for a `connect`
    /// worker, whose process belongs to whoever started it.
    child: Option<Child>,
    /// Dropped to stop it: the end of this side is the worker's stop signal.
    input: Option<Input>,
    /// The task reading its output: aborted to kill a `connect` worker's
    /// connection whole.
    reader: tokio::task::AbortHandle,
    /// Its stderr: the controller's file, or where its starter writes it.
    log: PathBuf,
}

/// The started workers and their hosts.
pub(super) struct Workers {
    held: Vec<WorkerLink>,
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
                connect: None,
                log: None,
                clock_offset_ns: 0,
            })
            .collect(),
    }
}

impl Workers {
    /// Starts (or connects to) every worker and sends it its plan. A started
    /// worker's stderr goes to its log in `dir`. One worker per host samples
    /// that host.
    pub(super) async fn start(
        launch: &Launch,
        sc: &Scenario,
        dir: &Path,
    ) -> Result<(Workers, Lines)> {
        let workers = launch.workers.len() as u64;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Option<String>)>();
        let mut held = Vec::new();
        let mut sampled_hosts = BTreeSet::new();
        let ready_by = tokio::time::Instant::now() + READY_TIMEOUT;
        for (w, how) in (0u64..).zip(&launch.workers) {
            let plan = Plan {
                scenario: sc.clone(),
                worker: w,
                workers,
                start_unix_ns: 0,
                clock_offset_ns: how.clock_offset_ns,
                sample_host: sampled_hosts.insert(how.host.clone()),
            };
            let line = serde_json::to_string(&plan).expect("plan serializes") + "\n";
            let (child, mut input, output, log): (_, Input, Box<dyn AsyncRead + Unpin>, _) =
                match how.connect {
                    Some(addr) => {
                        let conn = connect(w, how, addr, ready_by).await?;
                        let (read, write) = conn.into_split();
                        let log = how.log.clone().unwrap_or_default();
                        (None, Box::new(write), Box::new(read), log)
                    }
                    None => {
                        let log = run_dir::worker_log(dir, w);
                        let mut child = spawn(w, how, &log)?;
                        let stdin = child.stdin.take().expect("piped");
                        let stdout = child.stdout.take().expect("piped");
                        (Some(child), Box::new(stdin), Box::new(stdout), log)
                    }
                };
            input
                .write_all(line.as_bytes())
                .await
                .with_context(|| format!("worker {w} on {}", how.host))?;
            let reader =
                tokio::task::spawn_local(forward_lines(w, output, tx.clone())).abort_handle();
            held.push(WorkerLink {
                child,
                input: Some(input),
                reader,
                log,
            });
        }
        let hosts = launch.workers.iter().map(|l| l.host.clone()).collect();
        Ok((Workers { held, hosts }, rx))
    }

    /// The ready barrier: the schedule starts only once every worker runs,
    /// has reached its targets and says so. Otherwise every worker is
    /// killed and the run refused, naming the worker, its host and the end
    /// of its log.
    pub(super) async fn await_ready(&mut self, rx: &mut Lines) -> Result<()> {
        let workers = self.held.len() as u64;
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
        if self.held[w as usize].child.is_none() {
            // A connected worker's log is written by its starter as the
            // output comes: give its last lines a moment to land.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(anyhow!(
            "worker {w} on {} {why}; the run did not start{}",
            self.hosts[w as usize],
            quoted_tail(&self.held[w as usize].log)
        ))
    }

    /// Tells every worker when the schedule starts.
    pub(super) async fn send_start(&mut self, start_ns: u64) -> Result<()> {
        let start = serde_json::to_string(&Start {
            start_unix_ns: start_ns,
        })
        .expect("start serializes")
            + "\n";
        for (w, h) in self.held.iter_mut().enumerate() {
            if let Some(s) = &mut h.input {
                s.write_all(start.as_bytes())
                    .await
                    .with_context(|| format!("worker {w}"))?;
            }
        }
        Ok(())
    }

    /// Asks every worker to stop: the end of the controller's side (stdin,
    /// or the connection's write half) is its stop signal.
    pub(super) fn stop(&mut self) {
        for h in &mut self.held {
            if let Some(mut input) = h.input.take() {
                // A connection's half is closed only by a shutdown; stdin by
                // its drop.
                tokio::task::spawn_local(async move {
                    let _ = input.shutdown().await;
                });
            }
        }
    }

    /// Kills worker `w` (lost, or the run refused): its process, or, for a
    /// `connect` worker, its connection. A connected worker that still runs
    /// stops when its connection ends; one that cannot (frozen) is its
    /// starter's to end (the xtask removes its containers when the run ends).
    pub(super) fn kill(&mut self, w: u64) {
        let h = &mut self.held[w as usize];
        h.input.take();
        h.reader.abort();
        if let Some(child) = &mut h.child {
            let _ = child.start_kill();
        }
    }

    /// Called once every worker's output has ended: waits for each started
    /// worker to exit (10 s each at most, then killed) and names each that
    /// did not end well: the lost ones with the status they were given
    /// (`lost`), the others with their exit. A `connect` worker ended well
    /// when it sent its final report (`reported(w)`); its exit is its
    /// starter's to see. Returns the lines for the record's reasons and its
    /// `worker_exits`.
    pub(super) async fn reap(
        self,
        mut lost: BTreeMap<u64, String>,
        reported: impl Fn(u64) -> bool,
    ) -> (Vec<String>, Vec<WorkerExit>) {
        let hosts = self.hosts;
        let mut died = Vec::new();
        let mut worker_exits = Vec::new();
        for (w, mut h) in self.held.into_iter().enumerate() {
            let pid = h.child.as_ref().and_then(Child::id).unwrap_or(0);
            let status = match &mut h.child {
                Some(child) => {
                    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                    match status {
                        Ok(Ok(s)) if s.success() => None,
                        Ok(Ok(s)) => {
                            use std::os::unix::process::ExitStatusExt;
                            Some(
                                s.signal()
                                    .map_or(s.to_string(), |sig| format!("signal {sig}")),
                            )
                        }
                        Ok(Err(e)) => Some(format!("cannot be waited for: {e}")),
                        Err(_) => Some("still running 10 s after the end (killed)".into()),
                    }
                }
                None => (!reported(w as u64))
                    .then(|| "its connection ended before its final report".to_string()),
            };
            let status = match (lost.remove(&(w as u64)), status) {
                (Some(why), _) => why,
                (None, None) => continue,
                (None, Some(status)) => status,
            };
            if let Some(child) = &mut h.child {
                let _ = child.kill().await;
            }
            h.reader.abort();
            let process = if pid == 0 {
                "connected".to_string()
            } else {
                format!("pid {pid}")
            };
            died.push(format!(
                "worker {w} ({process}, {}) ended: {status}",
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

/// Starts worker `w` from its command line, its stderr to `log`.
fn spawn(w: u64, how: &WorkerLaunch, log: &Path) -> Result<Child> {
    let log = std::fs::File::create(log).with_context(|| log.display().to_string())?;
    Command::new(&how.argv[0])
        .args(&how.argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start worker {w} (`{}`)", how.argv.join(" ")))
}

/// Connects to a `connect` worker, trying again until `ready_by`: its
/// starter may still be bringing it up. A refusal names the worker, its
/// host and the end of its log.
async fn connect(
    w: u64,
    how: &WorkerLaunch,
    addr: SocketAddr,
    ready_by: tokio::time::Instant,
) -> Result<tokio::net::TcpStream> {
    let attempts = async {
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(conn) => return conn,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    match tokio::time::timeout_at(ready_by, attempts).await {
        Ok(conn) => {
            let _ = conn.set_nodelay(true);
            Ok(conn)
        }
        Err(_) => Err(anyhow!(
            "worker {w} on {} did not accept the controller at {addr} within {} s; the run did not start{}",
            how.host,
            READY_TIMEOUT.as_secs(),
            how.log.as_deref().map(quoted_tail).unwrap_or_default()
        )),
    }
}

/// `: <the log's last lines>` for an error message, or nothing when the log
/// is empty or missing.
fn quoted_tail(log: &Path) -> String {
    let tail = run_dir::log_tail(log);
    if tail.is_empty() {
        tail
    } else {
        format!(": {tail}")
    }
}

/// Sends each line of worker `w`'s output on `tx`, then `None`.
async fn forward_lines(
    w: u64,
    output: Box<dyn AsyncRead + Unpin>,
    tx: UnboundedSender<(u64, Option<String>)>,
) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        let _ = tx.send((w, Some(l)));
    }
    let _ = tx.send((w, None));
}

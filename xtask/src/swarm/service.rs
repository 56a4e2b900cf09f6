//! One part of a run as a swarm service: one task, on the node chosen for
//! it, on that node's own network stack (`host`: no overlay between the
//! load and the server), with the suite's resource limits, an open-files
//! limit, restart policy `none` (a part that ends stays ended, and the run
//! says so) and the run's labels. Its output is followed from the start
//! into the record (`containers/<part>.log`) and kept here, so the xtask
//! can wait for the line that says the part is up (and read its address).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtbench_record::Limits;
use testcontainers::bollard;
use testcontainers::bollard::models::{
    Limit, Mount, MountTypeEnum, NetworkAttachmentConfig, ResourcesUlimits, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};

use crate::engine::{Engine, memory_bytes};

/// What a service runs and where.
pub struct Part<'a> {
    /// The service's name.
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub node_id: &'a str,
    pub limits: &'a Limits,
    pub nofile: u64,
    /// Bind mounts: (this node's path, the path inside).
    pub mounts: Vec<(String, String)>,
}

/// A service's output as it comes, line by line.
#[derive(Clone, Default)]
pub struct Output {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Output {
    /// The first line that holds `words`.
    pub fn find(&self, words: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().find(|l| l.contains(words)).cloned()
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last few lines, for an error message.
    pub fn tail(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let from = lines.len().saturating_sub(5);
        lines[from..].join(" | ")
    }
}

/// Creates `part`'s service, labelled `labels`, and follows its output
/// (into `log` too, when given).
pub fn create(
    engine: &Engine,
    part: &Part,
    labels: &HashMap<String, String>,
    log: Option<&Path>,
) -> anyhow::Result<Output> {
    let spec = spec(part, labels)?;
    engine
        .rt
        .block_on(engine.api.create_service(spec, None))
        .map_err(|e| anyhow::anyhow!("--on swarm: creating service {}: {e:#}", part.name))?;
    let output = Output::default();
    let file = match log {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", dir.display()))?;
            }
            Some(
                std::fs::File::create(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?,
            )
        }
        None => None,
    };
    engine.rt.spawn(follow(
        engine.api.clone(),
        part.name.clone(),
        output.clone(),
        file,
    ));
    Ok(output)
}

fn spec(part: &Part, labels: &HashMap<String, String>) -> anyhow::Result<ServiceSpec> {
    let memory = part
        .limits
        .memory
        .as_deref()
        .map(memory_bytes)
        .transpose()?;
    let nofile = part.nofile as i64;
    let mode = ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
        ..Default::default()
    };
    let mounts = part
        .mounts
        .iter()
        .map(|(source, target)| Mount {
            typ: Some(MountTypeEnum::BIND),
            source: Some(source.clone()),
            target: Some(target.clone()),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    Ok(ServiceSpec {
        name: Some(part.name.clone()),
        labels: Some(labels.clone()),
        mode: Some(mode),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(part.image.clone()),
                command: Some(part.cmd.clone()),
                labels: Some(labels.clone()),
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(nofile),
                    hard: Some(nofile),
                }]),
                mounts: (!mounts.is_empty()).then_some(mounts),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: part.limits.cpus.map(|c| (c * 1e9) as i64),
                    memory_bytes: memory,
                    pids: None,
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={}", part.node_id)]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some("host".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Keeps `service`'s output (stdout and stderr as they come) in `output`
/// and `file` until the service goes.
async fn follow(
    api: bollard::Docker,
    service: String,
    output: Output,
    mut file: Option<std::fs::File>,
) {
    use bollard::query_parameters::LogsOptions;
    use futures_util::StreamExt;
    let mut stream = api.service_logs(
        &service,
        Some(LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut partial = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let bytes = chunk.into_bytes();
        if let Some(f) = &mut file {
            let _ = f.write_all(&bytes);
        }
        partial.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            let mut lines = output.lines.lock().unwrap_or_else(|e| e.into_inner());
            lines.push(line.trim_end().to_string());
        }
    }
}

/// A service's task as the manager last heard of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskNews {
    pub state: Option<TaskState>,
    /// Why it ended or could not start (`exit status: 1`, the engine's error).
    pub ended: Option<String>,
}

/// The state of `service`'s task; None when the manager does not answer or
/// the service is gone.
pub fn task(engine: &Engine, service: &str) -> Option<TaskNews> {
    use bollard::query_parameters::ListTasksOptions;
    let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
    let tasks = engine
        .rt
        .block_on(engine.api.list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        })))
        .ok()?;
    let t = tasks
        .into_iter()
        .max_by_key(|t| t.version.as_ref().and_then(|v| v.index))?;
    let status = t.status.unwrap_or_default();
    let state = status.state;
    let exit_code = status.container_status.as_ref().and_then(|c| c.exit_code);
    let now = state?;
    let ended = match now {
        TaskState::COMPLETE | TaskState::FAILED | TaskState::SHUTDOWN => Some(match exit_code {
            Some(code) if state != Some(TaskState::FAILED) || status.err.is_none() => {
                format!("exit status: {code}")
            }
            _ => status.err.clone().unwrap_or_else(|| "failed".into()),
        }),
        TaskState::REJECTED | TaskState::ORPHANED | TaskState::REMOVE => Some(
            status
                .err
                .clone()
                .unwrap_or_else(|| format!("its task is {now:?}").to_lowercase()),
        ),
        _ => None,
    };
    Some(TaskNews { state, ended })
}

/// Waits until `output` has a line holding `words` (returned), the
/// task ends or is refused (an error with its reason and last lines), or
/// `within` passes.
pub fn wait_for_line(
    engine: &Engine,
    service: &str,
    what: &str,
    output: &Output,
    words: &str,
    within: Duration,
) -> anyhow::Result<String> {
    let t0 = Instant::now();
    let mut last_state = None;
    loop {
        if let Some(line) = output.find(words) {
            return Ok(line);
        }
        if let Some(news) = task(engine, service) {
            last_state = news.state;
            if let Some(why) = news.ended {
                // Its last lines may still be on their way.
                std::thread::sleep(Duration::from_millis(500));
                return Err(anyhow::anyhow!(
                    "--on swarm: {what} ended before it was up: {why}; its output: {}",
                    output.tail()
                ));
            }
        }
        if t0.elapsed() > within {
            return Err(anyhow::anyhow!(
                "--on swarm: {what} was not up within {} s (its task: {}); its output: {}",
                within.as_secs(),
                last_state.map_or("none yet".into(), |s| format!("{s:?}").to_lowercase()),
                output.tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes a service (its task's container goes on its node).
pub fn remove(engine: &Engine, service: &str) {
    let _ = engine.rt.block_on(engine.api.delete_service(service));
}

/// Runs `part` until it prints a line holding `done`, and returns its
/// output's lines; the service is removed after. (It should wait after
/// that line rather than end: an ended task's container outlives its
/// service on a node other than this one.)
pub fn run_until(
    engine: &Engine,
    part: &Part,
    what: &str,
    labels: &HashMap<String, String>,
    done: &str,
) -> anyhow::Result<Vec<String>> {
    let output = create(engine, part, labels, None)?;
    let result = wait_for_line(
        engine,
        &part.name,
        what,
        &output,
        done,
        Duration::from_secs(120),
    );
    remove(engine, &part.name);
    result.map(|_| output.all())
}

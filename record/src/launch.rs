//! Where workers run. By default each worker is this binary started locally
//! (`rtbench-loadgen worker`); `run --launch FILE` names instead the command
//! line that starts each worker elsewhere: `docker run -i ...` in a container,
//! `ssh HOST ...` on another machine. The protocol is the same everywhere:
//! the plan on the worker's stdin, JSON lines back on its stdout, stdin's end
//! as the stop signal. So a container or remote worker needs nothing but a
//! pipe.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    pub workers: Vec<WorkerLaunch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerLaunch {
    /// The machine (or container) it runs on: workers on one share its ports.
    pub host: String,
    /// The command that starts the worker, ending in `... rtbench-loadgen worker`.
    pub argv: Vec<String>,
    /// That machine's clock minus this one's (CLOCK_REALTIME), as estimated:
    /// the worker corrects every timestamp it takes by it.
    #[serde(default)]
    pub clock_offset_ns: i64,
}

impl Launch {
    pub fn read(path: &Path) -> Result<Launch, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let l: Launch =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if l.workers.is_empty() {
            return Err(format!("{}: `workers` is empty", path.display()));
        }
        if let Some(i) = l.workers.iter().position(|w| w.argv.is_empty()) {
            return Err(format!("{}: workers[{i}].argv is empty", path.display()));
        }
        Ok(l)
    }

    /// Distinct machines: each has its own ephemeral ports.
    pub fn hosts(&self) -> usize {
        let mut h: Vec<&str> = self.workers.iter().map(|w| w.host.as_str()).collect();
        h.sort();
        h.dedup();
        h.len()
    }
}

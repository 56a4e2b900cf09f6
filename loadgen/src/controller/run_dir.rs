//! The run directory: made as `DIR.partial` with the scenario as run and a
//! log per worker, filled at the end (summary, time series, each host's
//! seconds, histograms, errors), and renamed into place only when whole, so
//! a directory without `.partial` is always a finished record.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rtbench_record::load::{self, Summary};
use rtbench_record::scenario::Scenario;

use super::merge::Merge;
use crate::stats::{self, Hists};
use crate::wire::Report;

/// Makes `out`'s partial directory with the scenario as run; refuses an
/// `out` that exists already. Returns the partial directory.
pub(super) fn prepare(out: &Path, sc: &Scenario) -> Result<PathBuf> {
    if out.exists() {
        bail!("{} exists already: choose another --out", out.display());
    }
    let tmp = load::partial_dir(out);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("workers")).with_context(|| tmp.display().to_string())?;
    let scenario = tmp.join("scenario.toml");
    std::fs::write(&scenario, sc.to_toml()).with_context(|| scenario.display().to_string())?;
    Ok(tmp)
}

/// Moves the finished directory into place.
pub(super) fn finish(tmp: &Path, out: &Path) -> Result<()> {
    std::fs::rename(tmp, out).with_context(|| format!("moving {} into place", tmp.display()))
}

/// Worker `w`'s stderr.
pub(super) fn worker_log(dir: &Path, w: u64) -> PathBuf {
    dir.join(format!("workers/worker-{w}.log"))
}

/// The last lines of a worker's log, on one line, for an error message.
pub(super) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// Writes the record's files from the merged reports and the summary
/// (the time series and hosts' seconds were written as they completed).
pub(super) fn write(dir: &Path, merge: &mut Merge, summary: &Summary) -> Result<()> {
    let io = || dir.display().to_string();
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(summary).expect("summary serializes"),
    )
    .with_context(io)?;
    merge.close_files()?;
    let mut hists = Hists::default();
    for r in merge.finals.values() {
        if let Report::Final { hists: h, .. } = r {
            hists.add_encoded(h).map_err(anyhow::Error::msg)?;
        }
    }
    stats::write_histograms(dir, &hists).with_context(io)?;
    let errors = serde_json::json!({
        "failed": summary.counters.failed,
        "closed_by_server": summary.counters.closed_by_server,
        "error_frames": summary.counters.error_frames,
        "publish_errors": summary.events.publish_errors,
    });
    std::fs::write(
        dir.join("errors.json"),
        serde_json::to_string_pretty(&errors).expect("serializes"),
    )
    .with_context(io)?;
    Ok(())
}

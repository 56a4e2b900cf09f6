//! Where a run's record goes, and how it gets there whole. Records are
//! named by suite, time, host id, variant and placement, so runs elsewhere
//! (`-containers`, `-hosts`) are a history of their own. A record is written
//! in its partial directory and moved into place at the end: a reader (the
//! site, the gate) never sees half a record under its final name.

use std::path::{Path, PathBuf};

use rtbench_protocol::time::{compact_utc, now_ns};
use rtbench_record::load::partial_dir;

use super::args::RunsOn;
use super::placement::Side;
use crate::root;

/// The record's directory: the side's (a versus run's), else `--out` (with
/// the variant's name appended), else one under `results/<suite>/`.
pub fn choose(
    name: &str,
    variant: Option<&crate::suite::Variant>,
    runs_on: &RunsOn,
    out: Option<&Path>,
    side: &Side,
) -> PathBuf {
    let stamp = compact_utc(now_ns());
    // Runs elsewhere are their own history: `-containers`, `-hosts`.
    let placed = match runs_on {
        RunsOn::Local => "",
        RunsOn::Containers => "-containers",
        RunsOn::Swarm => "-swarm",
        RunsOn::Hosts(_) => "-hosts",
    };
    match (&side.dir, out, variant) {
        (Some(d), _, _) => d.clone(),
        (None, out, variant) => match (out, variant) {
            (Some(o), None) => o.to_path_buf(),
            (Some(o), Some(v)) => PathBuf::from(format!("{}-{}", o.display(), v.name)),
            (None, v) => root().join("results").join(name).join(match v {
                Some(v) => format!("{stamp}-{}-{}{placed}", crate::record::host_id(), v.name),
                None => format!("{stamp}-{}{placed}", crate::record::host_id()),
            }),
        },
    }
}

/// Refuses a directory that exists; returns its partial directory, made
/// empty, where the run writes.
pub fn begin(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        return Err(anyhow::anyhow!("{} exists already", dir.display()));
    }
    let tmp = partial_dir(dir);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| anyhow::anyhow!("{}: {e:#}", tmp.display()))?;
    Ok(tmp)
}

/// Moves the finished record into place under its name.
pub fn finish(tmp: &Path, dir: &Path) -> anyhow::Result<()> {
    std::fs::rename(tmp, dir)
        .map_err(|e| anyhow::anyhow!("moving {} into place: {e:#}", tmp.display()))
}

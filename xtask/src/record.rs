//! What the xtask adds to the bench run record: the host id that names
//! records, and the record's figures from the load generator's summary. The
//! schema (`BenchSummary`, `Environment`, the record's file names) is the
//! `rtbench-record` crate, used by that name everywhere.

use rtbench_record::{Errors, Latency, LoadSummary};

/// The host id that names records and groups a history: `RTBENCH_HOST`, or
/// the hostname. Machines whose runs form one history under changing
/// hostnames (CI runners) set the same `RTBENCH_HOST`.
pub fn host_id() -> String {
    let h = std::env::var("RTBENCH_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| rtbench_sys::host::hostname().ok())
        .unwrap_or_else(|| "host".into());
    h.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn latency(p: &rtbench_record::load::Percentiles) -> Latency {
    Latency {
        p50: p.p50,
        p99: p.p99,
        p999: p.p999,
        count: p.count,
    }
}

pub fn errors(l: &LoadSummary) -> Errors {
    Errors {
        failed: l.counters.failed.clone(),
        closed_by_server: l.counters.closed_by_server.clone(),
        error_frames: l.counters.error_frames.clone(),
        misdelivered: l.events.misdelivered,
        duplicates: l.events.duplicates,
        lost: l.events.lost,
        echo_mismatch: l.echo_mismatch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use rtbench_record::{
        Environment, FORMAT_VERSION, SERVER_CSV, VERSUS, Versus, limit, read_json, read_summary,
        sweep,
    };

    /// Every record committed under results/ must stay readable by these types.
    #[test]
    fn every_committed_record_reads_back() {
        let mut n = 0;
        for suite in std::fs::read_dir(crate::root().join("results")).unwrap() {
            let suite = suite.unwrap().path();
            if suite.ends_with("reference") {
                continue; // published runs rtbench did not make: not this schema
            }
            if suite.ends_with(rtbench_record::roofline::DIR) {
                for dir in std::fs::read_dir(&suite).unwrap() {
                    let r = rtbench_record::roofline::Roofline::read(&dir.unwrap().path()).unwrap();
                    assert!(r.measured.pairs.count > 0 && !r.measured.fanout.is_empty());
                    n += 1;
                }
                continue;
            }
            let mut dirs = Vec::new();
            for run in std::fs::read_dir(suite).unwrap() {
                let dir = run.unwrap().path();
                // A versus or a sweep record holds its runs in subdirectories.
                if dir.join(sweep::SWEEP).exists() {
                    let s = sweep::Sweep::read(&dir).unwrap();
                    assert!(!s.steps.is_empty(), "{}", dir.display());
                    dirs.extend(s.steps.iter().map(|st| dir.join(&st.dir)));
                    continue;
                }
                match read_json::<Versus>(&dir.join(VERSUS)) {
                    Ok(v) => dirs.extend(v.runs.iter().map(|r| dir.join(&r.dir))),
                    Err(_) => dirs.push(dir),
                }
            }
            for dir in dirs {
                let s = read_summary(&dir).unwrap();
                // Older formats read through the same types (format 1 stated
                // its limit as a sentence).
                assert!(s.format_version <= FORMAT_VERSION, "{}", dir.display());
                if s.format_version == 1 {
                    assert!(
                        s.limit
                            .as_ref()
                            .is_none_or(|l| matches!(l, limit::Causes::Stated(_))),
                        "{}",
                        dir.display()
                    );
                }
                let env: Environment = serde_json::from_str(
                    &std::fs::read_to_string(dir.join("environment.json")).unwrap(),
                )
                .unwrap();
                assert!(env.cores > 0);
                rtbench_record::load::read_summary(&dir.join("loadgen")).unwrap();
                // The time series read through their schemas, old columns and all.
                let samples: Vec<rtbench_record::series::ServerSample> =
                    rtbench_record::series::read_csv(&dir.join(SERVER_CSV)).unwrap();
                let rows: Vec<rtbench_record::load::TimeseriesRow> =
                    rtbench_record::series::read_csv(&dir.join("loadgen/timeseries.csv")).unwrap();
                assert!(!samples.is_empty() && !rows.is_empty(), "{}", dir.display());
                n += 1;
            }
        }
        assert!(n > 0, "no records under results/");
    }
}

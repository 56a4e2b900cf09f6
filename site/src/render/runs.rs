//! What a run is called and which runs go together: its page's path, the
//! facts every page shows about it, labels of its overrides and of a
//! configuration, and each variant's headline run. Shared by the pages so
//! that a run reads the same wherever it appears.

use rtbench_record::BenchSummary;
use serde_json::{Value, json};

use crate::load::{Records, Reference, Run};

/// Each variant's best complete run of `scenario` at full scale (no
/// `--scale` or `--connections`; no variant counts as one) on the host of the
/// newest such run, in order of first appearance. Best: not limited by the
/// load generator, then the most connections held, then the newest.
pub fn side_by_side<'a>(records: &'a Records, scenario: &str) -> Vec<(&'a Run, &'a BenchSummary)> {
    let full: Vec<(&Run, &BenchSummary)> = records
        .of(scenario)
        .filter(|r| r.complete() && !r.in_group)
        .filter_map(|r| Some((r, r.summary.as_ref()?)))
        .filter(|(_, s)| s.overrides.scale.is_none() && s.overrides.connections.is_none())
        .collect();
    let Some(host) = full.last().map(|(_, s)| s.host.clone()) else {
        return Vec::new();
    };
    let rank = |s: &BenchSummary| (!s.client_bottleneck.bottleneck, s.connections.held);
    let mut out: Vec<(&Run, &BenchSummary)> = Vec::new();
    for (r, s) in full.into_iter().filter(|(_, s)| s.host == host) {
        match out.iter_mut().find(|(_, o)| o.variant == s.variant) {
            // Runs come oldest first: an equal one is newer.
            Some(slot) if rank(s) >= rank(slot.1) => *slot = (r, s),
            Some(_) => {}
            None => out.push((r, s)),
        }
    }
    out
}

pub fn run_path(run: &Run) -> String {
    format!("runs/{}/{}", run.scenario, run.name)
}

pub fn run_info(run: &Run) -> Value {
    let s = run.summary.as_ref();
    json!({
        "id": run.id(),
        "name": run.name,
        "scenario": run.scenario,
        "href": format!("{}/index.html", run_path(run)),
        "complete": run.complete(),
        "stopped_by": s.and_then(|s| s.stopped_by),
        "variant": s.and_then(|s| s.variant.clone()),
        "started_at": s.map(|s| s.started_at.clone()),
        "date": run_date(run),
        "host": s.map(|s| s.host.clone()),
        "commit": run.environment.as_ref().map(|e| format!("{}{}", &e.git_commit[..e.git_commit.len().min(10)], if e.git_dirty { "+" } else { "" })),
        "overrides": s.map(|s| overrides_label(&s.overrides)),
    })
}

pub fn overrides_label(o: &rtbench_record::Overrides) -> String {
    let mut v = Vec::new();
    if let Some(x) = o.scale {
        v.push(format!("--scale {x}"));
    }
    if let Some(x) = o.connections {
        v.push(format!("--connections {x}"));
    }
    if let Some(x) = o.rate {
        v.push(format!("--rate {x}"));
    }
    if let Some(x) = o.hold_s {
        v.push(format!("--hold {x}"));
    }
    if let Some(x) = o.processes {
        v.push(format!("--processes {x}"));
    }
    if let Some(x) = o.publish_rate {
        v.push(format!("--publish-rate {x}"));
    }
    if let Some(x) = o.ping_interval_s {
        v.push(format!("--ping-interval {x}"));
    }
    if v.is_empty() {
        "as written".into()
    } else {
        v.join(" ")
    }
}

pub fn config_label(key: &str) -> String {
    let f: Vec<&str> = key.split('|').collect();
    let o: rtbench_record::Overrides = f
        .get(3)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let variant = f
        .get(1)
        .filter(|v| !v.is_empty())
        .map(|v| format!("{v}, "))
        .unwrap_or_default();
    format!(
        "{variant}{} on {}",
        overrides_label(&o),
        f.get(2).unwrap_or(&"")
    )
}

/// A run's variant and size, as legends and group headings name it:
/// "sdk-ping · 1,000,000", or "100,000 connections" without a variant.
pub fn size_label(variant: Option<&str>, target: u64) -> String {
    let n = rtbench_record::metrics::group(target as i64);
    match variant {
        Some(v) => format!("{v} · {n}"),
        None => format!("{n} connections"),
    }
}

/// The sessions a run's connections had, as its memory figures must say:
/// a signed-in connection costs the server more than a guest's.
pub fn session_label(run: &Run) -> Option<&'static str> {
    run.auth().map(|a| match a {
        rtbench_record::scenario::Auth::Guest => "guest sessions",
        rtbench_record::scenario::Auth::Jwt => "signed-in (JWT) sessions",
    })
}

/// The day a run started (`2026-11-28`), from its record.
pub fn run_date(run: &Run) -> Option<String> {
    let s = run.summary.as_ref()?;
    s.started_at.get(..10).map(str::to_string)
}

/// What a run's connections did once open: "idle", "a ping every 20 s",
/// "receiving events" (publishers), as its load says.
pub fn activity(run: &Run) -> Option<String> {
    let load = run.load_scenario.as_ref()?;
    let s = &load.session;
    Some(if !load.publishers.is_empty() {
        "receiving events".into()
    } else if s.ping_interval_s > 0.0 {
        format!("a ping every {} s", s.ping_interval_s)
    } else if s.echo_interval_s > 0.0 {
        format!("an echo every {} s", s.echo_interval_s)
    } else {
        "idle".into()
    })
}

/// The page setting rtbench beside a reference, in the reference's folder.
pub const ORIGINAL_PAGE: &str = "beside-rtbench.html";

/// That page's path from the site's root.
pub fn original_href(r: &Reference) -> String {
    format!("reference/{}/{ORIGINAL_PAGE}", r.name)
}

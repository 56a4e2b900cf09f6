//! The regression gate: the newest run of a scenario judged against the runs
//! before it with the same configuration (`Run::config_key`). Thresholds live
//! in one file, `site/regress.toml`, which also says how they were chosen.

use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;
use std::path::Path;

use rtbench_record::metrics::{self, Better, METRICS, Metric};
use serde::Deserialize;

use crate::load::{Records, Run};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// How many earlier runs make the baseline.
    pub history: usize,
    /// Fewer earlier runs than this: no verdict, only a note.
    pub min_history: usize,
    /// Metrics shown but deliberately not judged.
    #[serde(default)]
    pub ungated: Vec<String>,
    pub metric: BTreeMap<String, Threshold>,
}

/// A value regresses when it is worse than the baseline median by more than
/// all three: `relative` x median, `spreads` x the baseline's robust spread
/// (1.4826 x median absolute deviation), and `absolute` (in the metric's unit).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub relative: f64,
    pub spreads: f64,
    pub absolute: f64,
}

impl Thresholds {
    pub fn read(path: &Path) -> Result<Thresholds> {
        let src = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        let t: Thresholds = toml::from_str(&src).map_err(|e| {
            let line = e
                .span()
                .map_or(0, |s| src[..s.start].matches('\n').count() + 1);
            anyhow!("{}:{line}: {}", path.display(), e.message().trim())
        })?;
        for key in t.metric.keys().chain(&t.ungated) {
            if metrics::by_key(key).is_none() {
                let known: Vec<&str> = METRICS.iter().map(|m| m.key).collect();
                return Err(anyhow!(
                    "{}: `{key}`: no such metric (known: {})",
                    path.display(),
                    known.join(", ")
                ));
            }
        }
        // Every metric is either judged or said not to be.
        for m in METRICS {
            if !t.metric.contains_key(m.key) && !t.ungated.iter().any(|k| k == m.key) {
                return Err(anyhow!(
                    "{}: no [metric.{}] and not in `ungated`: say whether it is judged",
                    path.display(),
                    m.key
                ));
            }
        }
        Ok(t)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub value: f64,
    pub baseline: f64,
    pub spread: f64,
    /// The worst value that still passes.
    pub limit: f64,
    pub regressed: bool,
}

impl Verdict {
    pub fn line(&self) -> String {
        format!(
            "{}: {} (baseline median {}, spread {}, limit {}){}",
            self.key,
            metrics::format(self.value, self.unit),
            metrics::format(self.baseline, self.unit),
            metrics::format(self.spread, self.unit),
            metrics::format(self.limit, self.unit),
            if self.regressed { "  REGRESSION" } else { "" }
        )
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Judgement {
    pub run: String,
    pub baseline_runs: Vec<String>,
    pub verdicts: Vec<Verdict>,
    /// Why there is no verdict, when there is none.
    pub note: Option<String>,
}

impl Judgement {
    pub fn regressions(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| v.regressed)
    }
}

/// The complete runs before `run` with its configuration, newest last.
pub fn history<'a>(records: &'a Records, run: &Run, n: usize) -> Vec<&'a Run> {
    let key = run.config_key();
    let mut v: Vec<&Run> = records
        .of(&run.scenario)
        .filter(|r| !r.in_group && r.complete() && r.name < run.name && r.config_key() == key)
        .collect();
    let skip = v.len().saturating_sub(n);
    v.drain(..skip);
    v
}

pub fn judge(records: &Records, run: &Run, t: &Thresholds) -> Judgement {
    let mut j = Judgement {
        run: run.id(),
        ..Default::default()
    };
    let Some(summary) = run.summary.as_ref().filter(|_| run.complete()) else {
        j.note = Some("the run is incomplete: nothing to judge".into());
        return j;
    };
    let hist = history(records, run, t.history);
    j.baseline_runs = hist.iter().map(|r| r.id()).collect();
    if hist.len() < t.min_history {
        j.note = Some(format!(
            "{} earlier run(s) with this configuration; {} needed for a baseline",
            hist.len(),
            t.min_history
        ));
        return j;
    }
    for m in METRICS {
        let (Some(th), Some(value)) = (t.metric.get(m.key), (m.get)(summary)) else {
            continue;
        };
        let mut past: Vec<f64> = hist
            .iter()
            .filter_map(|r| (m.get)(r.summary.as_ref()?))
            .collect();
        if past.len() < t.min_history {
            continue;
        }
        j.verdicts.push(verdict(m, th, value, &mut past));
    }
    j
}

fn verdict(m: &'static Metric, th: &Threshold, value: f64, past: &mut [f64]) -> Verdict {
    let baseline = rtbench_record::median(past);
    let mut dev: Vec<f64> = past.iter().map(|v| (v - baseline).abs()).collect();
    let spread = 1.4826 * rtbench_record::median(&mut dev);
    let margin = (th.relative * baseline.abs())
        .max(th.spreads * spread)
        .max(th.absolute);
    let (limit, regressed) = match m.better {
        Better::Lower => (baseline + margin, value > baseline + margin),
        Better::Higher => (baseline - margin, value < baseline - margin),
    };
    Verdict {
        key: m.key,
        label: m.label,
        unit: m.unit,
        value,
        baseline,
        spread,
        limit,
        regressed,
    }
}

/// `regress <scenario>`: judges the scenario's newest complete run (of any
/// configuration); Err names every regressed metric.
pub fn gate(records: &Records, scenario: &str, t: &Thresholds) -> Result<Judgement> {
    let run = records
        .of(scenario)
        .filter(|r| !r.in_group && r.complete())
        .last()
        .ok_or_else(|| anyhow!("no complete run of `{scenario}` under results/"))?;
    Ok(judge(records, run, t))
}

//! Reading every record under `results/`. One bad record never stops the
//! site: a record whose `summary.json` cannot be read is skipped with a
//! warning naming it; a record without one (interrupted, `.partial`) or marked
//! incomplete is kept and shown as incomplete with what it has.

use std::path::{Path, PathBuf};

use rtbench_record::roofline::{self, Roofline};
use rtbench_record::{self as record, BenchSummary, Environment, LoadSummary, Versus};

use crate::table::Table;

#[derive(Debug)]
pub struct Run {
    /// The suite's directory name (`results/<scenario>/`).
    pub scenario: String,
    /// Path below the scenario directory: `<UTC>-<host>[-variant]`, or
    /// `<versus record>/A1` for a run of a versus record.
    pub name: String,
    pub dir: PathBuf,
    pub summary: Option<BenchSummary>,
    pub environment: Option<Environment>,
    pub load: Option<LoadSummary>,
    pub server: Option<Table>,
    pub timeseries: Option<Table>,
    /// Each worker host's seconds (`hosts.csv`; none in early records).
    pub hosts: Vec<record::series::HostSample>,
    /// (1/(1-q), value ms) from the histograms' percentile tables.
    pub delivery_percentiles: Vec<(f64, f64)>,
    pub connect_percentiles: Vec<(f64, f64)>,
    /// Part of a versus record: not part of the scenario's history.
    pub in_versus: bool,
    /// What could not be read, beyond the summary.
    pub problems: Vec<String>,
}

impl Run {
    pub fn id(&self) -> String {
        format!("{}/{}", self.scenario, self.name)
    }

    pub fn complete(&self) -> bool {
        self.summary.as_ref().is_some_and(|s| s.complete) && !self.name.ends_with(".partial")
    }

    pub fn variant(&self) -> Option<&str> {
        self.summary.as_ref()?.variant.as_deref()
    }

    /// Runs are comparable over time when these match: same scenario,
    /// variant, host, user overrides (a CI-sized run is not a full one) and
    /// deployment (local processes, containers, remote hosts).
    pub fn config_key(&self) -> Option<String> {
        let s = self.summary.as_ref()?;
        let kind = self
            .environment
            .as_ref()
            .map_or("local", |e| e.deployment.kind.as_str());
        Some(format!(
            "{}|{}|{}|{}|{kind}",
            s.scenario,
            s.variant.as_deref().unwrap_or(""),
            s.host,
            serde_json::to_string(&s.overrides).unwrap_or_default()
        ))
    }

    /// The machine's cores, to put CPU (100 = one core) in % of the machine.
    pub fn cores(&self) -> Option<f64> {
        self.environment.as_ref().map(|e| e.cores as f64)
    }
}

/// A published run rtbench did not make: `results/reference/<name>/`.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct ReferenceInfo {
    pub title: String,
    pub source: String,
    pub hardware: String,
    pub software: String,
    pub notes: String,
    /// Scenarios whose compare page shows it.
    pub compare_with: Vec<String>,
    /// Headline figures as published: (label, value).
    pub headline: Vec<(String, String)>,
    /// Series file -> what its columns mean.
    pub series: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Reference {
    pub name: String,
    pub dir: PathBuf,
    pub info: ReferenceInfo,
    pub tables: Vec<(String, Table)>,
}

impl Reference {
    pub fn table(&self, file: &str) -> Option<&Table> {
        self.tables.iter().find(|(n, _)| n == file).map(|(_, t)| t)
    }
}

#[derive(Debug)]
pub struct VersusRecord {
    pub scenario: String,
    pub name: String,
    pub dir: PathBuf,
    pub versus: Versus,
}

#[derive(Debug, Default)]
pub struct Records {
    /// By scenario, then in time order (names start with the UTC time).
    pub runs: Vec<Run>,
    pub references: Vec<Reference>,
    pub versus: Vec<VersusRecord>,
    /// This machine's limits (`results/roofline/`), by directory name, oldest first.
    pub rooflines: Vec<(String, Roofline)>,
    /// Records skipped, each naming the record and why.
    pub warnings: Vec<String>,
}

impl Records {
    pub fn scenarios(&self) -> Vec<String> {
        let mut v: Vec<String> = self.runs.iter().map(|r| r.scenario.clone()).collect();
        v.dedup();
        v
    }

    pub fn of(&self, scenario: &str) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |r| r.scenario == scenario)
    }

    pub fn find(&self, id: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.id() == id)
    }

    /// The roofline a run is read against: the one its record names, else
    /// the newest of its host (records made before rooflines existed).
    pub fn roofline_for(&self, run: &Run) -> Option<&(String, Roofline)> {
        let named = run.environment.as_ref().and_then(|e| e.roofline.as_ref());
        if let Some(name) = named {
            return self.rooflines.iter().find(|(n, _)| n == name);
        }
        let host = &run.summary.as_ref()?.host;
        self.rooflines.iter().rev().find(|(_, r)| &r.host == host)
    }
}

pub const REFERENCE_DIR: &str = "reference";

pub fn load(results: &Path) -> Records {
    let mut out = Records::default();
    for scenario_dir in sorted_dirs(results, &mut out.warnings) {
        let scenario = file_name(&scenario_dir);
        if scenario == REFERENCE_DIR {
            for dir in sorted_dirs(&scenario_dir, &mut out.warnings) {
                match load_reference(&dir) {
                    Ok(r) => out.references.push(r),
                    Err(e) => out
                        .warnings
                        .push(format!("skipped reference {}: {e}", dir.display())),
                }
            }
            continue;
        }
        if scenario == roofline::DIR {
            for dir in sorted_dirs(&scenario_dir, &mut out.warnings) {
                match Roofline::read(&dir) {
                    Ok(r) => out.rooflines.push((file_name(&dir), r)),
                    Err(e) => out
                        .warnings
                        .push(format!("skipped roofline {}: {e}", dir.display())),
                }
            }
            continue;
        }
        for dir in sorted_dirs(&scenario_dir, &mut out.warnings) {
            if dir.join(record::VERSUS).exists() {
                match record::read_json::<Versus>(&dir.join(record::VERSUS)) {
                    Ok(versus) => {
                        for r in &versus.runs {
                            let name = format!("{}/{}", file_name(&dir), r.dir);
                            add_run(&mut out, &scenario, name, dir.join(&r.dir), true);
                        }
                        out.versus.push(VersusRecord {
                            scenario: scenario.clone(),
                            name: file_name(&dir),
                            dir,
                            versus,
                        });
                    }
                    Err(e) => out
                        .warnings
                        .push(format!("skipped versus record {}: {e}", dir.display())),
                }
                continue;
            }
            add_run(&mut out, &scenario, file_name(&dir), dir, false);
        }
    }
    for w in &out.warnings {
        eprintln!("site: warning: {w}");
    }
    out
}

fn add_run(out: &mut Records, scenario: &str, name: String, dir: PathBuf, in_versus: bool) {
    match load_run(scenario, name, &dir, in_versus) {
        Ok(run) => out.runs.push(run),
        Err(e) => out
            .warnings
            .push(format!("skipped record {}: {e}", dir.display())),
    }
}

fn load_run(scenario: &str, name: String, dir: &Path, in_versus: bool) -> Result<Run, String> {
    let summary_path = dir.join(record::SUMMARY);
    // A summary that is there but unreadable makes the record corrupt; one
    // that is missing makes it partial.
    let summary = if summary_path.exists() {
        let s = record::read_summary(dir)?;
        if s.format_version > record::FORMAT_VERSION {
            return Err(format!(
                "{}: format_version {} is newer than this site reads ({})",
                summary_path.display(),
                s.format_version,
                record::FORMAT_VERSION
            ));
        }
        Some(s)
    } else {
        None
    };
    let mut problems = Vec::new();
    if summary.is_none() {
        problems.push(format!(
            "no {}: the run did not finish writing its record",
            record::SUMMARY
        ));
    }
    let environment = optional(&mut problems, record::read_environment(dir));
    let loadgen = dir.join(record::LOADGEN_DIR);
    let load = optional(&mut problems, record::read_load_summary(&loadgen));
    let server = optional(
        &mut problems,
        typed_table::<record::series::ServerSample>(&dir.join(record::SERVER_CSV)),
    );
    let timeseries = optional(
        &mut problems,
        typed_table::<record::load::TimeseriesRow>(&loadgen.join("timeseries.csv")),
    );
    let hosts_csv = loadgen.join(record::load::HOSTS_CSV);
    let hosts = if hosts_csv.exists() {
        optional(&mut problems, record::series::read_csv(&hosts_csv)).unwrap_or_default()
    } else {
        Vec::new()
    };
    let hist = loadgen.join("histograms");
    let delivery_percentiles = percentile_points(&hist.join("delivery.txt"));
    let connect_percentiles = percentile_points(&hist.join("connect.txt"));
    Ok(Run {
        scenario: scenario.to_string(),
        name,
        dir: dir.to_path_buf(),
        summary,
        environment,
        load,
        server,
        timeseries,
        hosts,
        delivery_percentiles,
        connect_percentiles,
        in_versus,
        problems,
    })
}

/// A time series read through its schema (a missing or renamed column is an
/// error naming it), as a table of numbers for the charts.
fn typed_table<T: serde::Serialize + serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Table, String> {
    let rows: Vec<T> = record::series::read_csv(path)?;
    if rows.is_empty() {
        return Ok(Table::default());
    }
    let text = record::series::to_csv(&rows).map_err(|e| format!("{}: {e}", path.display()))?;
    Table::parse(&text).map_err(|e| format!("{}:{e}", path.display()))
}

/// A file the record may lack: its absence is noted, not fatal.
fn optional<T>(problems: &mut Vec<String>, what: Result<T, String>) -> Option<T> {
    what.map_err(|e| problems.push(e)).ok()
}

/// The percentile table's rows (value ms, 1/(1-q)), without the last (inf).
fn percentile_points(path: &Path) -> Vec<(f64, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (v, inv) = (
                f.first()?.parse::<f64>().ok()?,
                f.get(3)?.parse::<f64>().ok()?,
            );
            inv.is_finite().then_some((inv, v))
        })
        .collect()
}

fn load_reference(dir: &Path) -> Result<Reference, String> {
    let info: ReferenceInfo = record::read_json(&dir.join(record::REFERENCE))?;
    let tables = info
        .series
        .iter()
        .map(|(file, _)| Ok((file.clone(), Table::read(&dir.join(file))?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Reference {
        name: file_name(dir),
        dir: dir.to_path_buf(),
        info,
        tables,
    })
}

fn sorted_dirs(dir: &Path, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}", dir.display()));
            Vec::new()
        }
    };
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

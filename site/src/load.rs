//! Reading every record under `results/`. One bad record never stops the
//! site: a record whose `summary.json` cannot be read is skipped with a
//! warning naming it; a record without one (interrupted, `.partial`) or marked
//! incomplete is kept and shown as incomplete with what it has.

use anyhow::{Result, anyhow};
use std::path::{Path, PathBuf};

use rtbench_record::load::TimeseriesRow;
use rtbench_record::roofline::{self, Roofline};
use rtbench_record::scenario::{Auth, Scenario};
use rtbench_record::series::{HostSample, ServerSample};
use rtbench_record::{self as record, BenchSummary, Environment, LoadSummary, Versus};

use crate::paths;
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
    /// The load as the load generator ran it (`loadgen/scenario.toml`): the
    /// arrival rate and the session a run's figures are for.
    pub load_scenario: Option<Scenario>,
    /// `server.csv`, one row a second (empty when it could not be read:
    /// `problems` says why).
    pub server: Vec<ServerSample>,
    /// The load generator's `timeseries.csv`, one row a second.
    pub timeseries: Vec<TimeseriesRow>,
    /// Each worker host's seconds (`hosts.csv`; none in early records).
    pub hosts: Vec<HostSample>,
    /// Each tracked process's seconds (`processes.csv`: a soak's leak
    /// check; none in records made before it).
    pub processes: Vec<rtbench_record::series::ProcessSample>,
    /// The checkout the run was made in, when its record shows it
    /// (`paths::record_checkout`): hidden wherever the site shows the record.
    pub checkout: Option<String>,
    /// (1/(1-q), value ms) from the histograms' percentile tables.
    pub delivery_percentiles: Vec<(f64, f64)>,
    pub connect_percentiles: Vec<(f64, f64)>,
    /// Part of a versus or a sweep record: not part of the scenario's history.
    pub in_group: bool,
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

    /// Machines the run used: one, unless its parts ran on hosts reached
    /// over SSH (then each distinct address, the controller's besides) or
    /// on a swarm's nodes (each node, the controller on its manager).
    pub fn machines(&self) -> usize {
        let Some(e) = self.environment.as_ref() else {
            return 1;
        };
        let mut addresses: Vec<&str> = e
            .deployment
            .hosts
            .iter()
            .map(|h| h.address.as_str())
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        match e.deployment.kind.as_str() {
            "hosts" => addresses.len() + 1,
            "swarm" => addresses.len().max(1),
            _ => 1,
        }
    }

    /// The session its connections had (guests unless the load says otherwise).
    pub fn auth(&self) -> Option<Auth> {
        self.load_scenario.as_ref().map(|s| s.session.auth)
    }

    /// The configured arrival rate of its first phase, per second.
    pub fn arrival_rate(&self) -> Option<f64> {
        let rate = self.load_scenario.as_ref()?.phases.first()?.rate;
        Some(rate)
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
    /// What the series do not say, from the original's write-up: the
    /// machines and the load, for the page setting rtbench beside it.
    #[serde(default)]
    pub setup: Option<ReferenceSetup>,
}

/// A published run's setup, as its write-up states it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSetup {
    /// Where it says so (the article).
    pub source: String,
    pub server_machines: u32,
    pub server_cores: u32,
    pub load_machines: u32,
    /// Connections the run aimed to hold (the server's cap).
    pub target_connections: u64,
    /// Users arriving per second.
    pub arrival_rate_per_s: f64,
    /// What each connection did once open.
    pub session: String,
    /// The scenario of ours that repeats it.
    pub scenario: String,
    /// The published series and columns: connections open, the server's
    /// memory used (MB as Tsung reports them: MiB) and CPU (% of the server).
    pub connections: SeriesColumn,
    pub memory_used_mib: SeriesColumn,
    pub cpu_pct: SeriesColumn,
}

/// A column of one of a reference's published CSV files; its first column
/// is the time in seconds.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesColumn {
    pub file: String,
    pub column: String,
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

    /// (time s, value) of a published column; empty when it is not there.
    pub fn column(&self, c: &SeriesColumn) -> Vec<(f64, f64)> {
        self.table(&c.file).map_or_else(Vec::new, |t| {
            t.columns
                .first()
                .map_or_else(Vec::new, |time| t.xy(time, &c.column, |v| v))
        })
    }
}

#[derive(Debug)]
pub struct VersusRecord {
    pub scenario: String,
    pub name: String,
    pub dir: PathBuf,
    pub versus: Versus,
}

/// A sweep's record: its steps are runs (`in_group`) of their own.
#[derive(Debug)]
pub struct SweepRecord {
    pub scenario: String,
    pub name: String,
    pub sweep: rtbench_record::sweep::Sweep,
}

#[derive(Debug, Default)]
pub struct Records {
    /// By scenario, then in time order (names start with the UTC time).
    pub runs: Vec<Run>,
    pub references: Vec<Reference>,
    pub versus: Vec<VersusRecord>,
    pub sweeps: Vec<SweepRecord>,
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
                        .push(format!("skipped reference {}: {e:#}", dir.display())),
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
            if dir.join(rtbench_record::sweep::SWEEP).exists() {
                load_sweep(&mut out, &scenario, dir);
                continue;
            }
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

/// A sweep and each of its steps' runs.
fn load_sweep(out: &mut Records, scenario: &str, dir: PathBuf) {
    match rtbench_record::sweep::Sweep::read(&dir) {
        Ok(sweep) => {
            for s in &sweep.steps {
                let name = format!("{}/{}", file_name(&dir), s.dir);
                add_run(out, scenario, name, dir.join(&s.dir), true);
            }
            out.sweeps.push(SweepRecord {
                scenario: scenario.to_string(),
                name: file_name(&dir),
                sweep,
            });
        }
        Err(e) => out
            .warnings
            .push(format!("skipped sweep record {}: {e}", dir.display())),
    }
}

fn add_run(out: &mut Records, scenario: &str, name: String, dir: PathBuf, in_group: bool) {
    match load_run(scenario, name, &dir, in_group) {
        Ok(run) => out.runs.push(run),
        Err(e) => out
            .warnings
            .push(format!("skipped record {}: {e:#}", dir.display())),
    }
}

fn load_run(scenario: &str, name: String, dir: &Path, in_group: bool) -> Result<Run> {
    let summary_path = dir.join(record::SUMMARY);
    // A summary that is there but unreadable makes the record corrupt; one
    // that is missing makes it partial.
    let summary = if summary_path.exists() {
        let s = record::read_summary(dir).map_err(anyhow::Error::msg)?;
        if s.format_version > record::FORMAT_VERSION {
            return Err(anyhow!(
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
    let load_scenario = optional(
        &mut problems,
        Scenario::load(&loadgen.join(record::SCENARIO)),
    );
    let server = optional(
        &mut problems,
        record::series::read_csv(&dir.join(record::SERVER_CSV)),
    )
    .unwrap_or_default();
    let timeseries = optional(
        &mut problems,
        record::series::read_csv(&loadgen.join(record::load::TIMESERIES_CSV)),
    )
    .unwrap_or_default();
    let hosts_csv = loadgen.join(record::load::HOSTS_CSV);
    let hosts = if hosts_csv.exists() {
        optional(&mut problems, record::series::read_csv(&hosts_csv)).unwrap_or_default()
    } else {
        Vec::new()
    };
    let processes_csv = dir.join(record::PROCESSES_CSV);
    let processes = if processes_csv.exists() {
        optional(&mut problems, record::series::read_csv(&processes_csv)).unwrap_or_default()
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
        load_scenario,
        server,
        timeseries,
        hosts,
        processes,
        checkout: std::fs::read_to_string(dir.join(record::SCENARIO))
            .ok()
            .and_then(|t| paths::record_checkout(&t)),
        delivery_percentiles,
        connect_percentiles,
        in_group,
        problems,
    })
}

/// A file the record may lack: its absence is noted, not fatal.
fn optional<T, E: std::fmt::Display>(problems: &mut Vec<String>, what: Result<T, E>) -> Option<T> {
    what.map_err(|e| problems.push(e.to_string())).ok()
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

fn load_reference(dir: &Path) -> Result<Reference> {
    let info: ReferenceInfo =
        record::read_json(&dir.join(record::REFERENCE)).map_err(anyhow::Error::msg)?;
    let tables = info
        .series
        .iter()
        .map(|(file, _)| Ok((file.clone(), Table::read(&dir.join(file))?)))
        .collect::<Result<Vec<_>>>()?;
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

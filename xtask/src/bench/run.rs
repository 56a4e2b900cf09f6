//! The run driver: one run of a suite's variant from plan to record, in
//! four stages, each its own module: `plan` (what to run, decided without
//! a process), `start` (everything it needs running, held in teardown
//! order), `watch` (the load, the fault plan and the samples; what was
//! measured) and `verdict` (the figures, judged from what was measured).
//! This module only puts them in sequence and writes the record.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rtbench_record::load::{partial_dir, read_summary as read_load_summary};

use crate::suite::{Suite, Variant};
use crate::{dashboard, faults, preflight, sample, tuning};

use super::args::Args;
use super::placement::{Placement, Side};
use super::plan::RunPlan;
use super::{console, record_dir, signals, start, verdict, watch};

/// Runs one variant; returns its record's directory and whether it is
/// complete.
pub fn run_one(
    suite: &Suite,
    name: &str,
    variant: Option<&Variant>,
    a: &Args,
    live: &dashboard::State,
    side: &Side,
) -> anyhow::Result<(PathBuf, bool)> {
    let server_nofile = super::placement::server_nofile(a, suite)?;
    let mut plan = RunPlan::resolve(suite, name, variant, a, server_nofile)?;
    announce(&plan, live);
    // Checked before anything starts: targets exist, restarts follow kills.
    let mut faults = faults::Plan::new(
        crate::suite::place(&suite.faults, plan.load.hold_end_s())?,
        plan.processes,
        plan.bus,
        plan.shared_port,
    )?;
    let machine = ready_machine(&plan, suite, a)?;
    let netns = start::namespace(&plan, suite)?;
    // An engine or host that does not answer is one line, before anything
    // is written.
    let placement = Placement::new(a, suite, plan.bus, &plan.needs)?;
    // What the kernel's OOM killer does from here on is the run's to name.
    let mut oom = crate::oom::Watch::start();
    let dir = record_dir::choose(name, variant, &plan.runs_on, a.out.as_deref(), side);
    let tmp = record_dir::begin(&dir)?;
    placement.keep_logs_in(&tmp);
    rtbench_record::write_json(&tmp.join(rtbench_record::PREFLIGHT), &machine.checks)?;
    let mut started = start::processes(&mut plan, side, placement, netns)?;
    let inputs = start::Inputs {
        suite,
        args: a,
        side,
        tuning: &machine.tuning,
        busy_before: machine.busy_before,
    };
    let (load_file, launch_file) = start::write_inputs(&mut plan, &started, &inputs, &tmp)?;
    let load_dir = tmp.join(rtbench_record::LOADGEN_DIR);
    let watched = watch::run(
        &mut started,
        &mut faults,
        side,
        &watch::Load {
            scenario: &load_file,
            dir: &load_dir,
            launch: launch_file.as_deref(),
            live,
            label: &plan.label,
        },
    )?;
    for s in &mut started.servers {
        s.stop(Duration::from_secs(15));
    }
    let summary = judge(
        &plan,
        suite,
        a,
        &tmp,
        watched,
        &mut faults,
        &mut oom,
        &started,
    )?;
    // Redis, the placement's containers or hosts, then the namespace, in
    // that order (`Started`'s fields), once the engine was asked about them.
    drop(started);
    record_dir::finish(&tmp, &dir)?;
    console::print_headline(&summary);
    Ok((dir, summary.complete))
}

fn announce(plan: &RunPlan, live: &dashboard::State) {
    for note in &plan.notes {
        eprintln!("xtask: {note}");
    }
    if let Ok(mut h) = live.lock() {
        h.reset();
    }
    eprintln!(
        "xtask: bench {}: {} connections, {} server process(es), server {}",
        plan.label,
        plan.needs.connections,
        plan.processes,
        plan.subject.label()
    );
}

/// The machine as the run found it, made ready.
struct Machine {
    tuning: std::collections::BTreeMap<String, tuning::Setting>,
    checks: Vec<preflight::Check>,
    busy_before: Option<f64>,
}

/// Redis installed when the run needs it, `--tune` applied, the preflight
/// passed, and a quiet machine (how busy it was is recorded). In a swarm
/// the parts run on its nodes, which are tuned and checked there
/// (`swarm::tune`): this machine only waits to be quiet.
fn ready_machine(plan: &RunPlan, suite: &Suite, a: &Args) -> anyhow::Result<Machine> {
    if plan.bus && matches!(plan.runs_on, super::RunsOn::Local | super::RunsOn::Swarm) {
        crate::setup::ensure(&[crate::setup::REDIS])?;
    }
    if plan.runs_on == super::RunsOn::Swarm {
        return Ok(Machine {
            tuning: Default::default(),
            checks: Vec::new(),
            busy_before: sample::wait_until_quiet(20.0, plan.patience),
        });
    }
    let (tuning, tune_errors) = tuning::run(&suite.tuning, a.tune);
    if !tune_errors.is_empty() {
        return Err(anyhow::anyhow!(
            "--tune could not apply:\n{}",
            tune_errors.join("\n")
        ));
    }
    let checks = preflight::run(&plan.needs);
    preflight::verdict(&checks)?;
    let busy_before = sample::wait_until_quiet(20.0, plan.patience);
    Ok(Machine {
        tuning,
        checks,
        busy_before,
    })
}

/// Reads what the load generator wrote, judges the run (the OOM killer's
/// victims named, the engine asked where the run is in containers) and
/// writes the server samples and the summary into the partial record `tmp`.
#[allow(clippy::too_many_arguments)]
fn judge(
    plan: &RunPlan,
    suite: &Suite,
    a: &Args,
    tmp: &Path,
    watched: watch::Watched,
    faults: &mut faults::Plan,
    oom: &mut crate::oom::Watch,
    started: &start::Started,
) -> anyhow::Result<rtbench_record::BenchSummary> {
    rtbench_record::series::write_csv(&tmp.join(rtbench_record::SERVER_CSV), &watched.samples)?;
    let processes: Vec<_> = watched
        .samples
        .iter()
        .flat_map(|s| s.processes.iter().cloned())
        .collect();
    rtbench_record::series::write_csv(&tmp.join(rtbench_record::PROCESSES_CSV), &processes)?;
    let load_dir = tmp.join(rtbench_record::LOADGEN_DIR);
    let load_summary = read_load_summary(&load_dir).map_err(|e| {
        anyhow::anyhow!(
            "the load generator left no record ({}{}): {e:#}; see {}",
            watched.loadgen_exit,
            oom.of(watched.loadgen_pid)
                .map_or(String::new(), |k| format!(", {}", k.describe())),
            partial_dir(&load_dir).display()
        )
    })?;
    add_host_rows(
        &load_dir,
        started
            .placement
            .host_samples(load_summary.schedule_start_unix_ns),
    )?;
    let rows = if faults.done.is_empty() {
        Vec::new()
    } else {
        rtbench_record::series::read_csv(&load_dir.join(rtbench_record::load::TIMESERIES_CSV))
            .unwrap_or_default()
    };
    let roofline =
        rtbench_record::roofline::newest(&crate::root().join("results"), &crate::record::host_id());
    let mut summary = verdict::judge(
        plan,
        suite,
        a.overrides(),
        verdict::Measured {
            load: &load_summary,
            rows: &rows,
            samples: &watched.samples,
            sampler_start_unix_ns: watched.sampler_start_unix_ns,
            work: watched.work,
            tcp_before: &watched.tcp_before,
            tcp_after: &watched.tcp_after,
            exits: watched.exits,
            killed_any: !faults.killed.is_empty(),
            faults_done: std::mem::take(&mut faults.done),
            interrupted: signals::stop_cause(),
            roofline: roofline.as_ref(),
        },
    );
    oom.name(&mut summary.process_exits, |e| {
        started.placement.oom_killed(e)
    });
    rtbench_record::write_json(&tmp.join(rtbench_record::SUMMARY), &summary)?;
    Ok(summary)
}

/// Adds `extra` (machines no worker sampled) to the load generator's
/// `hosts.csv`, within the seconds it has, in order of second and host.
fn add_host_rows(
    load_dir: &Path,
    extra: Vec<rtbench_record::series::HostSample>,
) -> anyhow::Result<()> {
    if extra.is_empty() {
        return Ok(());
    }
    let path = load_dir.join(rtbench_record::load::HOSTS_CSV);
    let mut rows: Vec<rtbench_record::series::HostSample> =
        rtbench_record::series::read_csv(&path).unwrap_or_default();
    let last = rows.iter().map(|r| r.t_s).max().unwrap_or(u64::MAX);
    rows.extend(extra.into_iter().filter(|r| r.t_s <= last));
    rows.sort_by(|a, b| (a.t_s, &a.host).cmp(&(b.t_s, &b.host)));
    Ok(rtbench_record::series::write_csv(&path, &rows)?)
}

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
use crate::{dashboard, faults, preflight, record, sample, tuning};

use super::args::Args;
use super::placement::{Placement, Side};
use super::plan::RunPlan;
use super::{console, record_dir, signals, start, verdict, watch};

/// Connections a server process is given at most: its open-files capacity
/// less a margin.
fn connections_per_process() -> u64 {
    preflight::server_capacity() * 95 / 100
}

/// Runs one variant; returns its record's directory and whether it is
/// complete.
pub fn run_one(
    suite: &Suite,
    name: &str,
    variant: Option<&Variant>,
    a: &Args,
    live: &dashboard::State,
    side: &Side,
) -> Result<(PathBuf, bool), String> {
    let mut plan = RunPlan::resolve(suite, name, variant, a, connections_per_process())?;
    announce(&plan, live);
    // Checked before anything starts: targets exist, restarts follow kills.
    let mut faults = faults::Plan::new(
        suite.faults.clone(),
        plan.processes,
        plan.bus,
        plan.shared_port,
    )?;
    let machine = ready_machine(&plan, suite, a)?;
    let netns = start::namespace(&plan, suite)?;
    // An engine or host that does not answer is one line, before anything
    // is written.
    let placement = Placement::new(a, suite, plan.bus)?;
    let dir = record_dir::choose(name, variant, &plan.runs_on, a.out.as_deref(), side);
    let tmp = record_dir::begin(&dir)?;
    placement.keep_logs_in(&tmp);
    record::write_json(&tmp.join(record::PREFLIGHT), &machine.checks)?;
    let mut started = start::processes(&mut plan, side, placement, netns)?;
    let inputs = start::Inputs {
        suite,
        args: a,
        side,
        tuning: &machine.tuning,
        busy_before: machine.busy_before,
    };
    let (load_file, launch_file) = start::write_inputs(&mut plan, &started, &inputs, &tmp)?;
    let load_dir = tmp.join(record::LOADGEN_DIR);
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
    // The servers, Redis, the placement's containers or hosts, then the
    // namespace, in that order (`Started`'s fields).
    drop(started);
    let summary = judge(&plan, suite, a, &tmp, watched, &mut faults)?;
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
/// passed, and a quiet machine (how busy it was is recorded).
fn ready_machine(plan: &RunPlan, suite: &Suite, a: &Args) -> Result<Machine, String> {
    if plan.bus && plan.runs_on == super::RunsOn::Local {
        crate::setup::ensure(&[crate::setup::REDIS])?;
    }
    let (tuning, tune_errors) = tuning::run(&suite.tuning, a.tune);
    if !tune_errors.is_empty() {
        return Err(format!(
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

/// Reads what the load generator wrote, judges the run and writes the
/// server samples and the summary into the partial record `tmp`.
fn judge(
    plan: &RunPlan,
    suite: &Suite,
    a: &Args,
    tmp: &Path,
    watched: watch::Watched,
    faults: &mut faults::Plan,
) -> Result<record::BenchSummary, String> {
    rtbench_record::series::write_csv(&tmp.join(record::SERVER_CSV), &watched.samples)?;
    let load_dir = tmp.join(record::LOADGEN_DIR);
    let load_summary = read_load_summary(&load_dir).map_err(|e| {
        format!(
            "the load generator left no record ({}): {e}; see {}",
            watched.loadgen_exit,
            partial_dir(&load_dir).display()
        )
    })?;
    let rows = if faults.done.is_empty() {
        Vec::new()
    } else {
        rtbench_record::series::read_csv(&load_dir.join("timeseries.csv")).unwrap_or_default()
    };
    let roofline =
        rtbench_record::roofline::newest(&crate::root().join("results"), &crate::record::host_id());
    let summary = verdict::judge(
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
    record::write_json(&tmp.join(record::SUMMARY), &summary)?;
    Ok(summary)
}

//! What a record says about where and how it was made (`environment.json`):
//! the machine, its limits and sysctls, the tuning, the builds and the
//! versions; written before the load starts, so a run that dies mid-way
//! still says what it ran on.

use std::process::Command;

use crate::subject::Subject;
use crate::{preflight, root, tuning};
use rtbench_record::Environment;

use super::args::Args;
use super::placement::Side;

pub fn of_run(
    tuning: &std::collections::BTreeMap<String, tuning::Setting>,
    a: &Args,
    server_args: &[String],
    subject: &Subject,
    profile: &std::collections::BTreeMap<String, String>,
    processes: u64,
    side: &Side,
) -> Environment {
    let cmd = |c: &str, args: &[&str]| {
        Command::new(c)
            .args(args)
            .current_dir(root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mut sysctls: std::collections::BTreeMap<String, Option<String>> = [
        "fs.file-max",
        "fs.nr_open",
        "net.core.somaxconn",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.netfilter.nf_conntrack_max",
    ]
    .iter()
    .map(|k| (k.to_string(), tuning::read(k)))
    .collect();
    for k in profile.keys() {
        sysctls.insert(k.clone(), tuning::read(k));
    }
    let (nofile_soft, nofile_hard) = rtbench_sys::limits::open_files().unwrap_or((0, 0));
    Environment {
        format_version: rtbench_record::FORMAT_VERSION,
        host: crate::record::host_id(),
        kernel: rtbench_sys::host::kernel_release().unwrap_or_default(),
        cpu_model: rtbench_sys::host::cpu_model().unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_kib: preflight::meminfo("MemTotal").unwrap_or(0),
        nofile_soft,
        nofile_hard,
        sysctls,
        tuning: tuning.clone(),
        tuning_applied: a.tune,
        rustc: cmd("rustc", &["--version"]),
        git_commit: side
            .commit
            .clone()
            .unwrap_or_else(|| cmd("git", &["rev-parse", "HEAD"])),
        // A versus side is built from a clean worktree of its commit. Files
        // git does not track (records being written, say) build nothing: a
        // tree is dirty when a tracked file differs from the commit.
        git_dirty: side.commit.is_none()
            && !cmd("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        server_version: if subject.is_rtbench() {
            cmd(side.server_bin.to_str().unwrap_or(""), &["--version"])
        } else {
            subject.label()
        },
        server_args: server_args.to_vec(),
        server_processes: processes,
        loadgen_version: cmd(
            root()
                .join("target/release/rtbench-loadgen")
                .to_str()
                .unwrap_or(""),
            &["--version"],
        ),
        overrides: a.overrides(),
        deployment: Default::default(),
        network_namespace: None,
        roofline: None,
        machine_busy_before_pct: None,
        server_niceness: None,
    }
}

//! The kernel's OOM killer, named. A process killed for memory ends like
//! any other SIGKILL, so a run that ran its machine (or a container its
//! limit) out of memory would otherwise say only `signal 9`. The kernel
//! says more in its log: `Out of memory: Killed process PID (NAME) ...`, or
//! `Memory cgroup out of memory: ...` for a cgroup's limit (a container's).
//! `Watch` reads that log (`/dev/kmsg`) from the run's start, and
//! `/proc/vmstat`'s `oom_kill` count, which also covers a log it cannot
//! read; a container's end is also what its engine says (`OOMKilled`).

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use rtbench_record::{ExitCause, ProcessExit};

/// An OOM kill the kernel logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKill {
    pub pid: u32,
    /// The process's command name, as the kernel has it.
    pub name: String,
    /// A memory cgroup's limit (a container's), not the machine's memory.
    pub cgroup: bool,
}

impl OomKill {
    /// What the record says of it, after the exit status.
    pub fn describe(&self) -> String {
        let why = if self.cgroup {
            "its memory cgroup's limit"
        } else {
            "the machine was out of memory"
        };
        format!("killed by the kernel's OOM killer ({why})")
    }
}

/// The kernel's OOM kills since the run began.
pub struct Watch {
    /// `/dev/kmsg` at the end of the log as it was when the run began, or
    /// why it could not be read.
    kmsg: anyhow::Result<std::fs::File>,
    oom_kills_before: Option<u64>,
    kills: Vec<OomKill>,
}

impl Watch {
    /// Begins watching: only what the kernel logs from now on counts.
    pub fn start() -> Watch {
        let kmsg = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .and_then(|mut f| f.seek(SeekFrom::End(0)).map(|_| f))
            .map_err(|e| anyhow::anyhow!("/dev/kmsg: {e:#}"));
        Watch {
            kmsg,
            oom_kills_before: oom_kill_count(),
            kills: Vec::new(),
        }
    }

    /// Every OOM kill logged since the start.
    pub fn kills(&mut self) -> &[OomKill] {
        if let Ok(f) = &mut self.kmsg {
            // One record per read; EAGAIN: none left. EPIPE: records were
            // overwritten before they were read, the next read goes on.
            let mut buf = vec![0u8; 8192];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => self
                        .kills
                        .extend(parse_record(&String::from_utf8_lossy(&buf[..n]))),
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        &self.kills
    }

    /// The OOM kill of `pid`, if the kernel logged one.
    pub fn of(&mut self, pid: u32) -> Option<OomKill> {
        if pid == 0 {
            return None;
        }
        self.kills().iter().find(|k| k.pid == pid).cloned()
    }

    /// Names every exit the OOM killer caused (`oom_kill` of its pid
    /// logged, or `engine_says` for a process in a container); then says
    /// on stderr what else it killed during the run.
    pub fn name(
        &mut self,
        exits: &mut [ProcessExit],
        engine_says: impl Fn(&ProcessExit) -> Option<OomKill>,
    ) {
        for e in exits.iter_mut() {
            if e.cause.is_some() {
                continue;
            }
            if let Some(k) = self.of(e.pid).or_else(|| engine_says(e)) {
                e.cause = Some(ExitCause::OomKiller);
                e.status = format!("{}: {}", e.status, k.describe());
                // A worker's container: its process is this machine's.
                if e.pid == 0 {
                    e.pid = k.pid;
                }
            }
        }
        let named: Vec<u32> = exits.iter().map(|e| e.pid).collect();
        for k in self.kills().iter().filter(|k| !named.contains(&k.pid)) {
            eprintln!(
                "xtask: during the run the kernel's OOM killer killed {} (pid {}), not a process of the run: the machine was short of memory",
                k.name, k.pid
            );
        }
        let counted = oom_kill_count()
            .zip(self.oom_kills_before)
            .map_or(0, |(now, before)| now.saturating_sub(before));
        if counted as usize > self.kills.len() {
            eprintln!(
                "xtask: the kernel's OOM killer killed {counted} process(es) during the run (/proc/vmstat oom_kill), {} of them named here{}",
                self.kills.len(),
                self.kmsg
                    .as_ref()
                    .err()
                    .map_or(String::new(), |e| format!(" ({e:#})"))
            );
        }
    }
}

/// `/proc/vmstat`'s `oom_kill`: the OOM killer's kills since boot.
fn oom_kill_count() -> Option<u64> {
    rtbench_sys::host::oom_kills().ok()
}

/// The OOM kill a `/dev/kmsg` record states, if it states one:
/// `PRI,SEQ,TIME,FLAGS;MESSAGE` then continuation lines.
fn parse_record(record: &str) -> Option<OomKill> {
    let message = record.split_once(';')?.1.lines().next()?;
    let (why, rest) = message.split_once(": Killed process ")?;
    let (pid, rest) = rest.split_once(" (")?;
    // A command name may hold `)`: the last `) ` before the figures ends it.
    let name = rest.rsplit_once(") ").map_or(rest, |(n, _)| n);
    Some(OomKill {
        pid: pid.trim().parse().ok()?,
        name: name.to_string(),
        cgroup: why.starts_with("Memory cgroup"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_oom_lines_are_read_and_others_are_not() {
        let machine = "3,1045,123456789,-;Out of memory: Killed process 4321 (rtbench-server) total-vm:123456kB, anon-rss:100000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:0\n SUBSYSTEM=...\n";
        assert_eq!(
            parse_record(machine),
            Some(OomKill {
                pid: 4321,
                name: "rtbench-server".into(),
                cgroup: false
            })
        );
        let cgroup = "3,7,99,-;Memory cgroup out of memory: Killed process 77 (rtbench-loadgen) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0";
        let k = parse_record(cgroup).unwrap();
        assert_eq!(
            (k.pid, k.name.as_str(), k.cgroup),
            (77, "rtbench-loadgen", true)
        );
        assert!(k.describe().contains("memory cgroup's limit"));
        for other in [
            "6,1,2,-;Linux version 6.18",
            "4,9,9,-;oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=5,uid=0",
            "no separator at all",
            "3,1,1,-;Out of memory: Killed process x (y) total-vm:1kB",
        ] {
            assert_eq!(parse_record(other), None, "{other}");
        }
    }
}

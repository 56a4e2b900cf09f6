//! The open-files limit: every connection is a descriptor, so it caps the
//! connections one process holds. The server, the load generator (controller
//! and workers), the roofline's sides and the servers the xtask starts all
//! raise their soft limit to the hard one first, the same way.

use std::io;

use rlimit::Resource;

use crate::{Error, Result};

/// RLIMIT_NOFILE before and after raising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// The open-files limit now: (soft, hard).
pub fn open_files() -> Result<(u64, u64)> {
    Resource::NOFILE.get().map_err(|error| Error::Call {
        call: "getrlimit(RLIMIT_NOFILE)",
        error,
    })
}

/// Raises the soft open-files limit to the hard one (always permitted).
pub fn raise_open_files() -> Result<OpenFiles> {
    let (soft_before, hard) = open_files()?;
    Resource::NOFILE
        .set(hard, hard)
        .map_err(|error| Error::Call {
            call: "setrlimit(RLIMIT_NOFILE)",
            error,
        })?;
    Ok(OpenFiles {
        soft_before,
        soft: hard,
        hard,
    })
}

/// `raise_open_files` for a child between fork and exec
/// (`CommandExt::pre_exec`): two system calls, nothing allocated, the OS's
/// error as it came, which fails the spawn.
pub fn raise_open_files_after_fork() -> io::Result<()> {
    let (_, hard) = Resource::NOFILE.get()?;
    Resource::NOFILE.set(hard, hard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// The limit is the process's: one test at a time changes it.
    static LIMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Lowers the soft limit, so raising it has something to do.
    fn lower() -> u64 {
        let (_, hard) = open_files().unwrap();
        let lowered = (hard / 2).max(64);
        Resource::NOFILE.set(lowered, hard).unwrap();
        lowered
    }

    #[test]
    fn raising_open_files_reaches_the_hard_limit() {
        let _one = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
        let lowered = lower();
        let l = raise_open_files().unwrap();
        let (soft_now, hard_now) = open_files().unwrap();
        assert_eq!(l.soft_before, lowered);
        assert_eq!((soft_now, l.soft, l.hard), (hard_now, hard_now, hard_now));
    }

    #[test]
    fn a_child_is_raised_before_it_runs() {
        let _one = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
        let lowered = lower();
        let ulimit = |raise: bool| {
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", "ulimit -n"]);
            if raise {
                // SAFETY: raise_open_files_after_fork allocates nothing.
                unsafe { cmd.pre_exec(raise_open_files_after_fork) };
            }
            let out = cmd.output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        assert_eq!(ulimit(false), lowered.to_string());
        let (_, hard) = open_files().unwrap();
        assert_eq!(ulimit(true), hard.to_string());
        raise_open_files().unwrap();
    }
}

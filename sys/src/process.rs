//! A process as the kernel accounts for it: CPU time, resident memory, its
//! line in `/proc/<pid>/stat` (parent, start time, CPU ticks), niceness,
//! and which processes there are. The server reports its own figures on
//! `/metrics`, a load generator worker its own in each tick, the xtask and
//! the roofline those of the processes they started: all read here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Result, procfs};

/// Which process: this one (`/proc/self`), or one by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Current,
    Pid(u32),
}

impl Process {
    /// Its directory under /proc.
    pub fn dir(self) -> PathBuf {
        match self {
            Process::Current => PathBuf::from("/proc/self"),
            Process::Pid(pid) => PathBuf::from(format!("/proc/{pid}")),
        }
    }
}

/// CPU time a process has used, as `getrusage` counts it (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    /// User + system, each in whole milliseconds, summed (the server's
    /// `rtbench_process_cpu_milliseconds_total`).
    pub fn millis(&self) -> u64 {
        (self.user.as_millis() + self.system.as_millis()) as u64
    }

    /// User + system in seconds, to the microsecond.
    pub fn seconds(&self) -> f64 {
        let s = |d: Duration| d.as_secs() as f64 + d.subsec_micros() as f64 / 1e6;
        s(self.user) + s(self.system)
    }
}

/// This process's CPU time, from `getrusage(RUSAGE_SELF)`.
pub fn cpu_time() -> Result<CpuTime> {
    // SAFETY: rusage is plain integers, so all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the one we own.
    syscall!(getrusage(libc::RUSAGE_SELF, &mut usage))?;
    let duration = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(CpuTime {
        user: duration(usage.ru_utime),
        system: duration(usage.ru_stime),
    })
}

/// The size of a memory page in bytes.
pub fn page_size() -> Result<u64> {
    // SAFETY: sysconf reads a constant; no memory involved.
    Ok(syscall!(sysconf(libc::_SC_PAGESIZE))? as u64)
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s times.
pub fn clock_ticks_per_second() -> Result<u64> {
    // SAFETY: sysconf reads a constant; no memory involved.
    Ok(syscall!(sysconf(libc::_SC_CLK_TCK))? as u64)
}

/// A process's resident set size in bytes: `statm`'s second field (pages).
/// The same figure as `VmRSS` in `status`, from a shorter file.
pub fn rss_bytes(p: Process) -> Result<u64> {
    let path = p.dir().join("statm");
    let pages: u64 = procfs::field(&path, &procfs::read(&path)?, 1, "resident pages")?;
    Ok(pages * page_size()?)
}

/// A process's highest resident set size so far, in KiB (`VmHWM`).
pub fn peak_rss_kib(p: Process) -> Result<u64> {
    let path = p.dir().join("status");
    procfs::named_value(&path, &procfs::read(&path)?, "VmHWM")
}

/// A process's line in `/proc/<pid>/stat`, the fields rtbench reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// The command name (at most 15 bytes; it may hold spaces and `)`).
    pub comm: String,
    pub ppid: u32,
    /// CPU time in user and kernel mode, in clock ticks.
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    /// Its niceness, -20 (first served) to 19.
    pub nice: i32,
    /// When it started, in clock ticks after boot: with the pid, names one
    /// process even after the pid is reused.
    pub start_ticks: u64,
}

impl Stat {
    pub fn read(p: Process) -> Result<Stat> {
        let path = p.dir().join("stat");
        Stat::parse(&path, &procfs::read(&path)?)
    }

    /// `pid (comm) state ppid ...`, read at `path`. The command name may hold
    /// anything, `)` included: the fields start after the last `)`.
    pub fn parse(path: &Path, text: &str) -> Result<Stat> {
        let (open, close) = text
            .find(" (")
            .zip(text.rfind(')'))
            .filter(|(o, c)| o < c)
            .ok_or_else(|| Error::format(path, "no parenthesised command name"))?;
        // Fields from 3 (state) on: the man page's field n is at n - 3.
        let rest = &text[close + 1..];
        Ok(Stat {
            pid: procfs::field(path, &text[..open], 0, "pid")?,
            comm: text[open + 2..close].to_string(),
            ppid: procfs::field(path, rest, 4 - 3, "ppid")?,
            utime_ticks: procfs::field(path, rest, 14 - 3, "utime")?,
            stime_ticks: procfs::field(path, rest, 15 - 3, "stime")?,
            nice: procfs::field(path, rest, 19 - 3, "nice")?,
            start_ticks: procfs::field(path, rest, 22 - 3, "starttime")?,
        })
    }
}

/// A process's CPU time (user + system) in seconds, from its `stat`.
pub fn cpu_seconds(p: Process) -> Result<f64> {
    let s = Stat::read(p)?;
    Ok((s.utime_ticks as f64 + s.stime_ticks as f64) / clock_ticks_per_second()? as f64)
}

/// Every process's pid, as /proc lists them now.
pub fn pids() -> Result<Vec<u32>> {
    let proc = Path::new("/proc");
    let read_error = |error| Error::Read {
        path: proc.to_path_buf(),
        error,
    };
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(proc).map_err(read_error)? {
        if let Ok(pid) = entry
            .map_err(read_error)?
            .file_name()
            .to_string_lossy()
            .parse()
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// How many descriptors a process holds open: the entries of
/// `/proc/<pid>/fd` (a soak tracks them for leaks).
pub fn open_fds(p: Process) -> Result<u64> {
    let path = p.dir().join("fd");
    // Linux 6.2 and later give the count as the directory's size, without
    // listing it: a sampler reading a 20,000-descriptor process every second
    // spent a few percent of a core on the listing.
    if let Ok(m) = std::fs::metadata(&path)
        && m.len() > 0
    {
        return Ok(m.len());
    }
    let dir = std::fs::read_dir(&path).map_err(|error| Error::Read {
        path: path.clone(),
        error,
    })?;
    Ok(dir.count() as u64)
}

/// `root` and every process below it (children, their children, ...), as
/// /proc lists them now; processes that end meanwhile are left out.
pub fn with_descendants(root: u32) -> Result<Vec<u32>> {
    let parents: Vec<(u32, u32)> = pids()?
        .into_iter()
        .filter_map(|pid| Stat::read(Process::Pid(pid)).ok().map(|s| (pid, s.ppid)))
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    Ok(tree)
}

/// The executable a process runs (`/proc/<pid>/exe`).
pub fn exe(p: Process) -> Result<PathBuf> {
    let path = p.dir().join("exe");
    std::fs::read_link(&path).map_err(|error| Error::Read { path, error })
}

/// A process's command line, argument by argument (empty for a zombie).
pub fn cmdline(p: Process) -> Result<Vec<String>> {
    let path = p.dir().join("cmdline");
    let bytes = std::fs::read(&path).map_err(|error| Error::Read { path, error })?;
    Ok(bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect())
}

/// Whether a process exists (its /proc directory does; a zombie does too).
pub fn exists(pid: u32) -> bool {
    Process::Pid(pid).dir().exists()
}

/// This process's pid namespace, as the kernel names it (`pid:[4026531836]`).
pub fn pid_namespace() -> Result<String> {
    let path = Process::Current.dir().join("ns/pid");
    std::fs::read_link(&path)
        .map(|p| p.display().to_string())
        .map_err(|error| Error::Read { path, error })
}

/// A signal one process of a run sends another (a fault plan's, a test's,
/// Ctrl-C forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    Kill,
    Stop,
    Continue,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Continue => libc::SIGCONT,
        }
    }
}

/// Sends `signal` to process `pid` (`kill(2)`); an error names the call
/// (`ESRCH`: gone).
pub fn signal(pid: u32, signal: Signal) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| Error::Call {
        call: "kill",
        error: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: kill takes no memory; a pid of 0 or below would signal a
    // group, and no pid_t from a u32 above 0 is one.
    syscall!(kill(pid, signal.number()))?;
    Ok(())
}

/// Sets this thread's niceness (`setpriority(PRIO_PROCESS, 0)`: on Linux
/// each thread has its own, and threads started later inherit it); only
/// root may lower it.
pub fn set_niceness(nice: i32) -> Result<()> {
    // SAFETY: setpriority on this process; no memory involved.
    syscall!(setpriority(libc::PRIO_PROCESS, 0, nice))?;
    Ok(())
}

/// `set_niceness` for a child between fork and exec
/// (`CommandExt::pre_exec`): one system call, nothing allocated. A refusal
/// (not root) is no error: the child keeps its parent's niceness, which
/// whoever reads it back sees.
pub fn set_niceness_after_fork(nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority on the calling process; no memory involved.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    Ok(())
}

/// This thread's niceness (`getpriority`, whose -1 may be a niceness:
/// errno tells them apart).
pub fn niceness() -> Result<i32> {
    // SAFETY: errno is this thread's; clearing it is how getpriority's
    // failure is told from a niceness of -1.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: getpriority on this process; no memory involved.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let error = std::io::Error::last_os_error();
    if nice == -1 && error.raw_os_error().is_some_and(|e| e != 0) {
        return Err(Error::Call {
            call: "getpriority",
            error,
        });
    }
    Ok(nice)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_signal_reaches_a_child_and_a_gone_pid_is_an_error() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        super::signal(child.id(), super::Signal::Terminate).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        let e = super::signal(u32::MAX, super::Signal::Kill).unwrap_err();
        assert!(e.to_string().contains("kill"), "{e}");
    }

    use super::*;

    #[test]
    fn descriptors_and_descendants_are_counted() {
        let before = open_fds(Process::Current).unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(open_fds(Process::Current).unwrap(), before + 1);
        drop(file);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let tree = with_descendants(std::process::id()).unwrap();
        assert_eq!(tree[0], std::process::id());
        assert!(tree.contains(&child.id()), "{tree:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        let line = "4242 (a) b) c) S 17 4242 4242 0 -1 4194560 120 0 0 0 \
                    250 31 0 0 15 -5 1 0 987654 1000 200 18446744073709551615\n";
        let s = Stat::parse(Path::new("/proc/4242/stat"), line).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 4242,
                comm: "a) b) c".into(),
                ppid: 17,
                utime_ticks: 250,
                stime_ticks: 31,
                nice: -5,
                start_ticks: 987_654,
            }
        );
        let e = Stat::parse(Path::new("/proc/1/stat"), "1 (init) S 0 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/proc/1/stat: field 12 (utime) is missing or not a number"
        );
        let e = Stat::parse(Path::new("/proc/1/stat"), "garbage").unwrap_err();
        assert_eq!(e.to_string(), "/proc/1/stat: no parenthesised command name");
    }

    #[test]
    fn this_process_reads_as_itself() {
        let by_pid = Stat::read(Process::Pid(std::process::id())).unwrap();
        let own = Stat::read(Process::Current).unwrap();
        assert_eq!(by_pid.pid, std::process::id());
        assert_eq!(by_pid.ppid, std::os::unix::process::parent_id());
        assert_eq!((own.pid, own.start_ticks), (by_pid.pid, by_pid.start_ticks));
        assert!(pids().unwrap().contains(&std::process::id()));
        assert_eq!(
            exe(Process::Current).unwrap(),
            std::env::current_exe().unwrap()
        );
        let args: Vec<String> = std::env::args().collect();
        assert_eq!(cmdline(Process::Pid(std::process::id())).unwrap(), args);
    }

    #[test]
    fn a_process_that_is_gone_is_not_found() {
        // Past the largest pid_max Linux allows.
        let gone = Process::Pid(4_194_305);
        for e in [
            Stat::read(gone).unwrap_err(),
            rss_bytes(gone).unwrap_err(),
            cpu_seconds(gone).unwrap_err(),
        ] {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
            assert!(e.to_string().starts_with("/proc/4194305/"), "{e}");
        }
        assert!(!exists(4_194_305));
        assert!(exists(std::process::id()));
    }

    #[test]
    fn resident_memory_grows_by_what_is_touched() {
        let before = rss_bytes(Process::Current).unwrap();
        let block = vec![1u8; 64 << 20];
        let with = rss_bytes(Process::Current).unwrap();
        std::hint::black_box(&block);
        // 64 MiB touched; other tests' threads may add a little, or give
        // back a little meanwhile (seen: 63 on a loaded machine).
        let grown = with.saturating_sub(before) >> 20;
        assert!((60..80).contains(&grown), "grew by {grown} MiB");
        assert!(peak_rss_kib(Process::Current).unwrap() >= with / 1024);
        assert_eq!(
            rss_bytes(Process::Current).unwrap() % page_size().unwrap(),
            0
        );
    }

    /// This process's CPU time by another clock (CLOCK_PROCESS_CPUTIME_ID).
    fn process_clock() -> f64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into the one we own.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) },
            0
        );
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    }

    #[test]
    fn cpu_time_counts_work_done() {
        let before = cpu_time().unwrap();
        let clock = process_clock();
        let mut x = 0u64;
        while process_clock() - clock < 0.2 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spent = cpu_time().unwrap().seconds() - before.seconds();
        // Other tests' threads may have worked meanwhile too.
        assert!(spent >= 0.199, "{spent}");
        // Whole ticks (10 ms) of user and of system time: two ticks less.
        let by_stat = cpu_seconds(Process::Current).unwrap();
        assert!(by_stat >= 0.18, "{by_stat}");
    }

    #[test]
    fn cpu_time_rounds_each_part_as_the_figures_always_have() {
        let t = CpuTime {
            user: Duration::from_micros(1_001_500),
            system: Duration::from_micros(2_500),
        };
        // Whole milliseconds of each, summed: 1001 + 2, not 1004.
        assert_eq!(t.millis(), 1003);
        // Seconds plus microseconds of each, summed.
        assert_eq!(t.seconds(), (1.0 + 0.0015) + (0.0 + 0.0025));
    }

    #[test]
    fn niceness_reads_back_what_was_set() {
        // On Linux a thread has its own niceness: raising it (allowed to
        // anyone) on a thread of its own leaves the other tests' alone.
        std::thread::spawn(|| {
            let before = niceness().unwrap();
            set_niceness(before + 3).unwrap();
            assert_eq!(niceness().unwrap(), before + 3);
        })
        .join()
        .unwrap();
    }
}

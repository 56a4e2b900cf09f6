//! A network namespace sized for the run: `bench --tune` runs the server
//! processes, Redis and the load generator inside one of their own.
//!
//! Why: every TCP packet looks its socket up in the kernel's established
//! hash. The host's table is sized at boot (262,144 buckets here); at a
//! million connections, both ends, that is two million sockets in chains of
//! eight, and `__inet_lookup_established` alone took 16% of the CPU. Since
//! Linux 6.1 a new namespace gets a table of its own, sized by
//! `net.ipv4.tcp_child_ehash_entries` as it stood when the namespace was
//! created: about twice the run's sockets, a power of two. A fresh namespace
//! also has no netfilter rules, so no connection tracking.
//!
//! A new namespace copies its TCP settings (buffer sizes among them) from the
//! host as they stand; `--tune` has by then made the host its own settings
//! plus the suite's (`tuning.rs`), and the suite's `net.*` values are written
//! inside as well, so a run never inherits an earlier suite's tuning.
//!
//! Processes enter it with `setns` before they exec (`enter`); the xtask
//! itself stays on the host (its live page too) and reaches the servers from
//! a short-lived thread that enters the namespace (`connect`).

use anyhow::Context as _;

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::tuning;

const CHILD_EHASH: &str = "net.ipv4.tcp_child_ehash_entries";
/// The kernel's ceiling for a namespace's table.
const MAX_BUCKETS: u64 = 1 << 24;

/// The run's namespace; removed when dropped.
pub struct Namespace {
    pub name: String,
    file: Arc<File>,
    /// Buckets of its established-socket hash, as the kernel reports them.
    pub ehash_buckets: u64,
}

/// The namespace processes of this run enter, while there is one.
static ACTIVE: Mutex<Option<Arc<File>>> = Mutex::new(None);

fn active() -> Option<Arc<File>> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Buckets for a run of `connections` (both ends on this machine): twice
/// the sockets, a power of two, within the kernel's limits.
pub fn buckets_for(connections: u64) -> u64 {
    (4 * connections)
        .next_power_of_two()
        .clamp(1 << 16, MAX_BUCKETS)
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `ip` (iproute2): {e:#}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(anyhow::anyhow!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Namespace {
    /// Creates `rtbench-<pid>` with an established hash for `connections`,
    /// loopback up, and the `net.*` settings of `profile` applied inside
    /// (those the namespace has: others stay the host's).
    pub fn create(
        connections: u64,
        profile: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Namespace> {
        remove_stale();
        let name = format!("rtbench-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        let want = buckets_for(connections);
        let before = tuning::read(CHILD_EHASH).with_context(|| {
            format!("{CHILD_EHASH} does not exist: this kernel (before 6.1) cannot size a namespace's socket hash; run without --tune's namespace: --host-net")
        })?;
        tuning::write(CHILD_EHASH, &want.to_string())?;
        let made = ip(&["netns", "add", &name]);
        // Only namespaces created in between take the size: put it back.
        let _ = tuning::write(CHILD_EHASH, &before);
        made.map_err(|e| {
            anyhow::anyhow!("{e:#}: network namespaces are not permitted here; run with --host-net (the host's socket hash, {} buckets)", tuning::read("net.ipv4.tcp_ehash_entries").unwrap_or_default())
        })?;
        let file = File::open(format!("/run/netns/{name}"))
            .map_err(|e| anyhow::anyhow!("/run/netns/{name}: {e:#}"));
        let ns = Namespace {
            name: name.clone(),
            file: Arc::new(file?),
            ehash_buckets: 0,
        };
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        let mut ns = ns;
        for (key, value) in profile {
            if key.starts_with("net.") && !key.starts_with("net.netfilter.") {
                let path = rtbench_sys::sysctl::path(key);
                let path = path.display();
                // Visible inside: the namespace's own; absent: the host's only.
                let _ = ns.run_inside(&[
                    "sh",
                    "-c",
                    &format!("[ ! -e {path} ] || echo '{value}' > {path}"),
                ]);
            }
        }
        ns.ehash_buckets = ns
            .run_inside(&[
                "cat",
                &rtbench_sys::sysctl::path("net.ipv4.tcp_ehash_entries").to_string_lossy(),
            ])?
            .trim()
            .trim_start_matches('-')
            .parse()
            .map_err(|_| anyhow::Error::msg("cannot read the namespace's tcp_ehash_entries"))?;
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(ns.file.clone());
        Ok(ns)
    }

    fn run_inside(&self, argv: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(argv);
        ip(&args)
    }

    /// A `net.*` sysctl as the processes inside see it.
    pub fn read(&self, key: &str) -> Option<String> {
        let path = rtbench_sys::sysctl::path(key);
        self.run_inside(&["cat", &path.to_string_lossy()])
            .ok()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // A process of the run that is still exiting can keep the mount
        // busy for a moment: try again for up to two seconds.
        let mut last = Ok(String::new());
        for _ in 0..20 {
            last = ip(&["netns", "del", &self.name]);
            if last.is_ok() || !leftovers().contains(&self.name) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Err(e) = last {
            eprintln!(
                "xtask: could not remove network namespace {}: {e:#}; remove it with `ip netns del {}`",
                self.name, self.name
            );
        }
    }
}

/// Makes `cmd` start inside the run's namespace, if there is one.
pub fn enter(cmd: &mut Command) -> &mut Command {
    if let Some(file) = active() {
        let fd = file.as_raw_fd();
        // SAFETY: setns is async-signal-safe; `file` outlives the spawn (the
        // namespace is held open until the run ends).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

/// Connects to `addr` in the run's namespace (or here, without one).
pub fn connect(addr: &SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let Some(file) = active() else {
        return TcpStream::connect_timeout(addr, timeout);
    };
    let addr = *addr;
    std::thread::spawn(move || {
        // SAFETY: this thread moves into the namespace and then ends.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        TcpStream::connect_timeout(&addr, timeout)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("connect thread panicked")))
}

/// Whether this machine lets us make network namespaces (`ip` present, root).
pub fn available() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(anyhow::Error::msg("making a network namespace needs root"));
    }
    ip(&["netns", "list"]).map(|_| ())
}

/// Removes namespaces of runs whose xtask is gone (killed before it could
/// clean up): `rtbench-<pid>` with no such process.
pub fn remove_stale() {
    for name in leftovers() {
        let owner_alive = name
            .strip_prefix("rtbench-")
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(rtbench_sys::process::exists);
        if !owner_alive {
            eprintln!("xtask: removing network namespace {name}, left by a run that was killed");
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// Namespaces this tool made that are still there (a run killed hard).
pub fn leftovers() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("rtbench-"))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_twice_the_sockets_as_a_power_of_two() {
        assert_eq!(buckets_for(1_000_000), 4_194_304);
        assert_eq!(buckets_for(2_000_000), 8_388_608);
        assert_eq!(buckets_for(2_000), 65_536, "never below the floor");
        assert_eq!(
            buckets_for(10_000_000),
            1 << 24,
            "never above the kernel's ceiling"
        );
    }
}

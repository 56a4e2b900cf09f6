//! This worker's machine once a second, as a `HostSample` in its tick: one
//! worker per host samples it (`Plan::sample_host`), through the same
//! `rtbench-sys` readers the xtask's sampler reads the servers' machine with,
//! so the figures stand side by side.

use rtbench_record::series::HostSample;
use rtbench_sys::host::{self, Jiffies, NetNamespace};

/// Reads this machine once a second as a `HostSample`.
pub(super) struct HostSampler {
    last: Option<Jiffies>,
}

impl Default for HostSampler {
    fn default() -> HostSampler {
        HostSampler {
            last: host::cpu_jiffies().ok(),
        }
    }
}

impl HostSampler {
    /// Second `t_s`'s sample; `host` is left for the caller to name. A
    /// figure /proc does not give is 0, as the series has always had it.
    pub(super) fn sample(&mut self, t_s: u64) -> HostSample {
        let now = host::cpu_jiffies().ok();
        let cpu_pct = host::busy_pct(self.last, now);
        self.last = now;
        HostSample {
            t_s,
            host: String::new(),
            mem_used_kib: host::mem_used_kib().unwrap_or(0),
            cpu_pct: (cpu_pct * 10.0).round() / 10.0,
            load1: host::load1().unwrap_or(0.0),
            tcp_inuse: host::tcp_sockstat(NetNamespace::Current).map_or(0, |s| s.inuse),
        }
    }
}

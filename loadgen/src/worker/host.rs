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

/// `rtbench-loadgen sample-host`: this machine once a second, at each
/// second of CLOCK_REALTIME, as a `HostSample` JSON line on stdout whose
/// `t_s` is that second (Unix time): a machine of the run that holds no
/// worker (a swarm's server node) is sampled so, and the xtask puts its
/// lines beside the workers' in `hosts.csv`. Runs until stdout closes.
pub fn sample_every_second() -> Result<(), String> {
    use std::io::Write;
    let mut sampler = HostSampler::default();
    let mut out = std::io::stdout().lock();
    loop {
        let now = rtbench_protocol::time::now_ns();
        std::thread::sleep(std::time::Duration::from_nanos(
            1_000_000_000 - now % 1_000_000_000,
        ));
        let t_s = (rtbench_protocol::time::now_ns() + 500_000_000) / 1_000_000_000;
        let line = serde_json::to_string(&sampler.sample(t_s)).map_err(|e| e.to_string())?;
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
    }
}

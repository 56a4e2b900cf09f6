//! The 2021 original's figures, read from its published series (the
//! reference record's CSV files) and the setup its write-up states
//! (`ReferenceSetup`), by the same definitions as ours where the series
//! allow: memory per connection is the machine's growth over the
//! connections held. The front page's band and the page setting rtbench
//! beside the original both read them from here.

use crate::load::{Reference, ReferenceSetup};

#[derive(Debug, Clone, PartialEq)]
pub struct OriginalFigures {
    /// The most connections open in any sample.
    pub connections: f64,
    /// When the connections first reached the target (the samples' time, so
    /// to Tsung's 10 s); none if they never did.
    pub time_to_target_s: Option<f64>,
    /// The server machine's memory used, first and last sample (MiB).
    pub memory_start_mib: f64,
    pub memory_end_mib: f64,
    /// Its growth over the most connections held, in KiB.
    pub machine_kib_per_connection: f64,
    /// The server's CPU at the last sample (% of the whole server), when
    /// the connections were held, and the time of that sample.
    pub cpu_last_pct: f64,
    pub cpu_last_t_s: f64,
    /// The same in cores.
    pub cpu_last_cores: f64,
    pub machines: u32,
}

/// The original's figures, when its record has a setup and its series.
pub fn figures(r: &Reference) -> Option<OriginalFigures> {
    let setup: &ReferenceSetup = r.info.setup.as_ref()?;
    let connections = r.column(&setup.connections);
    let memory = r.column(&setup.memory_used_mib);
    let cpu = r.column(&setup.cpu_pct);
    let peak = connections.iter().map(|p| p.1).reduce(f64::max)?;
    let target = setup.target_connections as f64;
    let (&(_, memory_start_mib), &(_, memory_end_mib)) = (memory.first()?, memory.last()?);
    let &(cpu_last_t_s, cpu_last_pct) = cpu.last()?;
    Some(OriginalFigures {
        connections: peak,
        time_to_target_s: connections.iter().find(|p| p.1 >= target).map(|p| p.0),
        memory_start_mib,
        memory_end_mib,
        machine_kib_per_connection: (memory_end_mib - memory_start_mib) * 1024.0 / peak,
        cpu_last_pct,
        cpu_last_t_s,
        cpu_last_cores: cpu_last_pct * setup.server_cores as f64 / 100.0,
        machines: setup.server_machines + setup.load_machines,
    })
}

/// (connections open, memory used above the first sample in MiB) at each
/// time both series have a sample: the original's memory as it climbed.
pub fn memory_over_connections(r: &Reference) -> Vec<(f64, f64)> {
    let Some(setup) = r.info.setup.as_ref() else {
        return Vec::new();
    };
    let connections = r.column(&setup.connections);
    let memory = r.column(&setup.memory_used_mib);
    let Some(&(_, start)) = memory.first() else {
        return Vec::new();
    };
    connections
        .iter()
        .filter_map(|&(t, c)| {
            let m = memory.iter().find(|p| p.0 == t)?;
            Some((c, m.1 - start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed reference: the article's figures follow from its series.
    #[test]
    fn the_committed_originals_figures_follow_from_its_series() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
        let records = crate::load::load(&dir);
        let r = records
            .references
            .iter()
            .find(|r| r.info.setup.is_some())
            .expect("a reference with its setup");
        let f = figures(r).unwrap();
        assert_eq!(f.connections, 1_000_382.0);
        assert_eq!(f.time_to_target_s, Some(500.0));
        assert_eq!(f.machines, 17);
        assert_eq!(format!("{:.1}", f.cpu_last_pct), "7.4");
        assert_eq!(format!("{:.2}", f.cpu_last_cores), "2.36");
        assert_eq!(format!("{:.1}", f.machine_kib_per_connection), "16.1");
        let m = memory_over_connections(r);
        assert_eq!(m.first(), Some(&(7486.0, 0.0)));
        assert_eq!(m.len(), 53);
    }
}

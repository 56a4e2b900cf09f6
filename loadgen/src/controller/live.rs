//! `live.json` (`rtbench_record::live::LiveSecond`): the latest second and the self-check's warnings so far,
//! replaced whole each second while the run goes on, for the live page
//! (`cargo xtask bench` serves it). It is gone from the finished record:
//! the summary and the time series say everything it said.

use std::path::Path;

use rtbench_record::live::{LIVE_JSON, LiveSecond};
use rtbench_record::load::Row;
use rtbench_record::scenario::Scenario;

use super::merge::Merge;
use super::selfcheck;

/// The warnings kept between seconds.
#[derive(Default)]
pub(super) struct Live {
    /// Workers declared lost, as the live page says it.
    pub(super) lost: Vec<String>,
    /// The latest arrival lag so far (ms).
    lag_max_ms: f64,
}

impl Live {
    /// Writes the second `r` just completed (to a temporary file renamed
    /// into place, so a reader never sees half of it).
    pub(super) fn update(&mut self, dir: &Path, r: &Row, sc: &Scenario, merge: &Merge) {
        self.lag_max_ms = self.lag_max_ms.max(r.lag_max_ms);
        let mut warnings = self.lost.clone();
        warnings.extend(selfcheck::arrival_lag_warning(self.lag_max_ms));
        warnings.extend(selfcheck::cpu_reasons(&merge.saturated, None));
        let prev = merge.before_newest.as_ref();
        let per_s = |now: u64, before: Option<u64>| now.saturating_sub(before.unwrap_or(0));
        let live = LiveSecond {
            t: r.t,
            target: sc.total_arrivals(),
            open: r.open,
            connecting: r.connecting,
            attempted: r.attempted,
            connected: r.connected,
            failed: r.failed,
            closed_by_server: r.closed_by_server,
            deliveries: r.deliveries,
            deliveries_per_s: per_s(r.deliveries, prev.map(|p| p.deliveries)),
            received_bytes_per_s: per_s(r.bytes_in, prev.map(|p| p.bytes_in)),
            sent_bytes_per_s: per_s(r.bytes_out, prev.map(|p| p.bytes_out)),
            connect_p50_ms: r.connect.p50,
            connect_p99_ms: r.connect.p99,
            delivery_p50_ms: r.delivery.p50,
            delivery_p99_ms: r.delivery.p99,
            arrival_lag_max_ms: r.lag_max_ms,
            worker_cpu_max_pct: r.worker_cpu_max_pct,
            loadgen_rss_kib: r.rss_kib,
            warnings,
        };
        let Ok(text) = serde_json::to_string(&live) else {
            return;
        };
        let tmp = dir.join("live.json.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join(LIVE_JSON));
        }
    }
}

/// The run is over: the live file goes.
pub(super) fn remove(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(LIVE_JSON));
}

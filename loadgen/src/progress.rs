//! Live progress: indicatif bars on a terminal, one plain line a second otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use rtbench_record::load::Row;

pub enum Progress {
    Bar(ProgressBar),
    Lines,
}

impl Progress {
    pub fn new(target: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let bar = ProgressBar::new(target);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} open  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Progress::Bar(bar)
    }

    pub fn update(&mut self, r: &Row) {
        let msg = format!(
            "connecting {} failed {} closed {} | connect p99 {:.1} ms | deliveries {} p99 {:.1} ms | cpu {:.0}% lag {:.0} ms",
            r.connecting,
            r.failed,
            r.closed_by_server,
            r.connect.p99,
            r.deliveries,
            r.delivery.p99,
            r.worker_cpu_max_pct,
            r.lag_max_ms
        );
        match self {
            Progress::Bar(b) => {
                b.set_position(r.open);
                b.set_message(msg);
            }
            Progress::Lines => eprintln!("t={}s open={} {msg}", r.t, r.open),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish();
        }
    }
}

//! Writing the static site: every page is a tera template (in `templates/`,
//! compiled into the binary) filled from the records; charts are inline SVG,
//! so pages work from file:// and from any static host with no JavaScript.
//!
//! ```text
//! index.html                          every scenario, latest figures, history line
//! runs/<scenario>/<run>/index.html    one run: figures, charts, config, raw files (raw/)
//! scenarios/<scenario>/history.html   each metric over time, regressions marked
//! scenarios/<scenario>/compare.html   runs side by side, versus ratios, reference
//! reference/<name>/index.html         a published run rtbench did not make
//! micro.html                          criterion results, when present
//! ```
//!
//! Modules, by concern: `writer` (templates, shared context, files),
//! `runs` (a run's path, labels, headline runs) and `headline` (a run's
//! headline figures) are shared; each `*_page` module writes one kind of
//! page and imports only the shared ones, never another page.

mod compare_page;
mod headline;
mod history_page;
mod index_page;
mod micro_page;
mod reference_page;
mod run_page;
mod runs;
mod side_by_side_page;
mod writer;

use std::path::PathBuf;

use crate::load::Records;
use crate::regress::Thresholds;

pub use runs::{run_path, side_by_side};
pub use writer::Report;

pub struct Options {
    pub out: PathBuf,
    /// `target/criterion`, when criterion benchmarks have run.
    pub criterion: Option<PathBuf>,
    pub thresholds: Thresholds,
}

pub fn render(records: &Records, opts: &Options) -> Result<Report, String> {
    let mut site = writer::Site::new(&opts.out, records)?;
    for run in &records.runs {
        run_page::page(&mut site, run)?;
    }
    for scenario in records.scenarios() {
        history_page::page(&mut site, &scenario, &opts.thresholds)?;
        compare_page::page(&mut site, &scenario)?;
        side_by_side_page::page(&mut site, &scenario)?;
    }
    for r in &records.references {
        reference_page::page(&mut site, r)?;
    }
    micro_page::page(&mut site, opts.criterion.as_deref())?;
    index_page::page(&mut site, &opts.thresholds)?;
    Ok(site.report)
}

//! Writing the static site: every page is a tera template (in `templates/`,
//! compiled into the binary) filled from the records; charts are inline SVG,
//! so pages work from file:// and from any static host with no JavaScript.
//!
//! ```text
//! index.html                          the headline band, then a card per scenario
//! runs/<scenario>/<run>/index.html    one run: figures, charts, config, raw files
//!                                     (raw/ and raw.tar); its URL never changes
//! scenarios/<scenario>/index.html     each variant's headline run in full, every run
//! scenarios/<scenario>/history.html   each metric over time, regressions marked
//! scenarios/<scenario>/compare.html   runs side by side, versus ratios, reference
//! scenarios/<scenario>/sweep-<name>.html  a sweep: latency against offered load, the knee
//! reference/<name>/index.html         a published run rtbench did not make
//! reference/<name>/beside-rtbench.html  rtbench beside it, figure by figure
//! micro.html                          criterion results, when present
//! ```
//!
//! Modules, by concern: `writer` (templates, shared context, files, raw
//! copies; `tarball` writes the raw download), `runs` (a run's path,
//! labels, headline runs), `headline` (a run's headline figures),
//! `run_series` (series more than one page draws of a run), `sweeps` (a sweep's
//! page, knee and roofline), `band` (the
//! front page's headline band) and `cards` (a scenario's card) are shared;
//! each `*_page` module writes one kind of page and imports only the
//! shared ones, never another page.

use anyhow::Result;
mod band;
mod cards;
mod compare_page;
mod headline;
mod history_page;
mod index_page;
mod micro_page;
mod original_page;
mod reference_page;
mod run_page;
mod run_series;
mod runs;
mod scenario_page;
mod side_by_side_page;
mod sweep_page;
mod sweeps;
mod tarball;
mod writer;

use std::path::PathBuf;

use crate::load::Records;
use crate::regress::Thresholds;

pub use runs::ORIGINAL_PAGE;
pub use runs::{run_path, side_by_side};
pub use writer::{RAW_TAR, Report};

pub struct Options {
    pub out: PathBuf,
    /// The checkout rendering the site: its path, like every checkout a
    /// record was made in, is shown as `{root}`.
    pub checkout: PathBuf,
    /// `target/criterion`, when criterion benchmarks have run.
    pub criterion: Option<PathBuf>,
    pub thresholds: Thresholds,
}

pub fn render(records: &Records, opts: &Options) -> Result<Report> {
    let mut site = writer::Site::new(&opts.out, records, &opts.checkout)?;
    for run in &records.runs {
        run_page::page(&mut site, run)?;
    }
    for scenario in records.scenarios() {
        scenario_page::page(&mut site, &scenario)?;
        history_page::page(&mut site, &scenario, &opts.thresholds)?;
        compare_page::page(&mut site, &scenario)?;
        side_by_side_page::page(&mut site, &scenario)?;
    }
    for r in &records.sweeps {
        sweep_page::page(&mut site, r)?;
    }
    for r in &records.references {
        reference_page::page(&mut site, r)?;
        original_page::page(&mut site, r)?;
    }
    micro_page::page(&mut site, opts.criterion.as_deref())?;
    index_page::page(&mut site, &opts.thresholds)?;
    Ok(site.report)
}

//! `micro.html`: criterion's micro-benchmarks, when they have run.

use anyhow::Result;
use std::path::Path;

use serde_json::json;

use super::writer::Site;
use crate::micro;

pub(super) fn page(site: &mut Site, criterion: Option<&Path>) -> Result<()> {
    let (benches, problems) = criterion.map(micro::read).unwrap_or_default();
    site.report.warnings.extend(problems);
    let ctx = json!({
        "title": "Micro-benchmarks",
        "page_description": "Criterion micro-benchmarks of rtbench's server and load generator: median time per operation and its 95% interval.",
        "benches": benches,
        "dir": criterion.map(|p| p.display().to_string()),
    });
    site.write("micro.html", "micro.html", ctx)
}

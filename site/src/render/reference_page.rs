//! `reference/<name>/index.html`: a published run rtbench did not make,
//! its headline as published, its series drawn and its files copied.

use anyhow::Result;
use serde_json::json;

use super::writer::Site;
use crate::chart::{self, Series};
use crate::load::Reference;

pub(super) fn page(site: &mut Site, r: &Reference) -> Result<()> {
    let base = format!("reference/{}", r.name);
    let raw = site.copy_raw(&r.dir, &site.out.join(&base).join("raw"), &r.name)?;
    let mut charts = Vec::new();
    for (file, meaning) in &r.info.series {
        let Some(t) = r.table(file) else { continue };
        let series: Vec<Series> = t
            .columns
            .iter()
            .skip(1)
            .map(|c| Series::new(c.clone(), t.xy(&t.columns[0], c, |v| v)))
            .collect();
        charts.extend(site.chart(
            chart::lines(meaning, "s", "", &series),
            meaning,
            "no points",
        ));
    }
    let ctx = json!({
        "title": r.info.title,
        "page_description": format!("{}: a published run rtbench did not make, its series as published. {}", r.info.title, r.info.hardware),
        "info": r.info,
        "charts": charts,
        "raw": raw.files,
        "raw_tar": {"href": raw.tar.0, "size": raw.tar.1},
    });
    site.write(&format!("{base}/index.html"), "reference.html", ctx)
}

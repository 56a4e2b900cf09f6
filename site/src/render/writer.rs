//! The writing half of every page: the tera templates compiled in, the
//! context every page shares (its depth, the references, the run count),
//! charts that fail without failing their page, and the copy of a record's
//! raw files beside it. Pages fill a context; this puts it on disk.

use std::path::{Path, PathBuf};

use rtbench_record::metrics;
use serde_json::{Value, json};
use tera::{Context, Tera};

use crate::load::Records;

/// What a render produced, for the caller to report.
#[derive(Debug, Default)]
pub struct Report {
    pub pages: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("index.html", include_str!("../../templates/index.html")),
    ("run.html", include_str!("../../templates/run.html")),
    ("history.html", include_str!("../../templates/history.html")),
    ("compare.html", include_str!("../../templates/compare.html")),
    (
        "reference.html",
        include_str!("../../templates/reference.html"),
    ),
    ("micro.html", include_str!("../../templates/micro.html")),
    (
        "side-by-side.html",
        include_str!("../../templates/side-by-side.html"),
    ),
];
const STYLE: &str = include_str!("../../templates/style.css");

/// The output directory, the templates and what has been written so far.
pub struct Site<'a> {
    tera: Tera,
    pub out: &'a Path,
    pub records: &'a Records,
    pub report: Report,
}

impl<'a> Site<'a> {
    /// Compiles the templates and writes the style sheet into `out`.
    pub fn new(out: &'a Path, records: &'a Records) -> Result<Self, String> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES)
            .map_err(|e| format!("templates: {e:?}"))?;
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        std::fs::write(out.join("style.css"), STYLE)
            .map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(Site {
            tera,
            out,
            records,
            report: Report {
                pages: Vec::new(),
                warnings: records.warnings.clone(),
            },
        })
    }

    pub fn write(&mut self, rel: &str, template: &str, mut ctx: Value) -> Result<(), String> {
        let depth = rel.matches('/').count();
        ctx["root"] = json!("../".repeat(depth));
        ctx["references"] = json!(
            self.records
                .references
                .iter()
                .map(|r| json!({"name": r.name, "title": r.info.title}))
                .collect::<Vec<_>>()
        );
        ctx["run_count"] = json!(self.records.runs.len());
        let ctx = Context::from_value(ctx).map_err(|e| format!("{rel}: {e}"))?;
        let html = self
            .tera
            .render(template, &ctx)
            .map_err(|e| format!("{rel}: {}", chain(&e)))?;
        let path = self.out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&path, html).map_err(|e| format!("{}: {e}", path.display()))?;
        self.report.pages.push(path);
        Ok(())
    }

    /// A chart, or a warning when plotters refused (the page still renders).
    pub fn chart(
        &mut self,
        drawn: Result<Option<String>, String>,
        title: &str,
        empty: &str,
    ) -> Option<Value> {
        match drawn {
            Ok(Some(svg)) => Some(json!({"title": title, "svg": svg})),
            Ok(None) => Some(json!({"title": title, "empty": empty})),
            Err(e) => {
                self.report.warnings.push(format!("{title}: {e}"));
                None
            }
        }
    }
}

fn chain(e: &tera::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// Copies a record's files to `dest`, returning links (relative to the page
/// beside `dest`) with sizes.
pub fn copy_raw(src: &Path, dest: &Path) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            let path = e.path();
            if path.is_dir() {
                stack.push(r);
                continue;
            }
            let to = dest.join(&r);
            std::fs::create_dir_all(to.parent().expect("has a parent"))
                .map_err(|e| format!("{}: {e}", to.display()))?;
            std::fs::copy(&path, &to)
                .map_err(|e| format!("{} -> {}: {e}", path.display(), to.display()))?;
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            let name = r.to_string_lossy().into_owned();
            out.push(json!({"href": format!("raw/{name}"), "name": name, "size": metrics::group(size as i64)}));
        }
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

//! The writing half of every page: the tera templates compiled in, the
//! context every page shares (its depth, its title and description for
//! `<meta>` and Open Graph, the references), charts that fail without
//! failing their page, and the copy of a record's raw files beside it.
//! Everything written goes through `paths::Checkouts`: no page or raw file
//! shows the absolute path of a checkout. Pages fill a context; this puts
//! it on disk.

use anyhow::{Context, Result, anyhow};
use std::path::{Path, PathBuf};

use rtbench_record::metrics;
use serde_json::{Value, json};
use tera::Tera;

use super::tarball;
use crate::chart::Drawn;
use crate::load::Records;
use crate::paths::Checkouts;

/// What a render produced, for the caller to report.
#[derive(Debug, Default)]
pub struct Report {
    pub pages: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

const TEMPLATES: [(&str, &str); 12] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("index.html", include_str!("../../templates/index.html")),
    (
        "scenario.html",
        include_str!("../../templates/scenario.html"),
    ),
    ("run.html", include_str!("../../templates/run.html")),
    ("history.html", include_str!("../../templates/history.html")),
    ("compare.html", include_str!("../../templates/compare.html")),
    (
        "reference.html",
        include_str!("../../templates/reference.html"),
    ),
    (
        "original.html",
        include_str!("../../templates/original.html"),
    ),
    ("micro.html", include_str!("../../templates/micro.html")),
    ("sweep.html", include_str!("../../templates/sweep.html")),
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
    checkouts: Checkouts,
}

/// A run's raw files as the page links them.
pub struct Raw {
    /// Each file: href (relative to the page), name, size.
    pub files: Vec<Value>,
    /// All of them in one tar beside the page: (href, size).
    pub tar: (String, String),
}

impl<'a> Site<'a> {
    /// Compiles the templates and writes the style sheet into `out`;
    /// `checkout` is the one rendering, hidden like each record's own.
    pub fn new(out: &'a Path, records: &'a Records, checkout: &Path) -> Result<Self> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES)
            .map_err(|e| anyhow!("templates: {e:?}"))?;
        std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
        std::fs::write(out.join("style.css"), STYLE).with_context(|| out.display().to_string())?;
        let roots = records.runs.iter().filter_map(|r| r.checkout.clone());
        let checkouts = Checkouts::new(roots.chain([checkout.display().to_string()]));
        Ok(Site {
            tera,
            out,
            records,
            report: Report {
                pages: Vec::new(),
                warnings: records.warnings.clone(),
            },
            checkouts,
        })
    }

    /// Writes page `rel` from `template`. The context's `title` names the
    /// page; its `page_description` (else its `description`) describes it in
    /// `<meta>` and Open Graph.
    pub fn write(&mut self, rel: &str, template: &str, mut ctx: Value) -> Result<()> {
        let depth = rel.matches('/').count();
        ctx["root"] = json!("../".repeat(depth));
        let references: Vec<Value> = self
            .records
            .references
            .iter()
            .map(|r| json!({"name": r.name, "title": r.info.title, "original": r.info.setup.is_some()}))
            .collect();
        ctx["references"] = json!(references);
        ctx["run_count"] = json!(self.records.runs.len());
        if ctx.get("page_description").is_none_or(Value::is_null) {
            ctx["page_description"] = json!(describe(&ctx));
        }
        self.checkouts.relative_json(&mut ctx);
        let ctx = tera::Context::from_value(ctx).with_context(|| rel.to_string())?;
        let html = self
            .tera
            .render(template, &ctx)
            .map_err(|e| anyhow!("{rel}: {}", chain(&e)))?;
        let path = self.out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        }
        std::fs::write(&path, html).with_context(|| path.display().to_string())?;
        self.report.pages.push(path);
        Ok(())
    }

    /// `text` as the site shows it, every checkout written `{root}`.
    pub fn relative(&self, text: &str) -> String {
        self.checkouts.relative(text).into_owned()
    }

    /// A chart (title, SVG, summary), its absence explained, or a warning
    /// when plotters refused (the page still renders).
    pub fn chart(&mut self, drawn: Drawn, title: &str, empty: &str) -> Option<Value> {
        match drawn {
            Ok(Some(c)) => Some(json!({"title": c.title, "svg": c.svg, "summary": c.summary})),
            Ok(None) => Some(json!({"title": title, "empty": empty})),
            Err(e) => {
                self.report.warnings.push(format!("{title}: {e:#}"));
                None
            }
        }
    }

    /// Copies a record's files to `dest` (text with its checkouts hidden)
    /// and writes them as one tar, `tar_name`, beside the page; links are
    /// relative to the page beside `dest`. `inside` is the tar's top folder.
    pub fn copy_raw(&self, src: &Path, dest: &Path, inside: &str) -> Result<Raw> {
        let mut files = Vec::new();
        let mut archive = Vec::new();
        for rel in record_files(src)? {
            let from = src.join(&rel);
            let bytes = std::fs::read(&from).with_context(|| from.display().to_string())?;
            let bytes = match std::str::from_utf8(&bytes) {
                Ok(text) => self.checkouts.relative(text).into_owned().into_bytes(),
                Err(_) => bytes,
            };
            let to = dest.join(&rel);
            std::fs::create_dir_all(to.parent().expect("has a parent"))
                .with_context(|| to.display().to_string())?;
            std::fs::write(&to, &bytes).with_context(|| to.display().to_string())?;
            let name = rel.to_string_lossy().into_owned();
            files.push(json!({"href": format!("raw/{name}"), "name": name, "size": metrics::group(bytes.len() as i64)}));
            archive.push((format!("{inside}/{name}"), bytes));
        }
        let tar = tarball::tar(&archive)?;
        let tar_path = dest.with_file_name(RAW_TAR);
        std::fs::write(&tar_path, &tar).with_context(|| tar_path.display().to_string())?;
        let size = metrics::format(tar.len() as f64 / 1e6, "MB");
        Ok(Raw {
            files,
            tar: (RAW_TAR.to_string(), size),
        })
    }
}

/// Every run's raw files in one download, beside its page.
pub const RAW_TAR: &str = "raw.tar";

/// A page's description when it gives none: its own description's first
/// sentence, else its title.
fn describe(ctx: &Value) -> String {
    let title = ctx["title"].as_str().unwrap_or("rtbench");
    match ctx["description"].as_str().map(first_sentence) {
        Some(d) if !d.is_empty() => format!("{title}: {d}"),
        _ => format!("{title}: rtbench's measured results."),
    }
}

/// Up to the first full stop followed by a space, on one line.
pub fn first_sentence(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find(". ") {
        Some(i) => flat[..=i].to_string(),
        None => flat,
    }
}

/// A record's files, relative to it, sorted.
fn record_files(src: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        for e in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let e = e.with_context(|| dir.display().to_string())?;
            let r = rel.join(e.file_name());
            if e.path().is_dir() {
                stack.push(r);
            } else {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
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

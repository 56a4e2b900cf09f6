//! The rendered site in a real browser: headless Chromium (Debian's
//! `chromium`) driven over the DevTools protocol. The site is rendered once,
//! from a copy of the committed records plus one run made in this checkout
//! (a peers record whose paths are this checkout's), and every page is
//! loaded from file:// once; each test then holds one rule over what the
//! browser saw:
//! - every page loads without a console error or failed load, with its
//!   charts drawn, its links resolving, its title, description and Open
//!   Graph tags;
//! - no page contains a checkout's absolute path;
//! - every chart has a title and a summary;
//! - every run page links its raw data;
//! - the front page's first screen (1280x800) holds the headline band;
//! - the front page stays within its weight budget.
//!
//! Screenshots of the front page (1280 and 390 px wide) and of the page
//! setting rtbench beside the 2021 original are saved under
//! `target/site-screenshots/` for people to look at (docs/ keeps a copy).

mod chromium;
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use base64::Engine;
use chromium::{Cdp, problems};
use common::*;
use rtbench_site::load::{self, Records};
use rtbench_site::render;
use serde_json::{Value, json};

/// The front page, without raw data, at most (bytes): the page, its style
/// sheet and the inline charts.
const FRONT_PAGE_BUDGET: u64 = 300_000;

/// What one page showed the browser, for the rules below.
struct Page {
    /// Relative to the site.
    name: String,
    info: Value,
    problems: Vec<String>,
}

struct Rendered {
    out: PathBuf,
    records: Records,
    /// The checkouts whose paths no page may show: this one, and each one a
    /// committed record was made in (read here from its server line).
    checkouts: Vec<String>,
    pages: Vec<Page>,
}

/// One browser at a time on a small machine.
static BROWSER: Mutex<()> = Mutex::new(());

fn inspect(checkouts: &[String]) -> String {
    format!(
        r#"JSON.stringify({{
  charts: [...document.querySelectorAll('figure.chart')].map(f => {{
    const svg = f.querySelector('svg');
    return svg ? {{drawn: true, w: svg.getBoundingClientRect().width, shapes: svg.querySelectorAll('polyline, path, circle, rect, line').length}}
               : {{drawn: false, text: f.textContent.trim()}};
  }}),
  svgs: [...document.querySelectorAll('svg')].map(svg => {{
    const title = svg.querySelector(':scope > title');
    const figure = svg.closest('figure');
    const summary = figure && figure.querySelector('figcaption.summary');
    return {{title: title ? title.textContent.trim() : '', summary: summary ? summary.textContent.trim() : ''}};
  }}),
  links: [...document.querySelectorAll('a[href], link[href]')].map(a => a.href),
  raw_data: [...document.querySelectorAll('a.raw-data')].map(a => a.href),
  raw_files: [...document.querySelectorAll('ul.raw a')].map(a => a.href),
  checkouts: {checkouts}.filter(c => document.documentElement.outerHTML.includes(c)),
  shares: [...document.querySelectorAll('table.figures td')].filter(td => td.textContent.includes("of this machine's bare-TCP")).length,
  rooflines: document.querySelectorAll('section.roofline').length,
  leads: [...document.querySelectorAll('h3.lead-run')].map(h => h.textContent + ' | ' + (h.nextElementSibling ? h.nextElementSibling.textContent : '')),
  legend: [...document.querySelectorAll('figure.chart svg text')].map(t => t.textContent.trim()),
  title: document.title,
  meta: ['meta[name=description]', 'meta[property="og:title"]', 'meta[property="og:description"]']
    .map(s => document.querySelector(s)).map(m => m ? m.content.trim() : ''),
}})"#,
        checkouts = json!(checkouts)
    )
}

/// The checkout a committed record was made in, from a server line such as
/// `command: node /x/rtbench/peers/node-ws/server.js {port}`.
fn checkout_of(record: &Path) -> Option<String> {
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(record.join("summary.json")).ok()?).ok()?;
    let line = summary["server_under_test"].as_str()?;
    line.split_whitespace().find_map(|word| {
        ["/peers/", "/target/"]
            .iter()
            .find_map(|dir| word.find(dir).map(|i| word[..i].to_string()))
            .filter(|root| root.starts_with('/'))
    })
}

/// Every text file under `dir`, with `from` replaced by `to`.
fn replace_in_files(dir: &Path, from: &str, to: &str) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            replace_in_files(&p, from, to);
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            std::fs::write(&p, text.replace(from, to)).unwrap();
        }
    }
}

fn rendered() -> &'static Rendered {
    static SITE: OnceLock<Rendered> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = scratch("browser");
        let results = dir.join("results");
        copy_dir(&root().join("results"), &results);
        // A run made in this checkout, as the nightly makes them.
        let mut checkouts = vec![root().display().to_string()];
        let peers: Vec<PathBuf> = std::fs::read_dir(results.join("peers"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for p in &peers {
            if let Some(c) = checkout_of(p).filter(|c| !checkouts.contains(c)) {
                checkouts.push(c);
            }
        }
        let made_elsewhere = peers
            .iter()
            .find(|p| p.to_string_lossy().ends_with("-idle-node-ws") && checkout_of(p).is_some())
            .expect("a committed idle-node-ws record started its server from the checkout");
        let here = results.join("peers/2099-01-01T000000Z-vm-idle-node-ws");
        copy_dir(made_elsewhere, &here);
        replace_in_files(&here, &checkout_of(made_elsewhere).unwrap(), &checkouts[0]);
        assert_eq!(checkout_of(&here).as_ref(), Some(&checkouts[0]));

        let out = dir.join("site");
        let records = load::load(&results);
        let report = render::render(
            &records,
            &render::Options {
                out: out.clone(),
                checkout: root(),
                criterion: Some(root().join("target/criterion")),
                thresholds: thresholds(),
            },
        )
        .unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);

        let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        let (_browser, mut cdp) = Cdp::open(&dir.join("profile"));
        viewport(&mut cdp, 1400, 1000);
        let script = inspect(&checkouts);
        let pages = report
            .pages
            .iter()
            .map(|page| {
                cdp.events.clear();
                navigate(&mut cdp, page);
                let info = cdp.eval_json(&script);
                Page {
                    name: page.strip_prefix(&out).unwrap().display().to_string(),
                    info,
                    problems: problems(&cdp.events),
                }
            })
            .collect();
        Rendered {
            out,
            records,
            checkouts,
            pages,
        }
    })
}

fn viewport(cdp: &mut Cdp, width: u32, height: u32) {
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
    );
}

fn navigate(cdp: &mut Cdp, page: &Path) {
    cdp.call(
        "Page.navigate",
        json!({"url": format!("file://{}", page.display())}),
    );
    cdp.wait_event("Page.loadEventFired");
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect()
}

fn assert_none(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn every_page_loads_in_chromium_without_errors() {
    let site = rendered();
    let records = &site.records;
    // Every run page whose host has a roofline reads its figures against it,
    // when it has one to read: machine memory that moved measurably, or
    // deliveries (an idle run on a busy machine may have neither).
    let readable = |s: &rtbench_record::BenchSummary| {
        let has = |key| rtbench_site::figures::by_key(key, s).value().is_some();
        has("system_kib_per_conn") || has("deliveries_per_s")
    };
    let against_roofline: Vec<String> = records
        .runs
        .iter()
        .filter(|r| r.summary.as_ref().is_some_and(readable) && records.roofline_for(r).is_some())
        .map(|r| format!("{}/index.html", render::run_path(r)))
        .collect();
    assert!(
        records.rooflines.is_empty() || !against_roofline.is_empty(),
        "a roofline is committed but no run is read against it"
    );
    let mut failures = Vec::new();
    let mut charts_drawn = 0;
    for page in &site.pages {
        let (name, info) = (&page.name, &page.info);
        failures.extend(page.problems.iter().map(|p| format!("{name}: {p}")));
        let shares = info["shares"].as_u64().unwrap();
        if against_roofline.contains(name) && shares == 0 {
            failures.push(format!(
                "{name}: no figure read against this machine's roofline"
            ));
        }
        // A page to share: its own title, description and Open Graph tags.
        let meta = strings(&info["meta"]);
        let title = info["title"].as_str().unwrap_or("");
        if meta.len() != 3
            || meta[0].len() < 40
            || meta[2] != meta[0]
            || meta[1].is_empty()
            || !title.starts_with(meta[1])
        {
            failures.push(format!(
                "{name}: no title, description or Open Graph tags: {}",
                info["meta"]
            ));
        }
        failures.extend(page_rules(name, info, records));
        let mut drawn_here = 0;
        for c in info["charts"].as_array().unwrap() {
            if c["drawn"] == true {
                charts_drawn += 1;
                drawn_here += 1;
                if c["w"].as_f64().unwrap() < 100.0 || c["shapes"].as_u64().unwrap() < 5 {
                    failures.push(format!("{name}: an empty chart: {c}"));
                }
            } else if !c["text"].as_str().unwrap().contains(':') {
                failures.push(format!("{name}: a chart neither drawn nor explained: {c}"));
            }
        }
        // A run page draws at least users, connect latency, latency by
        // percentile, errors, CPU and memory.
        if name.starts_with("runs/") && drawn_here < 6 {
            failures.push(format!("{name}: only {drawn_here} charts drawn"));
        }
        failures.extend(broken_links(name, info, &site.out));
    }
    assert_none(failures);
    assert!(
        charts_drawn >= 6 * records.runs.len(),
        "{charts_drawn} charts drawn"
    );
}

/// What particular pages must show: idle-1m's headline runs hold
/// 1,000,000 and read against the roofline; the compare legends name a run
/// by variant and size; the front page has the roofline section.
fn page_rules(name: &str, info: &Value, records: &Records) -> Vec<String> {
    let mut failures = Vec::new();
    if name == "scenarios/idle-1m/index.html" {
        let leads = strings(&info["leads"]);
        if !leads
            .iter()
            .any(|l| l.contains("-no-ping") && l.contains("1,000,000 held"))
        {
            failures.push(format!(
                "{name}: no idle-1m headline holding 1,000,000: {leads:?}"
            ));
        }
        if !records.rooflines.is_empty() && info["shares"].as_u64() == Some(0) {
            failures.push(format!("{name}: no headline read against the roofline"));
        }
    }
    if name == "scenarios/idle-1m/compare.html" {
        let legend = strings(&info["legend"]);
        if !legend.contains(&"sdk-ping · 1,000,000") || !legend.contains(&"no-ping · 1,000,000") {
            failures.push(format!(
                "{name}: no legend naming variant and size: {legend:?}"
            ));
        }
        if let Some(t) = legend.iter().find(|t| t.contains("Z-vm")) {
            failures.push(format!("{name}: a legend names a run's directory: {t}"));
        }
    }
    if name == "index.html"
        && !records.rooflines.is_empty()
        && info["rooflines"].as_u64() != Some(1)
    {
        failures.push(format!(
            "index.html: {} roofline section(s), not 1",
            info["rooflines"]
        ));
    }
    failures
}

fn broken_links(name: &str, info: &Value, out: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    for link in strings(&info["links"]) {
        if link.starts_with("data:") {
            continue;
        }
        let Some(path) = link.strip_prefix("file://") else {
            failures.push(format!("{name}: a link leaves the site: {link}"));
            continue;
        };
        let path = PathBuf::from(path.split('#').next().unwrap().replace("%20", " "));
        if !path.starts_with(out) || !path.is_file() {
            failures.push(format!("{name}: broken link {link}"));
        }
    }
    failures
}

/// The pages and the raw files the site publishes show `{root}` where a
/// record had the absolute path of the checkout it was made in.
#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn no_page_contains_the_checkouts_absolute_path() {
    let site = rendered();
    assert!(site.checkouts.len() >= 2, "{:?}", site.checkouts);
    let mut failures: Vec<String> = site
        .pages
        .iter()
        .filter(|p| !strings(&p.info["checkouts"]).is_empty())
        .map(|p| format!("{}: shows {}", p.name, p.info["checkouts"]))
        .collect();
    let raw = text_files(&site.out);
    for (path, text) in &raw {
        for c in site.checkouts.iter().filter(|c| text.contains(c.as_str())) {
            failures.push(format!("{}: shows {c}", path.display()));
        }
    }
    assert_none(failures);
    // The record made here still says how to run its server again.
    let here = site
        .out
        .join("runs/peers/2099-01-01T000000Z-vm-idle-node-ws");
    let toml = std::fs::read_to_string(here.join("raw/scenario.toml")).unwrap();
    assert!(
        toml.contains("subject = \"command: node {root}/peers/node-ws/server.js {port}\""),
        "{toml}"
    );
}

fn text_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(text_files(&p));
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            out.push((p, text));
        }
    }
    out
}

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn every_chart_has_a_title_and_a_summary() {
    let site = rendered();
    let mut failures = Vec::new();
    let mut charts = 0;
    for page in &site.pages {
        for svg in page.info["svgs"].as_array().unwrap() {
            charts += 1;
            let (title, summary) = (
                svg["title"].as_str().unwrap(),
                svg["summary"].as_str().unwrap(),
            );
            // The summary says more than the title it starts with.
            if title.is_empty() || summary.len() < title.len() + 10 {
                failures.push(format!(
                    "{}: a chart without title or summary: {svg}",
                    page.name
                ));
            }
        }
    }
    assert!(charts > 6 * site.records.runs.len(), "{charts} charts");
    assert_none(failures);
}

/// Each run page links its record as one download (a tar holding every
/// file) and each file on its own, every link resolving.
#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn every_run_page_links_its_raw_data() {
    let site = rendered();
    let mut failures = Vec::new();
    for run in &site.records.runs {
        let name = format!("{}/index.html", render::run_path(run));
        let page = site.pages.iter().find(|p| p.name == name).unwrap();
        let files = record_file_count(&run.dir);
        let listed = strings(&page.info["raw_files"]);
        let tar = strings(&page.info["raw_data"]);
        let tar_path = site.out.join(render::run_path(run)).join(render::RAW_TAR);
        if tar.is_empty()
            || !tar.iter().all(|t| t.ends_with(render::RAW_TAR))
            || !tar_path.is_file()
        {
            failures.push(format!("{name}: no download of its raw data: {tar:?}"));
        } else if tar_entries(&tar_path) != files {
            failures.push(format!(
                "{name}: {} has {} files, the record {files}",
                render::RAW_TAR,
                tar_entries(&tar_path)
            ));
        }
        if listed.len() != files {
            failures.push(format!(
                "{name}: {} raw files listed, the record has {files}",
                listed.len()
            ));
        }
    }
    assert_none(failures);
}

fn record_file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { record_file_count(&p) } else { 1 })
        .sum()
}

/// Files in a tar, as the system's `tar` lists them.
fn tar_entries(tar: &Path) -> usize {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(tar)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The band is whole on a 1280x800 screen as the page opens, and each of
/// its figures links to a run page (the original's to its page).
#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn front_page_first_screen_holds_the_headline_band() {
    let site = rendered();
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (_browser, mut cdp) = Cdp::open(&scratch("browser-band").join("profile"));
    viewport(&mut cdp, 1280, 800);
    navigate(&mut cdp, &site.out.join("index.html"));
    let band = cdp.eval_json(
        r#"JSON.stringify((() => {
  const band = document.querySelector('section.band');
  if (!band) return null;
  const r = band.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, right: r.right,
          figures: [...band.querySelectorAll('.tile-value a')].map(a => a.getAttribute('href'))};
})())"#,
    );
    assert!(band.is_object(), "no headline band on the front page");
    let (top, bottom, right) = (
        band["top"].as_f64().unwrap(),
        band["bottom"].as_f64().unwrap(),
        band["right"].as_f64().unwrap(),
    );
    assert!(
        top >= 0.0 && bottom <= 800.0 && right <= 1280.0,
        "the band spans {top}..{bottom} px down and to {right} px: not within the first 1280x800 screen"
    );
    let figures = strings(&band["figures"]);
    // Each measured figure links to where it was measured: a run, or for
    // fan-out at a latency target the sweep that found its knee.
    let measured = figures
        .iter()
        .filter(|f| {
            f.starts_with("runs/") || (f.starts_with("scenarios/") && f.contains("/sweep-"))
        })
        .count();
    assert_eq!(
        measured, 3,
        "the band's figures link to runs or sweeps: {figures:?}"
    );
    for f in &figures {
        assert!(site.out.join(f).is_file(), "{f}");
    }
}

/// The front page and what it loads (its style sheet; its charts are
/// inline) stay under the budget: a page to open on a phone.
#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn front_page_stays_within_its_weight_budget() {
    let site = rendered();
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (_browser, mut cdp) = Cdp::open(&scratch("browser-weight").join("profile"));
    let index = site.out.join("index.html");
    navigate(&mut cdp, &index);
    // What the page loads besides itself: style sheets, scripts, images.
    let loaded = cdp.eval_json(
        "JSON.stringify([...document.querySelectorAll('link[rel=stylesheet], script[src], img[src], iframe[src]')].map(e => e.href || e.src))",
    );
    let mut weight = std::fs::metadata(&index).unwrap().len();
    let mut parts = vec![format!("index.html {weight}")];
    for url in strings(&loaded) {
        let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        parts.push(format!("{} {size}", path.display()));
        weight += size;
    }
    assert!(
        parts.iter().any(|p| p.contains("style.css")),
        "the style sheet was not loaded: {parts:?}"
    );
    assert!(
        weight <= FRONT_PAGE_BUDGET,
        "the front page weighs {weight} bytes, over {FRONT_PAGE_BUDGET}: {parts:?}"
    );
}

/// Screenshots for people: the front page at 1280 and 390 px wide, the
/// 2021 comparison, and a run page (`target/site-screenshots/`).
#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn screenshots_of_the_front_page_and_the_2021_comparison() {
    let site = rendered();
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (_browser, mut cdp) = Cdp::open(&scratch("browser-shots").join("profile"));
    let dir = root().join("target/site-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    cdp.call("Emulation.setScrollbarsHidden", json!({"hidden": true}));
    let reference = site
        .records
        .references
        .iter()
        .find(|r| r.info.setup.is_some())
        .expect("a reference with its setup");
    let original = PathBuf::from("reference")
        .join(&reference.name)
        .join(render::ORIGINAL_PAGE);
    let run = site
        .records
        .runs
        .iter()
        .rev()
        .find(|r| r.complete())
        .unwrap();
    let run_page = PathBuf::from(render::run_path(run)).join("index.html");
    for (page, width, file) in [
        (PathBuf::from("index.html"), 1280, "front-1280.png"),
        (PathBuf::from("index.html"), 390, "front-390.png"),
        (original, 1280, "original-2021.png"),
        (run_page, 1280, "run.png"),
    ] {
        viewport(&mut cdp, width, 800);
        navigate(&mut cdp, &site.out.join(&page));
        let shot = cdp.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "{file}: {} bytes",
            png.len()
        );
        std::fs::write(dir.join(file), png).unwrap();
    }
}

//! The rendered site in a real browser: headless Chromium (Debian's
//! `chromium`) driven over the DevTools protocol loads every page from
//! file:// and must report no console error, no failed load, every chart's
//! SVG present and drawn, and every internal link pointing at a file that
//! exists. A screenshot of a run page is saved for people to look at.

mod chromium;
mod common;

use std::path::PathBuf;

use base64::Engine;
use chromium::{Cdp, problems};
use common::*;
use rtbench_site::{load, render};
use serde_json::json;

const INSPECT: &str = r#"JSON.stringify({
  charts: [...document.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg');
    return svg ? {drawn: true, w: svg.getBoundingClientRect().width, shapes: svg.querySelectorAll('polyline, path, circle, rect, line').length}
               : {drawn: false, text: f.textContent.trim()};
  }),
  links: [...document.querySelectorAll('a[href], link[href]')].map(a => a.href),
  shares: [...document.querySelectorAll('table.figures td')].filter(td => td.textContent.includes("of this machine's bare-TCP")).length,
  rooflines: document.querySelectorAll('section.roofline').length,
  leads: [...document.querySelectorAll('h3.lead-run')].map(h => h.textContent + ' | ' + (h.nextElementSibling ? h.nextElementSibling.textContent : '')),
  legend: [...document.querySelectorAll('figure.chart svg text')].map(t => t.textContent.trim()),
  title: document.title
})"#;

#[test]
#[ignore = "heavy (cargo xtask ci runs it; RTBENCH_QUICK=1 skips it): Chromium"]
fn every_page_loads_in_chromium_without_errors() {
    let dir = scratch("browser");
    let out = dir.join("site");
    let records = load::load(&root().join("results"));
    let report = render::render(
        &records,
        &render::Options {
            out: out.clone(),
            criterion: Some(root().join("target/criterion")),
            thresholds: thresholds(),
        },
    )
    .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let (_browser, mut cdp) = Cdp::open(&dir.join("profile"));
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    );

    // Every run page whose host has a roofline reads its figures against it,
    // when it has one to read: machine memory that moved measurably, or
    // deliveries (an idle run on a busy machine may have neither).
    let readable = |s: &rtbench_record::BenchSummary| {
        let has = |key| rtbench_site::figures::by_key(key, s).value().is_some();
        has("system_kib_per_conn") || has("deliveries_per_s")
    };
    let against_roofline: Vec<PathBuf> = records
        .runs
        .iter()
        .filter(|r| r.summary.as_ref().is_some_and(readable) && records.roofline_for(r).is_some())
        .map(|r| PathBuf::from(render::run_path(r)).join("index.html"))
        .collect();
    assert!(
        records.rooflines.is_empty() || !against_roofline.is_empty(),
        "a roofline is committed but no run is read against it"
    );
    let mut failures = Vec::new();
    let mut charts_drawn = 0;
    for page in &report.pages {
        cdp.events.clear();
        let url = format!("file://{}", page.display());
        cdp.call("Page.navigate", json!({"url": url}));
        cdp.wait_event("Page.loadEventFired");
        let info = cdp.eval_json(INSPECT);
        let name = page.strip_prefix(&out).unwrap().display().to_string();
        failures.extend(
            problems(&cdp.events)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        let shares = info["shares"].as_u64().unwrap();
        if against_roofline.iter().any(|p| out.join(p) == *page) && shares == 0 {
            failures.push(format!(
                "{name}: no figure read against this machine's roofline"
            ));
        }
        // The index leads with the full-scale runs: idle-1m's headline is a
        // run that held 1,000,000 connections, not the newest CI-sized one.
        if name == "index.html" {
            let leads: Vec<&str> = info["leads"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|l| l.as_str())
                .collect();
            if !leads
                .iter()
                .any(|l| l.contains("-no-ping") && l.contains("1,000,000 held"))
            {
                failures.push(format!(
                    "index.html: no idle-1m headline holding 1,000,000: {leads:?}"
                ));
            }
        }
        // A compare page's legends name a run by variant and size, as the
        // browser draws them, not by its directory's timestamp.
        if name == "scenarios/idle-1m/compare.html" {
            let legend: Vec<&str> = info["legend"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t.as_str())
                .collect();
            if !legend.contains(&"sdk-ping · 1,000,000") || !legend.contains(&"no-ping · 1,000,000")
            {
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
            && (info["rooflines"].as_u64() != Some(1) || shares == 0)
        {
            failures.push(format!(
                "index.html: the roofline section or the headlines' shares of it are missing ({} section(s), {shares} share(s))",
                info["rooflines"]
            ));
        }
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
        for link in info["links"].as_array().unwrap() {
            let link = link.as_str().unwrap();
            if link.starts_with("data:") {
                continue;
            }
            let Some(path) = link.strip_prefix("file://") else {
                failures.push(format!("{name}: a link leaves the site: {link}"));
                continue;
            };
            let path = PathBuf::from(path.split('#').next().unwrap().replace("%20", " "));
            if !path.starts_with(&out) || !path.is_file() {
                failures.push(format!("{name}: broken link {link}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        charts_drawn >= 6 * records.runs.len(),
        "{charts_drawn} charts drawn"
    );

    // A screenshot of a run page, to look at (target/site-screenshot.png).
    let fanout = records.runs.iter().rev().find(|r| r.complete()).unwrap();
    let page = out.join(render::run_path(fanout)).join("index.html");
    cdp.call(
        "Page.navigate",
        json!({"url": format!("file://{}", page.display())}),
    );
    cdp.wait_event("Page.loadEventFired");
    let shot = cdp.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true}),
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    std::fs::write(root().join("target/site-screenshot.png"), png).unwrap();
}

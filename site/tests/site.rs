//! The site over every committed record plus broken ones, and the regression
//! gate over a made-up history, through the library and the binary.

mod common;

use std::process::Command;

use common::*;
use rtbench_site::{load, regress, render};

/// Four smoke records beside the committed ones: a corrupt summary, one
/// interrupted while writing, one stopped, one with a column renamed.
fn add_broken_records(results: &std::path::Path) {
    let corrupt = results.join("smoke/2099-01-01T000000Z-vm");
    copy_dir(&smoke_record(), &corrupt);
    std::fs::write(
        corrupt.join("summary.json"),
        "{\"format_version\": 1, \"scenario\": ",
    )
    .unwrap();
    // Interrupted while writing: the directory keeps its .partial name and
    // has no summary yet.
    let partial = results.join("smoke/2099-01-02T000000Z-vm.partial");
    copy_dir(&smoke_record(), &partial);
    std::fs::remove_file(partial.join("summary.json")).unwrap();
    let stopped = results.join("smoke/2099-01-03T000000Z-vm");
    copy_dir(&smoke_record(), &stopped);
    edit_summary(&stopped, |s| {
        s["complete"] = false.into();
        s["stopped_by"] = "SIGINT".into();
    });

    // A column renamed in server.csv: the schema's reader names it.
    let renamed = results.join("smoke/2099-01-04T000000Z-vm");
    copy_dir(&smoke_record(), &renamed);
    let csv = std::fs::read_to_string(renamed.join("server.csv")).unwrap();
    std::fs::write(
        renamed.join("server.csv"),
        csv.replacen("server_rss_kib", "server_rss", 1),
    )
    .unwrap();
}

/// Renders `records` into `dir`/site with the checkout's thresholds; the site's directory.
fn render_site(dir: &std::path::Path, records: &load::Records) -> std::path::PathBuf {
    let out = dir.join("site");
    render::render(
        records,
        &render::Options {
            out: out.clone(),
            checkout: root(),
            criterion: None,
            thresholds: thresholds(),
        },
    )
    .unwrap();
    out
}

/// The step directories (`step-NN`) of a sweep record.
fn step_dirs(sweep: &std::path::Path) -> usize {
    std::fs::read_dir(sweep)
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            e.path().is_dir() && e.file_name().to_string_lossy().starts_with("step-")
        })
        .count()
}

/// The sweep records committed under results/.
fn committed_sweeps() -> usize {
    let mut n = 0;
    for scenario in std::fs::read_dir(root().join("results")).unwrap() {
        for record in std::fs::read_dir(scenario.unwrap().path()).unwrap() {
            n += usize::from(
                record
                    .unwrap()
                    .path()
                    .join(rtbench_record::sweep::SWEEP)
                    .is_file(),
            );
        }
    }
    n
}

#[test]
fn renders_every_record_and_survives_a_corrupt_and_a_partial_one() {
    let dir = scratch("render");
    let results = dir.join("results");
    copy_dir(&root().join("results"), &results);
    add_broken_records(&results);
    let records = load::load(&results);
    assert_eq!(records.warnings.len(), 1, "{:?}", records.warnings);
    let problems = &records
        .find("smoke/2099-01-04T000000Z-vm")
        .unwrap()
        .problems;
    assert!(
        problems.len() == 1 && problems[0].contains("missing field `server_rss_kib`"),
        "{problems:?}"
    );
    let w = &records.warnings[0];
    assert!(
        w.contains("2099-01-01T000000Z-vm") && w.contains("summary.json"),
        "{w}"
    );
    assert!(records.find("smoke/2099-01-01T000000Z-vm").is_none());
    for id in [
        "smoke/2099-01-02T000000Z-vm.partial",
        "smoke/2099-01-03T000000Z-vm",
    ] {
        assert!(!records.find(id).unwrap().complete(), "{id}");
    }
    // A versus record holds several runs.
    let mut committed = 0;
    for scenario in std::fs::read_dir(root().join("results")).unwrap() {
        let scenario = scenario.unwrap().path();
        if scenario.ends_with("reference") || scenario.ends_with("roofline") {
            continue;
        }
        for run in std::fs::read_dir(scenario).unwrap() {
            let run = run.unwrap().path();
            // A sweep record holds a run per step.
            if run.join(rtbench_record::sweep::SWEEP).is_file() {
                committed += step_dirs(&run);
                continue;
            }
            committed +=
                match rtbench_record::read_json::<rtbench_record::Versus>(&run.join("versus.json"))
                {
                    Ok(v) => v.runs.len(),
                    Err(_) => 1,
                };
        }
    }
    assert_eq!(records.runs.len(), committed + 3);
    assert_eq!(records.references.len(), 1);

    let out = dir.join("site");
    let report = render::render(
        &records,
        &render::Options {
            out: out.clone(),
            checkout: root(),
            criterion: None,
            thresholds: thresholds(),
        },
    )
    .unwrap();
    for run in &records.runs {
        let page =
            std::fs::read_to_string(out.join(render::run_path(run)).join("index.html")).unwrap();
        assert!(page.contains("Raw files"), "{}", run.id());
        // Every raw file of the record is linked and copied.
        assert!(
            out.join(render::run_path(run))
                .join("raw/scenario.toml")
                .exists(),
            "{}",
            run.id()
        );
    }
    let partial_page =
        std::fs::read_to_string(out.join("runs/smoke/2099-01-02T000000Z-vm.partial/index.html"))
            .unwrap();
    assert!(
        partial_page.contains("This record is incomplete")
            && partial_page.contains("no summary.json")
    );
    let renamed_page =
        std::fs::read_to_string(out.join("runs/smoke/2099-01-04T000000Z-vm/index.html")).unwrap();
    assert!(renamed_page.contains("missing field `server_rss_kib`"));
    let stopped_page =
        std::fs::read_to_string(out.join("runs/smoke/2099-01-03T000000Z-vm/index.html")).unwrap();
    assert!(stopped_page.contains("stopped by SIGINT"));
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(index.contains("Records skipped") && index.contains("2099-01-01T000000Z-vm"));
    assert!(!out.join("runs/smoke/2099-01-01T000000Z-vm").exists());
    let compare = std::fs::read_to_string(out.join("scenarios/idle-1m/compare.html")).unwrap();
    assert!(compare.contains("Appwrite realtime, 1M connections (2021)"));
    assert!(report.pages.len() > records.runs.len() + 2 * records.scenarios().len());
}

/// Four earlier runs, then one whose connect p99 is 4x theirs: flagged, with
/// metric, value, baseline and limit named. One within the threshold passes.
#[test]
fn regress_flags_a_raised_p99_and_passes_one_within_the_threshold() {
    let dir = scratch("regress");
    let results = dir.join("results");
    for (i, p99) in [4.0, 4.4, 3.8, 4.2].into_iter().enumerate() {
        let d = results.join(format!("smoke/2099-01-0{}T000000Z-vm", i + 1));
        copy_dir(&smoke_record(), &d);
        edit_summary(&d, |s| s["connect_ms"]["p99"] = p99.into());
    }
    let newest = results.join("smoke/2099-01-05T000000Z-vm");
    copy_dir(&smoke_record(), &newest);
    let t = thresholds();
    let limit = {
        edit_summary(&newest, |s| s["connect_ms"]["p99"] = 16.4.into());
        let records = load::load(&results);
        let j = regress::gate(&records, "smoke", &t).unwrap();
        assert_eq!(j.baseline_runs.len(), 4);
        let bad: Vec<&regress::Verdict> = j.regressions().collect();
        assert_eq!(bad.len(), 1, "{:?}", j.verdicts);
        assert_eq!(
            (bad[0].key, bad[0].value, bad[0].baseline),
            ("connect_p99_ms", 16.4, 4.1)
        );
        bad[0].limit
    };
    let site = Command::new(env!("CARGO_BIN_EXE_rtbench-site"))
        .args(["regress", "smoke", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&site.stderr);
    assert_eq!(site.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("connect_p99_ms: 16.4 ms (baseline median 4.10 ms")
            && stderr.contains("REGRESSION"),
        "{stderr}"
    );

    edit_summary(&newest, |s| s["connect_ms"]["p99"] = (limit - 0.01).into());
    let records = load::load(&results);
    let j = regress::gate(&records, "smoke", &t).unwrap();
    assert_eq!(j.regressions().count(), 0, "{:?}", j.verdicts);
    let site = Command::new(env!("CARGO_BIN_EXE_rtbench-site"))
        .args(["regress", "smoke", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        site.status.success(),
        "{}",
        String::from_utf8_lossy(&site.stderr)
    );
}

#[test]
fn thresholds_cover_every_metric_and_name_a_bad_one() {
    let t = thresholds();
    assert!(t.metric.contains_key("connect_p99_ms") && t.history >= t.min_history);
    let dir = scratch("thresholds");
    let bad = dir.join("regress.toml");
    let committed = std::fs::read_to_string(root().join("site/regress.toml")).unwrap();
    std::fs::write(
        &bad,
        committed.replace("[metric.connect_p99_ms]", "[metric.conect_p99_ms]"),
    )
    .unwrap();
    let e = format!("{:#}", regress::Thresholds::read(&bad).unwrap_err());
    assert!(
        e.contains("regress.toml") && e.contains("`conect_p99_ms`: no such metric"),
        "{e}"
    );
    std::fs::write(
        &bad,
        committed.replace(
            "[metric.failed]\nrelative = 0\nspreads = 0\nabsolute = 0\n",
            "",
        ),
    )
    .unwrap();
    let e = format!("{:#}", regress::Thresholds::read(&bad).unwrap_err());
    assert!(e.contains("no [metric.failed]"), "{e}");
    std::fs::write(&bad, "history = 5\nmin_history = \"three\"\n").unwrap();
    let e = format!("{:#}", regress::Thresholds::read(&bad).unwrap_err());
    assert!(e.contains("regress.toml:2:"), "{e}");
}

#[test]
fn compare_prints_deltas_of_two_runs() {
    let dir = scratch("compare");
    let (a, b) = (dir.join("a"), dir.join("b"));
    copy_dir(&smoke_record(), &a);
    copy_dir(&smoke_record(), &b);
    edit_summary(&b, |s| s["connect_ms"]["p99"] = 100.0.into());
    let out = Command::new(env!("CARGO_BIN_EXE_rtbench-site"))
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("connect p99 "))
        .unwrap();
    assert!(
        line.contains("100 ms") && line.ends_with("B worse"),
        "{line}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_rtbench-site"))
        .arg("compare")
        .arg(&a)
        .arg(dir.join("nope"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
}

/// Criterion's files as it writes them (criterion 0.8): the median, its
/// interval and the time per element.
#[test]
fn micro_benchmarks_read_criterion_output() {
    let dir = scratch("criterion");
    let new = dir.join("receive/event_frames/new");
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(
        new.join("benchmark.json"),
        r#"{"group_id":"receive","function_id":"event_frames","value_str":null,"throughput":{"Elements":1000},"full_id":"receive/event_frames","directory_name":"receive/event_frames","title":"receive/event_frames"}"#,
    )
    .unwrap();
    let est = |p: f64| {
        format!(
            r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},"point_estimate":{p},"standard_error":150.0}}"#,
            p - 100.0,
            p + 300.0
        )
    };
    std::fs::write(
        new.join("estimates.json"),
        format!(
            r#"{{"mean":{},"median":{},"median_abs_dev":{},"slope":null,"std_dev":{}}}"#,
            est(210_200.0),
            est(210_100.0),
            est(50.0),
            est(80.0)
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("broken/new")).unwrap();
    std::fs::write(dir.join("broken/new/benchmark.json"), "{").unwrap();
    let (benches, problems) = rtbench_site::micro::read(&dir);
    assert_eq!(benches.len(), 1);
    let b = &benches[0];
    assert_eq!(
        (b.id.as_str(), b.median.as_str(), b.per_element.as_deref()),
        ("receive/event_frames", "210 µs", Some("210 ns"))
    );
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("broken/new/benchmark.json"),
        "{problems:?}"
    );
}

/// The text of each `<td>` after a `<th>` reading exactly `label` on `page`.
fn figure_cells<'a>(page: &'a str, label: &str) -> Vec<&'a str> {
    let th = format!(
        "<th scope=\"row\">{}</th><td>",
        label.replace('/', "&#x2F;")
    );
    page.match_indices(&th)
        .map(|(i, _)| {
            let rest = &page[i + th.len()..];
            &rest[..rest.find("</td>").unwrap()]
        })
        .collect()
}

/// Three runs of one scenario: two of 2,000 connections (configurations
/// differing by `--rate`) and one of 1,000,000. The two of one size share
/// the page's one comparison table; the large one is listed alone, in no
/// table, with no delta against the others.
#[test]
fn compare_page_keeps_runs_of_different_sizes_apart() {
    let dir = scratch("compare-sizes");
    let results = dir.join("results");
    let small = "2099-01-01T000000Z-vm";
    let small_rate = "2099-01-02T000000Z-vm";
    let large = "2099-01-03T000000Z-vm";
    for name in [small, small_rate, large] {
        copy_dir(&smoke_record(), &results.join("smoke").join(name));
    }
    edit_summary(&results.join("smoke").join(small_rate), |s| {
        s["overrides"]["rate"] = 1000.0.into();
    });
    edit_summary(&results.join("smoke").join(large), |s| {
        s["connections"]["target"] = 1_000_000.into();
        s["connections"]["held"] = 1_000_000.into();
    });
    let records = load::load(&results);
    let out = render_site(&dir, &records);
    let page = std::fs::read_to_string(out.join("scenarios/smoke/compare.html")).unwrap();
    let between = |open: &str, close: &str| -> Vec<String> {
        page.split(open)
            .skip(1)
            .map(|t| t[..t.find(close).unwrap()].to_string())
            .collect()
    };
    assert_eq!(
        between("<h2 class=\"group\">", "</h2>"),
        ["2,000 connections", "Alone at their variant and size"]
    );
    let tables = between("<table class=\"compare\">", "</table>");
    assert_eq!(tables.len(), 1);
    assert!(tables[0].contains(small) && tables[0].contains(small_rate));
    assert!(!tables[0].contains(large), "{}", tables[0]);
    let alone = between("<ul class=\"alone\">", "</ul>");
    assert_eq!(alone.len(), 1);
    assert!(
        alone[0].starts_with("<li><strong>1,000,000 connections</strong>")
            && alone[0].contains(large)
            && !alone[0].contains(small),
        "{}",
        alone[0]
    );
}

/// An idle record (no events published): its page says "none" for the
/// delivery figures, not "0.00 ms" or "0/s"; a machine memory figure that
/// did not grow is within noise; server CPU read as exactly 0 while
/// connections were held was not measured.
#[test]
fn an_idle_record_says_none_where_a_figure_does_not_apply() {
    let dir = scratch("idle-none");
    let results = dir.join("results");
    let idle = results.join("idle-1m/2099-01-01T000000Z-vm-no-ping");
    let mut committed: Vec<_> = std::fs::read_dir(root().join("results/idle-1m"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .collect();
    committed.sort();
    copy_dir(&committed[0], &idle);
    edit_summary(&idle, |s| {
        assert_eq!(s["delivery_ms"]["count"], 0, "an idle record");
        s["system"]["mem_used_peak_kib"] = s["system"]["mem_used_before_kib"].clone();
        s["system"]["kib_per_connection"] = 0.0.into();
        s["server"]["cpu_holding_pct"] = 0.0.into();
    });
    // A second configuration of its size, so the compare page has a table.
    let other = results.join("idle-1m/2099-01-02T000000Z-vm-no-ping");
    copy_dir(&idle, &other);
    edit_summary(&other, |s| s["overrides"]["rate"] = 1000.0.into());
    let records = load::load(&results);
    let out = render_site(&dir, &records);
    let page =
        std::fs::read_to_string(out.join("runs/idle-1m/2099-01-01T000000Z-vm-no-ping/index.html"))
            .unwrap();
    assert_eq!(figure_cells(&page, "delivery p50 / p99 / p99.9"), ["none"]);
    assert_eq!(figure_cells(&page, "deliveries"), ["none"]);
    assert_eq!(
        figure_cells(&page, "machine memory per connection"),
        ["none (within noise)"]
    );
    let cpu = figure_cells(&page, "server CPU while holding");
    assert!(
        cpu.len() == 1 && cpu[0].starts_with("not measured ("),
        "{cpu:?}"
    );
    // The compare page's cells follow the same rule.
    let compare = std::fs::read_to_string(out.join("scenarios/idle-1m/compare.html")).unwrap();
    for label in ["delivery p99", "deliveries&#x2F;s"] {
        let row = format!(
            "<tr><th scope=\"row\">{label}</th><td class=\"num\">none</td><td class=\"num\">none</td></tr>"
        );
        assert!(compare.contains(&row), "{label}");
    }
}

/// The front page tells the story first: the band's figures from the runs
/// that made them (the most held on one machine, the saturated fan-out),
/// then the cards in order of importance; the original's page sets its
/// figures beside ours.
#[test]
fn front_page_leads_with_the_band_and_the_scenarios_in_order_of_importance() {
    let dir = scratch("front");
    let records = load::load(&root().join("results"));
    let out = render_site(&dir, &records);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    let cards: Vec<&str> = index
        .split("<article class=\"card\" id=\"")
        .skip(1)
        .map(|c| &c[..c.find('"').unwrap()])
        .collect();
    assert_eq!(
        cards,
        [
            "idle-1m",
            "target-2m",
            "fanout",
            "broadcast",
            "failover",
            "soak",
            "peers",
            "brokers",
            "fanout-max",
            "smoke"
        ]
    );
    let band =
        &index[index.find("<section class=\"band\"").unwrap()..index.find("</section>").unwrap()];
    let most_held = records
        .runs
        .iter()
        .filter(|r| r.complete() && !r.in_group)
        .max_by_key(|r| r.summary.as_ref().unwrap().connections.held)
        .unwrap();
    assert!(
        band.contains(&format!(
            "<a href=\"{}&#x2F;index.html\">2,000,000</a>",
            render::run_path(most_held).replace('/', "&#x2F;")
        )),
        "{band}"
    );
    assert!(
        band.contains("guest sessions") && band.contains("fan-out, saturated"),
        "{band}"
    );
    assert!(
        band.contains("598,893") && band.contains("2021 original: 1,000,382"),
        "{band}"
    );
    // A history of one point is not drawn.
    let target =
        &index[index.find("id=\"target-2m\"").unwrap()..index.find("id=\"fanout\"").unwrap()];
    assert!(
        target.contains("one run so far, no history to draw")
            && !target.contains("class=\"spark\"")
    );

    let original = std::fs::read_to_string(
        out.join("reference/appwrite-1m-2021")
            .join(render::ORIGINAL_PAGE),
    )
    .unwrap();
    for cell in [
        "<th scope=\"row\">connections held</th><td>1,000,382</td>",
        "<th scope=\"row\">arrival rate</th><td>2,000&#x2F;s</td>",
        "<td>17: one 32-core server, 16 load machines</td>",
    ] {
        assert!(original.contains(cell), "{cell}");
    }
    assert!(original.contains("<title>The climb to 1,000,000 connections</title>"));
}

/// A sweep of two steps made from the smoke record: the first met its
/// objective, the second did not.
fn add_sweep(results: &std::path::Path) -> std::path::PathBuf {
    use rtbench_record::slo::{Outcome, Threshold};
    use rtbench_record::sweep::{Knee, Over, Step, Sweep};
    let dir = results.join("smoke/2099-02-01T000000Z-vm-sweep-rate");
    let slo: Threshold = "delivery.p99 <= 50ms".parse().unwrap();
    let mut steps = Vec::new();
    for (i, (offered, p99)) in [(100.0, 20.0), (200.0, 900.0)].into_iter().enumerate() {
        let name = format!("step-0{}", i + 1);
        copy_dir(&smoke_record(), &dir.join(&name));
        let outcome = Outcome::of(slo, Some(p99));
        edit_summary(&dir.join(&name), |s| {
            s["slo"] = serde_json::to_value([&outcome]).unwrap();
        });
        steps.push(Step {
            dir: name,
            offered,
            achieved: offered,
            deliveries_per_s: offered * 50.0,
            offered_deliveries_per_s: Some(offered * 50.0),
            p50_ms: 2.0,
            p99_ms: p99,
            p999_ms: p99 * 2.0,
            server_cpu_pct: Some(40.0),
            complete: true,
            client_bottleneck: false,
            client_reasons: Vec::new(),
            pass: outcome.pass,
            slo: vec![outcome],
        });
    }
    let sweep = Sweep {
        format_version: rtbench_record::FORMAT_VERSION,
        scenario: "smoke".into(),
        variant: None,
        host: "vm".into(),
        started_at: "2099-02-01T00:00:00Z".into(),
        over: Over::Rate,
        unit: "events/s".into(),
        slo: vec![slo],
        steps,
        knee: Knee {
            last_pass: Some(100.0),
            first_fail: Some(200.0),
        },
        ended: "the knee lies between 100.0 and 200.0 events/s".into(),
        roofline: None,
    };
    rtbench_record::write_json(&dir.join(rtbench_record::sweep::SWEEP), &sweep).unwrap();
    dir
}

#[test]
fn a_sweep_has_its_page_its_steps_stay_out_of_the_history_and_objectives_show() {
    let dir = scratch("sweep");
    let results = dir.join("results");
    copy_dir(&root().join("results"), &results);
    add_sweep(&results);
    let records = load::load(&results);
    assert_eq!(
        records.sweeps.len(),
        committed_sweeps() + 1,
        "{:?}",
        records.warnings
    );
    let step = records
        .find("smoke/2099-02-01T000000Z-vm-sweep-rate/step-02")
        .expect("a step is a run");
    assert!(step.in_group);
    let out = render_site(&dir, &records);
    let page = std::fs::read_to_string(
        out.join("scenarios/smoke/sweep-2099-02-01T000000Z-vm-sweep-rate.html"),
    )
    .unwrap();
    // Tera writes `/` as `&#x2F;`.
    let knee = "met up to 100 events&#x2F;s (5,000 deliveries&#x2F;s); missed from 200 events&#x2F;s (10,000 deliveries&#x2F;s)";
    assert!(page.contains(knee), "{page}");
    assert!(
        page.contains("<svg") && page.contains("knee: the most load"),
        "the curve is drawn"
    );
    let scenario = std::fs::read_to_string(out.join("scenarios/smoke/index.html")).unwrap();
    assert!(scenario.contains("sweep-2099-02-01T000000Z-vm-sweep-rate.html"));
    // The steps are not the scenario's history.
    let history = std::fs::read_to_string(out.join("scenarios/smoke/history.html")).unwrap();
    assert!(!history.contains("step-02"));
    let run = std::fs::read_to_string(
        out.join("runs/smoke/2099-02-01T000000Z-vm-sweep-rate/step-02/index.html"),
    )
    .unwrap();
    assert!(
        run.contains("0 of 1 met: FAIL: delivery.p99 &lt;= 50ms (measured 900.000)"),
        "the run page states its objectives"
    );
}

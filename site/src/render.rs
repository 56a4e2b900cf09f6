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

use std::path::{Path, PathBuf};

use rtbench_record::BenchSummary;
use rtbench_record::metrics::{self, METRICS};
use rtbench_record::roofline::{Roofline, Spread};
use serde_json::{Value, json};
use tera::{Context, Tera};

use crate::chart::{self, Series};
use crate::load::{Records, Reference, Run};
use crate::micro;
use crate::regress::{self, Thresholds};

pub struct Options {
    pub out: PathBuf,
    /// `target/criterion`, when criterion benchmarks have run.
    pub criterion: Option<PathBuf>,
    pub thresholds: Thresholds,
}

/// What a render produced, for the caller to report.
#[derive(Debug, Default)]
pub struct Report {
    pub pages: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("history.html", include_str!("../templates/history.html")),
    ("compare.html", include_str!("../templates/compare.html")),
    (
        "reference.html",
        include_str!("../templates/reference.html"),
    ),
    ("micro.html", include_str!("../templates/micro.html")),
    (
        "side-by-side.html",
        include_str!("../templates/side-by-side.html"),
    ),
];
const STYLE: &str = include_str!("../templates/style.css");

struct Site<'a> {
    tera: Tera,
    out: &'a Path,
    records: &'a Records,
    report: Report,
}

pub fn render(records: &Records, opts: &Options) -> Result<Report, String> {
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES)
        .map_err(|e| format!("templates: {e:?}"))?;
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    std::fs::write(opts.out.join("style.css"), STYLE)
        .map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let mut site = Site {
        tera,
        out: &opts.out,
        records,
        report: Report::default(),
    };
    site.report.warnings = records.warnings.clone();
    for run in &records.runs {
        site.run_page(run)?;
    }
    for scenario in records.scenarios() {
        site.history_page(&scenario, &opts.thresholds)?;
        site.compare_page(&scenario)?;
        site.side_by_side_page(&scenario)?;
    }
    for r in &records.references {
        site.reference_page(r)?;
    }
    site.micro_page(opts.criterion.as_deref())?;
    site.index_page(&opts.thresholds)?;
    Ok(site.report)
}

impl Site<'_> {
    fn write(&mut self, rel: &str, template: &str, mut ctx: Value) -> Result<(), String> {
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
    fn chart(
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

    fn run_page(&mut self, run: &Run) -> Result<(), String> {
        let rel = format!("{}/index.html", run_path(run));
        let raw = copy_raw(&run.dir, &self.out.join(run_path(run)).join("raw"))?;
        let charts = self.run_charts(run);
        let s = run.summary.as_ref();
        let bottleneck = s
            .filter(|s| s.client_bottleneck.bottleneck)
            .map(|s| s.client_bottleneck.reasons.clone());
        let ctx = json!({
            "title": run.id(),
            "run": run_info(run),
            "description": s.map(|s| s.description.clone()),
            "headline": headline(run, self.records.roofline_for(run)),
            "charts": charts,
            "bottleneck": bottleneck,
            "errors": errors_table(run),
            "problems": run.problems,
            "scenario_toml": std::fs::read_to_string(run.dir.join(rtbench_record::SCENARIO)).ok(),
            "environment": run.environment.as_ref().map(environment_rows),
            "sysctls": run.environment.as_ref().map(|e| e.sysctls.iter().map(|(k, v)| json!([k, v.clone().unwrap_or("unreadable".into())])).collect::<Vec<_>>()),
            "tuning": run.environment.as_ref().map(|e| json!({
                "applied": e.tuning_applied,
                "rows": e.tuning.iter().map(|(k, s)| json!([k, s.wanted, s.before, s.after])).collect::<Vec<_>>(),
            })),
            "preflight": rtbench_record::read_json::<Value>(&run.dir.join(rtbench_record::PREFLIGHT)).ok(),
            "raw": raw,
        });
        self.write(&rel, "run.html", ctx)
    }

    fn run_charts(&mut self, run: &Run) -> Vec<Value> {
        let ts = run.timeseries.clone().unwrap_or_default();
        let sv = run.server.clone().unwrap_or_default();
        let mut charts = Vec::new();
        let mut push = |c: Option<Value>| charts.extend(c);
        let users = vec![
            Series::new("target (arrivals so far)", ts.xy("t_s", "attempted", |v| v)),
            Series::new("connected (load generator)", ts.xy("t_s", "open", |v| v)),
            Series::new(
                "connected (server)",
                sv.xy("t_s", "server_connections", |v| v),
            ),
        ];
        push(self.chart(
            chart::lines("Simultaneous users", "s", "connections", &users),
            "Simultaneous users",
            "no time series",
        ));
        let connecting: Vec<usize> = ts
            .col("connect_rate")
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, r)| **r > 0.0)
            .map(|(i, _)| i)
            .collect();
        let pick = |col: &str| -> Vec<(f64, f64)> {
            let pts = ts.xy("t_s", col, |v| v);
            connecting
                .iter()
                .filter_map(|&i| pts.get(i).copied())
                .collect()
        };
        let connect = vec![
            Series::new("p50", pick("connect_p50_ms")),
            Series::new("p99", pick("connect_p99_ms")),
        ];
        push(self.chart(
            chart::lines("Connect latency, each second", "s", "ms", &connect),
            "Connect latency over time",
            "no connections were made",
        ));
        let pct = vec![
            Series::new("delivery", run.delivery_percentiles.clone()),
            Series::new("connect", run.connect_percentiles.clone()),
        ];
        push(self.chart(
            chart::percentiles("Latency by percentile (HDR)", &pct),
            "Latency percentile distribution",
            "no latencies recorded",
        ));
        let deliveries = [Series::new(
            "deliveries/s",
            ts.xy("t_s", "delivery_rate", |v| v),
        )];
        let any_delivery = deliveries[0].points.iter().any(|p| p.1 > 0.0);
        push(self.chart(
            if any_delivery {
                chart::lines("Deliveries per second", "s", "deliveries/s", &deliveries)
            } else {
                Ok(None)
            },
            "Deliveries per second",
            "no events were published in this scenario",
        ));
        let errors = vec![
            Series::new(
                "failed connects/s",
                per_second(&ts.xy("t_s", "failed", |v| v)),
            ),
            Series::new(
                "closed by server/s",
                per_second(&ts.xy("t_s", "closed_by_server", |v| v)),
            ),
        ];
        push(self.chart(
            chart::lines("Errors per second", "s", "errors/s", &errors),
            "Errors",
            "no time series",
        ));
        let cpu = vec![
            Series::new(
                "server (all processes)",
                sv.xy("t_s", "server_cpu_pct", |v| v),
            ),
            Series::new("redis", sv.xy("t_s", "redis_cpu_pct", |v| v)),
            Series::new(
                "load generator (busiest worker)",
                ts.xy("t_s", "worker_cpu_max_pct", |v| v),
            ),
        ];
        push(self.chart(
            chart::lines("CPU (100 = one core)", "s", "%", &cpu),
            "CPU",
            "no samples",
        ));
        let mem0 = sv
            .col("mem_used_kib")
            .and_then(|c| c.first().copied())
            .unwrap_or(0.0);
        let mem = vec![
            Series::new("server RSS", sv.xy("t_s", "server_rss_kib", |v| v / 1024.0)),
            Series::new(
                "machine used, above the start",
                sv.xy("t_s", "mem_used_kib", |v| (v - mem0) / 1024.0),
            ),
            Series::new(
                "load generator RSS",
                ts.xy("t_s", "loadgen_rss_kib", |v| v / 1024.0),
            ),
        ];
        push(self.chart(
            chart::lines("Memory", "s", "MiB", &mem),
            "Memory",
            "no samples",
        ));
        let per_conn = bytes_per_connection(&sv);
        push(self.chart(
            chart::lines("Memory per connection", "s", "KiB", &per_conn),
            "Memory per connection",
            "no connections were held",
        ));
        // The original's results had a load chart: runnable (and
        // uninterruptible) tasks, the machine's queue beside its CPU.
        let cores = run.cores().unwrap_or(1.0);
        let load = vec![
            Series::new("load average, 1 min", sv.xy("t_s", "load1", |v| v)),
            Series::new(
                "machine CPU busy, in cores",
                sv.xy("t_s", "machine_cpu_pct", |v| v * cores / 100.0),
            ),
        ];
        push(self.chart(
            chart::lines("Load", "s", "tasks / cores", &load),
            "Load",
            "no samples",
        ));
        // A fault plan's storm, close up: from a few seconds before the
        // first fault to the end, the connections open and arriving again.
        if let Some((first, last, before)) = run.summary.as_ref().and_then(|s| {
            Some((
                s.faults_injected.first()?.at_s,
                s.faults_injected.last()?.at_s,
                s.failover.as_ref()?.open_before as f64,
            ))
        }) {
            // From 5 s before the first fault to 20 s after the last: not
            // the end of the run, whose closing would dwarf the storm.
            let near = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
                pts.into_iter()
                    .filter(|p| p.0 >= first - 5.0 && p.0 <= last + 20.0)
                    .collect()
            };
            // On the storm's own scale: the clients missing, not the
            // 100,000 open around them.
            let storm = vec![
                Series::new(
                    "clients not connected (of those open before the fault)",
                    near(ts.xy("t_s", "open", |v| (before - v).max(0.0))),
                ),
                Series::new("connecting", near(ts.xy("t_s", "connecting", |v| v))),
                Series::new(
                    "closed by server, per second",
                    near(per_second(&ts.xy("t_s", "closed_by_server", |v| v))),
                ),
            ];
            push(self.chart(
                chart::lines(
                    "Failover: the storm after the first fault",
                    "s",
                    "connections",
                    &storm,
                ),
                "Failover storm",
                "no time series",
            ));
        }
        // The original's traffic chart: bytes each way per second, the
        // clients' and (when the server reports them) the server's.
        let mib = |v: f64| v / 1048576.0;
        let mut traffic = vec![
            Series::new(
                "clients received",
                ts.xy("t_s", "received_bytes_per_s", mib),
            ),
            Series::new("clients sent", ts.xy("t_s", "sent_bytes_per_s", mib)),
            Series::new(
                "server received",
                per_second(&sv.xy("t_s", "server_bytes_in", mib)),
            ),
            Series::new(
                "server sent",
                per_second(&sv.xy("t_s", "server_bytes_out", mib)),
            ),
        ];
        traffic.retain(|s| s.points.iter().any(|p| p.1 > 0.0));
        push(self.chart(
            chart::lines("Traffic", "s", "MiB/s", &traffic),
            "Traffic",
            "no traffic recorded (a record from before it was counted)",
        ));
        // Each worker host's own machine, as its workers read it.
        let hosts: std::collections::BTreeSet<&str> =
            run.hosts.iter().map(|h| h.host.as_str()).collect();
        let by_host = |f: &dyn Fn(&rtbench_record::series::HostSample) -> f64| -> Vec<Series> {
            hosts
                .iter()
                .map(|name| {
                    let pts = run
                        .hosts
                        .iter()
                        .filter(|h| h.host == *name)
                        .map(|h| (h.t_s as f64, f(h)))
                        .collect();
                    Series::new(*name, pts)
                })
                .collect()
        };
        if !hosts.is_empty() {
            push(self.chart(
                chart::lines(
                    "Load generator hosts: memory used",
                    "s",
                    "MiB",
                    &by_host(&|h| h.mem_used_kib as f64 / 1024.0),
                ),
                "Hosts' memory",
                "no host samples",
            ));
            push(self.chart(
                chart::lines(
                    "Load generator hosts: CPU busy (100 = every core)",
                    "s",
                    "%",
                    &by_host(&|h| h.cpu_pct),
                ),
                "Hosts' CPU",
                "no host samples",
            ));
        }
        charts
    }

    fn history_page(&mut self, scenario: &str, t: &Thresholds) -> Result<(), String> {
        let runs: Vec<&Run> = self.records.of(scenario).filter(|r| !r.in_versus).collect();
        let judged: Vec<(&Run, regress::Judgement)> = runs
            .iter()
            .map(|r| (*r, regress::judge(self.records, r, t)))
            .collect();
        let mut charts = Vec::new();
        for m in METRICS {
            // One line per configuration: a CI-sized run is not a full one.
            let mut configs: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            let mut marks = Vec::new();
            for (i, (r, j)) in judged.iter().enumerate() {
                let (Some(k), Some(v)) = (
                    r.config_key(),
                    r.summary
                        .as_ref()
                        .filter(|_| r.complete())
                        .and_then(|s| (m.get)(s)),
                ) else {
                    continue;
                };
                match configs.iter_mut().find(|(c, _)| *c == k) {
                    Some((_, pts)) => pts.push((i as f64, v)),
                    None => configs.push((k, vec![(i as f64, v)])),
                }
                if j.regressions().any(|x| x.key == m.key) {
                    marks.push((i, v));
                }
            }
            if configs.is_empty() {
                continue;
            }
            let mut series: Vec<Series> = configs
                .into_iter()
                .map(|(k, p)| Series::new(config_label(&k), p))
                .collect();
            if !marks.is_empty() {
                series.push(Series::new(
                    "regression",
                    marks.iter().map(|&(i, v)| (i as f64, v)).collect(),
                ));
            }
            let title = format!(
                "{} ({})",
                m.label,
                if m.unit.is_empty() { "count" } else { m.unit }
            );
            let drawn = chart::lines(&title, "run (oldest first)", m.unit, &series);
            charts.extend(self.chart(drawn, &title, "no values"));
        }
        let rows: Vec<Value> = judged
            .iter()
            .enumerate()
            .map(|(i, (r, j))| {
                json!({
                    "n": i, "run": run_info(r),
                    "verdicts": j.verdicts.iter().map(|v| json!({"line": v.line(), "regressed": v.regressed})).collect::<Vec<_>>(),
                    "regressed": j.regressions().count(),
                    "note": j.note,
                })
            })
            .collect();
        let ctx = json!({"title": format!("{scenario}: history"), "scenario": scenario, "charts": charts, "rows": rows});
        self.write(
            &format!("scenarios/{scenario}/history.html"),
            "history.html",
            ctx,
        )
    }

    fn compare_page(&mut self, scenario: &str) -> Result<(), String> {
        // The newest complete run of each configuration, newest first.
        let mut chosen: Vec<&Run> = Vec::new();
        for r in self
            .records
            .of(scenario)
            .filter(|r| r.complete() && !r.in_versus)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if chosen.len() < 6 && !chosen.iter().any(|c| c.config_key() == r.config_key()) {
                chosen.push(r);
            }
        }
        let reference = self
            .records
            .references
            .iter()
            .find(|r| r.info.compare_with.iter().any(|s| s == scenario));
        let first = chosen.first().and_then(|r| r.summary.as_ref());
        let rows: Vec<Value> = METRICS
            .iter()
            .map(|m| {
                let base = first.and_then(|s| (m.get)(s));
                let cells: Vec<Value> = chosen
                    .iter()
                    .map(|r| {
                        let v = r.summary.as_ref().and_then(|s| (m.get)(s));
                        json!({
                            "value": v.map(|v| metrics::format(v, m.unit)),
                            "delta": match (v, base) { (Some(v), Some(b)) if b != 0.0 && v != b => Some(format!("{:+.1}%", 100.0 * (v - b) / b)), _ => None },
                        })
                    })
                    .collect();
                json!({"label": m.label, "cells": cells})
            })
            .collect();
        let mut charts = Vec::new();
        let label = |r: &Run| r.name.clone();
        let users: Vec<Series> = chosen
            .iter()
            .map(|r| {
                Series::new(
                    label(r),
                    r.timeseries
                        .as_ref()
                        .map(|t| t.xy("t_s", "open", |v| v))
                        .unwrap_or_default(),
                )
            })
            .collect();
        let mut users = users;
        let mut mem: Vec<Series> = chosen
            .iter()
            .map(|r| {
                let sv = r.server.clone().unwrap_or_default();
                Series::new(label(r), sv.xy("t_s", "server_rss_kib", |v| v / 1024.0))
            })
            .collect();
        let mut cpu: Vec<Series> = chosen
            .iter()
            .map(|r| {
                let cores = r.cores().unwrap_or(1.0);
                Series::new(
                    label(r),
                    r.server
                        .as_ref()
                        .map(|t| t.xy("t_s", "server_cpu_pct", |v| v / cores))
                        .unwrap_or_default(),
                )
            })
            .collect();
        if let Some(rf) = reference {
            let name = format!("{} (reference)", rf.info.title);
            users.push(Series::new(
                name.clone(),
                rf.table("graphes-users-simultaneous.csv")
                    .map(|t| t.xy("time", "Connected", |v| v))
                    .unwrap_or_default(),
            ));
            mem.push(Series::new(
                name.clone(),
                rf.table("graphes-freemem-mean.csv")
                    .map(|t| t.xy("time", "Used", |v| v))
                    .unwrap_or_default(),
            ));
            cpu.push(Series::new(
                name,
                rf.table("graphes-cpu-mean.csv")
                    .map(|t| t.xy("time", "Usage", |v| v))
                    .unwrap_or_default(),
            ));
        }
        charts.extend(self.chart(
            chart::lines("Connected users", "s", "connections", &users),
            "Connected users",
            "no series",
        ));
        charts.extend(self.chart(
            chart::lines(
                "Server memory (the reference: the whole server, MB)",
                "s",
                "MiB",
                &mem,
            ),
            "Server memory",
            "no series",
        ));
        charts.extend(self.chart(
            chart::lines("Server CPU, % of all its machine's cores", "s", "%", &cpu),
            "Server CPU",
            "no series",
        ));
        let versus: Vec<Value> = self
            .records
            .versus
            .iter()
            .filter(|v| v.scenario == scenario)
            .map(|v| {
                json!({
                    "name": v.name, "a": v.versus.a, "b": v.versus.b,
                    "runs": v.versus.runs.iter().map(|r| json!({"side": r.side, "dir": r.dir, "complete": r.complete, "href": format!("../../runs/{scenario}/{}/{}/index.html", v.name, r.dir)})).collect::<Vec<_>>(),
                    "ratios": METRICS.iter().filter_map(|m| {
                        let r = v.versus.ratios.get(m.key)?;
                        Some(json!({"label": m.label, "median": format!("{:.3}", r.median), "min": format!("{:.3}", r.min), "max": format!("{:.3}", r.max), "n": r.pairs.len(), "better": ratio_verdict(m.better, r.min, r.max)}))
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        let ctx = json!({
            "title": format!("{scenario}: compare"),
            "scenario": scenario,
            "runs": chosen.iter().map(|r| run_info(r)).collect::<Vec<_>>(),
            "rows": rows,
            "charts": charts,
            "versus": versus,
            "reference": reference.map(|r| json!({"name": r.name, "info": r.info})),
        });
        self.write(
            &format!("scenarios/{scenario}/compare.html"),
            "compare.html",
            ctx,
        )
    }

    fn reference_page(&mut self, r: &Reference) -> Result<(), String> {
        let base = format!("reference/{}", r.name);
        let raw = copy_raw(&r.dir, &self.out.join(&base).join("raw"))?;
        let mut charts = Vec::new();
        for (file, meaning) in &r.info.series {
            let Some(t) = r.table(file) else { continue };
            let series: Vec<Series> = t
                .columns
                .iter()
                .skip(1)
                .map(|c| Series::new(c.clone(), t.xy(&t.columns[0], c, |v| v)))
                .collect();
            charts.extend(self.chart(
                chart::lines(meaning, "s", "", &series),
                meaning,
                "no points",
            ));
        }
        let ctx = json!({"title": r.info.title, "info": r.info, "charts": charts, "raw": raw});
        self.write(&format!("{base}/index.html"), "reference.html", ctx)
    }

    /// For a suite of several variants (the `peers` suite's servers): the
    /// best complete full-scale run of each, in one table.
    fn side_by_side_page(&mut self, scenario: &str) -> Result<(), String> {
        let rows = side_by_side(self.records, scenario);
        if rows.len() < 2 {
            return Ok(());
        }
        let mut hosts: Vec<&str> = rows.iter().map(|r| r.1.host.as_str()).collect();
        hosts.dedup();
        let table: Vec<Value> = rows
            .iter()
            .map(|(run, s)| {
                let pair = |l: &rtbench_record::Latency| {
                    if l.count == 0 {
                        "none".to_string()
                    } else {
                        format!("{} / {}", fmt_ms(l.p50), fmt_ms(l.p99))
                    }
                };
                let unmeasured = s.unmeasured.iter().any(|u| u.starts_with("server memory"));
                json!({
                    "variant": s.variant,
                    "server": s.server_under_test,
                    "held": metrics::group(s.connections.held as i64),
                    "failed": metrics::group(s.connections.failed as i64),
                    "server_kib": if unmeasured { "not measured".to_string() } else { format!("{:.2}", s.server.kib_per_connection) },
                    "machine_kib": format!("{:.2}", s.system.kib_per_connection),
                    "connect": pair(&s.connect_ms),
                    "round_trip": pair(&s.round_trip_ms),
                    "cpu": match s.server.cpu_holding_pct { Some(c) if !unmeasured => format!("{c:.1}%"), _ => "not measured".into() },
                    "href": format!("{}/index.html", run_path(run)),
                    "name": run.name,
                })
            })
            .collect();
        let description = rows[0].1.description.clone();
        let ctx = json!({"title": format!("{scenario} side by side"), "scenario": scenario, "description": description, "hosts": hosts.join(", "), "rows": table});
        self.write(
            &format!("scenarios/{scenario}/side-by-side.html"),
            "side-by-side.html",
            ctx,
        )
    }

    fn micro_page(&mut self, criterion: Option<&Path>) -> Result<(), String> {
        let (benches, problems) = criterion.map(micro::read).unwrap_or_default();
        self.report.warnings.extend(problems);
        let ctx = json!({"title": "Micro-benchmarks", "benches": benches, "dir": criterion.map(|p| p.display().to_string())});
        self.write("micro.html", "micro.html", ctx)
    }

    fn index_page(&mut self, t: &Thresholds) -> Result<(), String> {
        let mut scenarios = Vec::new();
        for scenario in self.records.scenarios() {
            let runs: Vec<&Run> = self
                .records
                .of(&scenario)
                .filter(|r| !r.in_versus)
                .collect();
            let latest = runs
                .iter()
                .rev()
                .find(|r| r.complete())
                .or(runs.last())
                .copied();
            // The history line follows the latest run's configuration.
            let key = latest.and_then(|r| r.config_key());
            let metric = if latest
                .and_then(|r| r.summary.as_ref())
                .is_some_and(|s| s.delivery_ms.count > 0)
            {
                metrics::by_key("delivery_p99_ms")
            } else {
                metrics::by_key("connect_p99_ms")
            }
            .expect("known metric");
            let same: Vec<&Run> = runs
                .iter()
                .filter(|r| r.complete() && r.config_key() == key)
                .copied()
                .collect();
            let mut points = Vec::new();
            let mut marks = Vec::new();
            for (i, r) in same.iter().enumerate() {
                if let Some(v) = r.summary.as_ref().and_then(|s| (metric.get)(s)) {
                    if regress::judge(self.records, r, t)
                        .regressions()
                        .next()
                        .is_some()
                    {
                        marks.push(points.len());
                    }
                    points.push((i as f64, v));
                }
            }
            let spark = chart::spark(&points, &marks).ok().flatten();
            // The headline: each variant's best complete run at full scale
            // (a CI-sized or scaled run is not the scenario's figure).
            let lead_runs = side_by_side(self.records, &scenario);
            let leads: Vec<Value> = lead_runs
                .iter()
                .map(|(r, s)| json!({"variant": s.variant, "run": run_info(r), "headline": headline(r, self.records.roofline_for(r))}))
                .collect();
            scenarios.push(json!({
                "name": scenario,
                "runs": runs.len(),
                "latest": latest.map(run_info),
                "description": latest.and_then(|r| r.summary.as_ref()).map(|s| s.description.clone()),
                "leads": leads,
                "headline": if leads.is_empty() { latest.map(|r| headline(r, self.records.roofline_for(r))).unwrap_or_default() } else { Vec::new() },
                "spark": spark,
                "side_by_side": lead_runs.len() >= 2,
                "spark_label": format!("{} over {} run(s) like the latest", metric.label, points.len()),
            }));
        }
        let rooflines: Vec<Value> = newest_rooflines(&self.records.rooflines)
            .into_iter()
            .map(|(name, r)| json!({"name": name, "host": r.host, "measured_at": r.measured_at, "rows": roofline_rows(r)}))
            .collect();
        let ctx = json!({"title": "Results", "scenarios": scenarios, "rooflines": rooflines, "warnings": self.records.warnings});
        self.write("index.html", "index.html", ctx)
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

/// Each variant's best complete run of `scenario` at full scale (no
/// `--scale` or `--connections`; no variant counts as one) on the host of the
/// newest such run, in order of first appearance. Best: not limited by the
/// load generator, then the most connections held, then the newest.
pub fn side_by_side<'a>(records: &'a Records, scenario: &str) -> Vec<(&'a Run, &'a BenchSummary)> {
    let full: Vec<(&Run, &BenchSummary)> = records
        .of(scenario)
        .filter(|r| r.complete() && !r.in_versus)
        .filter_map(|r| Some((r, r.summary.as_ref()?)))
        .filter(|(_, s)| s.overrides.scale.is_none() && s.overrides.connections.is_none())
        .collect();
    let Some(host) = full.last().map(|(_, s)| s.host.clone()) else {
        return Vec::new();
    };
    let rank = |s: &BenchSummary| (!s.client_bottleneck.bottleneck, s.connections.held);
    let mut out: Vec<(&Run, &BenchSummary)> = Vec::new();
    for (r, s) in full.into_iter().filter(|(_, s)| s.host == host) {
        match out.iter_mut().find(|(_, o)| o.variant == s.variant) {
            // Runs come oldest first: an equal one is newer.
            Some(slot) if rank(s) >= rank(slot.1) => *slot = (r, s),
            Some(_) => {}
            None => out.push((r, s)),
        }
    }
    out
}

pub fn run_path(run: &Run) -> String {
    format!("runs/{}/{}", run.scenario, run.name)
}

fn run_info(run: &Run) -> Value {
    let s = run.summary.as_ref();
    json!({
        "id": run.id(),
        "name": run.name,
        "scenario": run.scenario,
        "href": format!("{}/index.html", run_path(run)),
        "complete": run.complete(),
        "stopped_by": s.and_then(|s| s.stopped_by.clone()),
        "variant": s.and_then(|s| s.variant.clone()),
        "started_at": s.map(|s| s.started_at.clone()),
        "host": s.map(|s| s.host.clone()),
        "commit": run.environment.as_ref().map(|e| format!("{}{}", &e.git_commit[..e.git_commit.len().min(10)], if e.git_dirty { "+" } else { "" })),
        "overrides": s.map(|s| overrides_label(&s.overrides)),
    })
}

fn overrides_label(o: &rtbench_record::Overrides) -> String {
    let mut v = Vec::new();
    if let Some(x) = o.scale {
        v.push(format!("--scale {x}"));
    }
    if let Some(x) = o.connections {
        v.push(format!("--connections {x}"));
    }
    if let Some(x) = o.rate {
        v.push(format!("--rate {x}"));
    }
    if let Some(x) = o.hold_s {
        v.push(format!("--hold {x}"));
    }
    if let Some(x) = o.processes {
        v.push(format!("--processes {x}"));
    }
    if v.is_empty() {
        "as written".into()
    } else {
        v.join(" ")
    }
}

fn config_label(key: &str) -> String {
    let f: Vec<&str> = key.split('|').collect();
    let o: rtbench_record::Overrides = f
        .get(3)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let variant = f
        .get(1)
        .filter(|v| !v.is_empty())
        .map(|v| format!("{v}, "))
        .unwrap_or_default();
    format!(
        "{variant}{} on {}",
        overrides_label(&o),
        f.get(2).unwrap_or(&"")
    )
}

/// Each host's newest roofline.
fn newest_rooflines(all: &[(String, Roofline)]) -> Vec<&(String, Roofline)> {
    let mut out: Vec<&(String, Roofline)> = Vec::new();
    for r in all.iter().rev() {
        if !out.iter().any(|o| o.1.host == r.1.host) {
            out.push(r);
        }
    }
    out
}

fn roofline_rows(r: &Roofline) -> Vec<Value> {
    let m = &r.measured;
    let spread = |s: &Spread, unit: &str| {
        format!(
            "{}{unit} (median of {}; {} to {})",
            metrics::group(s.median.round() as i64),
            s.runs.len(),
            metrics::group(s.min.round() as i64),
            metrics::group(s.max.round() as i64)
        )
    };
    let mut rows = vec![
        json!({"label": "connection pairs opened", "value": format!("{} pairs at {}", metrics::group(m.pairs.count as i64), spread(&m.pairs.per_second, "/s"))}),
        json!({"label": "machine memory per pair (both ends, MemTotal − MemAvailable)", "value": format!("{:.2} KiB ({:.2} to {:.2})", m.pairs.kernel_kib_per_pair.median, m.pairs.kernel_kib_per_pair.min, m.pairs.kernel_kib_per_pair.max)}),
        json!({"label": "kernel slab per pair (both ends)", "value": format!("{:.2} KiB ({:.2} to {:.2})", m.pairs.slab_kib_per_pair.median, m.pairs.slab_kib_per_pair.min, m.pairs.slab_kib_per_pair.max)}),
    ];
    for f in &m.fanout {
        rows.push(json!({"label": format!("fan-out, {} B, {} per write", f.size, f.per_write), "value": spread(&f.deliveries_per_s, " deliveries/s")}));
    }
    rows.push(json!({"label": format!("round trips, {} B", m.round_trips.request_bytes), "value": spread(&m.round_trips.per_second, "/s")}));
    rows
}

/// A figure as a share of the machine's limit: "67% of ...".
fn share(value: f64, limit: f64) -> String {
    format!("{:.0}%", 100.0 * value / limit)
}

fn headline(run: &Run, roofline: Option<&(String, Roofline)>) -> Vec<Value> {
    let Some(s) = run.summary.as_ref() else {
        return Vec::new();
    };
    let mut h = vec![
        json!({"label": "connected users", "value": format!("{} held, {} peak, of {}", metrics::group(s.connections.held as i64), metrics::group(s.connections.peak as i64), metrics::group(s.connections.target as i64))}),
    ];
    if s.server_under_test != "rtbench" {
        h.push(json!({"label": "server under test", "value": s.server_under_test}));
    }
    if !s.process_exits.is_empty() {
        let list: Vec<String> = s
            .process_exits
            .iter()
            .map(|e| format!("{} (pid {}) at {:.1} s: {}", e.role, e.pid, e.t_s, e.status))
            .collect();
        h.push(json!({"label": "processes that died during the run", "value": list.join("; ")}));
    }
    if !s.unmeasured.is_empty() {
        h.push(json!({"label": "not measured", "value": s.unmeasured.join("; ")}));
    }
    if !s.faults_injected.is_empty() {
        let list: Vec<String> = s
            .faults_injected
            .iter()
            .map(|f| format!("{} {} at {} s (pid {})", f.action, f.target, f.at_s, f.pid))
            .collect();
        h.push(json!({"label": "faults injected (the suite's plan)", "value": list.join("; ")}));
    }
    if let Some(f) = &s.failover {
        h.push(json!({"label": "failover: connections lost", "value": format!(
            "{} of {}, all back after {}",
            metrics::group(f.connections_lost as i64),
            metrics::group(f.open_before as i64),
            f.recovered_after_s.map_or("never, within the run".into(), |t| metrics::format(t, "s"))
        )}));
        h.push(json!({"label": "failover: each client's wait, loss to open again (p50 / p99 / p99.9)", "value": format!(
            "{} / {} / {} ms ({} reconnections)",
            fmt_ms(f.reconnect_ms.p50),
            fmt_ms(f.reconnect_ms.p99),
            fmt_ms(f.reconnect_ms.p999),
            metrics::group(f.reconnects as i64)
        )}));
        h.push(
            json!({"label": "failover: events missed (no replay in the protocol)", "value": format!(
                "{} of {} sent to subscribers ({:.3}%), {} duplicates",
                metrics::group(f.events_missed as i64),
                metrics::group(f.events_expected as i64),
                100.0 * f.events_missed as f64 / (f.events_expected.max(1)) as f64,
                metrics::group(f.duplicates as i64)
            )}),
        );
        h.push(
            json!({"label": "failover: subscribers who missed events", "value": format!(
                "{} of {}, at most {} missed by one",
                metrics::group(f.subscribers_missing_events as i64),
                metrics::group(f.open_before as i64),
                metrics::group(f.most_missed_by_one as i64)
            )}),
        );
        h.push(
            json!({"label": "failover: servers at their peak, from the fault on", "value": format!(
                "{:.0}% of a core, {} RSS",
                f.servers_cpu_peak_pct,
                metrics::format(f.servers_rss_peak_kib as f64 / 1024.0, "MiB")
            )}),
        );
    }
    h.push(json!({"label": "time to target", "value": s.connections.time_to_target_s.map_or("not reached".into(), |t| metrics::format(t, "s"))}));
    if let Some(l) = &run.load {
        let mb = |b: u64| metrics::format(b as f64 / 1e6, "MB");
        h.push(json!({"label": "total traffic (client side)", "value": format!("{} received, {} sent", mb(l.counters.bytes_in), mb(l.counters.bytes_out))}));
    }
    let lat = |l: &rtbench_record::Latency| {
        format!(
            "{} / {} / {} ms ({} samples)",
            fmt_ms(l.p50),
            fmt_ms(l.p99),
            fmt_ms(l.p999),
            metrics::group(l.count as i64)
        )
    };
    h.push(json!({"label": "connect p50 / p99 / p99.9", "value": lat(&s.connect_ms)}));
    if s.round_trip_ms.count > 0 {
        h.push(json!({"label": "round trip p50 / p99 / p99.9 (ping or echo)", "value": lat(&s.round_trip_ms)}));
    }
    if s.delivery_ms.count > 0 {
        h.push(json!({"label": "delivery p50 / p99 / p99.9", "value": lat(&s.delivery_ms)}));
        let mut value = metrics::format(s.deliveries_per_s, "/s");
        // Read against the bare-TCP fan-out for the frames this run received.
        let size = run
            .load
            .as_ref()
            .filter(|l| l.counters.frames_in > 0)
            .map_or(200, |l| {
                (l.counters.bytes_in / l.counters.frames_in) as usize
            });
        if let Some((name, r)) = roofline {
            let at = |k: usize| {
                r.measured
                    .fanout_for(size, k)
                    .map(|f| (f.size, f.deliveries_per_s.median))
            };
            if let Some((bytes, one)) = at(1) {
                value.push_str(&format!(
                    ": {} of this machine's bare-TCP limit at one write per delivery ({}/s, {bytes} B)",
                    share(s.deliveries_per_s, one),
                    metrics::group(one.round() as i64)
                ));
                if let Some((_, four)) = at(4) {
                    value.push_str(&format!(
                        ", {} of it at 4 per write ({}/s)",
                        share(s.deliveries_per_s, four),
                        metrics::group(four.round() as i64)
                    ));
                }
                value.push_str(&format!(" [roofline {name}]"));
            }
        }
        h.push(json!({"label": "deliveries", "value": value}));
    }
    h.push(json!({"label": "server memory per connection", "value": format!("{:.2} KiB ({} process(es), peak RSS {})", s.server.kib_per_connection, s.server.processes, metrics::format(s.server.rss_peak_kib as f64 / 1024.0, "MiB"))}));
    let mut machine = format!(
        "{:.2} KiB (kernel, server and load generator)",
        s.system.kib_per_connection
    );
    if let Some((name, r)) = roofline {
        let bare = r.measured.pairs.kernel_kib_per_pair.median;
        if bare > 0.0 {
            machine.push_str(&format!(
                ": {} of this machine's bare-TCP connection pair ({bare:.2} KiB) [roofline {name}]",
                share(s.system.kib_per_connection, bare)
            ));
        }
    }
    h.push(json!({"label": "machine memory per connection", "value": machine}));
    h.push(json!({"label": "server CPU while holding", "value": s.server.cpu_holding_pct.map_or("no sample in the hold".into(), |c| format!("{c:.1}% of a core"))}));
    let e = &s.errors;
    let n = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    h.push(json!({"label": "errors", "value": format!(
        "{} failed connects, {} closed by server, {} error frames, {} misdelivered, {} duplicates, {} lost",
        n(&e.failed), n(&e.closed_by_server), n(&e.error_frames), e.misdelivered, e.duplicates,
        e.lost.map_or("unknown".into(), |l| l.to_string()))}));
    h
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn errors_table(run: &Run) -> Vec<Value> {
    let Some(s) = run.summary.as_ref() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (what, m) in [
        ("failed connect", &s.errors.failed),
        ("closed by server", &s.errors.closed_by_server),
        ("error frame", &s.errors.error_frames),
    ] {
        for (k, v) in m {
            rows.push(json!([what, k, v]));
        }
    }
    rows
}

fn environment_rows(e: &rtbench_record::Environment) -> Vec<Value> {
    vec![
        json!(["host", e.host]),
        json!(["kernel", e.kernel]),
        json!(["CPU", format!("{} ({} cores)", e.cpu_model, e.cores)]),
        json!([
            "memory",
            metrics::format(e.mem_total_kib as f64 / 1048576.0, "GiB")
        ]),
        json!([
            "open files (soft / hard)",
            format!("{} / {}", e.nofile_soft, e.nofile_hard)
        ]),
        json!([
            "git commit",
            format!(
                "{}{}",
                e.git_commit,
                if e.git_dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            )
        ]),
        json!(["rustc", e.rustc]),
        json!([
            "server",
            format!("{} x {}", e.server_processes, e.server_version)
        ]),
        json!(["server flags", e.server_args.join(" ")]),
        json!(["load generator", e.loadgen_version]),
        json!(["deployment", deployment_label(&e.deployment)]),
    ]
}

fn deployment_label(d: &rtbench_record::Deployment) -> String {
    let mut s = d.kind.clone();
    if let Some(c) = &d.containers {
        let lim = |l: &rtbench_record::Limits| {
            format!(
                "{} CPUs, {}",
                l.cpus.map_or("unlimited".into(), |c| c.to_string()),
                l.memory.as_deref().unwrap_or("unlimited memory")
            )
        };
        s += &format!(
            ": {} worker container(s); server {}; worker {}; redis {}; nofile {}; sysctls {:?}; images {}",
            c.workers,
            lim(&c.server),
            lim(&c.worker),
            lim(&c.redis),
            c.nofile,
            c.sysctls,
            d.images.join(", ")
        );
    }
    for h in &d.hosts {
        s += &format!(
            "; {} {} (clock {:+.3} ms ± {:.3})",
            h.role,
            h.address,
            h.clock_offset_ns as f64 / 1e6,
            h.clock_error_ns as f64 / 1e6
        );
    }
    s
}

/// (t, v) counters into (t, per second).
/// Rates from a cumulative counter. A counter summed over processes drops
/// when one of them dies (its count goes with it): that second reads 0, not
/// a negative rate.
fn per_second(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .windows(2)
        .map(|w| {
            (
                w[1].0,
                ((w[1].1 - w[0].1) / (w[1].0 - w[0].0).max(1e-9)).max(0.0),
            )
        })
        .collect()
}

/// Server RSS and machine memory growth over the connections held, in KiB,
/// where at least 1% of the peak is connected (below, one-off costs dominate).
fn bytes_per_connection(sv: &crate::table::Table) -> Vec<Series> {
    let (Some(t), Some(c), Some(rss), Some(mem)) = (
        sv.col("t_s"),
        sv.col("server_connections"),
        sv.col("server_rss_kib"),
        sv.col("mem_used_kib"),
    ) else {
        return Vec::new();
    };
    let peak = c.iter().copied().fold(0.0, f64::max);
    let (rss0, mem0) = (
        rss.first().copied().unwrap_or(0.0),
        mem.first().copied().unwrap_or(0.0),
    );
    let idx: Vec<usize> = (0..t.len())
        .filter(|&i| c[i] > 0.0 && c[i] >= peak / 100.0)
        .collect();
    vec![
        Series::new(
            "server RSS",
            idx.iter()
                .map(|&i| (t[i], (rss[i] - rss0) / c[i]))
                .collect(),
        ),
        Series::new(
            "machine (kernel, server, load generator)",
            idx.iter()
                .map(|&i| (t[i], (mem[i] - mem0) / c[i]))
                .collect(),
        ),
    ]
}

/// What the pairs agree on, stated as a fact about the pairs.
fn ratio_verdict(better: metrics::Better, min: f64, max: f64) -> &'static str {
    use metrics::Better::*;
    match better {
        _ if min <= 1.0 && max >= 1.0 => "pairs disagree",
        Lower if max < 1.0 => "B lower (better) in every pair",
        Higher if min > 1.0 => "B higher (better) in every pair",
        Lower => "B higher (worse) in every pair",
        Higher => "B lower (worse) in every pair",
    }
}

/// Copies a record's files to `dest`, returning links (relative to the page
/// beside `dest`) with sizes.
fn copy_raw(src: &Path, dest: &Path) -> Result<Vec<Value>, String> {
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

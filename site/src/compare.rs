//! `compare RUN_A RUN_B`: the headline metrics of two runs and their deltas,
//! as a text table, with which side each delta favours.

use rtbench_record::BenchSummary;
use rtbench_record::metrics::{self, Better, METRICS};

use crate::figures;

pub fn table(a_name: &str, a: &BenchSummary, b_name: &str, b: &BenchSummary) -> String {
    let mut rows = vec![[
        "metric".to_string(),
        format!("A {a_name}"),
        format!("B {b_name}"),
        "B - A".into(),
        "B / A".into(),
        String::new(),
    ]];
    for m in METRICS {
        // An absent figure says why ("none", "not measured"), and has no delta.
        let (fa, fb) = (figures::of(m, a), figures::of(m, b));
        let (va, vb) = (fa.value(), fb.value());
        let (delta, ratio, verdict) = match (va, vb) {
            (Some(x), Some(y)) => {
                let ratio = if x != 0.0 {
                    format!("{:.3}", y / x)
                } else {
                    "–".into()
                };
                let verdict = match (y.partial_cmp(&x), m.better) {
                    (Some(std::cmp::Ordering::Equal), _) | (None, _) => "",
                    (Some(std::cmp::Ordering::Less), Better::Lower)
                    | (Some(std::cmp::Ordering::Greater), Better::Higher) => "B better",
                    _ => "B worse",
                };
                (metrics::format(y - x, m.unit), ratio, verdict)
            }
            _ => ("–".into(), "–".into(), ""),
        };
        rows.push([
            m.label.to_string(),
            fa.text(m.unit),
            fb.text(m.unit),
            delta,
            ratio,
            verdict.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

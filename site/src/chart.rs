//! Charts as inline SVG, drawn by plotters without system fonts (its SVG
//! backend writes `<text>` and lets the browser pick the font). A chart with
//! no points is not drawn: the page says so instead of showing empty axes.
//!
//! Every chart is a `Chart`: its SVG carries its title (`<title>`, the name a
//! screen reader gives it) and a summary of what it shows (`<desc>`), and the
//! same summary goes on the page as text. Colours are Okabe and Ito's
//! palette, told apart with every common colour blindness.

use anyhow::{Result, anyhow};
use plotters::prelude::*;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn wide and faint beneath the others (a published series ours
    /// are laid over), so a line on top of it stays visible.
    pub backdrop: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            backdrop: false,
        }
    }

    /// The same series, drawn beneath the others.
    pub fn backdrop(self) -> Series {
        Series {
            backdrop: true,
            ..self
        }
    }
}

/// A drawn chart and what it shows, in words.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    /// The SVG, its `<title>` and `<desc>` inside.
    pub svg: String,
    pub summary: String,
}

/// A chart, none when there was nothing to draw, or why plotters refused.
pub type Drawn = Result<Option<Chart>>;

/// Okabe and Ito's colour-blind-safe palette (blue, vermillion, bluish
/// green, orange, reddish purple, sky blue, black), yellow left out: it
/// does not read on white.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(230, 159, 0),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];
/// What is marked (a regression): vermillion.
const MARK: RGBColor = PALETTE[1];
const GREY: RGBColor = RGBColor(120, 120, 120);

/// A chart's size and type sizes: a page's chart, or a front-page card's.
#[derive(Clone, Copy)]
struct Size {
    w: u32,
    h: u32,
    caption: u32,
    x_area: u32,
    y_area: u32,
    /// Tick labels and axis names.
    label: u32,
}

const FULL: Size = Size {
    w: 760,
    h: 320,
    caption: 17,
    x_area: 36,
    y_area: 70,
    label: 13,
};
const SMALL: Size = Size {
    w: 440,
    h: 200,
    caption: 18,
    x_area: 44,
    y_area: 72,
    label: 17,
};

fn bounds(series: &[Series]) -> Option<((f64, f64), (f64, f64))> {
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let mut b: Option<((f64, f64), (f64, f64))> = None;
    for &(x, y) in pts {
        b = Some(match b {
            None => ((x, x), (y, y)),
            Some(((x0, x1), (y0, y1))) => ((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y))),
        });
    }
    let ((x0, mut x1), (y0, mut y1)) = b?;
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    Some(((x0, x1), (y0.min(0.0), y1 * 1.08)))
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("chart: {e:?}")
}

/// Lines over a linear x axis (seconds, or runs).
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Drawn {
    line_chart(FULL, title, x_desc, y_desc, series)
}

/// The same, small enough for a card on the front page, its points thinned.
pub fn small_lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Drawn {
    // One line needs no legend: its title says what it is.
    let one = series.len() == 1;
    let thinned: Vec<Series> = series
        .iter()
        .map(|s| {
            let name = if one { String::new() } else { s.name.clone() };
            Series::new(name, thin(&s.points, 120))
        })
        .collect();
    line_chart(SMALL, title, x_desc, y_desc, &thinned)
}

fn line_chart(size: Size, title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Drawn {
    let Some(((x0, x1), (y0, y1))) = bounds(series) else {
        return Ok(None);
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (size.w, size.h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", size.caption))
            .margin(10)
            .x_label_area_size(size.x_area)
            .y_label_area_size(size.y_area)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(if size.w < FULL.w { 5 } else { 10 })
            .y_labels(if size.w < FULL.w { 5 } else { 10 })
            .y_label_formatter(&|v| short(*v))
            .x_label_formatter(&|v| short(*v))
            .label_style(("sans-serif", size.label))
            .axis_desc_style(("sans-serif", size.label))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, series)?;
        let corner = emptiest_corner(series, (x0, x1), (y0, y1));
        legend(&mut chart, series, corner)?;
        root.present().map_err(err)?;
    }
    let summary = summarize(x_desc, y_desc, series);
    Ok(Some(finish(title, svg, summary)))
}

/// The HDR percentile plot: x is 1/(1-percentile) on a log axis, so p50,
/// p99 and p99.9 are evenly spaced; y (ms) is logarithmic too.
pub fn percentiles(title: &str, series: &[Series]) -> Drawn {
    let positive: Vec<Series> = series
        .iter()
        .map(|s| {
            let points = s.points.iter().copied();
            Series::new(
                s.name.clone(),
                points.filter(|(x, y)| *x >= 1.0 && *y > 0.0).collect(),
            )
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let Some(((_, x1), (_, _))) = bounds(&positive) else {
        return Ok(None);
    };
    let ys = positive.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (FULL.w, FULL.h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", FULL.caption))
            .margin(12)
            .x_label_area_size(FULL.x_area)
            .y_label_area_size(FULL.y_area)
            .build_cartesian_2d(
                (1.0..x1.max(10.0)).log_scale(),
                (y0 * 0.8..y1 * 1.25).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .x_label_formatter(&|v| percentile_label(*v))
            .y_label_formatter(&|v| short(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, &positive)?;
        legend(&mut chart, &positive, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(err)?;
    }
    let summary = positive
        .iter()
        .map(|s| {
            let at = |inv: f64| {
                let v = s.points.iter().find(|p| p.0 >= inv).or(s.points.last());
                v.map_or("none".into(), |p| format!("{} ms", approx(p.1)))
            };
            let name = if s.name.is_empty() {
                "latency"
            } else {
                &s.name
            };
            format!(
                "{name}: p50 {}, p99 {}, p99.9 {}",
                at(2.0),
                at(100.0),
                at(1000.0)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Some(finish(title, svg, format!("{summary}."))))
}

/// A vertical line across a chart at `x`: a knee, a machine's limit.
pub struct Mark {
    pub x: f64,
    pub name: String,
}

/// Latency against offered load (a sweep), both axes logarithmic so the
/// steps of a geometric sweep are evenly spaced and a p99 of 5 ms and of
/// 5 s both read; each step a dot on its line; `marks` drawn as dashed
/// vertical lines named in the legend.
pub fn capacity_curve(title: &str, x_desc: &str, series: &[Series], marks: &[Mark]) -> Drawn {
    let positive: Vec<Series> = series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| *x > 0.0 && *y > 0.0);
            Series::new(s.name.clone(), pts.collect())
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let Some(((x0, x1), _)) = bounds(&positive) else {
        return Ok(None);
    };
    let marked = marks.iter().map(|m| m.x).filter(|x| *x > 0.0);
    let (x0, x1) = marked.fold((x0, x1), |(a, b), x| (a.min(x), b.max(x)));
    let ys = positive.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (y0, y1) = (y0 * 0.7, y1 * 1.5);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (FULL.w, FULL.h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", FULL.caption))
            .margin(12)
            .x_label_area_size(FULL.x_area)
            .y_label_area_size(FULL.y_area)
            .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), (y0..y1).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("ms")
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .label_style(("sans-serif", FULL.label))
            .axis_desc_style(("sans-serif", FULL.label))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, &positive)?;
        for (i, s) in positive.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        for (i, m) in marks.iter().enumerate() {
            let color = if i == 0 { PALETTE[6] } else { GREY };
            let style = color.stroke_width(2);
            let dashes = dashed((m.x, y0), (m.x, y1), 12);
            chart
                .draw_series(dashes.into_iter().map(|seg| PathElement::new(seg, style)))
                .map_err(err)?
                .label(m.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
        // The emptiest corner on the log axes the lines are drawn on.
        let logged: Vec<Series> = positive
            .iter()
            .map(|s| Series::new("", s.points.iter().map(|(x, y)| (x.ln(), y.ln())).collect()))
            .collect();
        let corner = emptiest_corner(
            &logged,
            ((x0 * 0.8).ln(), (x1 * 1.25).ln()),
            (y0.ln(), y1.ln()),
        );
        legend(&mut chart, &positive, corner)?;
        root.present().map_err(err)?;
    }
    let mut summary = summarize(x_desc, "ms", &positive);
    for m in marks {
        summary.push_str(&format!(" {} at {} {x_desc}.", m.name, approx(m.x)));
    }
    Ok(Some(finish(title, svg, summary)))
}

/// A vertical line from `from` to `to` in `n` dashes, spaced evenly on a
/// log axis.
fn dashed(from: (f64, f64), to: (f64, f64), n: usize) -> Vec<Vec<(f64, f64)>> {
    let (l0, l1) = (from.1.ln(), to.1.ln());
    (0..n)
        .map(|i| {
            let at = |k: f64| (l0 + (l1 - l0) * k / n as f64).exp();
            vec![(from.0, at(i as f64)), (from.0, at(i as f64 + 0.5))]
        })
        .collect()
}

/// One metric over a scenario's runs, for its card: what it shows, its
/// unit, and the runs' dates.
pub struct History<'a> {
    /// The metric, as the caption and title name it.
    pub label: &'a str,
    pub unit: &'a str,
    /// (run index, value), oldest first.
    pub points: &'a [(f64, f64)],
    /// Each point's run date (`2026-11-28`).
    pub dates: &'a [String],
    /// Points drawn as regressions.
    pub marks: &'a [usize],
}

/// A small history line with its axis (unit) and its first and last dates;
/// none while there is one point (a dot says nothing about a history).
pub fn spark(h: &History) -> Drawn {
    if h.points.len() < 2 {
        return Ok(None);
    }
    let series = [Series::new("", h.points.to_vec())];
    let Some(((x0, x1), (y0, y1))) = bounds(&series) else {
        return Ok(None);
    };
    let (first, last) = (
        h.dates.first().cloned().unwrap_or_default(),
        h.dates.last().cloned().unwrap_or_default(),
    );
    let title = format!("{} ({}) over {} runs", h.label, h.unit, h.points.len());
    let mut svg = String::new();
    {
        let (w, hgt) = (300u32, 110u32);
        let root = SVGBackend::with_string(&mut svg, (w, hgt)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(18)
            .y_label_area_size(48)
            .build_cartesian_2d(x0 - 0.5..x1 + 0.5, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(3)
            .y_desc(h.unit)
            .y_label_formatter(&|v| short(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                h.points.iter().copied(),
                PALETTE[0].stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(h.points.iter().enumerate().map(|(i, p)| {
                let c = if h.marks.contains(&i) {
                    MARK
                } else {
                    PALETTE[0]
                };
                Circle::new(*p, 3, c.filled())
            }))
            .map_err(err)?;
        let style = ("sans-serif", 13).into_font().color(&GREY);
        let y = hgt as i32 - 14;
        root.draw_text(&first, &style, (52, y)).map_err(err)?;
        let right = w as i32 - 8 - 7 * last.len() as i32;
        root.draw_text(&last, &style, (right, y)).map_err(err)?;
        root.present().map_err(err)?;
    }
    let values: Vec<f64> = h.points.iter().map(|p| p.1).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    let summary = format!(
        "{} runs from {first} to {last}: from {} to {} {}, lowest {}, highest {}{}.",
        h.points.len(),
        approx(values[0]),
        approx(values[values.len() - 1]),
        h.unit,
        approx(lo),
        approx(hi),
        match h.marks.len() {
            0 => String::new(),
            n => format!("; {n} marked as a regression"),
        }
    );
    Ok(Some(finish(&title, svg, summary)))
}

/// Horizontal bars, one per item in the order given, each with its value
/// written beside it; `highlight` items in the palette's first colour, the
/// others grey. For a card comparing a figure across variants.
pub fn ranked_bars(title: &str, unit: &str, items: &[(String, f64, bool)]) -> Drawn {
    let items: Vec<&(String, f64, bool)> = items.iter().filter(|i| i.1.is_finite()).collect();
    let Some(max) = items.iter().map(|i| i.1).reduce(f64::max) else {
        return Ok(None);
    };
    let (w, row, top, label_w, bar_w) = (440.0, 20.0, 30.0, 190.0, 170.0);
    let h = top + row * items.len() as f64 + 8.0;
    let mut svg = format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\
         <text x=\"{}\" y=\"18\" font-family=\"sans-serif\" font-size=\"14\" text-anchor=\"middle\">{}</text>",
        w / 2.0,
        escape(title)
    );
    for (i, (label, value, highlight)) in items.iter().enumerate() {
        let y = top + row * i as f64;
        let len = if max > 0.0 { bar_w * value / max } else { 0.0 };
        let RGBColor(r, g, b) = if *highlight { PALETTE[0] } else { GREY };
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <rect x=\"{}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"rgb({r},{g},{b})\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"12\">{} {}</text>",
            label_w - 6.0,
            y + 14.0,
            escape(label),
            label_w,
            y + 3.0,
            len.max(1.0),
            row - 6.0,
            label_w + len.max(1.0) + 4.0,
            y + 14.0,
            approx(*value),
            escape(unit)
        ));
    }
    svg.push_str("</svg>");
    let summary = items
        .iter()
        .map(|(label, value, _)| format!("{label} {} {unit}", approx(*value)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Some(finish(title, svg, format!("{summary}."))))
}

type Chart2d<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

fn draw_lines<X, Y>(chart: &mut Chart2d<'_, X, Y>, series: &[Series]) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    // Backdrops first, so the other lines are drawn over them.
    let order = series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.backdrop)
        .chain(series.iter().enumerate().filter(|(_, s)| !s.backdrop));
    for (i, s) in order {
        let color = PALETTE[i % PALETTE.len()];
        let style = if s.backdrop {
            color.mix(0.4).stroke_width(8)
        } else {
            color.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    Ok(())
}

fn legend<X, Y>(
    chart: &mut Chart2d<'_, X, Y>,
    series: &[Series],
    corner: SeriesLabelPosition,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if series.len() > 1 || series.first().is_some_and(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// The corner of the plot the lines cross least, for the legend: a
/// legend over the lines hides what the chart is for.
fn emptiest_corner(series: &[Series], x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    use SeriesLabelPosition::*;
    let norm = |p: &(f64, f64)| ((p.0 - x.0) / (x.1 - x.0), (p.1 - y.0) / (y.1 - y.0));
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(norm))
        .collect();
    let crowd = |left: bool, top: bool| {
        points
            .iter()
            .filter(|(px, py)| {
                (if left { *px < 0.5 } else { *px > 0.5 })
                    && (if top { *py > 0.6 } else { *py < 0.4 })
            })
            .count()
    };
    [
        (UpperLeft, true, true),
        (UpperRight, false, true),
        (LowerRight, false, false),
        (LowerLeft, true, false),
    ]
    .into_iter()
    .min_by_key(|(_, left, top)| crowd(*left, *top))
    .map_or(UpperLeft, |(corner, _, _)| corner)
}

/// Each series in words: where it starts, peaks and ends, in the chart's
/// unit (the title is the chart's `<title>`, not repeated here).
fn summarize(x_desc: &str, y_desc: &str, series: &[Series]) -> String {
    let at = |x: f64| match x_desc {
        "run" => format!("run {}", approx(x)),
        _ => format!("{} {x_desc}", approx(x)),
    };
    let parts: Vec<String> = series
        .iter()
        .filter_map(|s| {
            let first = *s.points.first()?;
            let last = *s.points.last()?;
            let peak = s
                .points
                .iter()
                .copied()
                .reduce(|a, b| if b.1 > a.1 { b } else { a })?;
            let name = if s.name.is_empty() {
                String::new()
            } else {
                format!("{}: ", s.name)
            };
            let mut text = format!(
                "{name}{} at {} to {} at {}",
                approx(first.1),
                at(first.0),
                approx(last.1),
                at(last.0)
            );
            if peak.1 > first.1.max(last.1) {
                text.push_str(&format!(", highest {} at {}", approx(peak.1), at(peak.0)));
            }
            Some(text)
        })
        .collect();
    let over = if x_desc == "s" {
        "over time".to_string()
    } else {
        format!("by {x_desc}")
    };
    format!("{y_desc} {over}: {}.", parts.join("; "))
}

/// Plotters' SVG with the chart's title and summary put inside it, where a
/// screen reader looks (`<title>`, `<desc>`), and marked as one image.
fn finish(title: &str, svg: String, summary: String) -> Chart {
    // The end of the opening `<svg ...>` tag.
    let open_end = svg
        .find("<svg")
        .and_then(|i| svg[i..].find('>').map(|j| i + j));
    let svg = match open_end {
        Some(end) => format!(
            "{} role=\"img\"><title>{}</title><desc>{}</desc>{}",
            &svg[..end],
            escape(title),
            escape(&summary),
            &svg[end + 1..]
        ),
        None => svg,
    };
    Chart {
        title: title.to_string(),
        svg,
        summary,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// At most about `buckets` × 2 points: each bucket of neighbours keeps its
/// lowest and highest, in order, so a spike survives the thinning.
pub fn thin(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    if points.len() <= buckets * 2 || buckets == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(buckets * 2);
    for chunk in points.chunks(per) {
        let lo = chunk
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1));
        let hi = chunk
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1));
        let (Some((i, lo)), Some((j, hi))) = (lo, hi) else {
            continue;
        };
        match i.cmp(&j) {
            std::cmp::Ordering::Less => out.extend([*lo, *hi]),
            std::cmp::Ordering::Greater => out.extend([*hi, *lo]),
            std::cmp::Ordering::Equal => out.push(*lo),
        }
    }
    out
}

/// Axis numbers: 1500000 -> 1.5M, 20000 -> 20k, 0.25 -> 0.25.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else if a >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        trim(v)
    }
}

/// A figure in words, to three significant digits: 1,834,000 -> 1.83M,
/// 840,660 -> 841k, 1997 -> 1,997, 14.91 -> 14.9, 0.854 -> 0.854.
pub fn approx(v: f64) -> String {
    let a = v.abs();
    let sig3 = |x: f64| {
        let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e6 {
        format!("{}M", sig3(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", sig3(v / 1e3))
    } else if a >= 100.0 {
        rtbench_record::metrics::group(v.round() as i64)
    } else if a == 0.0 {
        "0".into()
    } else {
        sig3(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn percentile_label(inv: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / inv);
    // As many decimals as the nines need: 99%, 99.9%, 99.99%.
    let decimals = (inv.log10().ceil() as usize).saturating_sub(2);
    format!("{p:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_titled_svg_with_a_summary_and_skips_empty() {
        let c = lines(
            "Users",
            "s",
            "connections",
            &[Series::new(
                "open",
                vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)],
            )],
        )
        .unwrap()
        .unwrap();
        assert!(
            c.svg.starts_with("<svg") && c.svg.contains("<polyline"),
            "{}",
            c.svg
        );
        assert!(c.svg.contains(
            " role=\"img\"><title>Users</title><desc>connections over time: open: 1 at 0 s to 2"
        ));
        assert_eq!(
            c.summary,
            "connections over time: open: 1 at 0 s to 2 at 2 s, highest 3 at 1 s."
        );
        assert!(
            lines("t", "s", "n", &[Series::new("a", vec![])])
                .unwrap()
                .is_none()
        );
        let p = percentiles(
            "p",
            &[Series::new(
                "d",
                vec![(1.0, 0.1), (2.0, 1.9), (100.0, 15.0)],
            )],
        )
        .unwrap()
        .unwrap();
        assert!(p.svg.contains("99%"), "{}", p.svg);
        assert_eq!(p.summary, "d: p50 1.9 ms, p99 15 ms, p99.9 15 ms.");
        assert_eq!(
            (short(1_500_000.0), short(20_000.0), short(0.25)),
            ("1.5M".into(), "20k".into(), "0.25".into())
        );
    }

    #[test]
    fn a_spark_needs_two_points_and_says_its_dates() {
        let dates = ["2026-11-28".to_string(), "2026-12-06".to_string()];
        let one = History {
            label: "connect p99",
            unit: "ms",
            points: &[(0.0, 4.0)],
            dates: &dates[..1],
            marks: &[],
        };
        assert!(spark(&one).unwrap().is_none());
        let two = History {
            points: &[(0.0, 4.0), (1.0, 9.0)],
            dates: &dates,
            marks: &[1],
            ..one
        };
        let c = spark(&two).unwrap().unwrap();
        assert_eq!(c.title, "connect p99 (ms) over 2 runs");
        assert_eq!(
            c.summary,
            "2 runs from 2026-11-28 to 2026-12-06: from 4 to 9 ms, lowest 4, highest 9; 1 marked as a regression."
        );
        assert!(c.svg.contains("\n2026-12-06\n</text>"), "{}", c.svg);
    }

    #[test]
    fn bars_and_thinning() {
        let b = ranked_bars(
            "KiB per connection",
            "KiB",
            &[("a".into(), 0.1, true), ("b<".into(), 4.7, false)],
        )
        .unwrap()
        .unwrap();
        assert!(b.svg.contains("<title>KiB per connection</title>") && b.svg.contains("b&lt;"));
        assert_eq!(b.summary, "a 0.1 KiB, b< 4.7 KiB.");
        assert_eq!(
            [1_834_000.0, 840_660.0, 1997.0, 14.91, 0.8544, 0.0, 100.0].map(approx),
            ["1.83M", "841k", "1,997", "14.9", "0.854", "0", "100"]
        );
        let pts: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, if i == 37 { 50.0 } else { 1.0 }))
            .collect();
        let t = thin(&pts, 10);
        assert!(t.len() <= 20 && t.contains(&(37.0, 50.0)), "{t:?}");
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

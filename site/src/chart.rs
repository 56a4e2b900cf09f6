//! Charts as inline SVG, drawn by plotters without system fonts (its SVG
//! backend writes `<text>` and lets the browser pick the font). A chart with
//! no points is not drawn: the page says so instead of showing empty axes.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
        }
    }
}

const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(31, 58, 110),
    RGBColor(120, 60, 10),
];

const SIZE: (u32, u32) = (760, 320);

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

fn err(e: impl std::fmt::Debug) -> String {
    format!("chart: {e:?}")
}

/// Lines over a linear x axis (seconds, or runs).
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<Option<String>, String> {
    let Some(((x0, x1), (y0, y1))) = bounds(series) else {
        return Ok(None);
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|v| short(*v))
            .x_label_formatter(&|v| short(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, series)?;
        legend(&mut chart, series)?;
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
}

/// The HDR percentile plot: x is 1/(1-percentile) on a log axis, so p50,
/// p99 and p99.9 are evenly spaced; y (ms) is logarithmic too.
pub fn percentiles(title: &str, series: &[Series]) -> Result<Option<String>, String> {
    let positive: Vec<Series> = series
        .iter()
        .map(|s| {
            Series::new(
                s.name.clone(),
                s.points
                    .iter()
                    .copied()
                    .filter(|(x, y)| *x >= 1.0 && *y > 0.0)
                    .collect(),
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
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
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
        legend(&mut chart, &positive)?;
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
}

/// A small history line for the index; `marks` are indices drawn in red.
pub fn spark(points: &[(f64, f64)], marks: &[usize]) -> Result<Option<String>, String> {
    let series = [Series::new("", points.to_vec())];
    let Some(((x0, x1), (y0, y1))) = bounds(&series) else {
        return Ok(None);
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (220, 60)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .build_cartesian_2d(x0 - 0.5..x1 + 0.5, y0..y1)
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                PALETTE[0].stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                let c = if marks.contains(&i) {
                    PALETTE[1].filled()
                } else {
                    PALETTE[0].filled()
                };
                Circle::new(*p, 3, c)
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
}

type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

fn draw_lines<X, Y>(chart: &mut Chart<'_, X, Y>, series: &[Series]) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    Ok(())
}

fn legend<X, Y>(chart: &mut Chart<'_, X, Y>, series: &[Series]) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if series.len() > 1 || series.first().is_some_and(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// One bar of `bars`: what it stands for, its value, and the index of its
/// colour (the same index in every chart of a page keeps a run's colour).
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub colour: usize,
}

/// Horizontal bars, one per label (labels are long: a variant's name), the
/// first at the top, each value written at its bar's end; `unit` on the
/// value axis. No bars (or none finite): not drawn.
pub fn bars(title: &str, unit: &str, bars: &[Bar]) -> Result<Option<String>, String> {
    let bars: Vec<&Bar> = bars.iter().filter(|b| b.value.is_finite()).collect();
    if bars.is_empty() {
        return Ok(None);
    }
    let n = bars.len();
    let top = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    // Room at the right for the values written there.
    let top = if top > 0.0 { top * 1.22 } else { 1.0 };
    let label_chars = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let mut svg = String::new();
    {
        let size = (520, 70 + 24 * n as u32);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(14 + 7 * label_chars as u32)
            .build_cartesian_2d(0.0..top, (0..n).into_segmented())
            .map_err(err)?;
        // Bar i is drawn at row n - 1 - i: the first at the top.
        let row = |i: usize| n - 1 - i;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(r) => bars
                    .get(n.wrapping_sub(1).wrapping_sub(*r))
                    .map_or(String::new(), |b| b.label.clone()),
                _ => String::new(),
            })
            .x_desc(unit)
            .x_label_formatter(&|v| short(*v))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let colour = PALETTE[b.colour % PALETTE.len()];
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row(i))),
                        (b.value, SegmentValue::Exact(row(i) + 1)),
                    ],
                    colour.filled(),
                );
                r.set_margin(3, 3, 0, 0);
                r
            }))
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                Text::new(
                    format!(" {}", short(b.value)),
                    (b.value, SegmentValue::CenterOf(row(i))),
                    TextStyle::from(("sans-serif", 12).into_font())
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
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
    fn bars_are_drawn_one_per_label_with_their_values() {
        let b = |label: &str, value: f64, colour: usize| Bar {
            label: label.into(),
            value,
            colour,
        };
        let svg = bars(
            "memory",
            "KiB",
            &[
                b("idle-nats", 24.9, 0),
                b("idle-socketio", 48.3, 1),
                b("idle-rtbench", 0.13, 2),
            ],
        )
        .unwrap()
        .unwrap();
        for text in [
            "idle-nats",
            "idle-socketio",
            "idle-rtbench",
            "24.9",
            "48.3",
            "0.13",
            "KiB",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 3,
            "the background and a bar each"
        );
        assert!(bars("t", "", &[b("x", f64::NAN, 0)]).unwrap().is_none());
    }

    #[test]
    fn draws_svg_and_skips_empty() {
        let svg = lines(
            "t",
            "s",
            "n",
            &[Series::new("a", vec![(0.0, 1.0), (1.0, 3.0)])],
        )
        .unwrap()
        .unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
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
        assert!(p.contains("99%"), "{p}");
        assert_eq!(
            (short(1_500_000.0), short(20_000.0), short(0.25)),
            ("1.5M".into(), "20k".into(), "0.25".into())
        );
    }
}

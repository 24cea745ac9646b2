//! Inline SVG line charts for `report.html`: the percentile spectrum (latency against a
//! log-scaled `1/(1-q)` axis, as HdrHistogram plots draw it), latency over time and throughput
//! over time.
//!
//! Pure string building, no plotting crate: a chart is axes, ticks, one polyline per series
//! (broken where a value is missing) and a legend, written with the crate's one SVG writer.

use super::model::SpectrumPoint;
use crate::svg::{Numbers, Svg};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// Colours of successive series.
pub const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)`; a `None` y breaks the line.
    pub points: Vec<(f64, Option<f64>)>,
    /// Dashed (for baselines and targets).
    pub dashed: bool,
}

/// A chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// Ticks on the x axis: position and label. Empty: computed from the data.
    pub x_ticks: Vec<(f64, String)>,
    /// The lines.
    pub series: Vec<Series>,
}

/// The x position of quantile `q` on a spectrum plot: `log10(1/(1-q))`, so p90 is 1, p99 is 2,
/// p99.9 is 3. The maximum (`q = 1`) is drawn one decade right of the highest finite
/// quantile's decade, `top`, so their labels do not collide.
pub fn spectrum_x(q: f64, top: f64) -> f64 {
    if q >= 1.0 {
        top + 1.0
    } else {
        (1.0 / (1.0 - q)).log10()
    }
}

/// A percentile-spectrum chart of several latency distributions.
pub fn spectrum_chart(title: &str, series: &[(&str, &[SpectrumPoint], bool)]) -> Chart {
    let top = series
        .iter()
        .flat_map(|(_, pts, _)| pts.iter())
        .filter(|p| p.q < 1.0)
        .map(|p| spectrum_x(p.q, 0.0))
        .fold(0.0, f64::max);
    // log10(1/(1-0.99999)) is 5 plus rounding noise, which must not open a sixth decade.
    let top = (top - 1e-6).ceil().max(0.0);
    let mut x_ticks: Vec<(f64, String)> = (0..=top as u32)
        .map(|d| {
            let label = match d {
                0 => "p0".to_owned(),
                1 => "p90".to_owned(),
                d => format!("p{}", 100.0 - 100.0 / 10f64.powi(d as i32)),
            };
            (f64::from(d), label)
        })
        .collect();
    x_ticks.push((top + 1.0, "max".to_owned()));
    Chart {
        title: title.to_owned(),
        x_label: "percentile (log scale of 1/(1-q))".to_owned(),
        y_label: "ms".to_owned(),
        x_ticks,
        series: series
            .iter()
            .filter(|(_, pts, _)| !pts.is_empty())
            .map(|(label, pts, dashed)| Series {
                label: (*label).to_owned(),
                points: pts
                    .iter()
                    .map(|p| (spectrum_x(p.q, top), Some(p.ms)))
                    .collect(),
                dashed: *dashed,
            })
            .collect(),
    }
}

/// About five round tick values from 0 to at least `max`.
pub fn nice_ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// The chart as an `<svg>` element.
pub fn render(chart: &Chart) -> String {
    let values = || {
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter_map(|&(x, y)| y.map(|y| (x, y)))
    };
    let y_ticks = nice_ticks(values().map(|(_, y)| y).fold(0.0, f64::max));
    let y_max = y_ticks
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(f64::MIN_POSITIVE);
    let x_ticks: Vec<(f64, String)> = if chart.x_ticks.is_empty() {
        nice_ticks(values().map(|(x, _)| x).fold(0.0, f64::max))
            .into_iter()
            .map(|t| (t, Numbers::Trimmed.format(t)))
            .collect()
    } else {
        chart.x_ticks.clone()
    };
    let x_min = x_ticks
        .first()
        .map_or(0.0, |t| t.0)
        .min(values().map(|(x, _)| x).fold(f64::INFINITY, f64::min));
    let x_min = if x_min.is_finite() { x_min } else { 0.0 };
    let x_max = x_ticks
        .iter()
        .map(|t| t.0)
        .chain(values().map(|(x, _)| x))
        .fold(x_min, f64::max);
    let x_span = if x_max > x_min { x_max - x_min } else { 1.0 };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (x - x_min) / x_span * plot_w;
    let py = |y: f64| TOP + plot_h - y / y_max * plot_h;

    let mut svg = Svg::new(WIDTH, HEIGHT, Numbers::Trimmed, Some(&chart.title));
    svg.heading(LEFT, 18.0, &chart.title);
    for &t in &y_ticks {
        let y = py(t);
        svg.line((LEFT, y), (LEFT + plot_w, y), r##"stroke="#ddd""##);
        svg.text(
            LEFT - 6.0,
            y,
            r#"text-anchor="end" dominant-baseline="middle""#,
            &Numbers::Trimmed.format(t),
        );
    }
    for (t, label) in &x_ticks {
        svg.x_tick(
            px(*t),
            (TOP, TOP + plot_h),
            "#eee",
            TOP + plot_h + 14.0,
            label,
        );
    }
    svg.rect(
        (LEFT, TOP),
        (plot_w, plot_h),
        r##"fill="none" stroke="#888""##,
        None,
    );
    svg.text(
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        r#"text-anchor="middle""#,
        &chart.x_label,
    );
    svg.vertical_text(14.0, TOP + plot_h / 2.0, &chart.y_label);
    for (i, series) in chart.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let dash = if series.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        for run in series.points.split(|(_, y)| y.is_none()) {
            let pts: Vec<(f64, f64)> = run
                .iter()
                .filter_map(|&(x, y)| y.map(|y| (px(x), py(y))))
                .collect();
            match pts[..] {
                [] => {}
                [point] => svg.circle(point, 2.0, &format!(r#"fill="{color}""#)),
                _ => svg.polyline(
                    &pts,
                    &format!(r#"stroke="{color}" stroke-width="1.5"{dash}"#),
                ),
            }
        }
        let ly = TOP + 10.0 + i as f64 * 16.0;
        let lx = LEFT + plot_w + 10.0;
        svg.line(
            (lx, ly),
            (lx + 18.0, ly),
            &format!(r#"stroke="{color}" stroke-width="2"{dash}"#),
        );
        svg.text(
            lx + 22.0,
            ly,
            r#"dominant-baseline="middle""#,
            &series.label,
        );
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_axis_is_logarithmic() {
        assert_eq!(spectrum_x(0.0, 3.0), 0.0);
        assert!((spectrum_x(0.9, 3.0) - 1.0).abs() < 1e-9);
        assert!((spectrum_x(0.99, 3.0) - 2.0).abs() < 1e-9);
        assert!((spectrum_x(0.999, 3.0) - 3.0).abs() < 1e-9);
        assert_eq!(spectrum_x(1.0, 3.0), 4.0);
    }

    #[test]
    fn spectrum_ticks_name_percentiles() {
        let pts = [
            SpectrumPoint { q: 0.5, ms: 1.0 },
            SpectrumPoint { q: 0.999, ms: 3.0 },
            SpectrumPoint { q: 1.0, ms: 9.0 },
        ];
        let c = spectrum_chart("t", &[("a", &pts, false), ("empty", &[], true)]);
        let labels: Vec<&str> = c.x_ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["p0", "p90", "p99", "p99.9", "max"]);
        assert_eq!(c.series.len(), 1);
        assert_eq!(c.series[0].points.last(), Some(&(4.0, Some(9.0))));
    }

    #[test]
    fn five_nines_end_at_the_fifth_decade() {
        let pts = [
            SpectrumPoint {
                q: 0.99999,
                ms: 1.0,
            },
            SpectrumPoint { q: 1.0, ms: 2.0 },
        ];
        let c = spectrum_chart("t", &[("a", &pts, false)]);
        let labels: Vec<&str> = c.x_ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(
            labels,
            ["p0", "p90", "p99", "p99.9", "p99.99", "p99.999", "max"]
        );
    }

    #[test]
    fn nice_ticks_cover_the_maximum() {
        assert_eq!(nice_ticks(9.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            nice_ticks(1.0),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(nice_ticks(0.0), nice_ticks(1.0));
        assert!(*nice_ticks(1234.0).last().unwrap() >= 1234.0);
    }

    #[test]
    fn renders_lines_gaps_and_escaped_labels() {
        let chart = Chart {
            title: "latency <p99> & co".into(),
            x_label: "s".into(),
            y_label: "ms".into(),
            x_ticks: vec![],
            series: vec![
                Series {
                    label: "a".into(),
                    points: vec![
                        (0.0, Some(1.0)),
                        (1.0, Some(2.0)),
                        (2.0, None),
                        (3.0, Some(4.0)),
                    ],
                    dashed: false,
                },
                Series {
                    label: "target".into(),
                    points: vec![(0.0, Some(3.0)), (3.0, Some(3.0))],
                    dashed: true,
                },
            ],
        };
        let svg = render(&chart);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("latency &lt;p99&gt; &amp; co"));
        // One polyline before the gap, a dot after it, one dashed polyline.
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(!svg.contains("NaN"));
        // y ticks 0..4 over a 230 px plot: y=4 is at the top edge of the plot.
        assert!(svg.contains(r#"points="60,202.5 203.3333,145""#), "{svg}");
    }

    #[test]
    fn an_empty_chart_still_renders() {
        let svg = render(&Chart {
            title: "nothing".into(),
            x_label: String::new(),
            y_label: String::new(),
            x_ticks: vec![],
            series: vec![],
        });
        assert!(svg.contains("nothing"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}

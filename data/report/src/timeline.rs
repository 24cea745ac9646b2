//! The chaos timeline as a self-contained SVG: fault windows shaded over the publish and
//! delivery rates (top) and the end-to-end latency (bottom).
//!
//! Pure: a [`Timeline`] in, a string out, no fonts or scripts. Text is escaped. The elements
//! are written by the crate's one SVG writer.

use crate::{
    svg::{Numbers, Svg},
    text::plain_number,
};
use harness_checkers::faults::Timeline;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 44.0;
const GAP: f64 = 44.0;

/// Reads one latency series out of a bucket.
type Pick = fn(&harness_checkers::faults::Bucket) -> Option<u64>;

/// Reads one count series out of a bucket.
type RatePick = fn(&harness_checkers::faults::Bucket) -> u32;

/// Fill colours of fault windows, cycled by kind.
const SHADES: [&str; 6] = [
    "#f4a58255",
    "#92c5de55",
    "#f7d16855",
    "#b2abd255",
    "#a6dba055",
    "#fdb86355",
];

/// A round axis maximum at or above `v` (1, 2 or 5 × a power of ten).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// Renders `t`; `title` goes above the plot.
pub fn render(t: &Timeline, title: &str) -> String {
    let height = TOP + 2.0 * PANEL + GAP + 40.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let end_us = t
        .buckets
        .last()
        .map_or(t.bucket, |b| b.start + t.bucket)
        .max(1);
    let x = |us: u64| LEFT + plot_w * (us as f64 / end_us as f64);
    let per_sec = 1_000_000.0 / t.bucket as f64;
    let mut svg = Svg::new(WIDTH, height, Numbers::OneDecimal, None);
    svg.background("#ffffff");
    svg.heading(LEFT, 16.0, title);
    let top1 = TOP;
    let top2 = TOP + PANEL + GAP;

    // Fault windows, shaded across both panels, labelled at the top.
    let mut kinds: Vec<&str> = Vec::new();
    for w in &t.windows {
        let i = kinds.iter().position(|k| *k == w.kind).unwrap_or_else(|| {
            kinds.push(&w.kind);
            kinds.len() - 1
        });
        let shade = SHADES[i % SHADES.len()];
        let x0 = x(w.start);
        let x1 = x(w.stop.unwrap_or(end_us)).max(x0 + 1.0);
        let what = format!("{} on {}", w.kind, w.detail.as_deref().unwrap_or("-"));
        for top in [top1, top2] {
            svg.rect(
                (x0, top),
                (x1 - x0, PANEL),
                &format!(r#"fill="{shade}""#),
                Some(&what),
            );
        }
        svg.text(
            x0 + 2.0,
            top1 + 10.0,
            r##"font-size="9" fill="#333""##,
            &w.kind,
        );
    }

    // Top panel: rates per second.
    let rate_max = nice_max(
        t.buckets
            .iter()
            .map(|b| f64::from(b.acknowledged.max(b.delivered).max(b.failed)) * per_sec)
            .fold(0.0, f64::max),
    );
    axes(&mut svg, top1, rate_max, "msg/s");
    let y1 = |v: f64| top1 + PANEL - PANEL * (v / rate_max).min(1.0);
    for b in &t.buckets {
        if b.redelivered > 0 {
            let h = PANEL * (f64::from(b.redelivered) * per_sec / rate_max).min(1.0);
            svg.rect(
                (x(b.start), top1 + PANEL - h),
                ((x(b.start + t.bucket) - x(b.start)).max(1.0), h),
                r##"fill="#d6604d""##,
                None,
            );
        }
    }
    let rates: [(&str, RatePick); 3] = [
        (r##"stroke="#2166ac" stroke-width="1.5""##, |b| {
            b.acknowledged
        }),
        (r##"stroke="#1b7837" stroke-width="1.5""##, |b| b.delivered),
        (
            r##"stroke="#999999" stroke-width="1" stroke-dasharray="3,2""##,
            |b| b.failed,
        ),
    ];
    for (style, pick) in rates {
        let points: Vec<(f64, f64)> = t
            .buckets
            .iter()
            .map(|b| (x(b.start + t.bucket / 2), y1(f64::from(pick(b)) * per_sec)))
            .collect();
        svg.polyline(&points, style);
    }
    legend(
        &mut svg,
        top1,
        &[
            ("#2166ac", "acknowledged publishes"),
            ("#1b7837", "first deliveries"),
            ("#d6604d", "redeliveries"),
            ("#999999", "failed / unknown publishes"),
        ],
    );

    // Bottom panel: end-to-end latency (publish invoked → first delivery).
    let lat_max_ms = nice_max(
        t.buckets
            .iter()
            .filter_map(|b| b.max_latency)
            .map(|us| us as f64 / 1000.0)
            .fold(0.0, f64::max),
    );
    axes(&mut svg, top2, lat_max_ms, "e2e ms");
    let y2 = |ms: f64| top2 + PANEL - PANEL * (ms / lat_max_ms).min(1.0);
    let pickers: [(&str, Pick); 2] = [
        ("#762a83", |b| b.max_latency),
        ("#1b7837", |b| b.p50_latency),
    ];
    for (colour, pick) in pickers {
        // A bucket without deliveries has no latency: the line breaks there.
        svg.broken_path(
            t.buckets
                .iter()
                .map(|b| pick(b).map(|us| (x(b.start + t.bucket / 2), y2(us as f64 / 1000.0)))),
            &format!(r#"stroke="{colour}" stroke-width="1.5""#),
        );
    }
    legend(
        &mut svg,
        top2,
        &[("#762a83", "max latency"), ("#1b7837", "median latency")],
    );

    // Time axis.
    let secs = end_us as f64 / 1e6;
    let step = nice_max(secs / 10.0);
    let mut s = 0.0;
    while s <= secs + 1e-9 {
        let bottom = top2 + PANEL;
        svg.x_tick(
            LEFT + plot_w * (s / secs),
            (bottom, bottom + 4.0),
            "#888",
            bottom + 16.0,
            &format!("{s:.0} s"),
        );
        s += step;
    }
    svg.finish()
}

fn axes(svg: &mut Svg, top: f64, max: f64, unit: &str) {
    let bottom = top + PANEL;
    svg.line((LEFT, top), (LEFT, bottom), r##"stroke="#444""##);
    svg.line(
        (LEFT, bottom),
        (WIDTH - RIGHT, bottom),
        r##"stroke="#444""##,
    );
    for frac in [0.0, 0.5, 1.0] {
        let y = bottom - PANEL * frac;
        svg.text(
            LEFT - 4.0,
            y + 4.0,
            r#"text-anchor="end""#,
            &plain_number(max * frac),
        );
    }
    svg.vertical_text(12.0, top + PANEL / 2.0, unit);
}

/// One row of legend items just above a panel.
fn legend(svg: &mut Svg, top: f64, items: &[(&str, &str)]) {
    let mut xl = LEFT;
    let yl = top - 6.0;
    for (colour, label) in items {
        svg.rect(
            (xl, yl - 4.0),
            (10.0, 3.0),
            &format!(r#"fill="{colour}""#),
            None,
        );
        svg.text(xl + 14.0, yl, "", label);
        xl += 24.0 + 6.5 * label.len() as f64;
    }
}

#[cfg(test)]
mod tests {
    use harness_checkers::faults::{Bucket, FaultWindow};

    use super::*;

    fn timeline() -> Timeline {
        Timeline {
            bucket: 500_000,
            buckets: (0..8)
                .map(|i| Bucket {
                    start: i * 500_000,
                    acknowledged: 20,
                    failed: u32::from(i == 3),
                    delivered: if i == 3 { 0 } else { 20 },
                    redelivered: u32::from(i == 4) * 5,
                    max_latency: Some(2_000 + i * 1_000),
                    p50_latency: Some(1_000),
                })
                .collect(),
            windows: vec![FaultWindow {
                kind: "down".into(),
                detail: Some("sidecar-app <x>".into()),
                start: 1_500_000,
                stop: Some(2_000_000),
            }],
        }
    }

    #[test]
    fn renders_windows_series_and_escapes_text() {
        let svg = render(&timeline(), "run <1>");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("run &lt;1&gt;"));
        assert!(svg.contains("<title>down on sidecar-app &lt;x&gt;</title>"));
        // The window starts at 1.5 s of 4 s: 37.5 % into the plot.
        let x0 = LEFT + (WIDTH - LEFT - RIGHT) * 0.375;
        assert!(svg.contains(&format!("x=\"{x0:.1}\"")), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("fill=\"#d6604d\""), "redeliveries drawn");
    }

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(37.0), 50.0);
        assert_eq!(nice_max(80.0), 100.0);
        assert_eq!(nice_max(0.013), 0.02);
    }
}

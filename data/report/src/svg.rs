//! The one SVG writer of the crate: a document with a viewBox and the few elements the
//! report charts draw (lines, rectangles, circles, text, polylines and broken paths).
//!
//! The charts ([`crate::bench::svg`] and [`crate::timeline`]) only compute geometry and pick
//! colours; every SVG element of a report is written here. Text and titles are escaped here
//! with [`crate::text::xml`]. An `attrs` argument is a run of presentation attributes
//! (stroke, fill, anchors) that the chart code writes itself from constants, never data.

use std::fmt::Write as _;

use crate::text::xml as esc;

/// How a document writes coordinates and lengths.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Numbers {
    /// At most four decimals, trailing zeros dropped (`60`, `203.3333`).
    Trimmed,
    /// Exactly one decimal (`60.0`, `203.3`).
    OneDecimal,
}

impl Numbers {
    /// `v` in this style.
    pub(crate) fn format(self, v: f64) -> String {
        match self {
            Numbers::Trimmed => {
                let s = format!("{v:.4}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                if s == "-0" {
                    "0".to_owned()
                } else {
                    s.to_owned()
                }
            }
            Numbers::OneDecimal => format!("{v:.1}"),
        }
    }
}

/// An SVG document being written, element by element, in drawing order.
#[derive(Debug)]
pub(crate) struct Svg {
    out: String,
    numbers: Numbers,
}

impl Svg {
    /// Opens a `width` × `height` document (its viewBox too) in 11-unit sans-serif text.
    /// With a `title` it is an image with that accessible name.
    pub(crate) fn new(width: f64, height: f64, numbers: Numbers, title: Option<&str>) -> Self {
        let (w, h) = (
            Numbers::Trimmed.format(width),
            Numbers::Trimmed.format(height),
        );
        let mut out = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11""#
        );
        match title {
            Some(title) => {
                let _ = write!(out, r#" role="img"><title>{}</title>"#, esc(title));
            }
            None => out.push('>'),
        }
        Svg { out, numbers }
    }

    fn n(&self, v: f64) -> String {
        self.numbers.format(v)
    }

    /// Writes ` {attrs}` unless `attrs` is empty.
    fn attrs(&mut self, attrs: &str) {
        if !attrs.is_empty() {
            self.out.push(' ');
            self.out.push_str(attrs);
        }
    }

    /// Fills the whole canvas.
    pub(crate) fn background(&mut self, fill: &str) {
        let _ = write!(
            self.out,
            r#"<rect width="100%" height="100%" fill="{fill}"/>"#
        );
    }

    /// A bold title line whose baseline starts at `(x, y)`.
    pub(crate) fn heading(&mut self, x: f64, y: f64, text: &str) {
        self.text(x, y, r#"font-size="13" font-weight="bold""#, text);
    }

    /// A line from `(x1, y1)` to `(x2, y2)`.
    pub(crate) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
        let (x1, y1, x2, y2) = (self.n(x1), self.n(y1), self.n(x2), self.n(y2));
        let _ = write!(self.out, r#"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}""#);
        self.attrs(attrs);
        self.out.push_str("/>");
    }

    /// A rectangle with its top-left corner at `(x, y)`; a `title` shows when hovered.
    pub(crate) fn rect(
        &mut self,
        (x, y): (f64, f64),
        (width, height): (f64, f64),
        attrs: &str,
        title: Option<&str>,
    ) {
        let (x, y, w, h) = (self.n(x), self.n(y), self.n(width), self.n(height));
        let _ = write!(
            self.out,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}""#
        );
        self.attrs(attrs);
        match title {
            Some(title) => {
                let _ = write!(self.out, "><title>{}</title></rect>", esc(title));
            }
            None => self.out.push_str("/>"),
        }
    }

    /// A circle of radius `r` around `(cx, cy)`.
    pub(crate) fn circle(&mut self, (cx, cy): (f64, f64), r: f64, attrs: &str) {
        let (cx, cy, r) = (self.n(cx), self.n(cy), self.n(r));
        let _ = write!(self.out, r#"<circle cx="{cx}" cy="{cy}" r="{r}""#);
        self.attrs(attrs);
        self.out.push_str("/>");
    }

    /// `text` at `(x, y)`.
    pub(crate) fn text(&mut self, x: f64, y: f64, attrs: &str, text: &str) {
        let (x, y) = (self.n(x), self.n(y));
        let _ = write!(self.out, r#"<text x="{x}" y="{y}""#);
        self.attrs(attrs);
        let _ = write!(self.out, ">{}</text>", esc(text));
    }

    /// `text` centred on `(x, y)` and turned a quarter left, reading upwards (a y-axis label).
    pub(crate) fn vertical_text(&mut self, x: f64, y: f64, text: &str) {
        let (xs, ys) = (self.n(x), self.n(y));
        self.text(
            x,
            y,
            &format!(r#"transform="rotate(-90 {xs} {ys})" text-anchor="middle""#),
            text,
        );
    }

    /// A tick of a horizontal axis at `x`: a vertical line from `y1` to `y2` and `label`
    /// centred under it on the baseline `label_y`.
    pub(crate) fn x_tick(
        &mut self,
        x: f64,
        (y1, y2): (f64, f64),
        stroke: &str,
        label_y: f64,
        label: &str,
    ) {
        self.line((x, y1), (x, y2), &format!(r#"stroke="{stroke}""#));
        self.text(x, label_y, r#"text-anchor="middle""#, label);
    }

    /// An unfilled line through `points`.
    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], attrs: &str) {
        let points: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{},{}", self.n(x), self.n(y)))
            .collect();
        self.out.push_str(r#"<polyline fill="none""#);
        self.attrs(attrs);
        let _ = write!(self.out, r#" points="{}"/>"#, points.join(" "));
    }

    /// An unfilled line through `points` that breaks at every `None` instead of drawing a
    /// ramp across the gap.
    pub(crate) fn broken_path(
        &mut self,
        points: impl IntoIterator<Item = Option<(f64, f64)>>,
        attrs: &str,
    ) {
        let mut d = Vec::new();
        let mut pen_down = false;
        for point in points {
            match point {
                Some((x, y)) => {
                    let pen = if pen_down { "L" } else { "M" };
                    d.push(format!("{pen}{},{}", self.n(x), self.n(y)));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        self.out.push_str(r#"<path fill="none""#);
        self.attrs(attrs);
        let _ = write!(self.out, r#" d="{}"/>"#, d.join(" "));
    }

    /// Closes the document.
    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_the_document_style() {
        for (numbers, v, want) in [
            (Numbers::Trimmed, 60.0, "60"),
            (Numbers::Trimmed, 203.333_333, "203.3333"),
            (Numbers::Trimmed, -0.000_01, "0"),
            (Numbers::OneDecimal, 60.0, "60.0"),
            (Numbers::OneDecimal, 203.333, "203.3"),
        ] {
            assert_eq!(numbers.format(v), want, "{numbers:?} {v}");
        }
    }

    #[test]
    fn writes_elements_and_escapes_text() {
        let mut svg = Svg::new(100.0, 50.0, Numbers::Trimmed, Some("a <b>"));
        svg.rect((1.0, 2.0), (3.0, 4.0), r#"fill="red""#, Some("x & y"));
        svg.text(5.0, 6.0, "", "<t>");
        svg.broken_path(
            [Some((0.0, 0.0)), Some((1.0, 1.0)), None, Some((2.0, 2.0))],
            "",
        );
        let s = svg.finish();
        assert_eq!(
            s,
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 50" width="100" height="50" font-family="sans-serif" font-size="11" role="img"><title>a &lt;b&gt;</title>"#,
                r#"<rect x="1" y="2" width="3" height="4" fill="red"><title>x &amp; y</title></rect>"#,
                r#"<text x="5" y="6">&lt;t&gt;</text>"#,
                r#"<path fill="none" d="M0,0 L1,1 M2,2"/>"#,
                "</svg>"
            )
        );
    }
}

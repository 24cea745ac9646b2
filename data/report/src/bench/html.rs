//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)
//! with the results table and, per rate, the percentile spectrum, latency over time and
//! throughput over time.

use std::fmt::Write as _;

use super::markdown::{HEADERS, TARGET_HEADERS, ms, rate, row_cells, target_rows};
use super::model::{Baseline, BenchReport, RateResult};
use super::svg::{self, Chart, Series};
use crate::text::xml as esc;

/// The charts of one rate; `first` names the first target (lines are per target when the
/// run had several).
pub fn charts(r: &RateResult, first: &str) -> Vec<Chart> {
    let s = &r.sidecar;
    let first = if r.others.is_empty() {
        "sidecar"
    } else {
        first
    };
    let mut targets = vec![(first, s)];
    targets.extend(r.others.iter().map(|o| (o.target.as_str(), &o.sidecar)));
    let labels: Vec<(String, String)> = targets
        .iter()
        .map(|(name, _)| (format!("{name} publish"), format!("{name} e2e")))
        .collect();
    let mut spectra: Vec<(&str, &[super::model::SpectrumPoint], bool)> = Vec::new();
    for ((_, p), (publish, e2e)) in targets.iter().zip(&labels) {
        spectra.push((publish, &p.publish_spectrum, false));
        spectra.push((e2e, &p.e2e_spectrum, false));
    }
    if let Some(n) = &r.noop {
        spectra.push(("no-op publish", &n.publish_spectrum, true));
    }
    if let Some(d) = r.direct.result() {
        spectra.push(("broker publish", &d.publish_spectrum, true));
        spectra.push(("broker e2e", &d.e2e_spectrum, true));
    }
    let spectrum = svg::spectrum_chart(
        &format!("Latency by percentile at {} msg/s", rate(r.rate)),
        &spectra,
    );
    let series = |label: &str, f: fn(&super::model::TimelineBucket) -> Option<f64>| Series {
        label: label.to_owned(),
        points: s.timeline.iter().map(|b| (b.t_s, f(b))).collect(),
        dashed: false,
    };
    let mut over_time = vec![
        series("publish p50", |b| b.publish_p50_ms),
        series("publish p99", |b| b.publish_p99_ms),
        series("publish max", |b| b.publish_max_ms),
        series("e2e p50", |b| b.e2e_p50_ms),
        series("e2e p99", |b| b.e2e_p99_ms),
    ];
    if !r.others.is_empty() {
        for series in &mut over_time {
            series.label = format!("{first} {}", series.label);
        }
    }
    // The other targets' p99s on the same axes (their full timelines are in results.json).
    for o in &r.others {
        let points = |f: fn(&super::model::TimelineBucket) -> Option<f64>| {
            o.sidecar.timeline.iter().map(|b| (b.t_s, f(b))).collect()
        };
        over_time.push(Series {
            label: format!("{} publish p99", o.target),
            points: points(|b| b.publish_p99_ms),
            dashed: false,
        });
        over_time.push(Series {
            label: format!("{} e2e p99", o.target),
            points: points(|b| b.e2e_p99_ms),
            dashed: false,
        });
    }
    let latency = Chart {
        title: format!(
            "Latency over time at {} msg/s (by intended send time)",
            rate(r.rate)
        ),
        x_label: "seconds".to_owned(),
        y_label: "ms".to_owned(),
        x_ticks: Vec::new(),
        series: over_time,
    };
    let end = s.timeline.last().map_or(0.0, |b| b.t_s);
    let throughput = Chart {
        title: format!("Throughput over time at {} msg/s", rate(r.rate)),
        x_label: "seconds".to_owned(),
        y_label: "msg/s".to_owned(),
        x_ticks: Vec::new(),
        series: vec![
            series("publishes answered", |b| Some(b.published_per_s)),
            series("deliveries", |b| Some(b.received_per_s)),
            Series {
                label: "target rate".to_owned(),
                points: vec![(0.0, Some(r.rate)), (end, Some(r.rate))],
                dashed: true,
            },
        ],
    };
    vec![spectrum, latency, throughput]
}

/// The whole page.
pub fn render(r: &BenchReport) -> String {
    let mut h = String::new();
    let mut names = vec![r.target.clone()];
    names.extend(r.other_targets.iter().cloned());
    let title = format!(
        "pubsub-tck bench: {} on {} over {}",
        names.join(" vs "),
        r.broker,
        r.protocol
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;font-size:12px;margin:1em 0}}\
th,td{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#f4f4f4}}\
.pass{{color:#1a7f37}}.fail{{color:#cf222e}}figure{{display:inline-block;margin:0 1em 1em 0}}\
</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    if r.failures.is_empty() {
        h.push_str("<p class=\"pass\"><b>PASS</b>: every publish answered, every accepted message delivered.</p>\n");
    } else {
        h.push_str("<p class=\"fail\"><b>FAIL</b></p><ul>");
        for f in &r.failures {
            let _ = write!(h, "<li>{}</li>", esc(f));
        }
        h.push_str("</ul>\n");
    }
    let p = &r.params;
    let _ = writeln!(
        h,
        "<p>Run <code>{}</code>, seed {}, started {}. Machine: {} cores{}. Open loop: {} B payloads, {} publishers × {} connections on {} generator thread(s), {} s measured after {} s warm-up. Latencies in ms from each message's intended send time; e2e ends when the subscribed app has read the delivery.</p>",
        esc(&r.run_id),
        r.seed,
        esc(&r.started_at),
        r.machine.cores,
        r.machine
            .cpu_model
            .as_ref()
            .map_or(String::new(), |m| format!(", {}", esc(m))),
        p.payload_size,
        p.publishers,
        p.connections,
        p.threads.max(1),
        p.duration_ms as f64 / 1000.0,
        p.warmup_ms as f64 / 1000.0
    );
    let side_by_side = target_rows(r);
    if !side_by_side.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Targets side by side</h2>\n<p>Every target ran at once, each with its own app and topic on the same broker; their rounds and the baselines' took turns. A ratio row divides a target's figure by {}'s: below ×1.0 it did better.</p>\n<table><tr>",
            esc(&r.target)
        );
        for head in TARGET_HEADERS {
            let _ = write!(h, "<th>{}</th>", esc(head));
        }
        h.push_str("</tr>\n");
        for row in &side_by_side {
            h.push_str("<tr>");
            for c in row {
                let _ = write!(h, "<td>{}</td>", esc(c));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    if !r.rates.is_empty() {
        h.push_str("<h2>Results</h2>\n<table><tr>");
        for head in HEADERS {
            let _ = write!(h, "<th>{}</th>", esc(head));
        }
        h.push_str("</tr>\n");
        for rr in &r.rates {
            h.push_str("<tr>");
            for c in row_cells(rr) {
                let _ = write!(h, "<td>{}</td>", esc(&c));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    for rr in &r.rates {
        let _ = writeln!(h, "<h2>{} msg/s</h2>", rate(rr.rate));
        if let Baseline::Unavailable { reason } = &rr.direct {
            let _ = writeln!(
                h,
                "<p>Direct-broker baseline unavailable: {}</p>",
                esc(reason)
            );
        }
        let s = &rr.sidecar;
        let _ = writeln!(
            h,
            "<p>Sent {}, accepted {}, lost {}, duplicates {}, errors {}.{}</p>",
            s.sent,
            s.ok,
            s.lost.map_or("-".to_owned(), |l| l.to_string()),
            s.duplicates.map_or("-".to_owned(), |l| l.to_string()),
            s.sent - s.ok,
            s.send_delay.map_or(String::new(), |d| format!(
                " Send delay p99 {} ms.",
                ms(d.p99_ms)
            ))
        );
        for chart in charts(rr, &r.target) {
            let _ = writeln!(h, "<figure>{}</figure>", svg::render(&chart));
        }
    }
    if let Some(search) = &r.search {
        let _ = writeln!(
            h,
            "<h2>Maximum sustainable rate: {}</h2><p>Publish and e2e p99 ≤ {} ms with ≥ 99% of the rate achieved.</p><table><tr><th>step</th><th>rate</th><th>verdict</th><th>why</th></tr>",
            search
                .max_rate
                .map_or("no rate passed".to_owned(), |m| format!(
                    "{} msg/s",
                    rate(m)
                )),
            search.p99_bound_ms
        );
        for (i, st) in search.steps.iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td style=\"text-align:left\">{}</td></tr>",
                i + 1,
                rate(st.rate),
                if st.passed { "pass" } else { "fail" },
                if st.passed { "pass" } else { "fail" },
                esc(&st.reason)
            );
        }
        h.push_str("</table>\n");
    }
    if !r.notes.is_empty() {
        h.push_str("<h2>Notes</h2><ul>");
        for n in &r.notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::test_support::sample_report;

    #[test]
    fn the_page_is_self_contained() {
        let html = render(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</body></html>\n"));
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=\"http"));
        assert!(html.contains("Test CPU &lt;fast&gt; &amp; cheap"));
        assert!(html.contains("Latency by percentile at 1000 msg/s"));
        assert!(!html.contains("NaN"));
    }

    #[test]
    fn several_targets_get_a_line_each() {
        let r = crate::bench::test_support::two_target_report();
        let c = charts(&r.rates[0], &r.target);
        let labels: Vec<&str> = c[0].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            &labels[..4],
            [
                "reference publish",
                "reference e2e",
                "daprd publish",
                "daprd e2e"
            ]
        );
        assert!(c[1].series.iter().any(|s| s.label == "daprd e2e p99"));
        let html = render(&r);
        assert!(
            html.contains("<h1>pubsub-tck bench: reference vs daprd on in-memory over http</h1>")
        );
        assert!(html.contains("<td>daprd ÷ reference</td>"), "{html}");
    }

    #[test]
    fn charts_include_the_baselines() {
        let r = sample_report();
        let c = charts(&r.rates[0], &r.target);
        let labels: Vec<&str> = c[0].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "sidecar publish",
                "sidecar e2e",
                "no-op publish",
                "broker publish",
                "broker e2e"
            ]
        );
        assert_eq!(
            c[2].series[2].points,
            [(0.0, Some(1000.0)), (1.5, Some(1000.0))]
        );
    }
}

//! `report.html`: one self-contained page for people.
//!
//! Inline CSS, no scripts, no external assets, so the file can be attached
//! to a CI run or mailed and still render. Every interpolated value is
//! escaped, except [`Section::html`](crate::Section::html), which is a
//! trusted fragment by contract. Clause links are emitted only for absolute
//! http(s) URLs.

use std::fmt::Write as _;

use crate::{
    CheckResult, RunReport, VerdictKind,
    text::{duration, facts, safe_url, worst_first, xml},
};

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.5rem;margin-bottom:.25rem}
.headline{font-size:1.2rem;margin:.5rem 0 1rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0 0 1rem}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num,th.num{text-align:right}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;white-space:pre-wrap}
details summary{cursor:pointer}
.badge{display:inline-block;border-radius:.8rem;padding:.05rem .6rem;font-size:.85em;font-weight:600;color:#fff}
.pass{background:#1a7f37}.fail{background:#cf222e}.non-strict{background:#bf8700}.skip{background:#6e7781}.error{background:#8250df}
.title{color:#57606a}
";

/// Renders the report as a standalone HTML document.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let headline = report.headline();
    let t = report.totals();
    let mut out = String::new();
    // Writing to a String cannot fail, so the fmt::Results are ignored.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pubsub-tck {}: {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        headline.status,
        xml(&report.target)
    );

    out.push_str("<header>\n");
    let _ = writeln!(out, "<h1>pubsub-tck report: {}</h1>", xml(&report.target));
    let _ = writeln!(
        out,
        "<p class=\"headline\"><span class=\"badge {}\">{}</span> {}</p>",
        status_class(headline.status),
        headline.status,
        xml(&headline.text)
    );
    out.push_str("<dl class=\"facts\">\n");
    for fact in facts(report) {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", fact.name, xml(&fact.value));
    }
    out.push_str("</dl>\n");
    let _ = writeln!(
        out,
        "<table class=\"totals\">\n<tr><th class=\"num\">pass</th><th class=\"num\">fail</th>\
         <th class=\"num\">non-strict</th><th class=\"num\">skip</th><th class=\"num\">error</th>\
         <th class=\"num\">total</th></tr>\n<tr><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td></tr>\n</table>",
        t.pass, t.fail, t.non_strict, t.skip, t.error, t.total
    );
    out.push_str("</header>\n<main>\n");

    out.push_str("<section>\n<h2>Checks</h2>\n");
    if report.checks.is_empty() {
        out.push_str("<p>No checks ran.</p>\n");
    } else {
        out.push_str(
            "<table class=\"checks\">\n<thead><tr><th>Check</th><th>Level</th><th>Verdict</th>\
             <th>Clause</th><th>Profile</th><th class=\"num\">Duration</th></tr></thead>\n<tbody>\n",
        );
        for c in worst_first(&report.checks) {
            row(&mut out, report, c);
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");

    for section in &report.extra_sections {
        let _ = writeln!(
            out,
            "<section>\n<h2>{}</h2>\n{}\n</section>",
            xml(&section.title),
            section.html.trim_end()
        );
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn row(out: &mut String, report: &RunReport, c: &CheckResult) {
    let verdict = c.verdict.as_str();
    let _ = write!(
        out,
        "<tr class=\"row-{verdict}\"><td><code>{}</code><br><span class=\"title\">{}</span>",
        xml(&c.id),
        xml(&c.title)
    );
    for note in &c.observations {
        let _ = write!(out, "<br><span class=\"observation\">{}</span>", xml(note));
    }
    match c.verdict {
        VerdictKind::Pass => {}
        VerdictKind::Skip => {
            if let Some(reason) = &c.summary {
                let _ = write!(out, "<br>{}", xml(reason));
            }
        }
        VerdictKind::Fail
        | VerdictKind::Error
        | VerdictKind::NonStrict
        | VerdictKind::ExpectedFail
        | VerdictKind::UnexpectedPass => {
            evidence(out, report, c);
        }
    }
    let clause = match safe_url(c.clause_url.as_deref()) {
        Some(url) => format!("<a href=\"{}\">{}</a>", xml(url), xml(&c.clause)),
        None => xml(&c.clause),
    };
    let profile = match &c.broker {
        Some(broker) => format!("{} / {}", xml(&c.profile), xml(broker)),
        None => xml(&c.profile),
    };
    let _ = writeln!(
        out,
        "</td><td>{}</td><td><span class=\"badge {verdict}\">{verdict}</span></td>\
         <td>{clause}</td><td>{profile}</td><td class=\"num\">{}</td></tr>",
        c.level.as_str(),
        duration(c.duration_ms)
    );
}

/// An expandable block: summary line, evidence, history file, replay.
fn evidence(out: &mut String, report: &RunReport, c: &CheckResult) {
    let summary = c.summary.as_deref().unwrap_or("details");
    // Failures start open: they are why someone opened the report.
    let open = if c.verdict == VerdictKind::Fail {
        " open"
    } else {
        ""
    };
    let _ = write!(out, "<details{open}><summary>{}</summary>", xml(summary));
    if !c.evidence.is_empty() {
        let _ = write!(out, "<pre>{}</pre>", xml(&c.evidence.join("\n")));
    }
    if let Some(file) = &c.history_file {
        let _ = write!(out, "<p>History: <code>{}</code></p>", xml(file));
    }
    let _ = write!(
        out,
        "<p>Replay: <code>{}</code></p></details>",
        xml(&report.replay_command(c))
    );
}

fn status_class(status: &str) -> &'static str {
    match status {
        "PASS" => "pass",
        "FAIL" => "fail",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_contains_all, sample};

    fn check(report: &RunReport, expect: &[&str]) {
        let html = render(report);
        assert_contains_all(&html, expect);
        for banned in ["<script", "src=", "<link", "@import", "url("] {
            assert!(!html.contains(banned), "found {banned:?}");
        }
    }

    #[test]
    fn self_contained_and_escaped() {
        let mut report = sample();
        report.checks[0].clause_url = Some("javascript:alert(1)".into());
        report.checks[0].title = "<script>alert(1)</script>".into();
        check(
            &report,
            &[
                "<!DOCTYPE html>",
                "<title>pubsub-tck FAIL: reference-sidecar</title>",
                "<span class=\"badge fail\">FAIL</span> 1 of 2 MUST checks failed",
                "<dt>Seed</dt><dd>42</dd>",
                "<td class=\"num\">5</td>",
                "<details open><summary>1 of 2 acknowledged messages were never delivered &lt;&amp;&gt;&quot;</summary>\
                 <pre>m-2: publish acknowledged at 1.0 ms, never delivered &lt;&amp;&gt;&quot;\nm-3: second line</pre>",
                "<p>Replay: <code>pubsub-tck run --seed 7 --filter delivery::lost</code></p>",
                "<a href=\"https://example.org/spec#delivery::lost\">spec/delivery::lost</a>",
                "<span class=\"badge non-strict\">non-strict</span>",
                "<br>broker kafka not configured",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
                "<h2>Brokers &lt;compared&gt;</h2>\n<table><tr><td>memory</td></tr></table>",
            ],
        );
        let html = render(&report);
        assert!(!html.contains("javascript:"));
        assert_eq!(html.matches("<details").count(), 3);
        // Worst first: the failure row precedes the pass row.
        assert!(html.find("row-fail").unwrap() < html.find("row-pass").unwrap());
    }
}

//! The conformance matrix of a run that spans several targets (`pubsub-tck run --target A
//! --target B`): check × target, summarised per area, as an extra report section.
//!
//! Pure: it reads the results' `target`, `broker` and verdict and renders Markdown and HTML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::text::{md, md_code, xml};
use crate::{CheckResult, Section, VerdictKind};

/// Verdicts in the order the summary lists them.
const ORDER: [VerdictKind; 7] = [
    VerdictKind::Pass,
    VerdictKind::Fail,
    VerdictKind::NonStrict,
    VerdictKind::ExpectedFail,
    VerdictKind::UnexpectedPass,
    VerdictKind::Skip,
    VerdictKind::Error,
];

/// The matrix section, or `None` when the results come from fewer than two targets.
pub fn section(results: &[CheckResult]) -> Option<Section> {
    let mut targets: Vec<&str> = Vec::new();
    for t in results.iter().filter_map(|r| r.target.as_deref()) {
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    if targets.len() < 2 {
        return None;
    }
    // (area, target) → verdict → count; (check, broker) → target → result.
    let mut areas: BTreeMap<(String, &str), BTreeMap<VerdictKind, usize>> = BTreeMap::new();
    let mut rows: Vec<(&str, Option<&str>)> = Vec::new();
    let mut cells: BTreeMap<(&str, Option<&str>, &str), &CheckResult> = BTreeMap::new();
    for r in results {
        let Some(target) = r.target.as_deref() else {
            continue;
        };
        *areas
            .entry((area(&r.id).to_owned(), target))
            .or_default()
            .entry(r.verdict)
            .or_default() += 1;
        let row = (r.id.as_str(), r.broker.as_deref());
        if !rows.contains(&row) {
            rows.push(row);
        }
        cells.insert((row.0, row.1, target), r);
    }
    let area_names: Vec<String> = {
        let mut v: Vec<String> = areas.keys().map(|(a, _)| a.clone()).collect();
        v.dedup();
        v
    };

    let mut m = String::from(
        "Each check on each target (and broker). Expected failures are the divergences written down in a target's expectations file, with their reasons below.\n\n### By area\n\n",
    );
    let mut h = String::from(
        "<p>Each check on each target (and broker). Expected failures are the divergences written down in a target's expectations file, with their reasons below.</p><h3>By area</h3>",
    );
    table_head(&mut m, &mut h, &["area"], &targets);
    for a in &area_names {
        let _ = write!(m, "| {} |", md_code(a));
        let _ = write!(h, "<tr><td><code>{}</code></td>", xml(a));
        for t in &targets {
            let counts = areas.get(&(a.clone(), *t));
            let cell = counts.map(tally).unwrap_or_else(|| "not run".to_owned());
            let _ = write!(m, " {} |", md(&cell));
            let _ = write!(h, "<td>{}</td>", xml(&cell));
        }
        m.push('\n');
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");

    m.push_str("\n### Every check\n\n");
    h.push_str("<h3>Every check</h3>");
    table_head(&mut m, &mut h, &["check", "broker"], &targets);
    for (id, broker) in &rows {
        let b = broker.unwrap_or("-");
        let _ = write!(m, "| {} | {} |", md_code(id), md(b));
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td>",
            xml(id),
            xml(b)
        );
        for t in &targets {
            let v = cells
                .get(&(*id, *broker, *t))
                .map_or("not run", |r| r.verdict.as_str());
            let _ = write!(m, " {v} |");
            let _ = write!(h, "<td class=\"row-{v}\">{v}</td>");
        }
        m.push('\n');
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");

    let expected: Vec<&&CheckResult> = cells
        .values()
        .filter(|r| r.verdict == VerdictKind::ExpectedFail)
        .collect();
    if !expected.is_empty() {
        m.push_str("\n### Expected failures\n\n");
        h.push_str("<h3>Expected failures</h3><ul>");
        for r in expected {
            let name = format!(
                "{} on {} ({})",
                r.id,
                r.target.as_deref().unwrap_or("-"),
                r.broker.as_deref().unwrap_or("-")
            );
            let why = r.summary.as_deref().unwrap_or("");
            let _ = writeln!(m, "- {}: {}", md_code(&name), md(why));
            let _ = write!(h, "<li><code>{}</code>: {}</li>", xml(&name), xml(why));
        }
        h.push_str("</ul>");
    }
    Some(Section {
        title: format!("Conformance matrix: {}", targets.join(" vs ")),
        markdown: m,
        html: h,
    })
}

/// Opens a table in both renderings: a header row of the `lead` columns and one column per
/// target (the Markdown one with its separator row).
fn table_head(m: &mut String, h: &mut String, lead: &[&str], targets: &[&str]) {
    m.push('|');
    h.push_str("<table><thead><tr>");
    for l in lead {
        let _ = write!(m, " {l} |");
        let _ = write!(h, "<th>{l}</th>");
    }
    for t in targets {
        let _ = write!(m, " {} |", md(t));
        let _ = write!(h, "<th>{}</th>", xml(t));
    }
    m.push_str("\n|");
    m.push_str(&"---|".repeat(lead.len() + targets.len()));
    m.push('\n');
    h.push_str("</tr></thead><tbody>");
}

/// `core::status::success_once` → `core::status`.
fn area(id: &str) -> &str {
    id.rsplit_once("::").map_or(id, |(a, _)| a)
}

/// `14 pass, 1 expected-fail`: the non-zero counts in a fixed order.
fn tally(counts: &BTreeMap<VerdictKind, usize>) -> String {
    ORDER
        .iter()
        .filter_map(|v| counts.get(v).map(|n| format!("{n} {}", v.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_contains_all, report_with};

    fn results() -> Vec<CheckResult> {
        use VerdictKind::*;
        let mut out = Vec::new();
        for (target, verdicts) in [
            ("reference", [Pass, Pass, Pass]),
            ("daprd", [Pass, ExpectedFail, Skip]),
        ] {
            let report = report_with(&[
                ("core::a::one", verdicts[0]),
                ("core::a::two", verdicts[1]),
                ("core::b::three", verdicts[2]),
            ]);
            out.extend(report.checks.into_iter().map(|mut c| {
                c.target = Some(target.to_owned());
                c
            }));
        }
        out
    }

    #[test]
    fn one_target_has_no_matrix() {
        let mut r = results();
        r.retain(|c| c.target.as_deref() == Some("reference"));
        assert!(section(&r).is_none());
    }

    #[test]
    fn areas_checks_and_expected_failures() {
        let s = section(&results()).unwrap();
        assert_eq!(s.title, "Conformance matrix: reference vs daprd");
        let m = &s.markdown;
        assert_contains_all(
            m,
            &[
                "| `core::a` | 2 pass | 1 pass, 1 expected-fail |",
                "| `core::b` | 1 pass | 1 skip |",
                "| `core::a::two` | - | pass | expected-fail |",
                "- `core::a::two on daprd (-)`: why core::a::two",
            ],
        );
        assert!(
            s.html
                .contains("<td class=\"row-expected-fail\">expected-fail</td>")
        );
    }
}

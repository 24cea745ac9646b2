//! `junit.xml`: the CI-facing report.
//!
//! Owns the mapping from verdicts to JUnit elements:
//! - one `<testsuite>` per profile, in order of first appearance;
//! - one `<testcase classname="PROFILE" name="ID">` per check;
//! - fail becomes `<failure>`, error becomes `<error>` (the harness broke,
//!   not the sidecar), skip becomes `<skipped>`;
//! - non-strict (a failed SHOULD check) passes, with a `<system-out>` note so
//!   CI still shows it.
//!
//! Times are seconds with millisecond precision. Nothing here reads a clock.

use std::fmt::Write as _;

use crate::{
    CheckResult, RunReport, VerdictKind,
    text::{xml, xml_attr},
};

/// Renders the report as JUnit XML.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let mut profiles: Vec<&str> = Vec::new();
    for c in &report.checks {
        if !profiles.contains(&c.profile.as_str()) {
            profiles.push(&c.profile);
        }
    }
    let t = report.totals();
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // Writing to a String cannot fail, so the fmt::Results are ignored.
    let _ = writeln!(
        out,
        "<testsuites name=\"pubsub-tck\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
        t.total,
        t.fail,
        t.error,
        t.skip,
        seconds(report.duration_ms),
        xml_attr(&report.started_at)
    );
    for profile in profiles {
        let checks: Vec<&CheckResult> = report
            .checks
            .iter()
            .filter(|c| c.profile == profile)
            .collect();
        suite(&mut out, report, profile, &checks);
    }
    out.push_str("</testsuites>\n");
    out
}

fn suite(out: &mut String, report: &RunReport, profile: &str, checks: &[&CheckResult]) {
    let count = |v: VerdictKind| checks.iter().filter(|c| c.verdict == v).count();
    let time: u64 = checks.iter().map(|c| c.duration_ms).sum();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
        xml_attr(profile),
        checks.len(),
        count(VerdictKind::Fail) + count(VerdictKind::UnexpectedPass),
        count(VerdictKind::Error),
        count(VerdictKind::Skip),
        seconds(time),
        xml_attr(&report.started_at)
    );
    out.push_str("    <properties>\n");
    let mut property = |name: &str, value: &str| {
        let _ = writeln!(
            out,
            "      <property name=\"{name}\" value=\"{}\"/>",
            xml_attr(value)
        );
    };
    property("run_id", &report.run_id);
    property("seed", &report.seed.to_string());
    property("target", &report.target);
    for (role, what) in &report.environment {
        property(&role.replace(' ', "_"), what);
    }
    property("tool_version", &report.tool_version);
    if let Some(broker) = &report.broker {
        property("broker", broker);
    }
    out.push_str("    </properties>\n");
    for check in checks {
        case(out, report, check);
    }
    out.push_str("  </testsuite>\n");
}

fn case(out: &mut String, report: &RunReport, c: &CheckResult) {
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        xml_attr(&c.profile),
        xml_attr(&c.id),
        seconds(c.duration_ms)
    );
    let summary = c.summary.as_deref().unwrap_or("");
    match c.verdict {
        VerdictKind::Pass if c.observations.is_empty() => out.push_str("/>\n"),
        VerdictKind::Pass => {
            let _ = writeln!(
                out,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                xml(&c.observations.join("\n"))
            );
        }
        VerdictKind::Fail | VerdictKind::Error | VerdictKind::UnexpectedPass => {
            let tag = if c.verdict == VerdictKind::Error {
                "error"
            } else {
                "failure"
            };
            let message = if summary.is_empty() {
                c.verdict.as_str()
            } else {
                summary
            };
            let _ = writeln!(
                out,
                ">\n      <{tag} message=\"{}\" type=\"{}\">{}</{tag}>\n    </testcase>",
                xml_attr(message),
                c.level.as_str(),
                xml(&details(report, c))
            );
        }
        VerdictKind::Skip => {
            let _ = writeln!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                xml_attr(summary)
            );
        }
        VerdictKind::NonStrict | VerdictKind::ExpectedFail => {
            let what = if c.verdict == VerdictKind::NonStrict {
                "SHOULD check failed (non-strict)"
            } else {
                "expected failure"
            };
            let note = format!("{what}: {summary}\n{}", details(report, c));
            let _ = writeln!(
                out,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                xml(&note)
            );
        }
    }
}

/// Evidence, clause, history file and replay command, one per line.
fn details(report: &RunReport, c: &CheckResult) -> String {
    let mut lines: Vec<String> = c.evidence.clone();
    lines.push(format!("clause: {} ({})", c.clause, c.level.as_str()));
    if let Some(file) = &c.history_file {
        lines.push(format!("history: {file}"));
    }
    lines.push(format!("replay: {}", report.replay_command(c)));
    lines.join("\n")
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_contains_all, sample};

    fn check(report: &RunReport, expect: &[&str]) {
        let xml = render(report);
        assert_contains_all(&xml, expect);
        // Cheap well-formedness: every element opened is closed, in order.
        let mut stack: Vec<&str> = Vec::new();
        for tag in xml.split('<').skip(2) {
            let end = tag.find('>').unwrap();
            let inner = &tag[..end];
            if let Some(name) = inner.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            } else if !inner.ends_with('/') {
                stack.push(inner.split_whitespace().next().unwrap());
            }
            assert!(
                !tag[end + 1..].contains('>'),
                "raw '>' in text after <{inner}>"
            );
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
    }

    #[test]
    fn golden_substrings() {
        let report = sample();
        check(
            &report,
            &[
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<testsuites name=\"pubsub-tck\" tests=\"5\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"1.234\"",
                "<testsuite name=\"core\" tests=\"3\" failures=\"1\" errors=\"1\" skipped=\"0\" time=\"0.036\"",
                "<testsuite name=\"retries\" tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"1\"",
                "<property name=\"seed\" value=\"42\"/>",
                "<testcase classname=\"core\" name=\"publish::basic\" time=\"0.012\">\n      <system-out>per-key order held: 4 first deliveries over 2 keys &lt;&amp;&gt;</system-out>",
                "<failure message=\"1 of 2 acknowledged messages were never delivered &lt;&amp;&gt;&quot;\" type=\"MUST\">\
                 m-2: publish acknowledged at 1.0 ms, never delivered &lt;&amp;&gt;&quot;\nm-3: second line\n\
                 clause: spec/delivery::lost (MUST)\nhistory: histories/delivery::lost.jsonl\n\
                 replay: pubsub-tck run --seed 7 --filter delivery::lost</failure>",
                "<error message=\"sidecar did not become ready within 10s\" type=\"MUST\">",
                "<skipped message=\"broker kafka not configured\"/>",
                "<system-out>SHOULD check failed (non-strict): retried 4 times, expected 3\n",
            ],
        );
        assert_eq!(render(&report).matches("<testcase ").count(), 5);
        assert_eq!(render(&report).matches("<testsuite ").count(), 2);
    }

    #[test]
    fn empty_report_is_well_formed() {
        let mut report = sample();
        report.checks.clear();
        check(&report, &["tests=\"0\"", "</testsuites>\n"]);
        assert!(!render(&report).contains("<testsuite "));
    }
}

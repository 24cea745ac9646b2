//! Text helpers shared by the writers, and nothing else: XML/HTML escaping,
//! Markdown escaping, durations and plain numbers, and the run facts and check
//! ordering used by every human-facing report. [`xml`] is the one HTML and SVG
//! escaper of the workspace: the benchmark, chaos and matrix pages use it too.

use crate::{CheckResult, RunReport, VerdictKind};

/// Escapes text content and attribute values for XML 1.0 and HTML.
///
/// Characters XML 1.0 cannot carry (control characters other than tab, line
/// feed and carriage return) become U+FFFD, so the output always parses.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Like [`xml`], and also keeps line breaks and tabs in attribute values
/// (parsers would otherwise normalise them to spaces).
pub fn xml_attr(s: &str) -> String {
    xml(s)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// Escapes text for one line of Markdown prose or a table cell: line breaks
/// become spaces and inline-syntax characters are backslash-escaped.
pub(crate) fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// An inline code span that survives backticks inside `s`.
pub(crate) fn md_code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    // A space pad is stripped by renderers and keeps edge backticks apart.
    if s.starts_with('`') || s.ends_with('`') {
        format!("{ticks} {s} {ticks}")
    } else {
        format!("{ticks}{s}{ticks}")
    }
}

/// A fenced code block whose fence is longer than any backtick run inside.
pub(crate) fn md_fence(lines: &[String]) -> String {
    let body = lines.join("\n");
    let fence = "`".repeat((longest_backtick_run(&body) + 1).max(3));
    format!("{fence}text\n{body}\n{fence}\n")
}

fn longest_backtick_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// A link target that is safe to emit: absolute http(s) with no characters
/// that could break out of an attribute or a Markdown link.
pub(crate) fn safe_url(url: Option<&str>) -> Option<&str> {
    let url = url?.trim();
    let scheme = url.starts_with("https://") || url.starts_with("http://");
    let clean = !url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>\"'`".contains(c));
    (scheme && clean).then_some(url)
}

/// `850 ms` below ten seconds, `12.3 s` from there.
pub(crate) fn duration(ms: u64) -> String {
    if ms < 10_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A number without needless decimals: whole numbers bare, others to one decimal.
pub(crate) fn plain_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One fact about a run, listed under the headline of the human reports.
pub(crate) struct Fact {
    /// Such as `Target` or `Broker redis`; never escaped.
    pub(crate) name: String,
    /// The value as text, not yet escaped.
    pub(crate) value: String,
    /// Whether the value is an id or path to copy, shown as code where the format has it.
    pub(crate) code: bool,
}

/// The facts of `report`, in the order the human reports list them: target, target file, run
/// id, tool version, start, duration, seed, profile, broker, then the environment by role.
pub(crate) fn facts(report: &RunReport) -> Vec<Fact> {
    let fact = |name: &str, value: &str, code: bool| Fact {
        name: name.to_owned(),
        value: value.to_owned(),
        code,
    };
    let mut facts = vec![fact("Target", &report.target, false)];
    if let Some(file) = &report.target_file {
        facts.push(fact("Target file", file, true));
    }
    facts.extend([
        fact("Run", &report.run_id, true),
        fact("Tool version", &report.tool_version, false),
        fact("Started", &report.started_at, false),
        fact("Duration", &duration(report.duration_ms), false),
        fact("Seed", &report.seed.to_string(), true),
    ]);
    if let Some(profile) = &report.profile {
        facts.push(fact("Profile", profile, false));
    }
    if let Some(broker) = &report.broker {
        facts.push(fact("Broker", broker, false));
    }
    for (role, what) in &report.environment {
        facts.push(fact(&capitalised(role), what, false));
    }
    facts
}

/// `broker redis` → `Broker redis`: a role as a fact's name.
fn capitalised(role: &str) -> String {
    let mut chars = role.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Checks ordered worst first (fail, error, non-strict, skip, pass), keeping
/// run order within a verdict.
pub(crate) fn worst_first(checks: &[CheckResult]) -> Vec<&CheckResult> {
    let mut v: Vec<&CheckResult> = checks.iter().collect();
    v.sort_by_key(|c| c.verdict.severity());
    v
}

/// Checks with the given verdict, in run order.
pub(crate) fn with_verdict(
    checks: &[CheckResult],
    verdict: VerdictKind,
) -> impl Iterator<Item = &CheckResult> {
    checks.iter().filter(move |c| c.verdict == verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            xml(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(xml("a\u{1}b\tc"), "a\u{FFFD}b\tc");
        assert_eq!(xml_attr("a\nb"), "a&#10;b");
        assert_eq!(md("a|b *c* <d>\ne"), r"a\|b \*c\* \<d\> e");
        assert_eq!(md_code("x"), "`x`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`a"), "`` `a ``");
        assert_eq!(md_fence(&["```".into()]), "````text\n```\n````\n");
        assert_eq!(safe_url(Some("https://x.io/a#b")), Some("https://x.io/a#b"));
        assert_eq!(safe_url(Some("javascript:alert(1)")), None);
        assert_eq!(safe_url(Some("https://x.io/\"><script>")), None);
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(plain_number(3.0), "3");
        assert_eq!(plain_number(2.5), "2.5");
    }

    #[test]
    fn facts_are_listed_in_order_with_roles_capitalised() {
        let mut report = crate::test_support::sample();
        report.target_file = Some("targets/ref.toml".to_owned());
        report
            .environment
            .insert("broker redis".to_owned(), "Redis 7.0.15".to_owned());
        let listed: Vec<(String, String, bool)> = facts(&report)
            .into_iter()
            .map(|f| (f.name, f.value, f.code))
            .collect();
        let expect = [
            ("Target", "reference-sidecar", false),
            ("Target file", "targets/ref.toml", true),
            ("Run", "run-1", true),
            ("Tool version", "0.1.0", false),
            ("Started", "2026-01-02T03:04:05Z", false),
            ("Duration", "1234 ms", false),
            ("Seed", "42", true),
            ("Profile", "core", false),
            ("Broker redis", "Redis 7.0.15", false),
        ]
        .map(|(name, value, code)| (name.to_owned(), value.to_owned(), code));
        assert_eq!(listed, expect);
    }
}

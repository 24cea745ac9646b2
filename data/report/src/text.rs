//! Text helpers shared by the writers, and nothing else: XML/HTML escaping,
//! Markdown escaping, durations and the check ordering used by every
//! human-facing report. [`xml`] is the one HTML and SVG escaper of the workspace: the
//! benchmark, chaos and matrix pages use it too.

use crate::{CheckResult, VerdictKind};

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
    }
}

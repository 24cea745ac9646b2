//! `summary.md`: the report for people, failures first.
//!
//! Layout: a one-line verdict, run facts (target, run id, seed), a totals
//! table, then failures and errors with evidence and a replay command,
//! SHOULD checks that failed, skipped checks with reasons, a table of every
//! check, and finally any extra sections.
//! Markdown is written one sentence per line so diffs stay readable.

use std::fmt::Write as _;

use crate::{
    CheckResult, RunReport, VerdictKind,
    text::{duration, facts, md, md_code, md_fence, safe_url, with_verdict},
};

/// Renders the report as GitHub-flavoured Markdown.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let headline = report.headline();
    let t = report.totals();
    // Writing to a String cannot fail, so the fmt::Results are ignored.
    let _ = writeln!(out, "# pubsub-tck report: {}\n", md(&report.target));
    let _ = writeln!(out, "**{}** {}\n", headline.status, md(&headline.text));

    out.push_str("| | |\n|---|---|\n");
    for fact in facts(report) {
        let value = if fact.code {
            md_code(&fact.value)
        } else {
            md(&fact.value)
        };
        let _ = writeln!(out, "| {} | {value} |", fact.name);
    }
    let _ = writeln!(
        out,
        "\nReplay the run: {}\n",
        md_code(&format!("pubsub-tck run --seed {}", report.seed))
    );

    out.push_str("## Totals\n\n");
    out.push_str(
        "| pass | fail | non-strict | expected fail | unexpected pass | skip | error | total |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
        t.pass, t.fail, t.non_strict, t.expected_fail, t.unexpected_pass, t.skip, t.error, t.total
    );

    detailed(&mut out, report, VerdictKind::Fail, "Failures");
    detailed(
        &mut out,
        report,
        VerdictKind::UnexpectedPass,
        "Unexpected passes (the expectations file says these fail: update it)",
    );
    detailed(
        &mut out,
        report,
        VerdictKind::Error,
        "Errors (harness or setup, the sidecar was not judged)",
    );
    detailed(
        &mut out,
        report,
        VerdictKind::NonStrict,
        "SHOULD checks that failed (non-strict)",
    );
    detailed(
        &mut out,
        report,
        VerdictKind::ExpectedFail,
        "Expected failures (written down in the target's expectations file)",
    );

    let skipped: Vec<&CheckResult> = with_verdict(&report.checks, VerdictKind::Skip).collect();
    if !skipped.is_empty() {
        out.push_str("## Skipped\n\n");
        for c in skipped {
            let reason = c.summary.as_deref().unwrap_or("no reason given");
            let _ = writeln!(out, "- {}: {}", md_code(&c.id), md(reason));
        }
        out.push('\n');
    }

    let observed: Vec<&CheckResult> = report
        .checks
        .iter()
        .filter(|c| !c.observations.is_empty())
        .collect();
    if !observed.is_empty() {
        out.push_str("## Observations\n\n");
        out.push_str("Measured by checks beyond their verdicts; none of these fails a check.\n\n");
        for c in observed {
            for note in &c.observations {
                let _ = writeln!(out, "- {}: {}", md_code(&check_name(c)), md(note));
            }
        }
        out.push('\n');
    }

    if !report.checks.is_empty() {
        out.push_str("## All checks\n\n");
        out.push_str("| Check | Level | Verdict | Clause | Duration |\n");
        out.push_str("|---|---|---|---|---:|\n");
        for c in &report.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                md_code(&c.id),
                c.level.as_str(),
                c.verdict.as_str(),
                clause(c),
                duration(c.duration_ms)
            );
        }
        out.push('\n');
    }

    for section in &report.extra_sections {
        let _ = writeln!(out, "## {}\n", md(&section.title));
        out.push_str(section.markdown.trim_end());
        out.push_str("\n\n");
    }
    // Exactly one trailing newline.
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// The check id, with its broker when it has one.
fn check_name(c: &CheckResult) -> String {
    match &c.broker {
        Some(broker) => format!("{}::{broker}", c.id),
        None => c.id.clone(),
    }
}

/// One subsection per check with the given verdict: facts, evidence in a
/// fenced block and the replay command.
fn detailed(out: &mut String, report: &RunReport, verdict: VerdictKind, heading: &str) {
    let checks: Vec<&CheckResult> = with_verdict(&report.checks, verdict).collect();
    if checks.is_empty() {
        return;
    }
    let _ = writeln!(out, "## {heading}\n");
    for c in checks {
        let _ = writeln!(out, "### {}: {}\n", md_code(&c.id), md(&c.title));
        let mut facts = vec![
            format!("{} {}", c.level.as_str(), clause(c)),
            format!("profile {}", md(&c.profile)),
        ];
        if let Some(broker) = &c.broker {
            facts.push(format!("broker {}", md(broker)));
        }
        let _ = writeln!(out, "{}\n", facts.join(" · "));
        if let Some(summary) = &c.summary {
            let _ = writeln!(out, "{}\n", md(summary));
        }
        if !c.evidence.is_empty() {
            out.push_str(&md_fence(&c.evidence));
            out.push('\n');
        }
        if let Some(file) = &c.history_file {
            let _ = writeln!(out, "History: {}\n", md_code(file));
        }
        let _ = writeln!(out, "Replay: {}\n", md_code(&report.replay_command(c)));
    }
}

fn clause(c: &CheckResult) -> String {
    match safe_url(c.clause_url.as_deref()) {
        Some(url) => format!("[{}](<{url}>)", md(&c.clause)),
        None => md(&c.clause),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Level,
        test_support::{assert_contains_all, sample},
    };

    fn check(report: &RunReport, expect: &[&str]) {
        let text = render(report);
        assert_contains_all(&text, expect);
        assert!(text.ends_with("|\n") && !text.ends_with("\n\n"));
    }

    #[test]
    fn failures_come_first_with_evidence_and_replay() {
        let report = sample();
        let text = render(&report);
        assert!(text.starts_with(
            "# pubsub-tck report: reference-sidecar\n\n**FAIL** 1 of 2 MUST checks failed \
             (1 error, 1 SHOULD check failed, 1 skipped)\n"
        ));
        check(
            &report,
            &[
                "| Seed | `42` |",
                "| 1 | 1 | 1 | 0 | 0 | 1 | 1 | 5 |",
                "### `delivery::lost`: title of delivery::lost\n\n\
                 MUST [spec/delivery::lost](<https://example.org/spec#delivery::lost>) · profile core · broker memory\n\n\
                 1 of 2 acknowledged messages were never delivered \\<\\&\\>\"\n\n\
                 ```text\nm-2: publish acknowledged at 1.0 ms, never delivered <&>\"\nm-3: second line\n```\n",
                "Replay: `pubsub-tck run --seed 7 --filter delivery::lost`",
                "- `order::kafka`: broker kafka not configured",
                "## Observations\n\nMeasured by checks beyond their verdicts; none of these fails a check.\n\n\
                 - `publish::basic::memory`: per-key order held: 4 first deliveries over 2 keys \\<\\&\\>\n",
                "| `retry::count` | SHOULD | non-strict | [spec/retry::count]",
                "| `order::kafka` | MUST | skip | spec/order::kafka | 12 ms |",
                "## Brokers \\<compared\\>\n\n| broker | pass |",
            ],
        );
        let order: Vec<usize> = [
            "## Failures",
            "## Errors",
            "## SHOULD",
            "## Skipped",
            "## Observations",
            "## All checks",
        ]
        .iter()
        .map(|h| text.find(h).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn headline_follows_exit_code() {
        let mut report = sample();
        assert_eq!(report.exit_code(), 1);
        report.checks.retain(|c| c.verdict != VerdictKind::Fail);
        assert_eq!(report.exit_code(), 2);
        assert!(render(&report).starts_with(
            "# pubsub-tck report: reference-sidecar\n\n**ERROR** 1 check could not run"
        ));
        report.checks.retain(|c| c.verdict != VerdictKind::Error);
        assert_eq!(report.exit_code(), 0);
        assert_eq!(
            report.headline().text,
            "the MUST check passed (1 SHOULD check failed, 1 skipped)"
        );
        // A failed SHOULD check never fails the run, however it is marked.
        report.checks[0].level = Level::Should;
        report.checks[0].verdict = VerdictKind::Fail;
        assert_eq!(report.exit_code(), 0);
    }
}

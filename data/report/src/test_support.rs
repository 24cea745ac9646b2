//! A fixed report shared by the writers' tests, and the assertion they share.

use crate::{CheckResult, Level, RunReport, Section, VerdictKind};

fn check(id: &str, level: Level, profile: &str, verdict: VerdictKind) -> CheckResult {
    CheckResult {
        id: id.to_owned(),
        title: format!("title of {id}"),
        level,
        clause: format!("spec/{id}"),
        clause_url: Some(format!("https://example.org/spec#{id}")),
        profile: profile.to_owned(),
        broker: Some("memory".to_owned()),
        target: None,
        verdict,
        summary: None,
        evidence: Vec::new(),
        duration_ms: 12,
        seed: None,
        history_file: None,
        observations: Vec::new(),
    }
}

/// One check of each verdict across two profiles; the failure's text holds
/// characters every format must escape.
pub(crate) fn sample() -> RunReport {
    let mut report = RunReport::new(
        "run-1",
        "0.1.0",
        "reference-sidecar",
        "2026-01-02T03:04:05Z",
        42,
    );
    report.duration_ms = 1_234;
    report.profile = Some("core".to_owned());
    report.checks = vec![
        CheckResult {
            observations: vec!["per-key order held: 4 first deliveries over 2 keys <&>".to_owned()],
            ..check("publish::basic", Level::Must, "core", VerdictKind::Pass)
        },
        CheckResult {
            summary: Some(r#"1 of 2 acknowledged messages were never delivered <&>""#.to_owned()),
            evidence: vec![
                r#"m-2: publish acknowledged at 1.0 ms, never delivered <&>""#.to_owned(),
                "m-3: second line".to_owned(),
            ],
            seed: Some(7),
            history_file: Some("histories/delivery::lost.jsonl".to_owned()),
            ..check("delivery::lost", Level::Must, "core", VerdictKind::Fail)
        },
        CheckResult {
            summary: Some("retried 4 times, expected 3".to_owned()),
            evidence: vec!["attempt 4 at 900.0 ms".to_owned()],
            ..check(
                "retry::count",
                Level::Should,
                "retries",
                VerdictKind::NonStrict,
            )
        },
        CheckResult {
            summary: Some("broker kafka not configured".to_owned()),
            clause_url: None,
            ..check("order::kafka", Level::Must, "retries", VerdictKind::Skip)
        },
        CheckResult {
            summary: Some("sidecar did not become ready within 10s".to_owned()),
            evidence: vec!["log tail: bind: address in use".to_owned()],
            ..check("dlq::basic", Level::Must, "core", VerdictKind::Error)
        },
    ];
    report.extra_sections = vec![Section {
        title: "Brokers <compared>".to_owned(),
        markdown: "| broker | pass |\n|---|---|\n| memory | 1 |\n".to_owned(),
        html: "<table><tr><td>memory</td></tr></table>".to_owned(),
    }];
    report
}

/// A report with one MUST check per `(id, verdict)`, broker unset.
pub(crate) fn report_with(verdicts: &[(&str, VerdictKind)]) -> RunReport {
    let mut report = RunReport::new("run", "0.1.0", "reference", "2026-01-02T03:04:05Z", 1);
    report.checks = verdicts
        .iter()
        .map(|&(id, verdict)| CheckResult {
            broker: None,
            summary: (verdict != VerdictKind::Pass).then(|| format!("why {id}")),
            ..check(id, Level::Must, "core", verdict)
        })
        .collect();
    report
}

/// Asserts that `text` contains every one of `needles`.
pub(crate) fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

//! The cross-broker table: for each broker of a run, the guarantees observed (from the
//! verdicts of the checks that test them) next to the promises the target declares there.

use std::collections::BTreeMap;

use harness_report::{CheckResult, Section, VerdictKind};

use harness_engine::broker::{Broker, Promise};

/// One row: a guarantee, the checks that observe it, and the promise that declares it.
struct Row {
    name: &'static str,
    checks: &'static [&'static str],
    promise: Option<Promise>,
}

const ROWS: &[Row] = &[
    Row {
        name: "per-subscription FIFO",
        checks: &[
            "core::ordering::fifo_single_publisher",
            "core::ordering::per_key_interleaved",
        ],
        promise: Some(Promise::Fifo),
    },
    Row {
        name: "FIFO per partition key",
        checks: &["core::ordering::per_partition_key"],
        promise: Some(Promise::FifoPerPartitionKey),
    },
    Row {
        name: "per-key order with partition keys, slow app, RETRY for some",
        checks: &[
            "core::ordering::keyed_order_report",
            "core::ordering::keyed_order_under_retry",
        ],
        promise: Some(Promise::FifoPerPartitionKey),
    },
    Row {
        name: "FIFO with concurrency 1",
        checks: &["core::ordering::fifo_with_concurrency_one"],
        promise: Some(Promise::FifoWithConcurrencyOne),
    },
    Row {
        name: "one delivery in flight",
        checks: &["core::ordering::one_in_flight"],
        promise: Some(Promise::OneInFlight),
    },
    Row {
        name: "redelivery after a sidecar kill",
        checks: &["core::durability::sidecar_kill_redelivers"],
        promise: Some(Promise::SurvivesSidecarCrash),
    },
    Row {
        name: "acknowledged publishes survive a broker restart",
        checks: &["core::durability::broker_restart_keeps_acknowledged"],
        promise: Some(Promise::SurvivesBrokerRestart),
    },
    Row {
        name: "no loss, no duplicates (healthy run)",
        checks: &["core::delivery::no_loss_no_duplicates"],
        promise: None,
    },
    Row {
        name: "retry exactness (maxRetries N → N+1)",
        checks: &[
            "core::resiliency::max_retries_2",
            "core::resiliency::max_retries_4",
            "core::resiliency::max_retries_zero",
        ],
        promise: None,
    },
    Row {
        name: "dead-letter exactly once",
        checks: &[
            "core::dlq::exhausted_exactly_once",
            "core::dlq::copy_is_original_event",
        ],
        promise: None,
    },
];

/// What the checks of one row say on one broker, followed by what they measured (how order
/// broke where the broker does not promise it, say).
fn observed(
    results: &BTreeMap<(&str, &str), &CheckResult>,
    broker: &str,
    checks: &[&str],
) -> String {
    let verdict = verdict_word(results, broker, checks);
    let notes: Vec<&str> = checks
        .iter()
        .filter_map(|c| results.get(&(*c, broker)))
        .flat_map(|r| r.observations.iter().map(String::as_str))
        .collect();
    if notes.is_empty() {
        verdict.to_owned()
    } else {
        format!("{verdict}: {}", notes.join("; "))
    }
}

/// One word for the verdicts of the checks of one row on one broker.
fn verdict_word(
    results: &BTreeMap<(&str, &str), &CheckResult>,
    broker: &str,
    checks: &[&str],
) -> &'static str {
    let verdicts: Vec<VerdictKind> = checks
        .iter()
        .filter_map(|c| results.get(&(*c, broker)).map(|r| r.verdict))
        .collect();
    if verdicts.is_empty() {
        return "not run";
    }
    if verdicts.iter().any(|v| {
        matches!(
            v,
            VerdictKind::Fail | VerdictKind::NonStrict | VerdictKind::ExpectedFail
        )
    }) {
        "broken"
    } else if verdicts.iter().any(|v| matches!(v, VerdictKind::Error)) {
        "error"
    } else if verdicts.iter().all(|v| matches!(v, VerdictKind::Skip)) {
        "skipped"
    } else {
        "holds"
    }
}

/// The section, or `None` when the run covered a single broker; `target` declares what is
/// promised on each broker.
pub fn section(results: &[CheckResult], target: &harness::TargetFile) -> Option<Section> {
    let mut brokers: Vec<Broker> = results
        .iter()
        .filter_map(|r| r.broker.as_deref().and_then(Broker::parse))
        .collect();
    brokers.sort();
    brokers.dedup();
    if brokers.len() < 2 {
        return None;
    }
    let index: BTreeMap<(&str, &str), &CheckResult> = results
        .iter()
        .filter_map(|r| r.broker.as_deref().map(|b| ((r.id.as_str(), b), r)))
        .collect();
    let mut md = String::from(
        "Observed on this run (verdicts of the checks named), and what the target declares on each broker.\n\n| guarantee |",
    );
    let mut html = String::from(
        "<p>Observed on this run (verdicts of the checks named), and what the target declares on each broker.</p><table><thead><tr><th>guarantee</th>",
    );
    for b in &brokers {
        md.push_str(&format!(" {b} observed | {b} declared |"));
        html.push_str(&format!("<th>{b} observed</th><th>{b} declared</th>"));
    }
    md.push_str(" checks |\n|---|");
    html.push_str("<th>checks</th></tr></thead><tbody>");
    for _ in &brokers {
        md.push_str("---|---|");
    }
    md.push_str("---|\n");
    for row in ROWS {
        md.push_str(&format!("| {} |", row.name));
        html.push_str(&format!("<tr><td>{}</td>", row.name));
        for b in &brokers {
            let seen = observed(&index, b.name(), row.checks);
            let declared = match row.promise {
                Some(p) if target.keeps(*b, p) => "yes",
                Some(_) => "no",
                None => "contract",
            };
            md.push_str(&format!(" {} | {declared} |", seen.replace('|', "\\|")));
            html.push_str(&format!(
                "<td>{}</td><td>{declared}</td>",
                harness_report::text::xml(&seen)
            ));
        }
        let names = row.checks.join(", ");
        md.push_str(&format!(" `{names}` |\n"));
        html.push_str(&format!("<td><code>{names}</code></td></tr>"));
    }
    html.push_str("</tbody></table>");
    Some(Section {
        title: "Cross-broker guarantees".into(),
        markdown: md,
        html,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_report::Level;

    /// A target that declares no promises: every broker makes its defaults.
    fn target() -> harness::TargetFile {
        harness::TargetFile::parse(
            "name = \"t\"\nurl = \"http://127.0.0.1:3500\"",
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    fn result(id: &str, broker: &str, verdict: VerdictKind) -> CheckResult {
        CheckResult {
            id: id.into(),
            title: String::new(),
            level: Level::Must,
            clause: String::new(),
            clause_url: None,
            profile: "core".into(),
            broker: Some(broker.into()),
            target: None,
            verdict,
            summary: None,
            evidence: vec![],
            duration_ms: 0,
            seed: None,
            history_file: None,
            observations: Vec::new(),
        }
    }

    #[test]
    fn table_per_broker() {
        assert!(
            section(
                &[result(
                    "core::ordering::fifo_single_publisher",
                    "in-memory",
                    VerdictKind::Pass
                )],
                &target()
            )
            .is_none()
        );
        let s = section(
            &[
                result(
                    "core::ordering::fifo_single_publisher",
                    "in-memory",
                    VerdictKind::Pass,
                ),
                result(
                    "core::ordering::fifo_single_publisher",
                    "redis",
                    VerdictKind::Skip,
                ),
                result(
                    "core::delivery::no_loss_no_duplicates",
                    "redis",
                    VerdictKind::Fail,
                ),
            ],
            &target(),
        )
        .unwrap();
        assert!(
            s.markdown
                .contains("| per-subscription FIFO | holds | yes | skipped | no |"),
            "{}",
            s.markdown
        );
        assert!(
            s.markdown.contains(
                "| no loss, no duplicates (healthy run) | not run | contract | broken | contract |"
            ),
            "{}",
            s.markdown
        );
    }

    #[test]
    fn measurements_follow_the_verdict() {
        let measured = CheckResult {
            observations: vec!["per-key order broken: 3 of 100 | late".into()],
            ..result(
                "core::ordering::keyed_order_report",
                "redis",
                VerdictKind::Pass,
            )
        };
        let s = section(
            &[
                result(
                    "core::ordering::keyed_order_report",
                    "in-memory",
                    VerdictKind::Pass,
                ),
                measured,
            ],
            &target(),
        )
        .unwrap();
        assert!(
            s.markdown
                .contains("| holds | yes | holds: per-key order broken: 3 of 100 \\| late | no |"),
            "{}",
            s.markdown
        );
    }
}

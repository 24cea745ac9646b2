//! The self-check: the checks must catch broken sidecars.
//!
//! Each [`Case`] runs one check against a target behind the `tck-mutant` wrapper in one
//! [`Mode`] (see `harness_mutant`): a mutant must make the check fail, naming the broken
//! promise; the pass-through mode `none` is the control and must pass the same checks. The
//! cases run around any launched target, so an implementer proves the checks have teeth on
//! their own sidecar and broker (`pubsub-tck selfcheck`), as `suites/tests/selfcheck.rs` does
//! around refsidecar and daprd.

use std::sync::Arc;

use harness::TargetFile;
use harness_mutant::Mode;
use harness_report::{CheckResult, VerdictKind};

use harness_engine::{Broker, RunEnv};

/// One check against one mutant on one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The broker behind the target's pubsub component.
    pub broker: Broker,
    /// How the wrapper breaks the target.
    pub mode: Mode,
    /// The check that must catch it (or, for the control, pass).
    pub check: &'static str,
    /// True for a mutant, false for the control (`none`).
    pub must_fail: bool,
}

impl Case {
    /// `<mode>::<check id with dots>::<broker>`, as the self-check's trials are named.
    pub fn name(&self) -> String {
        format!(
            "{}::{}::{}",
            self.mode,
            self.check.replace("::", "."),
            self.broker
        )
    }
}

/// (mutant mode, check id, whether the check must fail), on the in-memory broker.
const IN_MEMORY: &[(Mode, &str, bool)] = &[
    (
        Mode::AckBeforeDeliver,
        "core::ordering::fifo_single_publisher",
        true,
    ),
    (Mode::AckBeforeDeliver, "core::status::retry_retried", true),
    (
        Mode::StripSpecversion,
        "core::cloudevents::schema_valid",
        true,
    ),
    (
        Mode::StripSpecversion,
        "core::cloudevents::dapr_attributes",
        true,
    ),
    (
        Mode::RetryToSuccess,
        "core::redelivery::retry_then_success",
        true,
    ),
    (Mode::RetryToSuccess, "core::status::retry_retried", true),
    (
        Mode::DeliverTwice,
        "core::delivery::no_loss_no_duplicates",
        true,
    ),
    (Mode::DeliverTwice, "core::status::success_once", true),
    (
        Mode::DropEvery3rd,
        "core::delivery::no_loss_no_duplicates",
        true,
    ),
    (
        Mode::ContentTypeJson,
        "core::cloudevents::delivery_content_type",
        true,
    ),
    (Mode::TtlIgnored, "core::dlq::expired_never_delivered", true),
    (
        Mode::TokenBypassBulk,
        "core::auth::every_route_needs_token",
        true,
    ),
    // The same proxies for a gRPC app (`--app-protocol grpc`).
    (
        Mode::RetryToSuccess,
        "core::status::retry_retried::grpc",
        true,
    ),
    (Mode::DeliverTwice, "core::status::success_once::grpc", true),
    (
        Mode::DropEvery3rd,
        "core::delivery::no_loss_no_duplicates::grpc",
        true,
    ),
    (
        Mode::AckBeforeDeliver,
        "core::ordering::fifo_single_publisher::grpc",
        true,
    ),
    (Mode::None, "core::status::retry_retried::grpc", false),
    (
        Mode::None,
        "core::delivery::no_loss_no_duplicates::grpc",
        false,
    ),
    (
        Mode::TokenBypassGrpc,
        "core::auth::every_grpc_method_needs_token",
        true,
    ),
    (
        Mode::None,
        "core::auth::every_grpc_method_needs_token",
        false,
    ),
    // A robustness campaign finds a connection reset on one kind of request and shrinks it to
    // a reproducer naming the TTL (see `reproducer_named`).
    (Mode::ResetOnHugeTtl, "robustness::http_api::campaign", true),
    (Mode::None, "robustness::http_api::campaign", false),
    (
        Mode::ScopesIgnored,
        "core::publish::protected_topics_forbidden",
        true,
    ),
    (
        Mode::ScopesIgnored,
        "core::publish::subscription_scopes_filter",
        true,
    ),
    (
        Mode::None,
        "core::publish::protected_topics_forbidden",
        false,
    ),
    (
        Mode::None,
        "core::publish::subscription_scopes_filter",
        false,
    ),
    (Mode::None, "core::dlq::expired_never_delivered", false),
    (Mode::None, "core::auth::every_route_needs_token", false),
    (Mode::None, "core::cloudevents::schema_valid", false),
    (Mode::None, "core::resiliency::max_retries_2", false),
    (Mode::None, "core::delivery::no_loss_no_duplicates", false),
    (
        Mode::None,
        "core::cloudevents::delivery_content_type",
        false,
    ),
];

/// The same, on Redis (a private redis-server per trial).
const REDIS: &[(Mode, &str, bool)] = &[
    (
        Mode::AckBeforeDeliver,
        "core::durability::sidecar_kill_redelivers",
        true,
    ),
    (
        Mode::AckBeforeDeliver,
        "core::ordering::fifo_with_concurrency_one",
        true,
    ),
    (Mode::TtlIgnored, "core::dlq::expired_never_delivered", true),
    (
        Mode::NeverAck,
        "core::delivery::acknowledged_after_outcome",
        true,
    ),
    (
        Mode::None,
        "core::delivery::acknowledged_after_outcome",
        false,
    ),
    (
        Mode::None,
        "core::durability::sidecar_kill_redelivers",
        false,
    ),
    (
        Mode::None,
        "core::ordering::fifo_with_concurrency_one",
        false,
    ),
    (Mode::None, "core::dlq::expired_never_delivered", false),
];

/// The same, on Kafka (a private Apache Kafka broker per trial). Kafka promises order per
/// partition key only, so the ordering case is the per-key check.
///
/// `ack-before-deliver` is not a case of `core::durability::sidecar_kill_redelivers` here:
/// a sidecar commits Kafka offsets after the outcome, in the background (daprd a second later,
/// refsidecar asynchronously), so whether the early acknowledgement is committed before the
/// check's kill is a race, and the loss shows in some runs only. The per-key ordering case
/// catches the same mutant on Kafka.
const KAFKA: &[(Mode, &str, bool)] = &[
    (
        Mode::AckBeforeDeliver,
        "core::ordering::per_partition_key",
        true,
    ),
    (
        Mode::DropEvery3rd,
        "core::delivery::no_loss_no_duplicates",
        true,
    ),
    (
        Mode::None,
        "core::durability::sidecar_kill_redelivers",
        false,
    ),
    (Mode::None, "core::ordering::per_partition_key", false),
];

/// Chaos checks against broken sidecars. A caught mutant must be reported with the fault
/// window and the ids of the messages it lost (see `chaos_evidence_named`).
const CHAOS: &[(Broker, Mode, &str, bool)] = &[
    (
        Broker::InMemory,
        Mode::DropEvery3rd,
        "chaos::sidecar_app::latency",
        true,
    ),
    (
        Broker::InMemory,
        Mode::AckBeforeDeliver,
        "chaos::sidecar_app::down",
        true,
    ),
    (
        Broker::InMemory,
        Mode::None,
        "chaos::sidecar_app::latency",
        false,
    ),
    (
        Broker::InMemory,
        Mode::None,
        "chaos::sidecar_app::down",
        false,
    ),
    (
        Broker::Redis,
        Mode::None,
        "chaos::process::kill_sidecar",
        false,
    ),
];

/// Every case, on every broker.
pub fn cases() -> Vec<Case> {
    let on = |broker: Broker, table: &'static [(Mode, &'static str, bool)]| {
        table.iter().map(move |&(mode, check, must_fail)| Case {
            broker,
            mode,
            check,
            must_fail,
        })
    };
    on(Broker::InMemory, IN_MEMORY)
        .chain(on(Broker::Redis, REDIS))
        .chain(on(Broker::Kafka, KAFKA))
        .chain(CHAOS.iter().map(|&(broker, mode, check, must_fail)| Case {
            broker,
            mode,
            check,
            must_fail,
        }))
        .collect()
}

/// Why a case cannot tell the mutant from the target itself, if it cannot: the target's
/// expectations file says the target fails the check on its own.
pub fn not_observable(target: &TargetFile, case: &Case) -> Option<String> {
    let file = target.expectations()?;
    file.lookup(case.check, case.broker.name())?;
    let name = file.path().file_name().map_or_else(
        || file.path().display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Some(format!(
        "the target fails {} on its own (an expected failure in {name}), so a mutant of it is not observable there",
        case.check
    ))
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The mutant made the check fail with the evidence it must name; the check's summary.
    Caught(String),
    /// The control passed.
    ControlPassed,
    /// The check could not run here (a missing capability, broker or runtime).
    Skipped(String),
    /// The mutant went unnoticed, or was caught without the evidence a user needs.
    Missed(String),
    /// The control failed: the wrapper itself, or the target, breaks the check.
    ControlFailed(String),
    /// The trial ended in a setup error.
    Error(String),
}

impl Judgement {
    /// Whether the case ended as the self-check requires (a skip says why and is not a failure).
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            Judgement::Caught(_) | Judgement::ControlPassed | Judgement::Skipped(_)
        )
    }

    /// One word for a summary line.
    pub fn label(&self) -> &'static str {
        match self {
            Judgement::Caught(_) => "caught",
            Judgement::ControlPassed => "passed",
            Judgement::Skipped(_) => "skipped",
            Judgement::Missed(_) => "MISSED",
            Judgement::ControlFailed(_) => "CONTROL FAILED",
            Judgement::Error(_) => "ERROR",
        }
    }

    /// What the check said of a mutant, or the reason behind a skip, a miss, a failed control
    /// or an error.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Judgement::ControlPassed => None,
            Judgement::Caught(s)
            | Judgement::Skipped(s)
            | Judgement::Missed(s)
            | Judgement::ControlFailed(s)
            | Judgement::Error(s) => Some(s),
        }
    }
}

/// Runs `case` in `env`, whose target is already the mutant (see `harness_mutant::wrap`), and
/// judges the result.
pub async fn judge(env: Arc<RunEnv>, case: &Case) -> Judgement {
    let Some(check) = crate::all().into_iter().find(|c| c.id == case.check) else {
        return Judgement::Error(format!("no check {} in the catalog", case.check));
    };
    let r = harness_engine::runner::run_one(env, &check).await.result;
    judge_result(case, &r)
}

/// The judgement of one check's result (pure: see [`judge`]).
pub fn judge_result(case: &Case, r: &CheckResult) -> Judgement {
    let summary = r.summary.clone().unwrap_or_default();
    let caught = matches!(r.verdict, VerdictKind::Fail | VerdictKind::NonStrict);
    match (case.must_fail, r.verdict) {
        (_, VerdictKind::Error) => Judgement::Error(format!("setup error: {summary}")),
        (_, VerdictKind::Skip) => Judgement::Skipped(summary),
        (true, _) if caught && !summary.is_empty() => {
            match chaos_evidence_named(case.check, &r.evidence)
                .and_then(|()| reproducer_named(case.check, &summary, &r.evidence))
            {
                Ok(()) => Judgement::Caught(summary),
                Err(e) => Judgement::Missed(format!("caught, but {e}")),
            }
        }
        (true, v) => Judgement::Missed(format!(
            "mutant `{}` was not caught by {}: verdict {v:?}",
            case.mode, case.check
        )),
        (false, VerdictKind::Pass) => Judgement::ControlPassed,
        (false, v) => Judgement::ControlFailed(format!("verdict {v:?}: {summary}")),
    }
}

/// What a caught chaos failure must name: the fault window and message ids.
fn chaos_evidence_named(id: &str, evidence: &[String]) -> Result<(), String> {
    let window = match id {
        "chaos::sidecar_app::latency" => "latency on sidecar-app",
        "chaos::sidecar_app::down" => "down on sidecar-app",
        _ => return Ok(()),
    };
    let all = evidence.join("\n");
    if !all.contains(window) {
        return Err(format!(
            "the evidence does not name the fault window `{window}`:\n{all}"
        ));
    }
    if !evidence.iter().any(|e| e.starts_with("c-k")) {
        return Err(format!(
            "the evidence names no lost message id (c-k…):\n{all}"
        ));
    }
    Ok(())
}

/// A robustness campaign that caught a mutant names the request it shrank to (a publish with
/// a TTL, the only thing `reset-on-huge-ttl` breaks) and gives a command to reproduce it.
fn reproducer_named(id: &str, summary: &str, evidence: &[String]) -> Result<(), String> {
    if !id.starts_with("robustness::") {
        return Ok(());
    }
    let shrunk = summary.split("shrunk").nth(1).unwrap_or_default();
    if !(shrunk.contains("POST /v1.0") && shrunk.to_ascii_lowercase().contains("metadata.ttl")) {
        return Err(format!(
            "the shrunk probe does not name a publish with a TTL: {summary}"
        ));
    }
    if !evidence
        .iter()
        .any(|e| e.starts_with("reproduce with:\n{ printf"))
    {
        return Err(format!(
            "no command to reproduce it in the evidence: {evidence:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(verdict: VerdictKind, summary: &str, evidence: &[&str]) -> CheckResult {
        CheckResult {
            id: "core::x".to_owned(),
            title: String::new(),
            level: harness_report::Level::Must,
            clause: String::new(),
            clause_url: None,
            profile: "core".to_owned(),
            broker: None,
            target: None,
            verdict,
            summary: Some(summary.to_owned()),
            evidence: evidence.iter().map(|e| (*e).to_owned()).collect(),
            duration_ms: 0,
            seed: None,
            history_file: None,
            observations: Vec::new(),
        }
    }

    fn case(mode: Mode, check: &'static str) -> Case {
        Case {
            broker: Broker::InMemory,
            mode,
            check,
            must_fail: mode != Mode::None,
        }
    }

    #[test]
    fn every_case_names_a_check_of_the_catalog() {
        let ids: Vec<_> = crate::all().iter().map(|c| c.id).collect();
        for c in cases() {
            assert!(ids.contains(&c.check), "{} is not a check", c.check);
        }
    }

    #[test]
    fn a_failure_catches_a_mutant_and_fails_a_control() {
        let failed = result(VerdictKind::Fail, "m-2 delivered twice", &[]);
        let drop = case(Mode::DropEvery3rd, "core::delivery::no_loss_no_duplicates");
        assert_eq!(
            judge_result(&drop, &failed),
            Judgement::Caught("m-2 delivered twice".to_owned())
        );
        let control = case(Mode::None, "core::delivery::no_loss_no_duplicates");
        assert!(matches!(
            judge_result(&control, &failed),
            Judgement::ControlFailed(_)
        ));
    }

    #[test]
    fn a_pass_misses_a_mutant_and_a_skip_is_no_verdict() {
        let drop = case(Mode::DropEvery3rd, "core::delivery::no_loss_no_duplicates");
        let passed = result(VerdictKind::Pass, "", &[]);
        assert!(matches!(judge_result(&drop, &passed), Judgement::Missed(_)));
        let skipped = result(VerdictKind::Skip, "needs capability app.grpc", &[]);
        assert_eq!(
            judge_result(&drop, &skipped),
            Judgement::Skipped("needs capability app.grpc".to_owned())
        );
        let error = result(VerdictKind::Error, "port taken", &[]);
        assert!(!judge_result(&drop, &error).is_ok());
    }

    #[test]
    fn a_chaos_catch_without_the_fault_window_is_a_miss() {
        let c = case(Mode::DropEvery3rd, "chaos::sidecar_app::latency");
        let bare = result(VerdictKind::Fail, "lost 3 messages", &["c-k1-7"]);
        assert!(matches!(judge_result(&c, &bare), Judgement::Missed(_)));
        let named = result(
            VerdictKind::Fail,
            "lost 3 messages",
            &["fault windows: latency on sidecar-app 2s..4s", "c-k1-7"],
        );
        assert!(matches!(judge_result(&c, &named), Judgement::Caught(_)));
    }

    #[test]
    fn a_campaign_catch_must_name_the_shrunk_publish_and_a_reproducer() {
        let c = case(Mode::ResetOnHugeTtl, "robustness::http_api::campaign");
        let vague = result(VerdictKind::Fail, "connection reset", &[]);
        assert!(matches!(judge_result(&c, &vague), Judgement::Missed(_)));
        let named = result(
            VerdictKind::Fail,
            "connection reset; shrunk to POST /v1.0/publish/pubsub/t?metadata.ttlInSeconds=1e12",
            &["reproduce with:\n{ printf 'POST ...' ; } | nc 127.0.0.1 3500"],
        );
        assert!(matches!(judge_result(&c, &named), Judgement::Caught(_)));
    }
}

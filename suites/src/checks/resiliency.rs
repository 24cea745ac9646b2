//! Inbound Resiliency policies on a pub/sub component (spec §5): retry counts, backoff
//! spacing, status matching, per-attempt timeouts and policy resolution.
//!
//! Counts are judged with [`redelivery::attempts`] behind a barrier (the dead-letter copy, or
//! the last expected delivery) and an observation window; spacing with
//! [`redelivery::spacing`], whose bounds already absorb scheduling delay on a loaded machine.

use std::time::Duration;

use harness::Script;
use harness_checkers::redelivery::Backoff;
use harness_checkers::{dlq, redelivery};
use harness_history::MessageId;

use super::status::{Fate, Lane, settle};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, verdict};
use harness_engine::trial::{PUBSUB, Scenario, Trial, delivery_lines};

const POLICIES_DOC: Option<&str> = Some("https://docs.dapr.io/operations/resiliency/policies/");
const TARGETS_DOC: Option<&str> = Some("https://docs.dapr.io/operations/resiliency/targets/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::resiliency::max_retries_2",
            Must,
            "maxRetries: 2 gives exactly 3 deliveries of a failing (500) message, then the dead letter",
            "dapr/kit retry/retry.go: attempts = 1 + maxRetries; regression dapr/docs#3650, dapr/components-contrib#4208 (retry counts that ignore maxRetries)",
            POLICIES_DOC,
            [Need::Launch],
            max_retries_2
        ),
        check!(
            "core::resiliency::max_retries_4",
            Must,
            "maxRetries: 4 gives exactly 5 deliveries of a RETRY message, and no more afterwards",
            "daprd tests/integration/suite/daprd/resiliency/subscriptions/http.go: maxRetries 4 = exactly 5 calls",
            POLICIES_DOC,
            [Need::Launch],
            max_retries_4
        ),
        check!(
            "core::resiliency::max_retries_zero",
            Must,
            "maxRetries: 0 gives exactly one delivery of a failing message",
            "dapr/kit retry/retry.go: maxRetries 0 = a single attempt",
            POLICIES_DOC,
            [Need::Launch],
            max_retries_zero
        ),
        check!(
            "core::resiliency::unlimited_retries",
            Must,
            "maxRetries: -1 retries until the app succeeds (RETRY 5 times, then SUCCESS: 6 deliveries)",
            "dapr/kit retry/retry.go: maxRetries -1 = unlimited",
            POLICIES_DOC,
            [Need::Launch],
            unlimited_retries
        ),
        check!(
            "core::resiliency::max_retries_default_unlimited",
            Should,
            "A retry policy without maxRetries retries until the app succeeds",
            "daprd pkg/apis/resiliency/v1alpha1/types.go: maxRetries defaults to -1",
            POLICIES_DOC,
            [Need::Launch],
            max_retries_default_unlimited
        ),
        check!(
            "core::resiliency::constant_spacing",
            Must,
            "A constant policy with duration 300ms spaces retries 300 ms apart",
            "dapr/kit retry/retry.go: constant backoff waits `duration` between attempts",
            POLICIES_DOC,
            [Need::Launch],
            constant_spacing
        ),
        check!(
            "core::resiliency::exponential_spacing",
            Should,
            "An exponential policy spaces retries 500 ms x 1.5^i (±50% jitter), capped by maxInterval",
            "dapr/kit retry/retry.go: exponential backoff, initial 500ms, multiplier 1.5, randomization 0.5",
            POLICIES_DOC,
            [Need::Launch],
            exponential_spacing
        ),
        check!(
            "core::resiliency::matching_http_status_codes",
            Must,
            "With matching.httpStatusCodes \"503\" a 503 answer is retried and a 500 answer is not",
            "daprd pkg/resiliency/policy.go: a status code outside httpStatusCodes is a permanent error",
            POLICIES_DOC,
            [Need::Launch],
            matching_http_status_codes
        ),
        check!(
            "core::resiliency::matching_http_status_range",
            Must,
            "With matching.httpStatusCodes \"100,502-504,599\" (both ends of the valid codes, and a range) both ends of the range and 599 are retried, and the codes just outside the range are not",
            "daprd pkg/resiliency/retry.go compilePattern and codeRange.matchCode: a range `start-end` holds both ends; HTTP codes run from 100 to 599",
            POLICIES_DOC,
            [Need::Launch],
            matching_http_status_range
        ),
        check!(
            "core::resiliency::matching_grpc_status_codes",
            Must,
            "With matching.gRPCStatusCodes \"14\" a gRPC app's UNAVAILABLE is retried and its INTERNAL is not",
            "daprd pkg/resiliency/policy.go and retry.go: an error's code in 0-16 is judged against gRPCStatusCodes; a code outside a non-empty list is a permanent error",
            POLICIES_DOC,
            [Need::Launch],
            matching_grpc_status_codes
        )
        .grpc_only(),
        check!(
            "core::resiliency::matching_ignores_retry_status",
            Must,
            "matching.httpStatusCodes does not stop retries of a RETRY answer, which carries no status code",
            "daprd pkg/resiliency/policy.go: errors without a status code always match",
            POLICIES_DOC,
            [Need::Launch],
            matching_ignores_retry_status
        ),
        check!(
            "core::resiliency::drop_and_404_not_retried",
            Must,
            "DROP and 404 are delivered exactly once under a retry policy with maxRetries 4",
            "daprd pkg/runtime/subscription/subscription.go: ErrMessageDropped is not retried",
            POLICIES_DOC,
            [Need::Launch],
            drop_and_404_not_retried
        ),
        check!(
            "core::resiliency::per_attempt_timeout",
            Should,
            "An inbound timeout ends a slow attempt and the retry policy makes a second attempt",
            "daprd pkg/resiliency/policy.go: the timeout bounds one attempt, which then counts as failed",
            POLICIES_DOC,
            [Need::Launch],
            per_attempt_timeout
        ),
        check!(
            "core::resiliency::no_default_timeout",
            Should,
            "Without a timeout policy a slow (1.5 s) answer is waited for: no retry, no dead letter",
            "daprd pkg/channel/http/http_channel.go: the app client has no timeout",
            POLICIES_DOC,
            [Need::Launch],
            no_default_timeout
        ),
        check!(
            "core::resiliency::default_retry_policy",
            Should,
            "A retry policy named DefaultRetryPolicy applies to deliveries when the component has no target",
            "daprd pkg/resiliency/resiliency.go: inbound lookup falls back to DefaultRetryPolicy",
            Some("https://docs.dapr.io/operations/resiliency/policies/#overriding-default-retries"),
            [Need::Launch],
            default_retry_policy
        ),
        check!(
            "core::resiliency::target_without_inbound",
            Should,
            "A component target with only an outbound side gets no inbound retries, even with a DefaultRetryPolicy (quirk)",
            "daprd pkg/resiliency/resiliency.go: a named component target replaces the defaults",
            TARGETS_DOC,
            [Need::Launch],
            target_without_inbound
        ),
    ]
}

/// The standard lane with a dead-letter topic, answered by `script`.
const LANE: Lane = Lane("orders");

async fn start(t: &mut Trial, script: Script, s: Scenario) -> Result<String, Problem> {
    t.start(LANE.add(s, script)).await?;
    LANE.publish(t).await
}

/// With a constant policy of `max_retries`, a message the app answers with `script` meets
/// `fate`. Returns its id.
async fn constant_retries(
    t: &mut Trial,
    script: Script,
    max_retries: i64,
    fate: Fate,
) -> Result<String, Problem> {
    let policy = Scenario::new().retry_constant("20ms", max_retries);
    let id = start(t, script, policy).await?;
    settle(t, LANE, &id, fate).await?;
    Ok(id)
}

async fn max_retries_2(t: &mut Trial) -> Result<(), Problem> {
    constant_retries(t, Script::Http(500), 2, Fate::DeadLettered(3)).await?;
    Ok(())
}

async fn max_retries_4(t: &mut Trial) -> Result<(), Problem> {
    let retry = Script::Status("RETRY".into());
    let id = constant_retries(t, retry, 4, Fate::DeadLettered(5)).await?;
    // A second window: no burst of component-level redelivery later (contrib#4208).
    t.quiet(&LANE.route()).await;
    let h = t.history();
    verdict(redelivery::attempts(&h, &MessageId::new(&id), &LANE.route(), 5).verdict())
}

async fn max_retries_zero(t: &mut Trial) -> Result<(), Problem> {
    constant_retries(t, Script::Http(500), 0, Fate::DeadLettered(1)).await?;
    Ok(())
}

async fn unlimited_retries(t: &mut Trial) -> Result<(), Problem> {
    constant_retries(t, Script::RetryThenSuccess(5), -1, Fate::Delivered(6)).await?;
    Ok(())
}

async fn max_retries_default_unlimited(t: &mut Trial) -> Result<(), Problem> {
    let id = start(
        t,
        Script::RetryThenSuccess(5),
        Scenario::new().retry_policy("policy: constant\n        duration: 20ms"),
    )
    .await?;
    settle(t, LANE, &id, Fate::Delivered(6)).await
}

/// Arrival times (ms) of `id` on the lane's route once it was dead-lettered after `n` attempts.
async fn attempt_times(t: &mut Trial, id: &str, n: u32) -> Result<Vec<f64>, Problem> {
    settle(t, LANE, id, Fate::DeadLettered(n)).await?;
    let h = t.history();
    Ok(redelivery::attempts(&h, &MessageId::new(id), &LANE.route(), n).times_ms)
}

async fn constant_spacing(t: &mut Trial) -> Result<(), Problem> {
    let id = start(
        t,
        Script::Status("RETRY".into()),
        Scenario::new().retry_constant("300ms", 3),
    )
    .await?;
    let times = attempt_times(t, &id, 4).await?;
    // Bounds 175..=470 ms: an early retry or a default 5 s wait both fail.
    verdict(redelivery::spacing(&times, &Backoff::Constant { ms: 300 }, 0.4).verdict())
}

async fn exponential_spacing(t: &mut Trial) -> Result<(), Problem> {
    let id = start(
        t,
        Script::Status("RETRY".into()),
        // The retries take about 2.4 s: keep brokers with a processing timeout (Redis) from
        // reclaiming the message in the middle of its own retry sequence.
        Scenario::new()
            .component_metadata("processingTimeout", "60s")
            .retry_policy("policy: exponential\n        maxInterval: 1s\n        maxRetries: 3"),
    )
    .await?;
    let times = attempt_times(t, &id, 4).await?;
    let backoff = Backoff::Exponential {
        initial_ms: 500,
        multiplier: 1.5,
        max_ms: 1000,
        jitter: 0.5,
    };
    verdict(redelivery::spacing(&times, &backoff, 0.2).verdict())
}

/// A constant 20 ms policy with 2 retries and the matching rule `rule` (a line of YAML under
/// `matching:`).
fn matching(rule: &str) -> Scenario {
    Scenario::new().retry_policy(&format!(
        "policy: constant\n        duration: 20ms\n        maxRetries: 2\n        matching:\n          {rule}"
    ))
}

/// A constant 20 ms policy with 2 retries and `matching.httpStatusCodes: "503"`.
fn only_503() -> Scenario {
    matching(r#"httpStatusCodes: "503""#)
}

/// Lane `other` answers `other_answer` and lane `matched` answers `matched_answer` under
/// `policy`, whose matching rule takes in `matched_answer` alone: one message to each, the
/// matched one is retried and dead-lettered after 3 deliveries, the other after 1.
async fn only_matched_retried(
    t: &mut Trial,
    policy: Scenario,
    (other, other_answer): (Lane, Script),
    (matched, matched_answer): (Lane, Script),
) -> Result<(), Problem> {
    t.start(matched.add(other.add(policy, other_answer), matched_answer))
        .await?;
    let a = other.publish(t).await?;
    let b = matched.publish(t).await?;
    settle(t, matched, &b, Fate::DeadLettered(3)).await?;
    settle(t, other, &a, Fate::DeadLettered(1)).await
}

async fn matching_http_status_codes(t: &mut Trial) -> Result<(), Problem> {
    only_matched_retried(
        t,
        only_503(),
        (Lane("c500"), Script::Http(500)),
        (Lane("c503"), Script::Http(503)),
    )
    .await
}

async fn matching_http_status_range(t: &mut Trial) -> Result<(), Problem> {
    let lanes = [
        (Lane("c501"), 501, Fate::DeadLettered(1)),
        (Lane("c502"), 502, Fate::DeadLettered(3)),
        (Lane("c504"), 504, Fate::DeadLettered(3)),
        (Lane("c505"), 505, Fate::DeadLettered(1)),
        (Lane("c599"), 599, Fate::DeadLettered(3)),
    ];
    let mut scenario = matching(r#"httpStatusCodes: "100,502-504,599""#);
    for (lane, code, _) in lanes {
        scenario = lane.add(scenario, Script::Http(code));
    }
    t.start(scenario).await?;
    let mut ids = Vec::new();
    for (lane, _, _) in lanes {
        ids.push(lane.publish(t).await?);
    }
    for ((lane, _, fate), id) in lanes.into_iter().zip(&ids) {
        settle(t, lane, id, fate).await?;
    }
    Ok(())
}

async fn matching_grpc_status_codes(t: &mut Trial) -> Result<(), Problem> {
    only_matched_retried(
        t,
        matching(r#"gRPCStatusCodes: "14""#),
        (Lane("internal"), Script::Grpc(13)),
        (Lane("unavailable"), Script::Grpc(14)),
    )
    .await
}

async fn matching_ignores_retry_status(t: &mut Trial) -> Result<(), Problem> {
    t.start(LANE.add(only_503(), Script::Status("RETRY".into())))
        .await?;
    let id = LANE.publish(t).await?;
    settle(t, LANE, &id, Fate::DeadLettered(3)).await
}

async fn drop_and_404_not_retried(t: &mut Trial) -> Result<(), Problem> {
    // No dead-letter topic here: the count alone must show that nothing was retried.
    let (drop, gone) = (("drop", "/drop"), ("gone", "/gone"));
    t.start(
        Scenario::new()
            .subscribe(drop.0, drop.1)
            .subscribe(gone.0, gone.1)
            .script(drop.1, Script::Status("DROP".into()))
            .script(gone.1, Script::Http(404))
            .retry_constant("20ms", 4),
    )
    .await?;
    let a = t.publish(drop.0, serde_json::json!({})).await?;
    let b = t.publish(gone.0, serde_json::json!({})).await?;
    t.wait_msg(drop.1, &a, 1).await?;
    t.wait_msg(gone.1, &b, 1).await?;
    t.quiet(drop.1).await;
    let h = t.history();
    verdict(
        redelivery::attempts(&h, &MessageId::new(&a), drop.1, 1)
            .verdict()
            .and(redelivery::attempts(&h, &MessageId::new(&b), gone.1, 1).verdict()),
    )
}

/// A Resiliency resource with an inbound timeout and a constant retry policy on `pubsub`.
fn timeout_resiliency(timeout: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: tck-timeout\nspec:\n  policies:\n    timeouts:\n      tckTimeout: {timeout}\n    retries:\n      tckRetry:\n        policy: constant\n        duration: 50ms\n        maxRetries: 3\n  targets:\n    components:\n      {PUBSUB}:\n        inbound:\n          timeout: tckTimeout\n          retry: tckRetry\n"
    )
}

async fn per_attempt_timeout(t: &mut Trial) -> Result<(), Problem> {
    let slow = Duration::from_secs(3);
    let script = Script::Sequence(vec![
        Script::Delay(slow, Box::new(Script::Success)),
        Script::Success,
    ]);
    let id = start(
        t,
        script,
        Scenario::new().resource(timeout_resiliency("300ms")),
    )
    .await?;
    let ds = t.wait_msg(&LANE.route(), &id, 2).await?;
    let gap = ds[1].request.at.saturating_duration_since(ds[0].request.at);
    ensure(
        gap >= Duration::from_millis(250) && gap < slow,
        format!(
            "the second attempt came {gap:?} after the first; expected after the 300ms timeout and before the 3s answer"
        ),
        delivery_lines(&ds),
    )?;
    // The second attempt succeeded: nothing more, and no dead letter.
    settle(t, LANE, &id, Fate::Delivered(2)).await
}

async fn no_default_timeout(t: &mut Trial) -> Result<(), Problem> {
    let slow = Duration::from_millis(1500);
    let id = start(
        t,
        Script::Delay(slow, Box::new(Script::Success)),
        Scenario::new().retry_constant("20ms", 2),
    )
    .await?;
    t.wait_msg(&LANE.route(), &id, 1).await?;
    // Observation window past the slow answer: a sidecar with a default timeout shorter than
    // the answer retries or dead-letters within it.
    t.app()
        .observe_quiet(None, slow + Duration::from_secs(1))
        .await;
    let h = t.history();
    verdict(
        redelivery::attempts(&h, &MessageId::new(&id), &LANE.route(), 1)
            .verdict()
            .and(dlq::none(&h, &LANE.dlq_route()).verdict()),
    )
}

const DEFAULT_RETRY: &str = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: tck-defaults\nspec:\n  policies:\n    retries:\n      DefaultRetryPolicy:\n        policy: constant\n        duration: 20ms\n        maxRetries: 2\n";

async fn default_retry_policy(t: &mut Trial) -> Result<(), Problem> {
    let id = start(
        t,
        Script::Http(500),
        Scenario::new().resource(DEFAULT_RETRY),
    )
    .await?;
    settle(t, LANE, &id, Fate::DeadLettered(3)).await
}

async fn target_without_inbound(t: &mut Trial) -> Result<(), Problem> {
    let doc = format!(
        "{DEFAULT_RETRY}  targets:\n    components:\n      {PUBSUB}:\n        outbound:\n          retry: DefaultRetryPolicy\n"
    );
    let id = start(t, Script::Http(500), Scenario::new().resource(doc)).await?;
    settle(t, LANE, &id, Fate::DeadLettered(1)).await
}

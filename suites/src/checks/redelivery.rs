//! Redelivery after a failed attempt (spec §4.1 step 8, §5.2): a retried message is the same
//! message, retries stop at the first success, the budget is per message, and a delivery that
//! fails because the app is away is retried until it listens again.

use std::collections::BTreeSet;

use harness::Script;
use harness_checkers::redelivery;
use harness_history::MessageId;

use super::status::{Fate, Lane, settle};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, ensure_eq, verdict};
use harness_engine::trial::{Scenario, Trial, delivery_lines};

const RESILIENCY_DOC: Option<&str> =
    Some("https://docs.dapr.io/operations/resiliency/policies/#retries");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::redelivery::retry_then_success",
            Must,
            "RETRY k times then SUCCESS gives exactly k+1 deliveries and no dead letter",
            "daprd pkg/resiliency/policy.go: the retry loop stops at the first success",
            RESILIENCY_DOC,
            [Need::Launch],
            retry_then_success
        ),
        check!(
            "core::redelivery::error_then_success",
            Must,
            "HTTP 500 k times then SUCCESS gives exactly k+1 deliveries and no dead letter",
            "daprd pkg/resiliency/policy.go: the retry loop stops at the first success",
            RESILIENCY_DOC,
            [Need::Launch],
            error_then_success
        ),
        check!(
            "core::redelivery::same_event",
            Must,
            "Every retry carries the same CloudEvent id, the same body bytes and the same Content-Type",
            "daprd pkg/runtime/subscription/subscription.go: the retry runner re-sends the same request",
            RESILIENCY_DOC,
            [Need::Launch],
            same_event
        ),
        check!(
            "core::redelivery::budget_per_message",
            Must,
            "The retry budget is per message: each of several failing messages gets its own retries",
            "daprd pkg/runtime/subscription/subscription.go: one resiliency runner per delivered message",
            RESILIENCY_DOC,
            [Need::Launch],
            budget_per_message
        ),
        check!(
            "core::redelivery::no_policy_single_attempt",
            Must,
            "Without a Resiliency policy a failed delivery is not retried: it goes straight to the dead-letter topic",
            "Dapr docs, dead-letter topics: with no retry policy the first failure is dead-lettered; daprd pkg/resiliency: no policy = one attempt",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-deadletter/"
            ),
            [Need::Launch],
            no_policy_single_attempt
        ),
        check!(
            "core::redelivery::app_restart_delivered",
            Must,
            "A message whose delivery fails because the app stopped listening is retried and arrives once the app listens again",
            "daprd postman/http: connection refused is a retriable error; daprd pkg/resiliency retries it",
            RESILIENCY_DOC,
            [Need::Launch],
            app_restart_delivered
        ),
        check!(
            "core::redelivery::hang_isolated",
            Should,
            "An app that never answers on one subscription does not block deliveries of another",
            "daprd pkg/runtime/processor/pubsub: each subscription consumes independently",
            None,
            [Need::Launch],
            hang_isolated
        ),
    ]
}

/// Lane `orders` answers `script` under a constant 20 ms policy with `retries` retries, and
/// one message is published to it. Answers the lane and the message's id.
async fn one_message(
    t: &mut Trial,
    script: Script,
    retries: i64,
) -> Result<(Lane, String), Problem> {
    let lane = Lane("orders");
    t.start(
        lane.add(Scenario::new(), script)
            .retry_constant("20ms", retries),
    )
    .await?;
    Ok((lane, lane.publish(t).await?))
}

async fn retry_then_success(t: &mut Trial) -> Result<(), Problem> {
    let (lane, id) = one_message(t, Script::RetryThenSuccess(3), 5).await?;
    settle(t, lane, &id, Fate::Delivered(4)).await
}

async fn error_then_success(t: &mut Trial) -> Result<(), Problem> {
    let script = Script::FailThenSuccess { code: 500, k: 2 };
    let (lane, id) = one_message(t, script, 5).await?;
    settle(t, lane, &id, Fate::Delivered(3)).await
}

async fn same_event(t: &mut Trial) -> Result<(), Problem> {
    let (lane, id) = one_message(t, Script::Status("RETRY".into()), 2).await?;
    settle(t, lane, &id, Fate::DeadLettered(3)).await?;
    let ds = t.deliveries_of(&lane.route(), &id);
    let ev = delivery_lines(&ds);
    let ids: BTreeSet<Option<&str>> = ds.iter().map(|d| d.ce_id.as_deref()).collect();
    ensure(
        ids.len() == 1 && !ids.contains(&None),
        format!("the retries of {id} carried CloudEvent ids {ids:?}, expected one id"),
        ev.clone(),
    )?;
    let bodies: BTreeSet<&[u8]> = ds.iter().map(|d| d.request.body.as_ref()).collect();
    ensure_eq(
        "distinct bodies across attempts",
        1,
        bodies.len(),
        ev.clone(),
    )?;
    let types: BTreeSet<Option<&str>> = ds.iter().map(|d| d.content_type()).collect();
    ensure_eq("distinct Content-Types across attempts", 1, types.len(), {
        let mut e = ev;
        e.push(format!("Content-Types: {types:?}"));
        e
    })
}

async fn budget_per_message(t: &mut Trial) -> Result<(), Problem> {
    let lane = Lane("orders");
    t.start(
        lane.add(Scenario::new(), Script::RetryThenSuccess(1))
            .retry_constant("20ms", 1),
    )
    .await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(lane.publish(t).await?);
    }
    for id in &ids {
        settle(t, lane, id, Fate::Delivered(2)).await?;
    }
    Ok(())
}

async fn no_policy_single_attempt(t: &mut Trial) -> Result<(), Problem> {
    let lane = Lane("orders");
    t.start(lane.add(Scenario::new(), Script::Status("RETRY".into())))
        .await?;
    let id = lane.publish(t).await?;
    settle(t, lane, &id, Fate::DeadLettered(1)).await
}

async fn app_restart_delivered(t: &mut Trial) -> Result<(), Problem> {
    // The in-memory broker keeps nothing for a subscription that does not exist yet, and a
    // sidecar subscribes only once the app port answers. So the app is stopped *after* the
    // subscription is live, which makes the sidecar's deliveries fail with connection refused.
    let route = "/orders";
    t.start(
        Scenario::new()
            .subscribe("orders", route)
            .retry_constant("100ms", 100),
    )
    .await?;
    let first = t.publish("orders", serde_json::json!({})).await?;
    t.wait_msg(route, &first, 1).await?;
    t.app().stop().await;
    let id = t.publish("orders", serde_json::json!({})).await?;
    // Observation window with the app down: every attempt the sidecar makes in it fails.
    let while_down = t.quiet(route).await;
    ensure(
        while_down.iter().all(|d| d.tck_id.as_deref() != Some(&id)),
        "a delivery was recorded while the app was stopped (harness fault)",
        delivery_lines(&while_down),
    )?;
    t.app().restart_on_same_port().await?;
    t.wait_msg(route, &id, 1).await?;
    t.quiet(route).await;
    let h = t.history();
    verdict(redelivery::attempts(&h, &MessageId::new(&id), route, 1).verdict())
}

async fn hang_isolated(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .subscribe("slow", "/slow")
            .subscribe("fast", "/fast")
            .script("/slow", Script::Hang),
    )
    .await?;
    // Both subscriptions deliver before the hang begins. On Kafka a consumer that is still
    // joining its group needs a rebalance, which waits for every member of the group, the hung
    // one included; once both deliver, the group is settled and stays so.
    let first = t.publish("fast", serde_json::json!({})).await?;
    t.wait_msg("/fast", &first, 1).await?;
    let stuck = t.publish("slow", serde_json::json!({})).await?;
    t.wait_msg("/slow", &stuck, 1).await?;
    let id = t.publish("fast", serde_json::json!({})).await?;
    t.wait_msg("/fast", &id, 1).await?;
    let fast = t.quiet("/fast").await;
    // Release the held request so the sidecar can shut down promptly.
    t.app().stop().await;
    let second = fast
        .iter()
        .filter(|d| d.tck_id.as_deref() == Some(id.as_str()));
    ensure(
        second.count() == 1,
        format!("{id} on /fast was delivered more than once while /slow hung"),
        delivery_lines(&fast),
    )
}

//! Ordering, concurrency and delivery accounting on the in-memory broker (spec notes §7): per
//! subscription FIFO with one in-flight delivery, and no loss or duplicates.

use harness::Script;
use harness_checkers::{delivery, ordering};
use serde_json::json;

use super::start_orders;
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::broker::Promise;
use harness_engine::problem::{Problem, ensure, verdict};
use harness_engine::trial::{Scenario, Trial};

const ORDER_DOC: Option<&str> =
    Some("https://docs.dapr.io/reference/components-reference/supported-pubsub/setup-inmemory/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::ordering::fifo_single_publisher",
            Must,
            "One publisher's messages on one topic arrive in publish order (in-memory broker)",
            "components-contrib pubsub/in-memory: per-subscription FIFO (daprd stream ordering test: 1000 in order)",
            ORDER_DOC,
            [Need::Launch, Need::Promise(Promise::Fifo)],
            fifo_single_publisher
        ),
        check!(
            "core::ordering::per_key_interleaved",
            Must,
            "Interleaved keys keep their per-key order",
            "spec notes §7: per-key FIFO on serial components",
            ORDER_DOC,
            [Need::Launch, Need::Promise(Promise::Fifo)],
            per_key_interleaved
        ),
        check!(
            "core::ordering::per_partition_key",
            Must,
            "Messages published with the same metadata.partitionKey arrive in publish order, interleaved keys included",
            "spec notes §7: partitionKey → record key → same partition, serial per partition (Kafka); per-key FIFO on serial components",
            Some(
                "https://docs.dapr.io/reference/components-reference/supported-pubsub/setup-apache-kafka/"
            ),
            [Need::Launch, Need::Promise(Promise::FifoPerPartitionKey)],
            per_partition_key
        ),
        check!(
            "core::ordering::one_in_flight",
            Should,
            "The in-memory broker has at most one delivery in flight per subscription",
            "components-contrib common/eventbus: per-subscriber serial handler",
            ORDER_DOC,
            [Need::Launch, Need::Promise(Promise::OneInFlight)],
            one_in_flight
        ),
        check!(
            "core::ordering::order_kept_under_retry",
            Should,
            "An inline retry does not let later messages overtake the retried one (in-memory)",
            "spec notes §5.2: the retry loop runs in-line and blocks the component handler",
            ORDER_DOC,
            [Need::Launch, Need::Promise(Promise::Fifo)],
            order_kept_under_retry
        ),
        check!(
            "core::ordering::keyed_order_report",
            Must,
            "4 keys × 25 messages with partition keys, a slow app: all delivered; per-key order asserted where promised, measured elsewhere",
            "spec notes §7: order per partition key (Kafka), per subscription (in-memory), none with concurrency > 1 (Redis)",
            ORDER_DOC,
            [Need::Launch],
            keyed_order_report
        ),
        check!(
            "core::ordering::keyed_order_under_retry",
            Must,
            "Keyed messages while the app answers RETRY for every 5th: all delivered, retried ones again; order asserted where promised, measured elsewhere",
            "spec notes §5.2, §7: retries run in-line on serial components; concurrent components let later messages overtake",
            ORDER_DOC,
            [Need::Launch],
            keyed_order_under_retry
        ),
        check!(
            "core::ordering::keyed_order_under_retry_concurrency_one",
            Must,
            "With concurrency 1, keyed messages keep per-key order while the app answers RETRY for every 5th",
            "spec notes §7, §8.2: concurrency 1 makes a subscription serial, retries included",
            Some(
                "https://docs.dapr.io/reference/components-reference/supported-pubsub/setup-redis-pubsub/"
            ),
            [Need::Launch, Need::Promise(Promise::FifoWithConcurrencyOne)],
            keyed_order_under_retry_concurrency_one
        ),
        check!(
            "core::delivery::no_loss_no_duplicates",
            Must,
            "200 acknowledged publishes are each delivered exactly once to a healthy app",
            "Dapr pub/sub at-least-once guarantee; duplicates counted (contrib conformance lacks this)",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-overview/"
            ),
            [Need::Launch],
            no_loss_no_duplicates
        ),
        check!(
            "core::delivery::two_topics_independent",
            Must,
            "Two subscribed topics are delivered independently, each to its own route",
            "daprd: one effective subscription per (pubsub, topic)",
            ORDER_DOC,
            [Need::Launch],
            two_topics_independent
        ),
    ]
}

async fn publish_keyed(
    t: &mut Trial,
    topic: &str,
    keys: usize,
    per_key: u64,
) -> Result<Vec<String>, Problem> {
    let mut ids = Vec::new();
    for seq in 0..per_key {
        for k in 0..keys {
            ids.push(
                t.publish(topic, json!({"tck_key": format!("k{k}"), "tck_seq": seq}))
                    .await?,
            );
        }
    }
    Ok(ids)
}

async fn fifo_single_publisher(t: &mut Trial) -> Result<(), Problem> {
    in_order_per_key(t, 1, 100).await
}

async fn per_key_interleaved(t: &mut Trial) -> Result<(), Problem> {
    in_order_per_key(t, 4, 25).await
}

/// `per_key` messages on each of `keys` keys, interleaved, arrive in order per key.
async fn in_order_per_key(t: &mut Trial, keys: usize, per_key: u64) -> Result<(), Problem> {
    start_orders(t).await?;
    let ids = publish_keyed(t, "orders", keys, per_key).await?;
    t.wait("/orders", ids.len()).await?;
    verdict(ordering::per_key(&t.history(), "/orders").verdict())
}

async fn per_partition_key(t: &mut Trial) -> Result<(), Problem> {
    // On Kafka the topic gets the broker's default of four partitions, so that keys really
    // spread over partitions.
    start_orders(t).await?;
    let mut n = 0;
    for seq in 0..15u64 {
        for k in 0..4 {
            let key = format!("k{k}");
            t.publish_query(
                "orders",
                json!({"tck_key": key, "tck_seq": seq}),
                &[("metadata.partitionKey", &key)],
            )
            .await?;
            n += 1;
        }
    }
    t.wait("/orders", n).await?;
    verdict(ordering::per_key(&t.history(), "/orders").verdict())
}

async fn one_in_flight(t: &mut Trial) -> Result<(), Problem> {
    let slow = Script::Delay(
        std::time::Duration::from_millis(20),
        Box::new(Script::Success),
    );
    t.start(super::orders(slow)).await?;
    let ids = publish_keyed(t, "orders", 1, 20).await?;
    t.wait("/orders", ids.len()).await?;
    verdict(ordering::concurrency_limit(&t.history(), "/orders", 1))
}

async fn order_kept_under_retry(t: &mut Trial) -> Result<(), Problem> {
    // The 4th message (tck_id m-4) is answered RETRY once; a retry policy redelivers it.
    let script = Script::for_messages([("m-4", Script::RetryThenSuccess(1))]);
    t.start(super::orders(script).retry_constant("50ms", 3))
        .await?;
    let ids = publish_keyed(t, "orders", 1, 10).await?;
    ensure(
        ids.get(3).map(String::as_str) == Some("m-4"),
        "harness: unexpected message ids",
        ids.clone(),
    )?;
    t.wait("/orders", ids.len() + 1).await?;
    verdict(ordering::per_key(&t.history(), "/orders").verdict())
}

/// Keys and messages per key of the keyed-order checks.
const KEYS: usize = 4;
const PER_KEY: u64 = 25;

/// How a keyed-order check sets the app and the component up.
struct Keyed {
    /// Every `retry_every`-th message (1-based, in publish order) is answered RETRY once.
    retry_every: Option<usize>,
    /// Component `concurrency`, or the broker's default.
    concurrency: Option<&'static str>,
    /// Whether order is asserted (the broker promises it for this set-up) or only measured.
    order_promised: bool,
}

/// Publishes `KEYS × PER_KEY` messages with `metadata.partitionKey`, round-robin over keys, to
/// an app that takes a few milliseconds per message. Asserts that every acknowledged publish
/// is delivered (retried ones at least twice); then asserts per-key order when it is promised,
/// and otherwise records how it held or broke.
async fn keyed_order(t: &mut Trial, k: Keyed) -> Result<(), Problem> {
    let total = KEYS * PER_KEY as usize;
    // Message ids are assigned in publish order (m-1, m-2, …), so the retried ones are known
    // before the app starts; the check asserts that below.
    let retried: Vec<String> = match k.retry_every {
        Some(n) => (1..=total)
            .filter(|i| i % n == 0)
            .map(|i| format!("m-{i}"))
            .collect(),
        None => Vec::new(),
    };
    let slow = |s: Script| Script::Delay(std::time::Duration::from_millis(3), Box::new(s));
    let script = Script::PerMessage {
        by_tck_id: retried
            .iter()
            .map(|id| (id.clone(), slow(Script::RetryThenSuccess(1))))
            .collect(),
        default: Box::new(slow(Script::Success)),
    };
    let mut scenario = super::orders(script);
    if !retried.is_empty() {
        scenario = scenario.retry_constant("20ms", 3);
    }
    if let Some(c) = k.concurrency {
        scenario = scenario.component_metadata("concurrency", c);
    }
    t.start(scenario).await?;
    let mut ids = Vec::with_capacity(total);
    for seq in 0..PER_KEY {
        for key in 0..KEYS {
            let key = format!("k{key}");
            ids.push(
                t.publish_query(
                    "orders",
                    json!({"tck_key": key, "tck_seq": seq}),
                    &[("metadata.partitionKey", &key)],
                )
                .await?,
            );
        }
    }
    let expected_ids: Vec<String> = (1..=total).map(|i| format!("m-{i}")).collect();
    ensure(
        ids == expected_ids,
        "harness: unexpected message ids",
        ids.clone(),
    )?;
    t.wait("/orders", total + retried.len()).await?;
    for id in &retried {
        t.wait_msg("/orders", id, 2).await?;
    }
    let _ = t.quiet("/orders").await;
    let history = t.history();
    let report = delivery::check(
        &history,
        &delivery::DeliveryExpect {
            routes: vec!["/orders".into()],
        },
    );
    verdict(report.verdict())?;
    let first = ordering::per_key(&history, "/orders");
    let done = ordering::per_key_completed(&history, "/orders");
    t.observe(first.describe());
    t.observe(done.describe());
    if k.order_promised {
        verdict(first.verdict())?;
        verdict(done.verdict())
    } else {
        Ok(())
    }
}

async fn keyed_order_report(t: &mut Trial) -> Result<(), Problem> {
    let order_promised = t.env().keeps(Promise::FifoPerPartitionKey);
    keyed_order(
        t,
        Keyed {
            retry_every: None,
            concurrency: None,
            order_promised,
        },
    )
    .await
}

async fn keyed_order_under_retry(t: &mut Trial) -> Result<(), Problem> {
    let order_promised = t.env().keeps(Promise::FifoPerPartitionKey);
    keyed_order(
        t,
        Keyed {
            retry_every: Some(5),
            concurrency: None,
            order_promised,
        },
    )
    .await
}

async fn keyed_order_under_retry_concurrency_one(t: &mut Trial) -> Result<(), Problem> {
    keyed_order(
        t,
        Keyed {
            retry_every: Some(5),
            concurrency: Some("1"),
            order_promised: true,
        },
    )
    .await
}

async fn no_loss_no_duplicates(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let mut ids = Vec::new();
    for i in 0..200u64 {
        ids.push(t.publish("orders", json!({"n": i})).await?);
    }
    t.wait("/orders", ids.len()).await?;
    let _ = t.quiet("/orders").await;
    let report = delivery::check(
        &t.history(),
        &delivery::DeliveryExpect {
            routes: vec!["/orders".into()],
        },
    );
    verdict(report.verdict())?;
    verdict(report.exactly_once_verdict())
}

async fn two_topics_independent(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscribe("a", "/a").subscribe("b", "/b"))
        .await?;
    let a = t.publish("a", json!({})).await?;
    let b = t.publish("b", json!({})).await?;
    t.wait_msg("/a", &a, 1).await?;
    t.wait_msg("/b", &b, 1).await?;
    let crossed = !t.deliveries_of("/a", &b).is_empty() || !t.deliveries_of("/b", &a).is_empty();
    ensure(
        !crossed,
        "a message reached the other topic's route",
        t.evidence(),
    )
}

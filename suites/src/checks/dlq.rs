//! Dead-letter topics (spec §6): when a message is dead-lettered, what the copy looks like, and
//! that dead-lettering ends the original's delivery.
//!
//! The dead-letter topic is observed through a second subscription on the same app. Where the
//! original bytes cannot be delivered as a CloudEvent (undecodable or expired messages), that
//! subscription is a raw-payload one, so the copy arrives whatever it contains.

use base64::Engine;
use bytes::Bytes;
use harness::Script;
use harness_checkers::{dlq, redelivery};
use harness_history::MessageId;
use serde_json::{Value, json};

use super::status::{Fate, Lane, RETRIES, settle};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::broker::Promise;
use harness_engine::problem::{Problem, ensure, ensure_eq, verdict};
use harness_engine::trial::{PUBSUB, Scenario, Trial, delivery_lines};

const DLQ_DOC: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-deadletter/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::dlq::exhausted_exactly_once",
            Must,
            "Each message whose retries are exhausted is dead-lettered exactly once",
            "daprd pkg/runtime/subscription/subscription.go: DLQ-or-nack after the inbound policy is exhausted",
            DLQ_DOC,
            [Need::Launch],
            exhausted_exactly_once
        ),
        check!(
            "core::dlq::copy_is_original_event",
            Must,
            "The dead-letter copy is the original CloudEvent: original topic, id, pubsubname and data",
            "daprd pkg/runtime/subscription/subscription.go sendToDeadLetter: original bytes; daprd test subscriptions/programmatic/http/v1alpha1/deadletter.go",
            DLQ_DOC,
            [Need::Launch],
            copy_is_original_event
        ),
        check!(
            "core::dlq::copy_byte_identical",
            Should,
            "The dead-letter copy's body is byte-for-byte the body of the original delivery",
            "daprd pkg/runtime/subscription/subscription.go sendToDeadLetter: data = the original broker bytes",
            DLQ_DOC,
            [Need::Launch],
            copy_byte_identical
        ),
        check!(
            "core::dlq::original_not_redelivered",
            Must,
            "After a message is dead-lettered the original is not delivered again",
            "dapr/dapr PR #4783: a dead-lettered message must be acknowledged on its original topic",
            Some("https://github.com/dapr/dapr/pull/4783"),
            [Need::Launch],
            original_not_redelivered
        ),
        check!(
            "core::dlq::no_dlq_single_delivery",
            Should,
            "Without a dead-letter topic or retry policy, a RETRY message is delivered once on the in-memory broker",
            "components-contrib pubsub/in-memory: a handler error is logged and the message discarded (broker-specific)",
            DLQ_DOC,
            [Need::Launch, Need::Promise(Promise::NackEndsDelivery)],
            no_dlq_single_delivery
        ),
        check!(
            "core::dlq::undecodable_dead_lettered",
            Should,
            "Bytes that are not a CloudEvent, sent to a non-raw subscription, are dead-lettered and never reach the route",
            "daprd pkg/runtime/subscription/subscription.go: a CloudEvent decode error takes the DLQ-or-nack path",
            DLQ_DOC,
            [Need::Launch],
            undecodable_dead_lettered
        ),
        check!(
            "core::dlq::dlq_retry_no_loop",
            Should,
            "A dead-letter subscriber that answers RETRY does not bring the original back to its route",
            "daprd pkg/runtime/subscription/subscription.go: the dead-letter topic is an ordinary topic with its own subscription",
            DLQ_DOC,
            [Need::Launch, Need::Promise(Promise::NackEndsDelivery)],
            dlq_retry_no_loop
        ),
        check!(
            "core::dlq::no_route_match_dead_lettered",
            Should,
            "An event no routing rule matches is not delivered and is dead-lettered (quirk)",
            "dapr/dapr#8297: events without a matching route are sent to the dead-letter topic",
            Some("https://github.com/dapr/dapr/issues/8297"),
            [Need::Launch],
            no_route_match_dead_lettered
        ),
        check!(
            "core::dlq::publishing_scopes_apply",
            Should,
            "No dead-letter copy is written when the subscriber's publishingScopes deny the dead-letter topic",
            "daprd pkg/runtime/pubsub/adapter.go: the dead-letter publish goes through the publish scope check",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-scopes/"
            ),
            [Need::Launch],
            publishing_scopes_apply
        ),
        check!(
            "core::dlq::expired_never_delivered",
            Must,
            "A message whose ttlInSeconds passes while it waits behind another is never delivered; the message after it is",
            "Dapr message TTL: an expired message is not delivered (daprd pkg/runtime/subscription/subscription.go checks the envelope's expiration before delivery); dead-lettering it is core::dlq::expired_dead_lettered",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-message-ttl/"
            ),
            [Need::Launch],
            expired_never_delivered
        ),
        check!(
            "core::dlq::expired_dead_lettered",
            Should,
            "A message that expires (ttlInSeconds) before delivery is not delivered and is dead-lettered",
            "daprd pkg/runtime/subscription/subscription.go: expired events are dropped and sent to the dead-letter topic best-effort",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-message-ttl/"
            ),
            // Holding the app on one message delays the next only where deliveries are serial.
            [Need::Launch, Need::Promise(Promise::OneInFlight)],
            expired_dead_lettered
        ),
        check!(
            "core::dlq::ttl_zero_expires_at_once",
            Should,
            "A publish with ttlInSeconds=0 expires at once: it is dead-lettered, never delivered",
            "components-contrib metadata/utils.go TryGetTTL: \"0\" parses as a Go duration of zero, so pubsub/envelope.go ApplyMetadata sets expiration = now; dapr pkg/runtime/subscription/subscription.go drops expired events to the dead-letter topic",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-message-ttl/"
            ),
            [Need::Launch],
            ttl_zero_expires_at_once
        ),
    ]
}

const LANE: Lane = Lane("orders");

fn retrying() -> Scenario {
    LANE.add(Scenario::new(), Script::Status("RETRY".into()))
        .retry_constant("20ms", RETRIES.into())
}

async fn exhausted_exactly_once(t: &mut Trial) -> Result<(), Problem> {
    t.start(retrying()).await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(LANE.publish(t).await?);
    }
    for id in &ids {
        t.wait_msg(&LANE.dlq_route(), id, 1).await?;
    }
    t.quiet(&LANE.dlq_route()).await;
    let h = t.history();
    let msgs: Vec<MessageId> = ids.iter().map(MessageId::new).collect();
    let mut v = dlq::exactly_once(&h, &LANE.dlq_route(), &msgs).verdict();
    for m in &msgs {
        v = v.and(redelivery::attempts(&h, m, &LANE.route(), 1 + RETRIES).verdict());
    }
    verdict(v)
}

/// Dead-letters one message; returns (the first original delivery, the copy).
async fn one_copy(
    t: &mut Trial,
) -> Result<(harness::RecordedDelivery, harness::RecordedDelivery), Problem> {
    t.start(retrying()).await?;
    let id = LANE.publish(t).await?;
    settle(t, LANE, &id, Fate::DeadLettered(1 + RETRIES)).await?;
    let original = first(t.deliveries_of(&LANE.route(), &id), &id)?;
    let copy = first(t.deliveries_of(&LANE.dlq_route(), &id), &id)?;
    Ok((original, copy))
}

/// The first of `ds`, which a preceding wait guaranteed to exist.
fn first(
    ds: Vec<harness::RecordedDelivery>,
    id: &str,
) -> Result<harness::RecordedDelivery, Problem> {
    ds.into_iter()
        .next()
        .ok_or_else(|| Problem::Setup(format!("the recorded delivery of {id} vanished")))
}

async fn copy_is_original_event(t: &mut Trial) -> Result<(), Problem> {
    let (original, copy) = one_copy(t).await?;
    let ev = delivery_lines(&[original.clone(), copy.clone()]);
    let (o, c) = match (&original.body_json, &copy.body_json) {
        (Some(o), Some(c)) => (o, c),
        _ => {
            return Err(Problem::fail(
                "the original or the dead-letter copy is not JSON",
                ev,
            ));
        }
    };
    ensure_eq(
        "dead-letter copy topic",
        json!(LANE.topic()),
        c["topic"].clone(),
        ev.clone(),
    )?;
    for field in ["id", "pubsubname", "data", "source", "type"] {
        ensure_eq(
            &format!("dead-letter copy {field}"),
            o[field].clone(),
            c[field].clone(),
            ev.clone(),
        )?;
    }
    ensure(
        c["pubsubname"] == json!(PUBSUB),
        format!("the copy's pubsubname is {}", c["pubsubname"]),
        ev,
    )
}

async fn copy_byte_identical(t: &mut Trial) -> Result<(), Problem> {
    let (original, copy) = one_copy(t).await?;
    ensure(
        original.request.body == copy.request.body,
        "the dead-letter copy's body differs from the original delivery's body",
        [
            format!(
                "original: {}",
                String::from_utf8_lossy(&original.request.body)
            ),
            format!("copy:     {}", String::from_utf8_lossy(&copy.request.body)),
        ],
    )
}

async fn original_not_redelivered(t: &mut Trial) -> Result<(), Problem> {
    // No retry policy: the first failure dead-letters, and the original must be acknowledged.
    t.start(LANE.add(Scenario::new(), Script::Http(500)))
        .await?;
    let id = LANE.publish(t).await?;
    settle(t, LANE, &id, Fate::DeadLettered(1)).await?;
    // A second observation window, for brokers that redeliver unacknowledged messages late.
    t.quiet(&LANE.route()).await;
    let h = t.history();
    verdict(redelivery::attempts(&h, &MessageId::new(&id), &LANE.route(), 1).verdict())
}

async fn no_dlq_single_delivery(t: &mut Trial) -> Result<(), Problem> {
    t.start(super::orders(Script::Status("RETRY".into())))
        .await?;
    let id = t.publish("orders", json!({})).await?;
    t.wait_msg("/orders", &id, 1).await?;
    t.quiet("/orders").await;
    let h = t.history();
    verdict(redelivery::attempts(&h, &MessageId::new(&id), "/orders", 1).verdict())
}

/// `topic` → `route` (non-raw) with dead-letter topic `dlq`, and a raw-payload subscription of
/// `dlq` → `dlq_route`, so the copy arrives whatever its bytes are.
fn raw_dead_letter(s: Scenario, lane: Lane) -> Scenario {
    s.subscription(json!({
        "pubsubname": PUBSUB, "topic": lane.topic(), "route": lane.route(),
        "deadLetterTopic": lane.dlq_topic()
    }))
    .subscription(json!({
        "pubsubname": PUBSUB, "topic": lane.dlq_topic(), "route": lane.dlq_route(),
        "metadata": {"rawPayload": "true"}
    }))
}

fn data_base64(d: &harness::RecordedDelivery) -> Option<Vec<u8>> {
    let b64 = d.body_json.as_ref()?.get("data_base64")?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

async fn undecodable_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    t.start(raw_dead_letter(Scenario::new(), LANE)).await?;
    let bytes: &[u8] = b"\x01 not a cloud event {";
    let r = t
        .publish_raw(
            &LANE.topic(),
            Bytes::from_static(bytes),
            Some("application/octet-stream"),
            &[("metadata.rawPayload", "true")],
        )
        .await?;
    ensure_eq("publish status", 204, r.status, [])?;
    let copies = t.wait(&LANE.dlq_route(), 1).await?;
    t.nothing_on(
        &LANE.route(),
        "undecodable bytes were delivered to a non-raw route",
    )
    .await?;
    ensure_eq(
        "dead-letter copies",
        1,
        t.quiet(&LANE.dlq_route()).await.len(),
        t.evidence(),
    )?;
    ensure_eq(
        "dead-letter copy bytes (data_base64 decoded)",
        Some(bytes.to_vec()),
        data_base64(&copies[0]),
        t.evidence(),
    )
}

async fn dlq_retry_no_loop(t: &mut Trial) -> Result<(), Problem> {
    t.start(retrying().script(&LANE.dlq_route(), Script::Status("RETRY".into())))
        .await?;
    let id = LANE.publish(t).await?;
    t.wait_msg(&LANE.dlq_route(), &id, 1).await?;
    t.quiet(&LANE.dlq_route()).await;
    t.quiet(&LANE.route()).await;
    let h = t.history();
    let copies = redelivery::attempts(&h, &MessageId::new(&id), &LANE.dlq_route(), 0).seen;
    ensure(
        (1..=1 + RETRIES).contains(&copies),
        format!(
            "the dead-letter route saw {copies} deliveries of {id}, expected 1..={}",
            1 + RETRIES
        ),
        t.evidence(),
    )?;
    verdict(redelivery::attempts(&h, &MessageId::new(&id), &LANE.route(), 1 + RETRIES).verdict())
}

async fn no_route_match_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .subscription(json!({
                "pubsubname": PUBSUB, "topic": LANE.topic(),
                "routes": {"rules": [{"match": "event.type == \"tck.never\"", "path": "/never"}]},
                "deadLetterTopic": LANE.dlq_topic()
            }))
            .subscribe(&LANE.dlq_topic(), &LANE.dlq_route()),
    )
    .await?;
    let id = LANE.publish(t).await?;
    t.wait_msg(&LANE.dlq_route(), &id, 1).await?;
    t.quiet(&LANE.dlq_route()).await;
    let never = t.app().deliveries_on("/never");
    ensure(
        never.is_empty(),
        "an event that matches no rule was delivered to the rule's path",
        t.evidence(),
    )?;
    let h = t.history();
    verdict(dlq::exactly_once(&h, &LANE.dlq_route(), &[MessageId::new(&id)]).verdict())
}

async fn publishing_scopes_apply(t: &mut Trial) -> Result<(), Problem> {
    let app = "tck-dlq-scoped";
    t.start(
        LANE.add(Scenario::new(), Script::Http(500))
            .app_id(app)
            .component_metadata("publishingScopes", &format!("{app}={}", LANE.topic())),
    )
    .await?;
    let id = LANE.publish(t).await?;
    t.wait_msg(&LANE.route(), &id, 1).await?;
    t.quiet(&LANE.dlq_route()).await;
    let h = t.history();
    verdict(dlq::none(&h, &LANE.dlq_route()).verdict())
}

async fn ttl_zero_expires_at_once(t: &mut Trial) -> Result<(), Problem> {
    t.start(raw_dead_letter(Scenario::new(), LANE)).await?;
    let id = t
        .publish_query(&LANE.topic(), json!({}), &[("metadata.ttlInSeconds", "0")])
        .await?;
    t.wait_msg(&LANE.dlq_route(), &id, 1).await?;
    t.quiet(&LANE.route()).await;
    ensure(
        t.deliveries_of(&LANE.route(), &id).is_empty(),
        format!("{id} was delivered although its TTL of zero had passed"),
        t.evidence(),
    )
}

/// An app script that answers the message `tck-hold` after `hold` and every other at once.
fn holding(hold: std::time::Duration) -> Script {
    Script::for_messages([("tck-hold", Script::Delay(hold, Box::new(Script::Success)))])
}

async fn expired_never_delivered(t: &mut Trial) -> Result<(), Problem> {
    // Three messages with one partition key on a subscription of concurrency 1, so delivery is
    // serial on every broker the kit runs (in-memory: FIFO; Redis: one worker; Kafka: one
    // partition): a holder the app keeps for 4 s, then a message with a TTL of 1 s (expired,
    // with its whole-second rounding, by the time the holder is answered), then a follower.
    // The follower's delivery proves the sidecar has passed the expired message.
    let hold = std::time::Duration::from_secs(4);
    let script = holding(hold);
    t.start(
        Scenario::new()
            .subscribe(&LANE.topic(), &LANE.route())
            .script(&LANE.route(), script)
            .component_metadata("concurrency", "1"),
    )
    .await?;
    let key = [("metadata.partitionKey", "ttl-lane")];
    let r = t
        .publish_raw(
            &LANE.topic(),
            Bytes::from_static(br#"{"tck_id":"tck-hold"}"#),
            Some("application/json"),
            &key,
        )
        .await?;
    ensure_eq("status of the holding publish", 204, r.status, [])?;
    t.wait_msg(&LANE.route(), "tck-hold", 1).await?;
    let expiring = t
        .publish_query(
            &LANE.topic(),
            json!({}),
            &[key[0], ("metadata.ttlInSeconds", "1")],
        )
        .await?;
    let follower = t.publish_query(&LANE.topic(), json!({}), &key).await?;
    t.wait_msg(&LANE.route(), &follower, 1).await?;
    let delivered = t.deliveries_of(&LANE.route(), &expiring);
    ensure(
        delivered.is_empty(),
        format!(
            "{expiring} was delivered although its 1 s TTL had passed while it waited behind a 4 s delivery"
        ),
        t.evidence(),
    )
}

async fn expired_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    // The first message holds the subscription (one delivery in flight at a time on the
    // in-memory broker) for longer than the second message's TTL plus its 1 s rounding.
    let hold = std::time::Duration::from_millis(2500);
    let script = holding(hold);
    t.start(raw_dead_letter(Scenario::new(), LANE).script(&LANE.route(), script))
        .await?;
    let r = t
        .publish_raw(
            &LANE.topic(),
            Bytes::from_static(br#"{"tck_id":"tck-hold"}"#),
            Some("application/json"),
            &[],
        )
        .await?;
    ensure_eq("status of the holding publish", 204, r.status, [])?;
    t.wait_msg(&LANE.route(), "tck-hold", 1).await?;
    let id = t
        .publish_query(&LANE.topic(), json!({}), &[("metadata.ttlInSeconds", "1")])
        .await?;
    t.wait_msg(&LANE.dlq_route(), &id, 1).await?;
    t.quiet(&LANE.route()).await;
    let delivered = t.deliveries_of(&LANE.route(), &id);
    ensure(
        delivered.is_empty(),
        format!("{id} was delivered after it expired"),
        t.evidence(),
    )?;
    let copy = first(t.deliveries_of(&LANE.dlq_route(), &id), &id)?;
    let expiration = data_base64(&copy)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|ce| ce["expiration"].clone());
    ensure(
        expiration.as_ref().is_some_and(Value::is_string),
        "the dead-letter copy of the expired message has no expiration attribute",
        delivery_lines(&[copy]),
    )
}

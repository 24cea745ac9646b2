//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`, spec notes §3.7): the harness is the
//! streaming client, as the Go SDK's `client.Subscribe` is. Each check needs the capability
//! `streaming`.
//!
//! A stream's deliveries are recorded on the route `stream:<topic>`; its answers are the test
//! app's scripts in their gRPC form (SUCCESS, RETRY, DROP).

use std::time::{Duration, Instant};

use harness::Script;
use harness_checkers::{dlq, redelivery};
use harness_history::MessageId;
use serde_json::json;

use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::broker::Broker;
use harness_engine::problem::{Problem, ensure, ensure_eq, verdict};
use harness_engine::trial::{DEADLINE, PUBSUB, QUIET, Scenario, Trial};

const STREAMING: Need = Need::Capability("streaming");
const DOC: Option<&str> = Some(
    "https://docs.dapr.io/developing-applications/building-blocks/pubsub/subscription-methods/#streaming-subscriptions",
);

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::streaming::delivered_once",
            Must,
            "Events published to a topic reach its streaming subscription once each, and an acknowledged event is not sent again",
            "daprd pkg/runtime/pubsub/streamer: each event goes out as event_message and waits for event_processed with its id; SUCCESS acknowledges",
            DOC,
            [Need::Launch, STREAMING],
            delivered_once
        ),
        check!(
            "core::streaming::retry_redelivered",
            Must,
            "A RETRY from a stream client is retried under the inbound policy on the same stream, and the message is not dead-lettered once it succeeds",
            "daprd postman/streaming: RETRY is a retriable error under the component's inbound resiliency",
            DOC,
            [Need::Launch, STREAMING],
            retry_redelivered
        ),
        check!(
            "core::streaming::drop_dead_lettered",
            Must,
            "A DROP from a stream client is not retried and goes to the stream's dead-letter topic once",
            "daprd postman/streaming: DROP is ErrMessageDropped; the initial request's dead_letter_topic receives it",
            DOC,
            [Need::Launch, STREAMING],
            drop_dead_lettered
        ),
        check!(
            "core::streaming::exhausted_dead_lettered",
            Must,
            "A message a stream client keeps answering RETRY is delivered 1 + maxRetries times, then dead-lettered once",
            "daprd pkg/runtime/subscription: after the inbound policy is spent the message goes to the dead-letter topic",
            DOC,
            [Need::Launch, STREAMING],
            exhausted_dead_lettered
        ),
        check!(
            "core::streaming::initial_request_validated",
            Must,
            "A stream whose initial request has no topic, or names an unknown pubsub, is refused with an error",
            "daprd pkg/api/grpc/subscribe.go: topic is required; the pubsub must exist (INVALID_ARGUMENT, as for publish)",
            DOC,
            [Need::Launch, STREAMING],
            initial_request_validated
        ),
        check!(
            "core::streaming::listed_while_open",
            Should,
            "The metadata API lists an open streaming subscription with type STREAMING, and no longer once the stream is closed",
            "daprd pkg/api/grpc/subscribe.go: the stream's subscription is added to the component store and deleted when the stream ends",
            DOC,
            [Need::Launch, STREAMING],
            listed_while_open
        ),
        check!(
            "core::streaming::closed_in_flight_not_dead_lettered",
            Must,
            "A message in flight when its stream closes is neither retried on that stream nor dead-lettered",
            "daprd pkg/runtime/subscription/subscription.go: a delivery failing because its subscription closed is handed back to the broker, not to the dead-letter topic",
            DOC,
            [Need::Launch, STREAMING],
            closed_in_flight_not_dead_lettered
        ),
        check!(
            "core::streaming::closed_in_flight_redelivered",
            Must,
            "On Redis, a message in flight when its stream closes reaches the next stream of the same consumer group",
            "daprd leaves the message unacknowledged; contrib's Redis component claims pending entries after processingTimeout",
            DOC,
            [Need::Launch, STREAMING, Need::OneOf(&[Broker::Redis])],
            closed_in_flight_redelivered
        ),
        check!(
            "core::streaming::two_streams_one_topic",
            Must,
            "Two streams on one topic: every message reaches a stream; on the in-memory broker each stream gets every message",
            "daprd starts one broker subscription per stream: the in-memory bus copies a message to every subscription, Redis and Kafka consumer groups share it out",
            DOC,
            [Need::Launch, STREAMING],
            two_streams_one_topic
        ),
    ]
}

/// A trial with no app subscriptions and a constant inbound policy of `retries` 20 ms apart.
async fn start(t: &mut Trial, retries: i64) -> Result<(), Problem> {
    t.start(Scenario::new().retry_constant("20ms", retries))
        .await
}

async fn delivered_once(t: &mut Trial) -> Result<(), Problem> {
    start(t, 2).await?;
    let s = t.open_stream("orders", None, Script::Success).await?;
    let ids = [
        t.publish("orders", json!({})).await?,
        t.publish("orders", json!({})).await?,
        t.publish("orders", json!({})).await?,
    ];
    for id in &ids {
        t.wait_stream_msg(s, id, 1).await?;
    }
    // Observation window: an acknowledged event must not come back.
    tokio::time::sleep(QUIET).await;
    let h = t.history();
    let route = t.stream(s).route().to_owned();
    let mut v = harness_checkers::Verdict::Valid;
    for id in &ids {
        v = v.and(redelivery::attempts(&h, &MessageId::new(id), &route, 1).verdict());
    }
    verdict(v)
}

async fn retry_redelivered(t: &mut Trial) -> Result<(), Problem> {
    start(t, 3).await?;
    let s = t
        .open_stream("orders", Some("orders-dlq"), Script::RetryThenSuccess(2))
        .await?;
    let d = t.open_stream("orders-dlq", None, Script::Success).await?;
    let id = t.publish("orders", json!({})).await?;
    t.wait_stream_msg(s, &id, 3).await?;
    delivered_not_dead_lettered(t, &id, s, d, 3).await
}

/// After an observation window: message `id` was delivered `deliveries` times on stream `s`
/// and never on the dead-letter stream `d`.
async fn delivered_not_dead_lettered(
    t: &Trial,
    id: &str,
    s: usize,
    d: usize,
    deliveries: u32,
) -> Result<(), Problem> {
    tokio::time::sleep(QUIET).await;
    let h = t.history();
    let route = t.stream(s).route().to_owned();
    let dlq_route = t.stream(d).route().to_owned();
    verdict(
        redelivery::attempts(&h, &MessageId::new(id), &route, deliveries)
            .verdict()
            .and(dlq::none(&h, &dlq_route).verdict()),
    )
}

async fn drop_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    start(t, 3).await?;
    dead_lettered_after(t, Script::Status("DROP".into()), 1).await
}

async fn exhausted_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    start(t, 2).await?;
    dead_lettered_after(t, Script::Status("RETRY".into()), 3).await
}

/// A stream on `orders` (dead-letter topic `orders-dlq`, read by a second stream) answers one
/// message with `script`: it must be delivered `deliveries` times, then dead-lettered once.
async fn dead_lettered_after(
    t: &mut Trial,
    script: Script,
    deliveries: u32,
) -> Result<(), Problem> {
    let s = t.open_stream("orders", Some("orders-dlq"), script).await?;
    let d = t.open_stream("orders-dlq", None, Script::Success).await?;
    let id = t.publish("orders", json!({})).await?;
    t.wait_stream_msg(d, &id, 1).await?;
    tokio::time::sleep(QUIET).await;
    let h = t.history();
    let msg = MessageId::new(&id);
    let (route, dlq_route) = (
        t.stream(s).route().to_owned(),
        t.stream(d).route().to_owned(),
    );
    verdict(
        redelivery::attempts(&h, &msg, &route, deliveries)
            .verdict()
            .and(dlq::exactly_once(&h, &dlq_route, std::slice::from_ref(&msg)).verdict()),
    )
}

async fn initial_request_validated(t: &mut Trial) -> Result<(), Problem> {
    start(t, 0).await?;
    let no_topic = harness::StreamRequest {
        pubsub: PUBSUB.into(),
        topic: String::new(),
        ..Default::default()
    };
    let refused = t.try_open_stream(no_topic, Script::Success).await;
    ensure(
        matches!(refused, Err(harness::StreamError::Refused(..))),
        "a stream without a topic was not refused",
        [format!("{refused:?}")],
    )?;
    let unknown = harness::StreamRequest {
        pubsub: "nope".into(),
        topic: "orders".into(),
        ..Default::default()
    };
    match t.try_open_stream(unknown, Script::Success).await {
        Err(harness::StreamError::Refused(code, msg)) => ensure_eq(
            "gRPC code for an unknown pubsub",
            tonic::Code::InvalidArgument,
            code,
            [msg],
        ),
        other => Err(Problem::fail(
            "a stream to an unknown pubsub was not refused",
            vec![format!("{other:?}")],
        )),
    }
}

/// Whether the metadata API lists a streaming subscription to `topic`.
async fn listed(t: &Trial, topic: &str) -> Result<bool, Problem> {
    let md = t
        .grpc_api()?
        .metadata()
        .await
        .map_err(|s| Problem::fail(format!("GetMetadata answered {:?}", s.code()), vec![]))?;
    let streaming = dapr::dapr::proto::runtime::v1::PubsubSubscriptionType::Streaming as i32;
    Ok(md
        .subscriptions
        .iter()
        .any(|s| s.topic == topic && s.r#type == streaming))
}

async fn listed_while_open(t: &mut Trial) -> Result<(), Problem> {
    start(t, 0).await?;
    let s = t.open_stream("orders", None, Script::Success).await?;
    ensure(
        listed(t, "orders").await?,
        "GetMetadata does not list the open stream as a STREAMING subscription",
        [],
    )?;
    t.close_stream(s);
    // The sidecar ends the subscription when it sees the stream end: wait for that, with a
    // deadline.
    let deadline = Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if !listed(t, "orders").await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Problem::fail(
                format!("the closed stream is still listed after {DEADLINE:?}"),
                vec![],
            ));
        }
    }
}

/// A stream that never answers holds one message in flight, then closes.
async fn close_with_message_in_flight(t: &mut Trial) -> Result<(String, usize), Problem> {
    let s = t
        .open_stream("orders", Some("orders-dlq"), Script::Hang)
        .await?;
    let d = t.open_stream("orders-dlq", None, Script::Success).await?;
    let id = t.publish("orders", json!({})).await?;
    t.wait_stream_msg(s, &id, 1).await?;
    t.close_stream(s);
    Ok((id, d))
}

async fn closed_in_flight_not_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    start(t, 3).await?;
    let (id, d) = close_with_message_in_flight(t).await?;
    // The observation window is longer than the 20 ms policy's whole budget.
    delivered_not_dead_lettered(t, &id, 0, d, 1).await
}

async fn closed_in_flight_redelivered(t: &mut Trial) -> Result<(), Problem> {
    start(t, 3).await?;
    let (id, _) = close_with_message_in_flight(t).await?;
    let next = t.open_stream("orders", None, Script::Success).await?;
    t.wait_stream_msg(next, &id, 1).await?;
    Ok(())
}

async fn two_streams_one_topic(t: &mut Trial) -> Result<(), Problem> {
    start(t, 0).await?;
    let a = t.open_stream("orders", None, Script::Success).await?;
    let b = t.open_stream("orders", None, Script::Success).await?;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(t.publish("orders", json!({})).await?);
    }
    let deadline = Instant::now() + DEADLINE;
    let seen = |t: &Trial, i: usize| -> Vec<String> {
        t.stream(i)
            .deliveries()
            .iter()
            .filter_map(|d| d.tck_id.clone())
            .collect()
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let (sa, sb) = (seen(t, a), seen(t, b));
        let missing: Vec<&String> = ids
            .iter()
            .filter(|id| !sa.contains(id) && !sb.contains(id))
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Problem::fail(
                format!(
                    "{} of {} messages reached neither stream within {DEADLINE:?}",
                    missing.len(),
                    ids.len()
                ),
                missing.iter().map(|m| (*m).clone()).collect(),
            ));
        }
    }
    if t.env().broker == Broker::InMemory {
        for (name, i) in [("first", a), ("second", b)] {
            for id in &ids {
                t.wait_stream_msg(i, id, 1).await.map_err(|_| {
                    Problem::fail(
                        format!("the {name} stream did not get {id}: the in-memory broker copies every message to every subscription"),
                        t.evidence(),
                    )
                })?;
            }
        }
    } else {
        let (sa, sb) = (seen(t, a), seen(t, b));
        t.observe(format!(
            "{} messages: {} reached the first stream, {} the second",
            ids.len(),
            sa.len(),
            sb.len()
        ));
    }
    Ok(())
}

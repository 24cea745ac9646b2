//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`, feature `grpc`), as daprd 1.18 runs
//! them (spec §3.7):
//!
//! - The client's first message is the initial request (pubsub, topic, dead-letter topic,
//!   metadata); without it, or without a pubsub or topic, the call fails. An unknown pubsub
//!   fails with INVALID_ARGUMENT, as a publish does.
//! - The sidecar answers `initial_response`, then each stream is a subscription of its own on
//!   the broker (so two streams on one topic share a Redis or Kafka consumer group and split
//!   the messages; the in-memory broker gives each every message), with one default route `/`,
//!   the component's inbound resiliency and the dead-letter topic of the request.
//! - Each message goes out as `event_message` (a `TopicEventRequest`) and waits for the
//!   client's `event_processed` with the same id: SUCCESS, RETRY or DROP, read as over gRPC.
//! - When the stream ends (the client closes it, sends a second initial request, or the
//!   sidecar stops), the subscription stops: a message in flight is neither retried,
//!   dead-lettered nor acknowledged; its consumer is aborted and the broker keeps it (Redis
//!   hands it to another consumer of the group after its processing timeout; the in-memory
//!   broker loses it, as daprd's does).
//!
//! [`StreamConn`] is the delivery side, used by `delivery` as the app channel of the stream's
//! subscription; [`serve`] is the gRPC method.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dapr::dapr::proto::runtime::v1::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as RequestType;
use dapr::dapr::proto::runtime::v1::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as ResponseType;
use dapr::dapr::proto::runtime::v1::{
    SubscribeTopicEventsRequestAlpha1, SubscribeTopicEventsResponseAlpha1,
    SubscribeTopicEventsResponseInitialAlpha1, TopicEventRequest, TopicEventResponse,
};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Status, Streaming};

use crate::app_channel::{App, Outcome};
use crate::routing::Rule;
use crate::runtime::Runtime;
use crate::subscription::{Kind, Subscription};

/// The response stream of one streaming subscription.
pub type EventStream =
    Pin<Box<dyn futures::Stream<Item = Result<SubscribeTopicEventsResponseAlpha1, Status>> + Send>>;

/// Messages sent to a stream and not yet read by the client before the delivery waits.
const OUTBOX: usize = 64;

/// The delivery side of one stream.
pub struct StreamConn {
    out: mpsc::Sender<Result<SubscribeTopicEventsResponseAlpha1, Status>>,
    /// Deliveries waiting for `event_processed`, by event id.
    pending: Mutex<HashMap<String, oneshot::Sender<i32>>>,
    closed: watch::Receiver<bool>,
}

impl StreamConn {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<i32>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One delivery attempt: the event out, then the client's status for its id.
    pub async fn deliver(&self, event: &TopicEventRequest, timeout: Option<Duration>) -> Outcome {
        let (tx, rx) = oneshot::channel();
        self.pending().insert(event.id.clone(), tx);
        let sent = self
            .out
            .send(Ok(SubscribeTopicEventsResponseAlpha1 {
                subscribe_topic_events_response_type: Some(ResponseType::EventMessage(
                    event.clone(),
                )),
            }))
            .await;
        let outcome = if sent.is_err() {
            Outcome::Closed
        } else {
            let mut closed = self.closed.clone();
            let wait = async {
                tokio::select! {
                    status = rx => match status {
                        Ok(status) => crate::app_channel::grpc::classify(Ok(TopicEventResponse { status })),
                        Err(_) => Outcome::Closed,
                    },
                    _ = closed.wait_for(|c| *c) => Outcome::Closed,
                }
            };
            match timeout {
                Some(t) => tokio::time::timeout(t, wait)
                    .await
                    .unwrap_or_else(|_| Outcome::Retry {
                        code: Some(4),
                        reason: format!("no event_processed within {t:?}"),
                    }),
                None => wait.await,
            }
        };
        self.pending().remove(&event.id);
        outcome
    }

    /// The client's answer for event `id`; an id nobody waits for is logged and ignored.
    fn processed(&self, id: &str, status: i32) {
        match self.pending().remove(id) {
            Some(tx) => {
                let _ = tx.send(status);
            }
            None => tracing::error!("no delivery waiting for event_processed id {id:?}"),
        }
    }
}

/// `SubscribeTopicEventsAlpha1`: validates the initial request, subscribes and answers the
/// stream; the subscription lives until the client's stream ends or `stop` turns true.
pub async fn serve(
    rt: &Arc<Runtime>,
    mut inbound: Streaming<SubscribeTopicEventsRequestAlpha1>,
    stop: watch::Receiver<bool>,
) -> Result<EventStream, Status> {
    let first = inbound.message().await?;
    let Some(RequestType::InitialRequest(init)) =
        first.and_then(|m| m.subscribe_topic_events_request_type)
    else {
        return Err(Status::unknown("initial request is required"));
    };
    if init.pubsub_name.is_empty() {
        return Err(Status::unknown("pubsubName is required"));
    }
    if init.topic.is_empty() {
        return Err(Status::unknown("topic is required"));
    }
    if !rt.components.contains_key(&init.pubsub_name) {
        return Err(Status::invalid_argument(format!(
            "pubsub {} is not found",
            init.pubsub_name
        )));
    }
    let sub = Subscription {
        pubsub: init.pubsub_name.clone(),
        topic: init.topic.clone(),
        rules: vec![Rule::new("", "/").map_err(|e| Status::internal(e.to_string()))?],
        dead_letter_topic: init.dead_letter_topic.filter(|d| !d.is_empty()),
        metadata: init.metadata.into_iter().collect(),
        bulk: None,
        kind: Kind::Streaming,
    };
    let (out_tx, out_rx) = mpsc::channel(OUTBOX);
    let (closed_tx, closed_rx) = watch::channel(false);
    let conn = Arc::new(StreamConn {
        out: out_tx.clone(),
        pending: Mutex::new(HashMap::new()),
        closed: closed_rx.clone(),
    });
    // The initial response goes out before the subscription can send its first event.
    let initial = SubscribeTopicEventsResponseAlpha1 {
        subscribe_topic_events_response_type: Some(ResponseType::InitialResponse(
            SubscribeTopicEventsResponseInitialAlpha1 {},
        )),
    };
    out_tx
        .send(Ok(initial))
        .await
        .map_err(|_| Status::cancelled("the client went away"))?;
    let Some(consumer) =
        crate::runtime::start_stream_subscription(rt, App::Stream(conn.clone()), &sub, closed_rx)
    else {
        return Err(Status::permission_denied(format!(
            "subscription to topic {} on pubsub {} is not allowed",
            sub.topic, sub.pubsub
        )));
    };
    let key = rt.add_stream(sub.clone());
    tracing::info!(pubsub = %sub.pubsub, topic = %sub.topic, "streaming subscription started");
    let rt = rt.clone();
    tokio::spawn(async move {
        let mut stop = stop;
        loop {
            let msg = tokio::select! {
                msg = inbound.message() => msg,
                _ = stop.wait_for(|s| *s) => break,
            };
            match msg {
                Ok(Some(SubscribeTopicEventsRequestAlpha1 {
                    subscribe_topic_events_request_type: Some(RequestType::EventProcessed(p)),
                })) => conn.processed(&p.id, p.status.map_or(0, |s| s.status)),
                Ok(Some(_)) => {
                    tracing::error!(topic = %sub.topic, "duplicate initial request received: closing the stream");
                    let _ = out_tx
                        .send(Err(Status::unknown("duplicate initial request received")))
                        .await;
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(topic = %sub.topic, "streaming subscription ended: {e}");
                    break;
                }
            }
        }
        // In-flight deliveries see the close and leave their messages to the broker.
        let _ = closed_tx.send(true);
        consumer.abort();
        rt.remove_stream(key);
        tracing::info!(pubsub = %sub.pubsub, topic = %sub.topic, "streaming subscription stopped");
    });
    let stream = futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Box::pin(stream))
}

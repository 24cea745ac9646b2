//! The per-message delivery pipeline of one subscription (spec §4.1): raw-payload handling,
//! CloudEvent read, expiry, routing, delivery under the inbound policy, dead-lettering.
//!
//! Terms: *ack* = return `Ok` to the broker; *nack* = return `Err(Nack)` (the broker's rule
//! decides what follows); *DLQ-or-nack* = ack if a dead-letter topic is set and the dead-letter
//! publish succeeds, else nack.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use tokio::sync::watch;

#[cfg(feature = "grpc")]
use crate::app_channel::grpc;
use crate::app_channel::{App, Outcome};
use crate::broker::{Broker, Handler, Message, Nack};
use crate::cloudevent::{Head, synthetic_raw};
use crate::resiliency::DirectionPolicy;
use crate::routing;
use crate::scopes::{Operation, Scopes};
use crate::subscription::Subscription;

/// The all-zero traceparent daprd sends when an event carries no trace context.
const ZERO_TRACEPARENT: &str = "00-00000000000000000000000000000000-0000000000000000-00";

/// Delivers one subscription's messages to the app.
pub struct Deliverer {
    pub(crate) sub: Subscription,
    pub(crate) raw_payload: Result<bool, String>,
    pub(crate) app: App,
    pub(crate) app_id: String,
    pub(crate) broker: Broker,
    pub(crate) scopes: Arc<Scopes>,
    pub(crate) inbound: DirectionPolicy,
    pub(crate) outbound: DirectionPolicy,
    /// Becomes true when the grace period is over: stop retrying, never dead-letter.
    pub(crate) abort: watch::Receiver<bool>,
}

/// A message ready to send to the app.
enum Prepared {
    Http {
        path: String,
        body: Bytes,
        headers: HeaderMap,
    },
    #[cfg(feature = "grpc")]
    Grpc {
        event: Box<dapr::dapr::proto::runtime::v1::TopicEventRequest>,
        metadata: tonic::metadata::MetadataMap,
    },
    /// It cannot be put on the wire; every attempt fails with this reason.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    Unsendable(String),
}

/// Why the dead-letter publish did not happen.
#[derive(Debug, thiserror::Error)]
enum DlqError {
    #[error("the subscriber may not publish to the dead-letter topic (publishing scopes)")]
    Forbidden,
    #[error("{0}")]
    Publish(String),
}

impl Handler for Deliverer {
    async fn handle(&self, msg: Message) -> Result<(), Nack> {
        self.process(msg).await
    }
}

impl Deliverer {
    async fn process(&self, msg: Message) -> Result<(), Nack> {
        let topic = self.sub.topic.as_str();
        let raw = match &self.raw_payload {
            Ok(raw) => *raw,
            Err(e) => {
                tracing::error!(topic, "invalid subscription metadata: {e}");
                return self.dlq_or_nack(&msg, "invalid rawPayload").await;
            }
        };
        let meta_trace = |k: &str| msg.metadata.get(k).map(String::as_str).unwrap_or("");
        let (body, head) = if raw {
            let trace = (
                meta_trace("traceid"),
                meta_trace("traceparent"),
                meta_trace("tracestate"),
            );
            (
                Bytes::from(synthetic_raw(&self.sub.pubsub, topic, &msg.data, trace)),
                None,
            )
        } else {
            match Head::parse(&msg.data) {
                Ok(h) => (msg.data.clone(), Some(h)),
                Err(e) => {
                    tracing::error!(topic, "error deserializing cloud event: {e}");
                    return self.dlq_or_nack(&msg, "cloud event decode error").await;
                }
            }
        };
        let id = head.as_ref().map(Head::id).unwrap_or("");
        if let Some(h) = &head
            && let Some(at) = h.expired_at(time::OffsetDateTime::now_utc())
        {
            tracing::warn!(topic, "dropping expired pub/sub event {id} as of {at}");
            self.dlq_best_effort(&msg).await;
            return Ok(());
        }
        let path = match routing::route(&self.sub.rules, || serde_json::from_slice(&body).ok()) {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::debug!(topic, "no matching route for event {id}");
                self.dlq_best_effort(&msg).await;
                return Ok(());
            }
            Err(e) => {
                tracing::error!(topic, "error finding matching route for event {id}: {e}");
                return self.dlq_or_nack(&msg, "routing error").await;
            }
        };
        let request = self.prepare(&msg, head.as_ref(), path, body);
        self.deliver(&msg, &request, id).await
    }

    /// The message in the app's protocol, ready for as many attempts as the policy allows.
    fn prepare(&self, msg: &Message, head: Option<&Head>, path: &str, body: Bytes) -> Prepared {
        match &self.app {
            App::Http(_) => Prepared::Http {
                path: path.to_owned(),
                body,
                headers: self.headers(msg, head),
            },
            #[cfg(feature = "grpc")]
            App::Grpc(_) | App::Stream(_) => {
                match grpc::topic_event(&body, &self.sub.topic, &self.sub.pubsub, path) {
                    Ok(event) => {
                        let mut metadata = (*msg.metadata).clone();
                        metadata.insert("pubsubName".into(), self.sub.pubsub.clone());
                        Prepared::Grpc {
                            event: Box::new(event),
                            metadata: grpc::metadata(&metadata),
                        }
                    }
                    // daprd fails such a message before calling the app, on every attempt.
                    Err(e) => Prepared::Unsendable(e.to_string()),
                }
            }
        }
    }

    /// One delivery attempt.
    async fn attempt(&self, request: &Prepared) -> Outcome {
        let timeout = self.inbound.timeout;
        match (&self.app, request) {
            (
                App::Http(app),
                Prepared::Http {
                    path,
                    body,
                    headers,
                },
            ) => app.deliver(path, body.clone(), headers, timeout).await,
            #[cfg(feature = "grpc")]
            (App::Grpc(app), Prepared::Grpc { event, metadata }) => {
                app.deliver(event, metadata, timeout).await
            }
            #[cfg(feature = "grpc")]
            (App::Stream(conn), Prepared::Grpc { event, .. }) => conn.deliver(event, timeout).await,
            (_, Prepared::Unsendable(reason)) => Outcome::Retry {
                code: None,
                reason: reason.clone(),
            },
            #[cfg(feature = "grpc")]
            _ => Outcome::Retry {
                code: None,
                reason: "invariant broken: a message prepared for another app protocol".into(),
            },
        }
    }

    /// Delivery attempts under the inbound policy, then DLQ-or-nack.
    async fn deliver(&self, msg: &Message, request: &Prepared, id: &str) -> Result<(), Nack> {
        let topic = self.sub.topic.as_str();
        let started = Instant::now();
        let mut attempt: u32 = 1;
        loop {
            let (code, reason) = match self.attempt(request).await {
                Outcome::Success => {
                    if attempt > 1 {
                        tracing::info!(
                            topic,
                            "Recovered processing operation after {attempt} attempts"
                        );
                    }
                    return Ok(());
                }
                Outcome::Closed => {
                    // Neither acknowledged nor nacked (a Redis nack is an XACK): like daprd, which
                    // blocks on the closed subscription's context, this waits until the stream's
                    // end aborts the consumer, and the broker keeps the message unacknowledged.
                    tracing::info!(
                        topic,
                        "the stream closed with event {id} in flight; left to the broker"
                    );
                    return std::future::pending().await;
                }
                Outcome::Discard { reason } => {
                    tracing::warn!(topic, "{reason}; event {id} is not delivered again");
                    return Ok(());
                }
                Outcome::Drop { status } => {
                    if status.is_some() {
                        tracing::error!(
                            topic,
                            "non-retriable error returned from app while processing pub/sub event {id}. status code returned: 404"
                        );
                    } else {
                        tracing::warn!(
                            topic,
                            "DROP status returned from app while processing pub/sub event {id}"
                        );
                    }
                    if self.sub.dead_letter_topic.is_none() {
                        return Ok(());
                    }
                    match self.publish_dlq(msg).await {
                        Ok(()) => return Ok(()),
                        // A failed dead-letter publish counts as a failed attempt of the whole delivery.
                        Err(e) => (None, format!("dead-letter publish failed: {e}")),
                    }
                }
                Outcome::Retry { code, reason } => (code, reason),
            };
            if self.aborted() {
                return Err(Nack);
            }
            let permanent = code.is_some_and(|c| {
                self.inbound
                    .retry
                    .as_ref()
                    .is_some_and(|p| !p.matching.allows(c))
            });
            let wait = match &self.inbound.retry {
                Some(p) if !permanent => p.next_wait(
                    attempt.saturating_add(1),
                    started.elapsed(),
                    fastrand::f64(),
                ),
                _ => None,
            };
            let Some(wait) = wait else {
                tracing::warn!(
                    topic,
                    attempts = attempt,
                    "delivery of event {id} failed: {reason}"
                );
                break;
            };
            if attempt == 1 {
                tracing::warn!(
                    topic,
                    "Error processing operation component[{}] input. Retrying in {:?}: {reason}",
                    self.sub.pubsub,
                    wait
                );
            }
            if !self.wait_or_abort(wait).await {
                return Err(Nack);
            }
            // Unlimited retries with a zero backoff could count past u32::MAX.
            attempt = attempt.saturating_add(1);
        }
        self.dlq_or_nack(msg, "retries exhausted").await
    }

    /// Sleeps for the backoff; false when the grace period ended meanwhile.
    async fn wait_or_abort(&self, wait: Duration) -> bool {
        let mut abort = self.abort.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = abort.wait_for(|a| *a) => false,
        }
    }

    fn aborted(&self) -> bool {
        *self.abort.borrow()
    }

    async fn dlq_or_nack(&self, msg: &Message, why: &str) -> Result<(), Nack> {
        if self.aborted() || self.sub.dead_letter_topic.is_none() {
            tracing::error!(topic = %self.sub.topic, "message not processed ({why}); no dead-letter topic");
            return Err(Nack);
        }
        match self.publish_dlq(msg).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(topic = %self.sub.topic, "dead-letter publish failed ({why}): {e}");
                Err(Nack)
            }
        }
    }

    async fn dlq_best_effort(&self, msg: &Message) {
        if self.sub.dead_letter_topic.is_some()
            && !self.aborted()
            && let Err(e) = self.publish_dlq(msg).await
        {
            tracing::warn!(topic = %self.sub.topic, "dead-letter publish failed: {e}");
        }
    }

    /// Re-publishes the original broker bytes and metadata to the dead-letter topic.
    async fn publish_dlq(&self, msg: &Message) -> Result<(), DlqError> {
        let Some(dlq) = &self.sub.dead_letter_topic else {
            return Ok(());
        };
        if !self.scopes.allows(&self.app_id, dlq, Operation::Publish) {
            return Err(DlqError::Forbidden);
        }
        let mut metadata: BTreeMap<String, String> = (*msg.metadata).clone();
        metadata.insert("pubsubName".into(), self.sub.pubsub.clone());
        let copy = Message {
            data: msg.data.clone(),
            metadata: Arc::new(metadata),
        };
        crate::publish::with_policy(&self.outbound, || self.broker.publish(dlq, copy.clone()))
            .await
            .map_err(|e| DlqError::Publish(e.to_string()))
    }

    /// Headers of a delivery: content type, trace, and one per broker metadata entry.
    fn headers(&self, msg: &Message, head: Option<&Head>) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(msg.metadata.len() + 4);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json"),
        );
        for (k, v) in msg.metadata.iter() {
            let lower = k.to_ascii_lowercase();
            if is_excluded_header(&lower) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(lower.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(name, value);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&self.sub.pubsub) {
            h.insert(HeaderName::from_static("pubsubname"), v);
        }
        let trace = head
            .and_then(Head::trace)
            .or_else(|| msg.metadata.get("traceparent").map(String::as_str));
        let trace = trace.filter(|t| !t.is_empty()).unwrap_or(ZERO_TRACEPARENT);
        if let Ok(v) = HeaderValue::from_str(trace) {
            h.insert(HeaderName::from_static("traceparent"), v);
        }
        // No `tracestate` header: daprd rebuilds the delivery's span context from the
        // envelope's traceparent alone, so the tracestate travels in the envelope only.
        h
    }
}

fn is_excluded_header(lower: &str) -> bool {
    matches!(
        lower,
        "content-type"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "traceparent"
            | "tracestate"
            | "traceid"
            | "dapr-api-token"
            | "pubsubname"
    )
}

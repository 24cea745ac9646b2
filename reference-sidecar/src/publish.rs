//! Publishing, independent of the API surface: daprd's validation order (spec §1.2), the
//! envelope, scopes and the outbound policy (retries and per-attempt timeout), shared by the HTTP
//! and gRPC APIs. Each API maps a [`PublishFailure`] to its own status codes; nothing here knows
//! about HTTP headers or gRPC metadata.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;

use crate::broker::{Message, PublishError};
use crate::cloudevent::{self, Overrides, PublishContext};
use crate::duration::parse_go_duration;
use crate::resiliency::DirectionPolicy;
use crate::runtime::{Component, Runtime};
use crate::scopes::Operation;
use crate::subscription::parse_go_bool;

/// Which API a publish came in on; the two differ in small, documented ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /v1.0/publish/...`.
    Http,
    /// `Dapr/PublishEvent` and the bulk methods.
    Grpc,
}

/// W3C trace context of the request ("" when absent).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// `traceparent`.
    pub traceparent: String,
    /// `tracestate`.
    pub tracestate: String,
}

impl Trace {
    /// The trace context among a request's headers (or gRPC metadata), which `header` looks up;
    /// a value that is not text counts as absent.
    pub(crate) fn from_headers<'a>(header: impl Fn(&'static str) -> Option<&'a str>) -> Trace {
        let get = |k| header(k).unwrap_or("").to_owned();
        Trace {
            traceparent: get("traceparent"),
            tracestate: get("tracestate"),
        }
    }
}

/// One publish, as either API received it.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The pubsub component name.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The body.
    pub data: Bytes,
    /// The body's content type; `None` (or empty over gRPC) means `text/plain`.
    pub content_type: Option<String>,
    /// Publish metadata, without any `metadata.` prefix.
    pub metadata: BTreeMap<String, String>,
    /// Trace context.
    pub trace: Trace,
    /// The API it came in on.
    pub transport: Transport,
}

/// One entry of a bulk publish, its event already converted to bytes.
#[derive(Debug, Clone)]
pub struct BulkEntry {
    /// `entryId`, unique in the request.
    pub id: String,
    /// The event bytes.
    pub data: Bytes,
    /// The entry's content type (may be empty over gRPC, meaning `text/plain`).
    pub content_type: String,
    /// The entry's own metadata; `None` when it has none (then it does not inherit the
    /// request's, a daprd quirk).
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A bulk publish: request-level fields plus its entries.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    /// The pubsub component name.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// Request-level metadata (only `rawPayload` applies to entries).
    pub metadata: BTreeMap<String, String>,
    /// The entries, validated (unique, non-empty ids).
    pub entries: Vec<BulkEntry>,
    /// Trace context.
    pub trace: Trace,
}

/// An entry the broker did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// Its `entryId`.
    pub id: String,
    /// The component's error.
    pub error: String,
}

/// Why a publish was refused, in daprd's terms (spec §1.5). The messages are daprd's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishFailure {
    /// The pubsub name is empty.
    #[error("pubsub name is empty")]
    PubsubEmpty {
        /// Request metadata (ErrorInfo).
        metadata: BTreeMap<String, String>,
    },
    /// No component has that name.
    #[error("pubsub {pubsub} is not found")]
    NotFound {
        /// The name asked for.
        pubsub: String,
        /// Request metadata (ErrorInfo).
        metadata: BTreeMap<String, String>,
    },
    /// The topic is empty.
    #[error("topic is empty in pubsub {pubsub}")]
    TopicEmpty {
        /// The component.
        pubsub: String,
        /// Request metadata (ErrorInfo).
        metadata: BTreeMap<String, String>,
    },
    /// A metadata value is unusable (`rawPayload` that is not a boolean).
    #[error("failed deserializing metadata. Error: {detail}")]
    Metadata {
        /// The component.
        pubsub: String,
        /// What is wrong.
        detail: String,
        /// Request metadata (ErrorInfo).
        metadata: BTreeMap<String, String>,
    },
    /// The envelope cannot be built (a publisher CloudEvent that is not a JSON object).
    #[error("cannot create cloudevent: {error}")]
    CloudEvent {
        /// The component.
        pubsub: String,
        /// The publisher's app id.
        app_id: String,
        /// What is wrong.
        error: String,
    },
    /// Scopes deny the topic to this app.
    #[error("topic {topic} is not allowed for app id {app_id}")]
    Forbidden {
        /// The component.
        pubsub: String,
        /// The topic.
        topic: String,
        /// This app.
        app_id: String,
    },
    /// The broker refused the message after the outbound policy.
    #[error("error when publishing to topic {topic} in pubsub {pubsub}: {error}")]
    Publish {
        /// The component.
        pubsub: String,
        /// The topic.
        topic: String,
        /// The component's error.
        error: String,
    },
}

/// Steps 2–4 of spec §1.2: the pubsub name, the component, the topic.
pub fn lookup<'a>(
    rt: &'a Runtime,
    pubsub: &str,
    topic: &str,
    metadata: &BTreeMap<String, String>,
) -> Result<&'a Component, PublishFailure> {
    if pubsub.is_empty() {
        return Err(PublishFailure::PubsubEmpty {
            metadata: metadata.clone(),
        });
    }
    let comp = rt
        .components
        .get(pubsub)
        .ok_or_else(|| PublishFailure::NotFound {
            pubsub: pubsub.to_owned(),
            metadata: metadata.clone(),
        })?;
    if topic.is_empty() {
        return Err(PublishFailure::TopicEmpty {
            pubsub: pubsub.to_owned(),
            metadata: metadata.clone(),
        });
    }
    Ok(comp)
}

/// `rawPayload` (case-sensitive key, Go `ParseBool`; absent or empty = false).
pub fn raw_payload(pubsub: &str, md: &BTreeMap<String, String>) -> Result<bool, PublishFailure> {
    match md.get("rawPayload") {
        None => Ok(false),
        Some(v) => parse_go_bool(v).ok_or_else(|| PublishFailure::Metadata {
            pubsub: pubsub.to_owned(),
            detail: format!("rawPayload value must be a valid boolean: actual is '{v}'"),
            metadata: md.clone(),
        }),
    }
}

/// `ttlInSeconds` / `ttl` (case-insensitive), read as contrib's `TryGetTTL` reads it: first as a
/// Go duration (`"30s"`; also `"0"`, and a negative duration counts as zero: the message expires
/// at once), else as whole seconds (`"30"`; zero, negative or invalid is ignored). The longest
/// TTL is `i64::MAX` nanoseconds (about 292 years), as for Go's `time.Duration`.
pub fn ttl(md: &BTreeMap<String, String>) -> Option<Duration> {
    let v = md
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("ttlInSeconds") || k.eq_ignore_ascii_case("ttl"))?
        .1
        .as_str();
    let longest = Duration::from_nanos(i64::MAX as u64);
    if let Some(magnitude) = v.strip_prefix('-') {
        return parse_go_duration(magnitude).ok().map(|_| Duration::ZERO);
    }
    if let Ok(d) = parse_go_duration(v) {
        // Go rejects a duration string beyond its range; TryGetTTL then fails and is ignored.
        return (d <= longest).then_some(d);
    }
    let secs = v.parse::<i64>().ok().filter(|s| *s > 0)?;
    Some(Duration::from_secs(secs as u64).min(longest))
}

fn check_scope(
    rt: &Runtime,
    comp: &Component,
    pubsub: &str,
    topic: &str,
) -> Result<(), PublishFailure> {
    if comp
        .scopes
        .allows(&rt.config.app_id, topic, Operation::Publish)
    {
        Ok(())
    } else {
        Err(PublishFailure::Forbidden {
            pubsub: pubsub.to_owned(),
            topic: topic.to_owned(),
            app_id: rt.config.app_id.clone(),
        })
    }
}

/// Steps 6–9 of spec §1.2 for a component already found with [`lookup`]: metadata, envelope,
/// scopes, then the broker under the outbound policy.
pub async fn publish_one(
    rt: &Runtime,
    comp: &Component,
    req: PublishRequest,
) -> Result<(), PublishFailure> {
    let PublishRequest {
        pubsub,
        topic,
        data,
        content_type,
        mut metadata,
        trace,
        transport,
    } = req;
    let raw = raw_payload(&pubsub, &metadata)?;
    let data = if raw {
        // gRPC hands the trace context to the component with a raw payload; HTTP does not.
        if transport == Transport::Grpc {
            if !trace.traceparent.is_empty() {
                metadata.insert("traceid".into(), trace.traceparent.clone());
            }
            if !trace.tracestate.is_empty() {
                metadata.insert("tracestate".into(), trace.tracestate.clone());
            }
        }
        data
    } else {
        let ctx = PublishContext {
            pubsub: &pubsub,
            topic: &topic,
            app_id: &rt.config.app_id,
            traceparent: &trace.traceparent,
            tracestate: &trace.tracestate,
            ttl: ttl(&metadata).filter(|_| !comp.broker.native_ttl()),
            overrides: Overrides::from_metadata(&metadata),
            now: time::OffsetDateTime::now_utc(),
        };
        let content_type = content_type.as_deref().filter(|c| !c.is_empty());
        let envelope = cloudevent::envelope(&ctx, content_type, &data).map_err(|e| {
            PublishFailure::CloudEvent {
                pubsub: pubsub.clone(),
                app_id: rt.config.app_id.clone(),
                error: e.to_string(),
            }
        })?;
        Bytes::from(envelope)
    };
    check_scope(rt, comp, &pubsub, &topic)?;
    let msg = Message {
        data,
        metadata: Arc::new(metadata),
    };
    with_policy(&comp.outbound, || comp.broker.publish(&topic, msg.clone()))
        .await
        .map_err(|e| PublishFailure::Publish {
            pubsub,
            topic,
            error: e.to_string(),
        })
}

/// Entries of one bulk publish in flight at once: daprd's `defaultBulkPublishMaxConcurrency`
/// (pkg/runtime/pubsub/default_bulkpub.go) for brokers without native bulk publish.
pub const BULK_CONCURRENCY: usize = 100;

/// A bulk publish for a component already found with [`lookup`]: `rawPayload`, scopes, then
/// every entry concurrently (at most [`BULK_CONCURRENCY`] at a time) under the outbound policy, as daprd does for brokers without native
/// bulk publish (so there is no order within one request). Entries the broker refused are
/// returned; the request as a whole fails only before any entry is published.
pub async fn publish_bulk(
    rt: &Runtime,
    comp: &Component,
    req: BulkRequest,
) -> Result<Vec<FailedEntry>, PublishFailure> {
    let raw = raw_payload(&req.pubsub, &req.metadata)?;
    check_scope(rt, comp, &req.pubsub, &req.topic)?;
    let now = time::OffsetDateTime::now_utc();
    let (pubsub, topic, trace, policy) = (&req.pubsub, &req.topic, &req.trace, &comp.outbound);
    let publishes = req.entries.into_iter().map(|e| async move {
        // An entry without metadata does not inherit the request's (daprd quirk).
        let mut entry_md = e.metadata.unwrap_or_default();
        if raw {
            entry_md.insert("rawPayload".into(), "true".into());
        }
        let data = if raw {
            e.data
        } else {
            let ctx = PublishContext {
                pubsub,
                topic,
                app_id: &rt.config.app_id,
                traceparent: &trace.traceparent,
                tracestate: &trace.tracestate,
                ttl: ttl(&entry_md).filter(|_| !comp.broker.native_ttl()),
                overrides: Overrides::from_metadata(&entry_md),
                now,
            };
            let content_type = Some(e.content_type.as_str()).filter(|c| !c.is_empty());
            match cloudevent::envelope(&ctx, content_type, &e.data) {
                Ok(b) => Bytes::from(b),
                Err(err) => {
                    return Err(FailedEntry {
                        id: e.id,
                        error: err.to_string(),
                    });
                }
            }
        };
        let msg = Message {
            data,
            metadata: Arc::new(entry_md),
        };
        with_policy(policy, || comp.broker.publish(topic, msg.clone()))
            .await
            .map_err(|err| FailedEntry {
                id: e.id,
                error: err.to_string(),
            })
    });
    // A 4 MiB body of tiny entries is about 100k of them.
    Ok(failures_in_order(publishes, BULK_CONCURRENCY).await)
}

/// Runs the futures at most `limit` at a time and returns their errors in input order.
async fn failures_in_order<E>(
    futures: impl IntoIterator<Item = impl Future<Output = Result<(), E>>>,
    limit: usize,
) -> Vec<E> {
    futures::stream::iter(futures)
        .buffered(limit.max(1))
        .filter_map(|r| std::future::ready(r.err()))
        .collect()
        .await
}

/// Why a publish under policy failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyPublishError {
    /// The broker refused every attempt.
    #[error(transparent)]
    Broker(#[from] PublishError),
    /// The last attempt timed out.
    #[error("publish timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// Runs `op` until it succeeds or the outbound policy is spent.
pub async fn with_policy<F, Fut>(
    policy: &DirectionPolicy,
    mut op: F,
) -> Result<(), PolicyPublishError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), PublishError>>,
{
    let started = Instant::now();
    let mut attempt: u32 = 1;
    loop {
        let result = match policy.timeout {
            Some(t) => match tokio::time::timeout(t, op()).await {
                Ok(r) => r.map_err(PolicyPublishError::from),
                Err(_) => Err(PolicyPublishError::Timeout(t)),
            },
            None => op().await.map_err(PolicyPublishError::from),
        };
        let err = match result {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let closed = matches!(err, PolicyPublishError::Broker(PublishError::Closed));
        let wait = match &policy.retry {
            Some(p) if !closed => p.next_wait(
                attempt.saturating_add(1),
                started.elapsed(),
                fastrand::f64(),
            ),
            _ => None,
        };
        match wait {
            Some(w) => tokio::time::sleep(w).await,
            None => return Err(err),
        }
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expect: &str) {
        let md = BTreeMap::from([("ttlInSeconds".to_owned(), value.to_owned())]);
        assert_eq!(format!("{:?}", ttl(&md)), expect, "ttlInSeconds={value:?}");
    }

    #[tokio::test]
    async fn bulk_fan_out_is_bounded_and_ordered() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let futures = (0..1000u32).map(|i| {
            let (now, peak) = (&now, &peak);
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                // Later entries finish first, so completion order differs from entry order.
                tokio::time::sleep(Duration::from_micros(u64::from(1000 - i) % 7 * 100)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                if i % 3 == 0 { Err(i) } else { Ok(()) }
            }
        });
        let failed = failures_in_order(futures, BULK_CONCURRENCY).await;
        assert_eq!(failed, (0..1000).filter(|i| i % 3 == 0).collect::<Vec<_>>());
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            peak <= BULK_CONCURRENCY && peak > 1,
            "peak concurrency {peak}"
        );
    }

    #[test]
    fn ttl_reads_like_contrib() {
        check("30", "Some(30s)");
        check("1m30s", "Some(90s)");
        // A zero or negative duration expires the message at once.
        check("0", "Some(0ns)");
        check("0s", "Some(0ns)");
        check("-5s", "Some(0ns)");
        // Zero, negative or invalid whole seconds are ignored.
        check("00", "None");
        check("-5", "None");
        check("soon", "None");
        // Huge values stop at Go's longest duration instead of overflowing.
        check("400000000000", "Some(9223372036.854775807s)");
        check("99999999999999999h", "None");
    }
}

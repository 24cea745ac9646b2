//! The app channel over gRPC (`--app-protocol grpc`): the `AppCallback` service as daprd 1.18
//! drives it (spec §4.6).
//!
//! - Discovery: `ListTopicSubscriptions`; UNIMPLEMENTED means "no subscriptions".
//! - Delivery: `OnTopicEvent` with a `TopicEventRequest` built from the CloudEvent
//!   ([`topic_event`]) and the message metadata as gRPC metadata; the answer is classified by
//!   [`classify`]: the status enum (SUCCESS, RETRY, DROP, anything else retried), and a gRPC
//!   error retried with its code (so `matching.gRPCStatusCodes` applies), except UNIMPLEMENTED,
//!   which daprd acknowledges without dead-lettering.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use dapr::dapr::proto::runtime::v1::app_callback_client::AppCallbackClient;
use dapr::dapr::proto::runtime::v1::{
    ListTopicSubscriptionsResponse, TopicEventRequest, TopicEventResponse,
};
use serde_json::{Map, Value};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

use super::{ChannelError, ChannelSettings, Limiter, Outcome, host_part};
use crate::routing::{CompileError, Rule};
use crate::subscription::{Kind, Subscription};

/// The `AppCallback` client of one app.
#[derive(Clone)]
pub struct GrpcAppChannel {
    client: AppCallbackClient<Channel>,
    /// `ListTopicSubscriptions`, the gRPC form of the init call.
    init_timeout: Duration,
    addr: Arc<str>,
    token: Option<AsciiMetadataValue>,
    limiter: Limiter,
}

impl GrpcAppChannel {
    /// A channel to `address:port` that connects on first use.
    pub fn new(
        address: &str,
        port: u16,
        settings: &ChannelSettings<'_>,
    ) -> Result<GrpcAppChannel, ChannelError> {
        let ChannelSettings {
            token,
            max_concurrency,
            limits,
            max_response_bytes,
            ..
        } = *settings;
        let host = host_part(address);
        let addr: Arc<str> = format!("{host}:{port}").into();
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ChannelError(format!("app address {addr}: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(limits.app_connect_timeout);
        let token = token
            .map(|t| {
                let mut v = AsciiMetadataValue::try_from(t).map_err(|_| {
                    ChannelError("APP_API_TOKEN is not a valid gRPC metadata value".into())
                })?;
                // Kept out of `Debug` output and of HTTP/2 header compression tables.
                v.set_sensitive(true);
                Ok(v)
            })
            .transpose()?;
        let limiter = Limiter::new(max_concurrency);
        Ok(GrpcAppChannel {
            // An answer larger than the cap fails as RESOURCE_EXHAUSTED (tonic's own default
            // cap is 4 MiB).
            client: AppCallbackClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(max_response_bytes),
            init_timeout: limits.app_init_timeout,
            addr,
            token,
            limiter,
        })
    }

    /// `host:port` of the app.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn request<T>(&self, message: T, metadata: MetadataMap) -> Request<T> {
        let mut req = Request::new(message);
        *req.metadata_mut() = metadata;
        if let Some(t) = &self.token {
            req.metadata_mut().insert("dapr-api-token", t.clone());
        }
        req
    }

    /// `ListTopicSubscriptions`: `Ok(None)` when the app does not implement it.
    pub async fn list_subscriptions(
        &self,
    ) -> Result<Option<ListTopicSubscriptionsResponse>, String> {
        let req = self.request((), MetadataMap::new());
        let mut client = self.client.clone();
        let call = client.list_topic_subscriptions(req);
        let Ok(answer) = tokio::time::timeout(self.init_timeout, call).await else {
            return Err(format!(
                "ListTopicSubscriptions: no answer within {:?}",
                self.init_timeout
            ));
        };
        match answer {
            Ok(resp) => Ok(Some(resp.into_inner())),
            Err(s) if s.code() == Code::Unimplemented => Ok(None),
            Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
        }
    }

    /// One delivery attempt: `OnTopicEvent`, the answer classified.
    pub async fn deliver(
        &self,
        event: &TopicEventRequest,
        metadata: &MetadataMap,
        timeout: Option<Duration>,
    ) -> Outcome {
        let _permit = self.limiter.acquire().await;
        let req = self.request(event.clone(), metadata.clone());
        let mut client = self.client.clone();
        let answer = match timeout {
            // A deadline the app sees too (`grpc-timeout`), as daprd's context deadline.
            Some(t) => match tokio::time::timeout(t, client.on_topic_event(req)).await {
                Ok(a) => a,
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "context deadline exceeded after {t:?}"
                ))),
            },
            None => client.on_topic_event(req).await,
        };
        classify(answer.map(tonic::Response::into_inner))
    }
}

/// daprd's reading of an `OnTopicEvent` answer (postman/grpc).
pub fn classify(answer: Result<TopicEventResponse, tonic::Status>) -> Outcome {
    match answer {
        Ok(resp) => match resp.status {
            0 => Outcome::Success,
            1 => Outcome::Retry {
                code: None,
                reason: "RETRY status returned from app".into(),
            },
            2 => Outcome::Drop { status: None },
            other => Outcome::Retry {
                code: None,
                reason: format!("unknown status returned from app: {other}"),
            },
        },
        Err(s) if s.code() == Code::Unimplemented => Outcome::Discard {
            reason: format!("non-retriable error returned from app: {}", s.message()),
        },
        Err(s) => Outcome::Retry {
            code: Some(s.code() as u16),
            reason: format!(
                "error returned from app: code {:?}: {}",
                s.code(),
                s.message()
            ),
        },
    }
}

/// Why a CloudEvent cannot become a `TopicEventRequest`; daprd retries such a message.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not a JSON object.
    #[error("cannot decode the cloud event: {0}")]
    Decode(String),
    /// `data_base64` is not a base64 string.
    #[error("unable to base64 decode cloud event field data_base64: {0}")]
    Base64(String),
    /// A text content type with `data` that is not a string.
    #[error("unexpected data in the cloud event for content type {0:?}")]
    UnexpectedData(String),
}

/// Attributes that travel in their own fields, not among the extensions.
const OWN_FIELDS: [&str; 7] = [
    "id",
    "source",
    "datacontenttype",
    "type",
    "specversion",
    "data",
    "data_base64",
];

/// The `TopicEventRequest` for a CloudEvent, as daprd builds it: string attributes in their
/// fields (a non-string is ""), `data` as bytes (base64-decoded `data_base64`; a text or XML
/// content type's string; a JSON content type's value serialised again; nothing for any other
/// content type), every other attribute among the extensions.
pub fn topic_event(
    event: &[u8],
    topic: &str,
    pubsub: &str,
    path: &str,
) -> Result<TopicEventRequest, EnvelopeError> {
    let obj: Map<String, Value> =
        serde_json::from_slice(event).map_err(|e| EnvelopeError::Decode(e.to_string()))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let content_type = text("datacontenttype");
    let data = match (obj.get("data_base64"), obj.get("data")) {
        (Some(Value::String(b64)), _) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| EnvelopeError::Base64(e.to_string()))?,
        (Some(v), _) if !v.is_null() => {
            return Err(EnvelopeError::Base64("not a string".into()));
        }
        (_, Some(data)) if !data.is_null() => {
            if is_text(&content_type) {
                match data {
                    Value::String(s) => s.clone().into_bytes(),
                    _ => return Err(EnvelopeError::UnexpectedData(content_type)),
                }
            } else if is_type(&content_type, "application/json")
                || is_type(&content_type, "application/cloudevents+json")
            {
                go_json(data)
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let extensions: BTreeMap<String, prost_types::Value> = obj
        .iter()
        .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), proto_value(v)))
        .collect();
    Ok(TopicEventRequest {
        id: text("id"),
        source: text("source"),
        r#type: text("type"),
        spec_version: text("specversion"),
        data_content_type: content_type,
        data,
        topic: topic.to_owned(),
        pubsub_name: pubsub.to_owned(),
        path: path.to_owned(),
        extensions: Some(prost_types::Struct { fields: extensions }),
    })
}

/// The message metadata as gRPC metadata: keys lower-cased, `content-type` and
/// `content-length` left out (the event carries its data), entries that are not valid ASCII
/// metadata left out too (daprd's gRPC client would fail the whole call on them).
pub fn metadata(entries: &BTreeMap<String, String>) -> MetadataMap {
    let mut md = MetadataMap::new();
    for (k, v) in entries {
        let lower = k.to_ascii_lowercase();
        if lower == "content-type" || lower == "content-length" || lower.ends_with("-bin") {
            continue;
        }
        if let (Ok(key), Ok(value)) = (
            AsciiMetadataKey::from_bytes(lower.as_bytes()),
            AsciiMetadataValue::try_from(v.as_str()),
        ) {
            md.append(key, value);
        }
    }
    md
}

/// A `text/*` or `application/xml` content type (contrib's `IsStringContentType`).
fn is_text(content_type: &str) -> bool {
    content_type.to_ascii_lowercase().starts_with("text/")
        || is_type(content_type, "application/xml")
}

/// `content_type` is `expected`, parameters aside (contrib's `isContentType`).
fn is_type(content_type: &str, expected: &str) -> bool {
    let lower = content_type.to_ascii_lowercase();
    lower.split(';').next() == Some(expected)
}

/// A JSON value serialised as Go's `json.Marshal` writes a decoded value: object keys sorted
/// (serde_json's map is ordered), `<`, `>`, `&`, U+2028 and U+2029 escaped.
fn go_json(v: &Value) -> Vec<u8> {
    let plain = v.to_string();
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

fn proto_value(v: &Value) -> prost_types::Value {
    use prost_types::value::Kind as K;
    let kind = match v {
        Value::Null => K::NullValue(0),
        Value::Bool(b) => K::BoolValue(*b),
        Value::Number(n) => K::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => K::StringValue(s.clone()),
        Value::Array(a) => K::ListValue(prost_types::ListValue {
            values: a.iter().map(proto_value).collect(),
        }),
        Value::Object(o) => K::StructValue(prost_types::Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), proto_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The subscriptions of a `ListTopicSubscriptions` answer (programmatic; a missing `routes`
/// or one without rules or default delivers to the empty path, as daprd does).
pub fn subscriptions(
    resp: ListTopicSubscriptionsResponse,
) -> Result<Vec<Subscription>, CompileError> {
    resp.subscriptions
        .into_iter()
        .map(|s| {
            let (rules, default) = match &s.routes {
                Some(r) => (
                    r.rules
                        .iter()
                        .map(|rule| (rule.r#match.clone(), rule.path.clone()))
                        .collect::<Vec<_>>(),
                    Some(r.default.as_str()),
                ),
                None => (Vec::new(), None),
            };
            // daprd's parseRoutingRulesGRPC: the rules, then a non-empty default, else one rule
            // to the empty path; paths verbatim.
            let mut rules = rules
                .iter()
                .map(|(expr, path)| Rule::verbatim(expr, path))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(d) = default.filter(|d| !d.is_empty()) {
                rules.push(Rule::verbatim("", d)?);
            }
            if rules.is_empty() {
                rules.push(Rule::verbatim("", "")?);
            }
            Ok(Subscription {
                pubsub: s.pubsub_name,
                topic: s.topic,
                rules,
                dead_letter_topic: Some(s.dead_letter_topic).filter(|d| !d.is_empty()),
                metadata: s.metadata.into_iter().collect(),
                bulk: s.bulk_subscribe.map(|b| crate::subscription::Bulk {
                    enabled: b.enabled,
                    max_messages_count: Some(i64::from(b.max_messages_count)),
                    max_await_duration_ms: Some(i64::from(b.max_await_duration_ms)),
                }),
                kind: Kind::Programmatic,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> TopicEventRequest {
        topic_event(json.as_bytes(), "orders", "pubsub", "/orders").expect("envelope")
    }

    #[test]
    fn json_data_is_serialised_again_as_go_does() {
        let e = event(
            r#"{"id":"1","source":"app","type":"com.dapr.event.sent","specversion":"1.0","datacontenttype":"application/json","data":{"b":"<&>","a":1},"topic":"orders","traceid":"x"}"#,
        );
        assert_eq!(e.id, "1");
        assert_eq!(e.spec_version, "1.0");
        assert_eq!(
            String::from_utf8(e.data).expect("utf-8"),
            r#"{"a":1,"b":"\u003c\u0026\u003e"}"#
        );
        let ext = e.extensions.expect("extensions").fields;
        let keys: Vec<&str> = ext.keys().map(String::as_str).collect();
        assert_eq!(keys, ["topic", "traceid"]);
        assert_eq!(e.path, "/orders");
    }

    #[test]
    fn data_by_content_type() {
        assert_eq!(
            event(r#"{"datacontenttype":"text/plain","data":"hi"}"#).data,
            b"hi"
        );
        assert_eq!(
            event(r#"{"datacontenttype":"application/xml; charset=utf-8","data":"<a/>"}"#).data,
            b"<a/>"
        );
        assert_eq!(
            event(r#"{"datacontenttype":"application/octet-stream","data_base64":"AAE="}"#).data,
            [0, 1]
        );
        // Neither text nor JSON: daprd leaves the data out.
        assert!(
            event(r#"{"datacontenttype":"application/ld+json","data":{"a":1}}"#)
                .data
                .is_empty()
        );
        assert!(matches!(
            topic_event(
                br#"{"datacontenttype":"text/plain","data":{"a":1}}"#,
                "t",
                "p",
                "/"
            ),
            Err(EnvelopeError::UnexpectedData(_))
        ));
        assert!(matches!(
            topic_event(br#"{"data_base64":"***"}"#, "t", "p", "/"),
            Err(EnvelopeError::Base64(_))
        ));
        assert!(matches!(
            topic_event(b"[1]", "t", "p", "/"),
            Err(EnvelopeError::Decode(_))
        ));
    }

    #[test]
    fn answers_are_classified_as_daprd_does() {
        let status = |s: i32| classify(Ok(TopicEventResponse { status: s }));
        assert_eq!(status(0), Outcome::Success);
        assert!(matches!(status(1), Outcome::Retry { code: None, .. }));
        assert_eq!(status(2), Outcome::Drop { status: None });
        assert!(matches!(status(7), Outcome::Retry { code: None, .. }));
        assert!(matches!(
            classify(Err(tonic::Status::unimplemented("no"))),
            Outcome::Discard { .. }
        ));
        assert!(matches!(
            classify(Err(tonic::Status::not_found("no"))),
            Outcome::Retry { code: Some(5), .. }
        ));
        assert!(matches!(
            classify(Err(tonic::Status::unavailable("down"))),
            Outcome::Retry { code: Some(14), .. }
        ));
    }

    #[test]
    fn routes_keep_their_paths() {
        use dapr::dapr::proto::runtime::v1::{TopicRoutes, TopicRule, TopicSubscription};
        let sub = |routes| TopicSubscription {
            pubsub_name: "p".into(),
            topic: "t".into(),
            routes,
            ..Default::default()
        };
        let paths = |routes| {
            subscriptions(ListTopicSubscriptionsResponse {
                subscriptions: vec![sub(routes)],
            })
            .expect("valid")[0]
                .rules
                .iter()
                .map(|r| r.path.clone())
                .collect::<Vec<_>>()
        };
        // The Python SDK sends empty routes: one rule to the empty path, kept empty.
        assert_eq!(paths(Some(TopicRoutes::default())), [""]);
        assert_eq!(paths(None), [""]);
        let routes = TopicRoutes {
            rules: vec![TopicRule {
                r#match: "event.type == 'a'".into(),
                path: "a".into(),
            }],
            default: "orders".into(),
        };
        assert_eq!(paths(Some(routes)), ["a", "orders"]);
    }

    #[test]
    fn metadata_keeps_valid_entries() {
        let md = metadata(&BTreeMap::from([
            ("Content-Type".to_owned(), "x".to_owned()),
            ("pubsubName".to_owned(), "pubsub".to_owned()),
            ("bad key".to_owned(), "v".to_owned()),
            ("k".to_owned(), "line\nbreak".to_owned()),
        ]));
        assert_eq!(md.len(), 1);
        assert_eq!(
            md.get("pubsubname").and_then(|v| v.to_str().ok()),
            Some("pubsub")
        );
    }
}

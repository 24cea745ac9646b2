//! The test app as a gRPC app: the `AppCallback` service a sidecar started with
//! `--app-protocol grpc` calls, on tonic.
//!
//! The same subscriptions, scripts and recordings as over HTTP, translated at this edge:
//! - `ListTopicSubscriptions` answers the `/dapr/subscribe` JSON the test set, converted
//!   ([`topic_subscriptions`]); a scripted 404 is UNIMPLEMENTED, any other non-2xx an error.
//! - `OnTopicEvent` is recorded as a delivery to the request's `path`, its body the CloudEvent
//!   put back together from the request's fields ([`cloud_event`]), its headers the gRPC
//!   metadata; the script's answer becomes a status enum or a gRPC error ([`GrpcAnswer`]).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use dapr::dapr::proto::common::v1::{InvokeRequest, InvokeResponse};
use dapr::dapr::proto::runtime::v1::app_callback_server::{AppCallback, AppCallbackServer};
use dapr::dapr::proto::runtime::v1::{
    BindingEventRequest, BindingEventResponse, BulkSubscribeConfig, JobEventRequest,
    JobEventResponse, ListInputBindingsResponse, ListTopicSubscriptionsResponse,
    TopicEventBulkRequest, TopicEventBulkResponse, TopicEventRequest, TopicEventResponse,
    TopicRoutes, TopicRule, TopicSubscription,
};
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

use super::recorder::Incoming;
use super::script::{Action, Outcome};
use super::server::{Shared, stopping};

/// What the app sends back to `OnTopicEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GrpcAnswer {
    /// A `TopicEventResponse` with this status value (0 SUCCESS, 1 RETRY, 2 DROP; others are
    /// unknown to the sidecar).
    Status(i32),
    /// A gRPC error.
    Error(Code, String),
    /// No answer until the app stops.
    Hang,
}

impl Action {
    /// The gRPC form of this answer. A 2xx answer becomes its `status` field (absent or empty
    /// is SUCCESS; a string that is none of SUCCESS, RETRY, DROP becomes the unknown value 3);
    /// any other HTTP status becomes the gRPC code gRPC-gateway maps it to (404 is NOT_FOUND,
    /// which a sidecar retries: only UNIMPLEMENTED drops over gRPC); a closed connection, which
    /// a handler cannot cause, becomes UNAVAILABLE, what the sidecar would see.
    pub(crate) fn grpc(&self) -> GrpcAnswer {
        match &self.outcome {
            Outcome::Respond { status, body, .. } if (200..300).contains(status) => {
                let field = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("status").and_then(|s| s.as_str().map(str::to_owned)));
                GrpcAnswer::Status(match field.as_deref() {
                    None | Some("" | "SUCCESS") => 0,
                    Some("RETRY") => 1,
                    Some("DROP") => 2,
                    Some(_) => 3,
                })
            }
            Outcome::Respond { status, .. } => GrpcAnswer::Error(
                code_for_http(*status),
                format!("scripted HTTP status {status}"),
            ),
            Outcome::Grpc(code) => {
                GrpcAnswer::Error(Code::from_i32(*code), format!("scripted gRPC code {code}"))
            }
            Outcome::Hang => GrpcAnswer::Hang,
            Outcome::Close => {
                GrpcAnswer::Error(Code::Unavailable, "connection closed by script".to_owned())
            }
        }
    }

    /// The short answer label of histories for a gRPC delivery: `SUCCESS`, `RETRY`, `DROP`,
    /// `status:<n>` for an unknown value, `grpc:<Code>` for an error, `hang`.
    pub(crate) fn grpc_label(&self) -> String {
        match self.grpc() {
            GrpcAnswer::Status(0) => "SUCCESS".to_owned(),
            GrpcAnswer::Status(1) => "RETRY".to_owned(),
            GrpcAnswer::Status(2) => "DROP".to_owned(),
            GrpcAnswer::Status(n) => format!("status:{n}"),
            GrpcAnswer::Error(code, _) => format!("grpc:{code:?}"),
            GrpcAnswer::Hang => "hang".to_owned(),
        }
    }

    /// A short description recorded as `RecordedDelivery::answered` for a gRPC delivery.
    pub(crate) fn grpc_describe(&self) -> String {
        let what = match self.grpc() {
            GrpcAnswer::Status(n) => format!("TopicEventResponse{{status: {n}}}"),
            GrpcAnswer::Error(code, msg) => format!("error {code:?}: {msg}"),
            GrpcAnswer::Hang => "hang".to_owned(),
        };
        if self.delay.is_zero() {
            what
        } else {
            format!("after {:?}: {what}", self.delay)
        }
    }
}

/// The gRPC code for an HTTP status (gRPC-gateway's table, read backwards).
fn code_for_http(status: u16) -> Code {
    match status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        500..=599 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// Serves `AppCallback` on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let service = AppCallbackServer::new(Callback {
        shared,
        shutdown: shutdown.clone(),
    });
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // Errors here are the listener's; the app's owner sees them as a sidecar that cannot reach
    // the app.
    let _ = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stopping(shutdown))
        .await;
}

struct Callback {
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
}

impl Callback {
    /// Waits `delay`, or fails the call as UNAVAILABLE if the app stops first.
    async fn pause(&self, delay: Duration) -> Result<(), Status> {
        if delay.is_zero() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = stopping(self.shutdown.clone()) => Err(Status::unavailable("the test app stopped")),
        }
    }
}

fn headers(md: &MetadataMap) -> Vec<(String, String)> {
    md.iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => Some((
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_encoded_bytes()).into_owned(),
            )),
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect()
}

/// Implements `AppCallback` for `Callback`: each listed method is refused as UNIMPLEMENTED with
/// its reason; the methods in braces are written out.
macro_rules! app_callback {
    ($($method:ident($req:ty) -> $resp:ty: $why:literal;)* { $($written:tt)* }) => {
        #[tonic::async_trait]
        impl AppCallback for Callback {
            $(
                async fn $method(&self, _request: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented($why))
                }
            )*
            $($written)*
        }
    };
}

app_callback! {
    on_invoke(InvokeRequest) -> InvokeResponse: "the test app serves no invocations";
    on_binding_event(BindingEventRequest) -> BindingEventResponse: "the test app has no bindings";
    on_job_event(JobEventRequest) -> JobEventResponse: "the test app has no jobs";
    on_bulk_topic_event(TopicEventBulkRequest) -> TopicEventBulkResponse:
        "the test app takes deliveries one by one";
    {
        async fn list_topic_subscriptions(
            &self,
            request: Request<()>,
        ) -> Result<Response<ListTopicSubscriptionsResponse>, Status> {
            let incoming = Incoming {
                method: "ListTopicSubscriptions".to_owned(),
                path: "/dapr/subscribe".to_owned(),
                query: None,
                headers: headers(request.metadata()),
                body: bytes::Bytes::new(),
            };
            let Some((status, body, delay)) = self.shared.discovery_answer(incoming) else {
                // gRPC's form of a dropped call: the call fails, as when the app is not ready.
                return Err(Status::unavailable("the test app dropped this call"));
            };
            self.pause(delay).await?;
            match status {
                200..=299 => match topic_subscriptions(&body) {
                    Ok(subscriptions) => Ok(Response::new(ListTopicSubscriptionsResponse {
                        subscriptions,
                    })),
                    Err(e) => Err(Status::internal(format!(
                        "the test's subscriptions have no gRPC form: {e}"
                    ))),
                },
                404 => Err(Status::unimplemented("scripted 404")),
                other => Err(Status::new(
                    code_for_http(other),
                    format!("scripted HTTP status {other}"),
                )),
            }
        }

        async fn on_topic_event(
            &self,
            request: Request<TopicEventRequest>,
        ) -> Result<Response<TopicEventResponse>, Status> {
            let headers = headers(request.metadata());
            let event = request.into_inner();
            let incoming = Incoming {
                method: "OnTopicEvent".to_owned(),
                path: event.path.clone(),
                query: None,
                headers,
                body: bytes::Bytes::from(cloud_event(&event).to_string()),
            };
            let (action, _in_flight) = self.shared.take_delivery(incoming, true);
            self.pause(action.delay).await?;
            match action.grpc() {
                GrpcAnswer::Status(status) => Ok(Response::new(TopicEventResponse { status })),
                GrpcAnswer::Error(code, msg) => Err(Status::new(code, msg)),
                GrpcAnswer::Hang => {
                    stopping(self.shutdown.clone()).await;
                    Err(Status::unavailable("the test app stopped"))
                }
            }
        }

        async fn list_input_bindings(
            &self,
            _request: Request<()>,
        ) -> Result<Response<ListInputBindingsResponse>, Status> {
            Ok(Response::new(ListInputBindingsResponse::default()))
        }
    }
}

/// The `/dapr/subscribe` JSON a test set, as `TopicSubscription`s: keys case-insensitive as
/// daprd reads them; a v1 `route` becomes the default route, `routes.rules` and
/// `routes.default` are kept, as are `deadLetterTopic`, `metadata` and `bulkSubscribe`.
pub(crate) fn topic_subscriptions(body: &[u8]) -> Result<Vec<TopicSubscription>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Array(entries) = value else {
        return Err("not a JSON array".into());
    };
    entries.iter().map(topic_subscription).collect()
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn text(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match get(obj, key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{key} is not a string: {other}")),
    }
}

fn topic_subscription(entry: &Value) -> Result<TopicSubscription, String> {
    let Value::Object(obj) = entry else {
        return Err(format!("entry is not an object: {entry}"));
    };
    let route = text(obj, "route")?;
    let routes = match get(obj, "routes") {
        Some(Value::Object(r)) => {
            let rules = match get(r, "rules") {
                Some(Value::Array(rules)) => rules
                    .iter()
                    .map(|rule| match rule {
                        Value::Object(o) => Ok(TopicRule {
                            r#match: text(o, "match")?,
                            path: text(o, "path")?,
                        }),
                        other => Err(format!("rule is not an object: {other}")),
                    })
                    .collect::<Result<Vec<_>, String>>()?,
                None | Some(Value::Null) => Vec::new(),
                Some(other) => return Err(format!("routes.rules is not an array: {other}")),
            };
            let default = text(r, "default")?;
            Some(TopicRoutes {
                rules,
                default: if default.is_empty() { route } else { default },
            })
        }
        None | Some(Value::Null) => Some(TopicRoutes {
            rules: Vec::new(),
            default: route,
        }),
        Some(other) => return Err(format!("routes is not an object: {other}")),
    };
    let metadata = match get(obj, "metadata") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("metadata.{k} is not a string: {other}")),
            })
            .collect::<Result<_, String>>()?,
        None | Some(Value::Null) => Default::default(),
        Some(other) => return Err(format!("metadata is not an object: {other}")),
    };
    let bulk_subscribe = match get(obj, "bulkSubscribe") {
        Some(Value::Object(b)) => Some(BulkSubscribeConfig {
            enabled: get(b, "enabled").and_then(Value::as_bool).unwrap_or(false),
            max_messages_count: get(b, "maxMessagesCount")
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0),
            max_await_duration_ms: get(b, "maxAwaitDurationMs")
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0),
        }),
        _ => None,
    };
    Ok(TopicSubscription {
        pubsub_name: text(obj, "pubsubname")?,
        topic: text(obj, "topic")?,
        metadata,
        routes,
        dead_letter_topic: text(obj, "deadLetterTopic")?,
        bulk_subscribe,
    })
}

/// The CloudEvent a `TopicEventRequest` carries, as JSON: its own fields, its extensions, and
/// `data` (parsed when the content type is JSON and it parses, a string when it is UTF-8,
/// otherwise `data_base64`).
pub(crate) fn cloud_event(e: &TopicEventRequest) -> Value {
    let mut obj = Map::new();
    if let Some(ext) = &e.extensions {
        for (k, v) in &ext.fields {
            obj.insert(k.clone(), json_value(v));
        }
    }
    for (k, v) in [
        ("id", &e.id),
        ("source", &e.source),
        ("type", &e.r#type),
        ("specversion", &e.spec_version),
        ("datacontenttype", &e.data_content_type),
    ] {
        obj.insert(k.to_owned(), Value::String(v.clone()));
    }
    let ct = e
        .data_content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json_type = ct == "application/json" || ct.ends_with("+json");
    let parsed = json_type
        .then(|| serde_json::from_slice::<Value>(&e.data).ok())
        .flatten();
    match (parsed, std::str::from_utf8(&e.data)) {
        (Some(v), _) => {
            obj.insert("data".to_owned(), v);
        }
        (None, Ok(s)) if !ct.starts_with("application/octet-stream") => {
            obj.insert("data".to_owned(), Value::String(s.to_owned()));
        }
        _ => {
            obj.insert(
                "data_base64".to_owned(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(&e.data)),
            );
        }
    }
    Value::Object(obj)
}

fn json_value(v: &prost_types::Value) -> Value {
    use prost_types::value::Kind as K;
    match &v.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::NumberValue(n)) => {
            // Integral numbers come back as integers, as they were published.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
        }
        Some(K::StringValue(s)) => Value::String(s.clone()),
        Some(K::ListValue(l)) => Value::Array(l.values.iter().map(json_value).collect()),
        Some(K::StructValue(s)) => Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Script;

    #[test]
    fn subscriptions_take_their_grpc_form() {
        let subs = topic_subscriptions(
            br#"[{"pubsubname":"p","topic":"t","route":"/a","deadLetterTopic":"d","metadata":{"rawPayload":"true"}},
                 {"PubSubName":"p","Topic":"u","routes":{"rules":[{"match":"event.type == 'x'","path":"/x"}],"default":"/b"}}]"#,
        )
        .expect("converts");
        assert_eq!(subs.len(), 2);
        assert_eq!(
            subs[0].routes.as_ref().map(|r| r.default.as_str()),
            Some("/a")
        );
        assert_eq!(subs[0].dead_letter_topic, "d");
        assert_eq!(
            subs[0].metadata.get("rawPayload").map(String::as_str),
            Some("true")
        );
        assert_eq!(subs[1].topic, "u");
        let r = subs[1].routes.as_ref().expect("routes");
        assert_eq!((r.rules[0].path.as_str(), r.default.as_str()), ("/x", "/b"));
        assert!(topic_subscriptions(b"{}").is_err());
        assert!(topic_subscriptions(br#"[{"topic":1}]"#).is_err());
    }

    #[test]
    fn answers_take_their_grpc_form() {
        let label = |s: Script| s.plan(1, None).grpc_label();
        assert_eq!(label(Script::Success), "SUCCESS");
        assert_eq!(label(Script::Empty2xx), "SUCCESS");
        assert_eq!(label(Script::Status("RETRY".into())), "RETRY");
        assert_eq!(label(Script::Status("DROP".into())), "DROP");
        assert_eq!(label(Script::Status("WHATEVER".into())), "status:3");
        assert_eq!(label(Script::Http(500)), "grpc:Internal");
        assert_eq!(label(Script::Http(404)), "grpc:NotFound");
        assert_eq!(label(Script::Grpc(12)), "grpc:Unimplemented");
        assert_eq!(label(Script::Hang), "hang");
    }

    #[test]
    fn cloud_events_are_put_back_together() {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert(
            "topic".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("orders".into())),
            },
        );
        let e = TopicEventRequest {
            id: "1".into(),
            data_content_type: "application/json".into(),
            data: br#"{"tck_id":"m1","n":2}"#.to_vec(),
            extensions: Some(prost_types::Struct { fields }),
            ..Default::default()
        };
        let v = cloud_event(&e);
        assert_eq!(v["data"]["tck_id"], "m1");
        assert_eq!(v["topic"], "orders");
        let raw = TopicEventRequest {
            data_content_type: "application/octet-stream".into(),
            data: b"{}".to_vec(),
            ..Default::default()
        };
        assert_eq!(cloud_event(&raw)["data_base64"], "e30=");
    }
}

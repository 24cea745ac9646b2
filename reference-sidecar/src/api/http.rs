//! axum routes of the HTTP API. Handlers validate in daprd's order (spec §1.2) and map every
//! failure through [`ApiError`].

#![expect(
    clippy::result_large_err,
    reason = "an ApiError is built once per failed request, off the hot path; boxing buys nothing"
)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::error::{ApiError, pubsub as err};
use crate::broker::Message;
use crate::cloudevent::{self, Overrides, PublishContext};
use crate::duration::parse_go_duration;
use crate::publish::with_policy;
use crate::resiliency::Direction;
use crate::runtime::{Component, Runtime};
use crate::scopes::Operation;
use crate::subscription::parse_go_bool;

/// The full router for one runtime.
pub fn router(rt: Arc<Runtime>) -> Router {
    let post_put = MethodFilter::POST.or(MethodFilter::PUT);
    Router::new()
        .route("/v1.0/publish/{pubsub}/{*topic}", on(post_put, publish))
        .route(
            "/v1.0/publish/bulk/{pubsub}/{*topic}",
            on(post_put, bulk_publish),
        )
        .route(
            "/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}",
            on(post_put, bulk_publish),
        )
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz_outbound))
        .route("/v1.0/metadata", get(metadata))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(rt.clone(), api_token))
        .with_state(rt)
}

/// `DAPR_API_TOKEN`: every request but the two health endpoints needs the exact token.
async fn api_token(State(rt): State<Arc<Runtime>>, mut req: Request, next: Next) -> Response {
    if let Some(expected) = &rt.config.api_token {
        let path = req.uri().path();
        let exempt = req.method() == http::Method::GET
            && (path == "/v1.0/healthz" || path == "/v1.0/healthz/outbound");
        if !exempt {
            let ok = req
                .headers()
                .get("dapr-api-token")
                .is_some_and(|v| v.as_bytes() == expected.as_bytes());
            if !ok {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "invalid api token\n",
                )
                    .into_response();
            }
        }
        req.headers_mut().remove("dapr-api-token");
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ERR_DIRECT_INVOKE",
        "failed getting app id either from the URL path or the header dapr-app-id",
    )
}

async fn healthz(State(rt): State<Arc<Runtime>>, RawQuery(q): RawQuery) -> Response {
    let appid = query_pairs(q.as_deref())
        .find(|(k, _)| k == "appid")
        .map(|(_, v)| v);
    if let Some(appid) = appid {
        if appid != rt.config.app_id {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_HEALTH_APPID_NOT_MATCH",
                "dapr app-id does not match",
            )
            .into_response();
        }
    }
    if rt.app_ready.load(Ordering::Acquire) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_NOT_READY",
            "dapr is not ready: [app]",
        )
        .into_response()
    }
}

async fn healthz_outbound() -> StatusCode {
    // Listening implies components are loaded: the API starts only after them.
    StatusCode::NO_CONTENT
}

async fn metadata(State(rt): State<Arc<Runtime>>) -> Response {
    let components: Vec<Value> = rt
        .components
        .values()
        .map(|c| {
            let mut v = json!({"name": c.name, "type": c.type_, "version": c.version});
            let caps = c.broker.capabilities();
            if !caps.is_empty() {
                v["capabilities"] = json!(caps);
            }
            v
        })
        .collect();
    let subscriptions: Vec<Value> = rt
        .subscriptions()
        .iter()
        .map(|s| {
            let mut v = json!({
                "pubsubname": s.pubsub,
                "topic": s.topic,
                "deadLetterTopic": s.dead_letter_topic.clone().unwrap_or_default(),
                "type": s.kind.as_str(),
            });
            if !s.metadata.is_empty() {
                v["metadata"] = json!(s.metadata);
            }
            if !s.rules.is_empty() {
                let rules: Vec<Value> = s
                    .rules
                    .iter()
                    .map(|r| {
                        if r.expr.is_empty() {
                            json!({"path": r.path})
                        } else {
                            json!({"match": r.expr, "path": r.path})
                        }
                    })
                    .collect();
                v["rules"] = Value::Array(rules);
            }
            v
        })
        .collect();
    let mut body = json!({
        "id": rt.config.app_id,
        "runtimeVersion": concat!("refsidecar-", env!("CARGO_PKG_VERSION")),
        "enabledFeatures": [],
        "components": components,
        "subscriptions": subscriptions,
        "extended": {"daprRuntimeVersion": concat!("refsidecar-", env!("CARGO_PKG_VERSION"))},
        "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": false},
    });
    if let Some(port) = rt.config.app_port {
        body["appConnectionProperties"] = json!({
            "port": port,
            "protocol": rt.config.app_protocol,
            "channelAddress": rt.config.app_channel_address,
        });
    }
    axum::Json(body).into_response()
}

fn query_pairs(q: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// `metadata.*` query parameters, prefix stripped, first value of a repeated key.
fn publish_metadata(q: Option<&str>) -> BTreeMap<String, String> {
    let mut md = BTreeMap::new();
    for (k, v) in query_pairs(q) {
        if let Some(key) = k.strip_prefix("metadata.") {
            md.entry(key.to_owned()).or_insert(v);
        }
    }
    md
}

/// `ttlInSeconds` / `ttl` (case-insensitive): integer seconds or a Go duration; invalid, zero or
/// negative values are ignored, as in daprd.
fn ttl(md: &BTreeMap<String, String>) -> Option<Duration> {
    let v = md
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("ttlInSeconds") || k.eq_ignore_ascii_case("ttl"))?
        .1;
    if let Ok(secs) = v.trim().parse::<i64>() {
        return (secs > 0).then(|| Duration::from_secs(secs as u64));
    }
    parse_go_duration(v).ok().filter(|d| !d.is_zero())
}

fn trace_headers(headers: &HeaderMap) -> (String, String) {
    let get = |k| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    (get("traceparent"), get("tracestate"))
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| err::too_large(limit))
}

fn component<'a>(
    rt: &'a Runtime,
    name: &str,
    md: &BTreeMap<String, String>,
) -> Result<&'a Component, ApiError> {
    rt.components
        .get(name)
        .ok_or_else(|| err::not_found(name, md))
}

fn raw_payload(name: &str, md: &BTreeMap<String, String>) -> Result<bool, ApiError> {
    match md.get("rawPayload") {
        None => Ok(false),
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            err::request_metadata(
                name,
                &format!("rawPayload value must be a valid boolean: actual is '{v}'"),
                md,
            )
        }),
    }
}

async fn publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let md = publish_metadata(q.as_deref());
    let comp = component(&rt, &pubsub, &md)?;
    let body = read_body(body, rt.config.max_body_size).await?;
    let raw = raw_payload(&pubsub, &md)?;
    let data = if raw {
        body
    } else {
        let (traceparent, tracestate) = trace_headers(&headers);
        let ctx = PublishContext {
            pubsub: &pubsub,
            topic: &topic,
            app_id: &rt.config.app_id,
            traceparent: &traceparent,
            tracestate: &tracestate,
            ttl: ttl(&md).filter(|_| !comp.broker.native_ttl()),
            overrides: Overrides::from_metadata(&md),
            now: time::OffsetDateTime::now_utc(),
        };
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let envelope = cloudevent::envelope(&ctx, content_type, &body)
            .map_err(|e| err::cloud_event(&pubsub, &rt.config.app_id, &e.to_string()))?;
        Bytes::from(envelope)
    };
    if !comp
        .scopes
        .allows(&rt.config.app_id, &topic, Operation::Publish)
    {
        return Err(err::forbidden(&pubsub, &topic, &rt.config.app_id));
    }
    let msg = Message {
        data,
        metadata: Arc::new(md),
    };
    let policy = rt.resiliency.resolve(&pubsub, Direction::Outbound);
    with_policy(&policy, || comp.broker.publish(&topic, msg.clone()))
        .await
        .map_err(|e| err::publish_failed(&pubsub, &topic, &e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// One entry of a bulk publish request.
struct BulkEntry {
    id: String,
    data: Bytes,
    content_type: String,
    metadata: Option<BTreeMap<String, String>>,
}

fn bulk_entries(
    pubsub: &str,
    topic: &str,
    body: &[u8],
    md: &BTreeMap<String, String>,
) -> Result<Vec<BulkEntry>, ApiError> {
    let unmarshal = |e: String| {
        err::events_ser(
            pubsub,
            "DAPR_PUBSUB_UNMARSHAL_EVENTS",
            format!("error when unmarshaling the request for topic {topic} pubsub {pubsub}: {e}"),
            md,
        )
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| unmarshal(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(unmarshal("the body is not a JSON array".into()));
    };
    let marshal = |m: String| err::events_ser(pubsub, "DAPR_PUBSUB_MARSHAL_EVENTS", m, md);
    let envelope_err = |m: String| err::events_ser(pubsub, "DAPR_PUBSUB_MARSHAL_ENVELOPE", m, md);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(unmarshal(format!("entry {i} is not an object")));
        };
        let get = |k: &str| {
            obj.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let id = get("entryId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if id.is_empty() {
            return Err(marshal(format!(
                "entryId is duplicated or not present for entry {i}"
            )));
        }
        if !seen.insert(id.clone()) {
            return Err(marshal(format!(
                "entryId is duplicated or not present for entry {id}"
            )));
        }
        let content_type = get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let event = get("event").cloned().unwrap_or(Value::Null);
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let data = match media.as_str() {
            "application/octet-stream" => {
                let s = event.as_str().ok_or_else(|| {
                    envelope_err(format!(
                        "entry {id}: octet-stream event must be a base64 string"
                    ))
                })?;
                Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| envelope_err(format!("entry {id}: invalid base64: {e}")))?,
                )
            }
            "application/json" | "application/cloudevents+json" => Bytes::from(event.to_string()),
            m if m.starts_with("text/") || m == "application/xml" => {
                let s = event.as_str().ok_or_else(|| {
                    envelope_err(format!("entry {id}: {m} event must be a string"))
                })?;
                Bytes::copy_from_slice(s.as_bytes())
            }
            m => {
                return Err(envelope_err(format!(
                    "entry {id}: cannot convert an event with content type {m:?}"
                )));
            }
        };
        let metadata = match get("metadata") {
            Some(Value::Object(m)) => Some(
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect(),
            ),
            _ => None,
        };
        out.push(BulkEntry {
            id,
            data,
            content_type,
            metadata,
        });
    }
    Ok(out)
}

async fn bulk_publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let md = publish_metadata(q.as_deref());
    let comp = component(&rt, &pubsub, &md)?;
    let body = read_body(body, rt.config.max_body_size).await?;
    let raw = raw_payload(&pubsub, &md)?;
    let entries = bulk_entries(&pubsub, &topic, &body, &md)?;
    if !comp
        .scopes
        .allows(&rt.config.app_id, &topic, Operation::Publish)
    {
        return Err(err::forbidden(&pubsub, &topic, &rt.config.app_id));
    }
    let (traceparent, tracestate) = trace_headers(&headers);
    let policy = rt.resiliency.resolve(&pubsub, Direction::Outbound);
    let now = time::OffsetDateTime::now_utc();
    // Entries are published concurrently, as daprd does for brokers without native bulk publish.
    let results = futures::future::join_all(entries.into_iter().map(|e| {
        let policy = &policy;
        let (traceparent, tracestate) = (&traceparent, &tracestate);
        let (pubsub, topic, rt) = (&pubsub, &topic, &rt);
        async move {
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
                    traceparent,
                    tracestate,
                    ttl: ttl(&entry_md).filter(|_| !comp.broker.native_ttl()),
                    overrides: Overrides::from_metadata(&entry_md),
                    now,
                };
                match cloudevent::envelope(&ctx, Some(&e.content_type), &e.data) {
                    Ok(b) => Bytes::from(b),
                    Err(err) => return Err((e.id, err.to_string())),
                }
            };
            let msg = Message {
                data,
                metadata: Arc::new(entry_md),
            };
            with_policy(policy, || comp.broker.publish(topic, msg.clone()))
                .await
                .map_err(|err| (e.id, err.to_string()))
        }
    }))
    .await;
    let failed: Vec<Value> = results
        .into_iter()
        .filter_map(Result::err)
        .map(|(id, error)| json!({"entryId": id, "error": error}))
        .collect();
    if failed.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body = json!({"failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"});
    let text = body.to_string();
    let mut resp = (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        text.clone(),
    )
        .into_response();
    if let Ok(v) = http::HeaderValue::from_str(&text) {
        resp.headers_mut().insert("metadata.responsedata", v);
    }
    Ok(resp)
}

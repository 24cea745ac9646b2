//! axum routes of the HTTP API: publish and bulk publish (the logic is in `publish.rs`, shared
//! with gRPC), health, metadata, the state subset and self-invocation. Handlers validate in
//! daprd's order (spec §1.2) and map every failure through [`ApiError`].

#![expect(
    clippy::result_large_err,
    reason = "an ApiError is built once per failed request, off the hot path; boxing buys nothing"
)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, any, get, on};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::error::{ApiError, invoke as invoke_err, pubsub as err, state as state_err};
use crate::publish::{self, BulkEntry, BulkRequest, PublishRequest, Trace, Transport};
use crate::runtime::Runtime;

/// The full router for one runtime.
pub fn router(rt: Arc<Runtime>) -> Router {
    let post_put = MethodFilter::POST.or(MethodFilter::PUT);
    let router = Router::new()
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
        .route("/v1.0/state/{store}", on(post_put, save_state))
        .route(
            "/v1.0/state/{store}/{*key}",
            get(get_state).delete(delete_state),
        )
        .route("/v1.0/invoke/{app_id}/method/{*path}", any(invoke))
        .fallback(not_found);
    // Without DAPR_API_TOKEN the check is a no-op; leaving the layer out saves a boxed future
    // per request on the publish path.
    let router = if rt.config.api_token.is_some() {
        router.layer(middleware::from_fn_with_state(rt.clone(), api_token))
    } else {
        router
    };
    router.with_state(rt)
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
                .is_some_and(|v| expected.matches(v.as_bytes()));
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

/// Unmatched paths: service invocation when a `dapr-app-id` header names the target (daprd's
/// header form), else daprd's 404.
async fn not_found(State(rt): State<Arc<Runtime>>, req: Request) -> Response {
    let app_id = req
        .headers()
        .get("dapr-app-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    match app_id {
        Some(app_id) => {
            let path = req.uri().path().to_owned();
            forward_invocation(&rt, &app_id, &path, req).await
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_DIRECT_INVOKE",
            "failed getting app id either from the URL path or the header dapr-app-id",
        )
        .into_response(),
    }
}

async fn healthz(State(rt): State<Arc<Runtime>>, RawQuery(q): RawQuery) -> Response {
    let appid = query_pairs(q.as_deref())
        .find(|(k, _)| k == "appid")
        .map(|(_, v)| v);
    if let Some(appid) = appid
        && appid != rt.config.app_id
    {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_APPID_NOT_MATCH",
            "dapr app-id does not match",
        )
        .into_response();
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
    let pubsubs = rt
        .components
        .values()
        .map(|c| (&c.name, &c.type_, &c.version, c.broker.capabilities()));
    let stores = rt
        .state_stores
        .values()
        .map(|s| (&s.name, &s.type_, &s.version, s.store.capabilities()));
    let components: Vec<Value> = pubsubs
        .chain(stores)
        .map(|(name, type_, version, caps)| {
            let mut v = json!({"name": name, "type": type_, "version": version});
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
        "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": false, "placement": super::ACTORS_PLACEMENT},
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

fn trace_headers(headers: &HeaderMap) -> Trace {
    let get = |k| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    Trace {
        traceparent: get("traceparent"),
        tracestate: get("tracestate"),
    }
}

/// The whole body, up to `limit` bytes: 413 only when the limit is what stopped it; a body that
/// cannot be read (a client gone mid-body, broken chunking) is a 400 naming why.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return err::too_large(limit);
            }
            source = s.source();
        }
        err::unreadable_body(&e)
    })
}

async fn publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Result<StatusCode, ApiError> {
    let metadata = publish_metadata(q.as_deref());
    // The component is looked up before the body is read, as daprd does.
    let comp = publish::lookup(&rt, &pubsub, &topic, &metadata)?;
    // The headers are read in place (the `HeaderMap` extractor would clone them).
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let data = read_body(body, rt.config.max_body_size).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let req = PublishRequest {
        pubsub,
        topic,
        data,
        content_type,
        metadata,
        trace: trace_headers(headers),
        transport: Transport::Http,
    };
    publish::publish_one(&rt, comp, req).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let metadata = publish_metadata(q.as_deref());
    let comp = publish::lookup(&rt, &pubsub, &topic, &metadata)?;
    let body = read_body(body, rt.config.max_body_size).await?;
    // daprd validates `rawPayload` before it parses the entries.
    publish::raw_payload(&pubsub, &metadata)?;
    let entries = bulk_entries(&pubsub, &topic, &body, &metadata)?;
    let req = BulkRequest {
        pubsub,
        topic,
        metadata,
        entries,
        trace: trace_headers(&headers),
    };
    let failed = publish::publish_bulk(&rt, comp, req).await?;
    if failed.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let failed: Vec<Value> = failed
        .into_iter()
        .map(|f| json!({"entryId": f.id, "error": f.error}))
        .collect();
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

/// The state store named in the path, or daprd's error (no stores at all is a 500).
fn state_store<'a>(
    rt: &'a Runtime,
    name: &str,
) -> Result<&'a crate::runtime::StateComponent, ApiError> {
    if rt.state_stores.is_empty() {
        return Err(state_err::not_configured());
    }
    rt.state_stores
        .get(name)
        .ok_or_else(|| state_err::not_found(name))
}

/// One item of a save request.
struct SaveItem {
    key: String,
    value: Bytes,
    etag: Option<String>,
}

/// `[{key, value, etag?, metadata?, options?}]`, field names case-insensitive as Go decodes them.
/// daprd re-encodes the decoded `value`; we store its compact JSON text (Go would also sort
/// object keys and print numbers as float64; that difference is not modelled).
fn save_items(body: &[u8]) -> Result<Vec<SaveItem>, ApiError> {
    let malformed =
        |e: String| state_err::malformed(format!("failed deserializing HTTP body: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(malformed("the body is not a JSON array".into()));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(malformed(format!("item {i} is not an object")));
        };
        let get = |k: &str| {
            obj.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let key = match get("key") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            _ => return Err(malformed(format!("item {i} has no key"))),
        };
        let etag = match get("etag") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.clone()),
            Some(_) => return Err(malformed(format!("item {i}: etag must be a string"))),
        };
        let value = get("value").cloned().unwrap_or(Value::Null);
        out.push(SaveItem {
            key,
            value: Bytes::from(value.to_string()),
            etag,
        });
    }
    Ok(out)
}

/// `POST /v1.0/state/{store}`: 204 once every item is saved. Items are saved in order and the
/// first failure answers (daprd's bulk set is not atomic either).
async fn save_state(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let comp = state_store(&rt, &store)?;
    let body = read_body(body, rt.config.max_body_size).await?;
    let items = save_items(&body)?;
    for item in items {
        let key = comp
            .key_prefix
            .apply(&rt.config.app_id, &store, &item.key)
            .map_err(state_err::malformed)?;
        comp.store
            .set(&key, item.value, item.etag.as_deref())
            .await
            .map_err(|e| state_err::save(&store, &e))?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1.0/state/{store}/{key}`: 200 with the stored JSON and an `ETag`, or 204 when missing.
async fn get_state(
    State(rt): State<Arc<Runtime>>,
    Path((store, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let comp = state_store(&rt, &store)?;
    let full_key = comp
        .key_prefix
        .apply(&rt.config.app_id, &store, &key)
        .map_err(state_err::malformed)?;
    let item = comp
        .store
        .get(&full_key)
        .await
        .map_err(|e| state_err::get(&store, &key, &e))?;
    let Some(item) = item else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        item.value,
    )
        .into_response();
    if let Some(v) = item.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `DELETE /v1.0/state/{store}/{key}`: 204; the ETag comes in `If-Match`, as in daprd.
async fn delete_state(
    State(rt): State<Arc<Runtime>>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let comp = state_store(&rt, &store)?;
    let full_key = comp
        .key_prefix
        .apply(&rt.config.app_id, &store, &key)
        .map_err(state_err::malformed)?;
    // A malformed If-Match must not turn into an unconditional delete.
    let etag = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            state_err::malformed("the If-Match header is not a valid ETag string".to_owned())
        })?),
    };
    comp.store
        .delete(&full_key, etag)
        .await
        .map_err(|e| state_err::delete(&key, &e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `ANY /v1.0/invoke/{app-id}/method/{path}`.
async fn invoke(
    State(rt): State<Arc<Runtime>>,
    Path((app_id, _)): Path<(String, String)>,
    req: Request,
) -> Response {
    // The raw (still percent-encoded) path after `/method/`, not axum's decoded capture.
    let method_path = req
        .uri()
        .path()
        .splitn(6, '/')
        .nth(5)
        .unwrap_or("")
        .to_owned();
    forward_invocation(&rt, &app_id, &method_path, req).await
}

/// Go's `path.Clean` of `/` + `path`, as daprd normalises an invoked method.
fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&segments.join("/"));
    out
}

/// Forwards an invocation of `app_id` to this sidecar's own app and passes the answer through
/// (status, headers, body, non-2xx included). Other app ids need name resolution, which this
/// sidecar does not have.
async fn forward_invocation(rt: &Runtime, app_id: &str, path: &str, req: Request) -> Response {
    if app_id != rt.config.app_id {
        return invoke_err::failed(
            app_id,
            &format!(
                "name resolution is not supported: only the sidecar's own app ({}) can be invoked",
                rt.config.app_id
            ),
        )
        .into_response();
    }
    let Some(app) = &rt.app else {
        return invoke_err::failed(app_id, "app channel is not initialized (no --app-port)")
            .into_response();
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(body, rt.config.max_body_size).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut target = clean_path(path);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut headers = parts.headers;
    if let Ok(v) = HeaderValue::from_str(&rt.config.app_id) {
        headers.insert("dapr-caller-app-id", v.clone());
        headers.insert("dapr-callee-app-id", v);
    }
    match app.forward(parts.method, &target, headers, body).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            crate::app_channel::strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => {
            tracing::warn!(app_id, path = %target, "invocation failed: {}", super::error::chain(&e));
            invoke_err::failed(app_id, &super::error::chain(&e)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_are_cleaned() {
        for (path, expect) in [
            ("orders/42", "/orders/42"),
            ("", "/"),
            ("a//b/./c/", "/a/b/c"),
            ("a/../../b", "/b"),
        ] {
            assert_eq!(clean_path(path), expect, "{path:?}");
        }
    }

    #[test]
    fn save_bodies() {
        let items = save_items(
            br#"[{"key":"a","value":{"x":1}},{"Key":"b","value":"s","etag":"3","options":{}}]"#,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].value, Bytes::from_static(br#"{"x":1}"#));
        assert_eq!(items[1].key, "b");
        assert_eq!(items[1].value, Bytes::from_static(br#""s""#));
        assert_eq!(items[1].etag.as_deref(), Some("3"));
        for bad in [
            &b"{"[..],
            b"{}",
            b"[1]",
            br#"[{"value":1}]"#,
            br#"[{"key":"a","etag":1}]"#,
        ] {
            let e = save_items(bad).err().unwrap();
            assert_eq!(
                e.code,
                "ERR_MALFORMED_REQUEST",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

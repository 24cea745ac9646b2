//! The Toxiproxy v2 HTTP API on axum: routes, request bodies, JSON replies and errors.
//!
//! Replies follow the Go server byte for byte where a client could tell: key order, status
//! codes (201 for a created proxy and for populate, 200 for a created toxic, 204 for
//! deletes and reset), error bodies `{"error","status"}` sent as text with a trailing
//! newline (Go's `http.Error`), `null` for an empty populate list, and a 403 for browsers.
//! Request bodies are read as the Go decoder reads them: the first JSON value counts,
//! unknown keys are ignored, `null` means "not given".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{MappedMutexGuard, MutexGuard};

use super::proxy::{ListenError, Proxy};
use super::toxics::{Attributes, Kind, Stream, ToxicEntry, Toxicity};
use super::{API_VERSION, Shared};

type AppState = State<Arc<Shared>>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(list_proxies).post(create_proxy))
        .route(
            "/proxies/{proxy}",
            get(show_proxy)
                .patch(update_proxy)
                .post(update_proxy)
                .delete(delete_proxy),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(list_toxics).post(create_toxic),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .patch(update_toxic)
                .post(update_toxic)
                .delete(delete_toxic),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(guard))
        .with_state(shared)
}

/// An API failure: its status and message become `{"error","status"}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_body(cause: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {cause}"),
        )
    }

    fn missing(field: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("missing required field: {field}"),
        )
    }

    fn proxy_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "proxy not found")
    }

    fn toxic_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "toxic not found")
    }
}

impl From<ListenError> for ApiError {
    fn from(error: ListenError) -> ApiError {
        let status = match error {
            ListenError::NotLoopback { .. } => StatusCode::BAD_REQUEST,
            // The Go server answers 500 for anything that is not one of its API errors.
            ListenError::Resolve { .. } | ListenError::Bind { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, error_chain(&error))
    }
}

/// An error and its causes, `outer: inner: innermost`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            status: self.status.as_u16(),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        // As Go's http.Error: plain text, nosniff, a trailing newline.
        (
            self.status,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            format!("{text}\n"),
        )
            .into_response()
    }
}

/// A JSON reply.
fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
        }
    }
}

/// Reads the first JSON value of a body, as Go's `json.Decoder.Decode` does.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match serde_json::Deserializer::from_slice(body)
        .into_iter::<T>()
        .next()
    {
        None => Err(ApiError::bad_body("EOF")),
        Some(Err(error)) => Err(ApiError::bad_body(error)),
        Some(Ok(value)) => Ok(value),
    }
}

/// Rejects browsers (a CSRF guard of the Go server) and tags every reply with a request id.
async fn guard(request: Request, next: Next) -> Response {
    static REQUESTS: AtomicU64 = AtomicU64::new(1);
    let browser = request
        .headers()
        .get(header::USER_AGENT)
        .is_some_and(|ua| ua.as_bytes().starts_with(b"Mozilla/"));
    let mut response = if browser {
        (
            StatusCode::FORBIDDEN,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            "User agent not allowed\n",
        )
            .into_response()
    } else {
        next.run(request).await
    };
    let id = format!("{:020x}", REQUESTS.fetch_add(1, Ordering::Relaxed));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert("x-toxiproxy-request-id", value);
    }
    response
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "404 page not found\n",
    )
        .into_response()
}

// Wire shapes of replies, fields in the Go server's order.

#[derive(Serialize)]
struct ProxyJson<'a> {
    name: &'a str,
    listen: &'a str,
    upstream: &'a str,
    enabled: bool,
    toxics: Vec<ToxicJson<'a>>,
}

impl<'a> ProxyJson<'a> {
    fn of(proxy: &'a Proxy) -> ProxyJson<'a> {
        ProxyJson {
            name: &proxy.name,
            listen: &proxy.listen,
            upstream: &proxy.upstream,
            enabled: proxy.enabled(),
            toxics: proxy.toxics.all().map(|t| ToxicJson::of(t)).collect(),
        }
    }
}

#[derive(Serialize)]
struct ToxicJson<'a> {
    attributes: Attributes<'a>,
    name: &'a str,
    #[serde(rename = "type")]
    type_name: &'static str,
    stream: &'a str,
    toxicity: Toxicity,
}

impl<'a> ToxicJson<'a> {
    fn of(toxic: &'a ToxicEntry) -> ToxicJson<'a> {
        ToxicJson {
            attributes: Attributes(&toxic.kind),
            name: &toxic.name,
            type_name: toxic.kind.type_name(),
            stream: &toxic.stream_label,
            toxicity: Toxicity(toxic.toxicity),
        }
    }
}

// Request bodies. `Option` everywhere: a key that is missing or null keeps the default.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProxyInput {
    name: Option<String>,
    listen: Option<String>,
    upstream: Option<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ToxicInput {
    name: Option<String>,
    #[serde(rename = "type")]
    type_name: Option<String>,
    stream: Option<String>,
    toxicity: Option<f32>,
    attributes: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ToxicPatch {
    attributes: Option<Value>,
    toxicity: Option<f32>,
}

async fn version() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        format!("{{\"version\": \"{API_VERSION}\"}}\n"),
    )
        .into_response()
}

async fn list_proxies(State(shared): AppState) -> Response {
    let proxies = shared.proxies.lock().await;
    let body: BTreeMap<&str, ProxyJson<'_>> = proxies
        .iter()
        .map(|(name, proxy)| (name.as_str(), ProxyJson::of(proxy)))
        .collect();
    json(StatusCode::OK, &body)
}

async fn create_proxy(State(shared): AppState, body: Bytes) -> Result<Response, ApiError> {
    let input: ProxyInput = decode(&body)?;
    let name = input.name.unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::missing("name"));
    }
    let upstream = input.upstream.unwrap_or_default();
    if upstream.is_empty() {
        return Err(ApiError::missing("upstream"));
    }
    let mut proxies = shared.proxies.lock().await;
    if proxies.contains_key(&name) {
        return Err(ApiError::new(StatusCode::CONFLICT, "proxy already exists"));
    }
    let mut proxy = shared.new_proxy(name.clone(), input.listen.unwrap_or_default(), upstream);
    if input.enabled.unwrap_or(true) {
        proxy.start().await?;
    }
    let reply = json(StatusCode::CREATED, &ProxyJson::of(&proxy));
    proxies.insert(name, proxy);
    Ok(reply)
}

/// The reply of `POST /populate`, error or not.
#[derive(Serialize)]
struct PopulateReply {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// `null` when empty, as Go writes a nil slice.
    proxies: Option<Vec<Box<RawValue>>>,
}

impl PopulateReply {
    fn failed(error: ApiError, done: Vec<Box<RawValue>>) -> Response {
        let status = error.status;
        let reply = PopulateReply {
            error: Some(error.message),
            status: Some(status.as_u16()),
            proxies: Some(done).filter(|d| !d.is_empty()),
        };
        json(status, &reply)
    }
}

async fn populate(State(shared): AppState, body: Bytes) -> Response {
    let inputs: Vec<ProxyInput> = match decode(&body) {
        Ok(inputs) => inputs,
        Err(error) => return PopulateReply::failed(error, Vec::new()),
    };
    // Every entry is checked before any proxy changes.
    for (i, input) in inputs.iter().enumerate() {
        for (field, value) in [("name", &input.name), ("upstream", &input.upstream)] {
            if value.as_deref().unwrap_or_default().is_empty() {
                let error = ApiError::missing(&format!("{field} at proxy {}", i + 1));
                return PopulateReply::failed(error, Vec::new());
            }
        }
    }
    let mut proxies = shared.proxies.lock().await;
    let mut done = Vec::new();
    for input in inputs {
        let name = input.name.unwrap_or_default();
        let listen = input.listen.unwrap_or_default();
        let upstream = input.upstream.unwrap_or_default();
        if let Some(existing) = proxies.get_mut(&name) {
            match existing.differs(&listen, &upstream).await {
                Err(error) => return PopulateReply::failed(error.into(), done),
                // The same proxy is left alone, toxics, connections and state included.
                Ok(false) => {
                    done.push(raw(&ProxyJson::of(existing)));
                    continue;
                }
                Ok(true) => existing.stop().await,
            }
        }
        let mut proxy = shared.new_proxy(name.clone(), listen, upstream);
        if input.enabled.unwrap_or(true)
            && let Err(error) = proxy.start().await
        {
            return PopulateReply::failed(error.into(), done);
        }
        done.push(raw(&ProxyJson::of(&proxy)));
        proxies.insert(name, proxy);
    }
    let reply = PopulateReply {
        error: None,
        status: None,
        proxies: Some(done).filter(|d| !d.is_empty()),
    };
    json(StatusCode::CREATED, &reply)
}

/// A reply fragment serialized now, keeping its key order.
fn raw(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| {
        // Serializing these plain structs cannot fail; `null` keeps the reply well formed.
        RawValue::NULL.to_owned()
    })
}

/// Proxy `name`, locked with every other proxy for as long as it is held, or the Go server's
/// 404.
async fn locked_proxy<'a>(
    shared: &'a Shared,
    name: &str,
) -> Result<MappedMutexGuard<'a, Proxy>, ApiError> {
    let proxies = shared.proxies.lock().await;
    MutexGuard::try_map(proxies, |proxies| proxies.get_mut(name))
        .map_err(|_| ApiError::proxy_not_found())
}

async fn show_proxy(
    State(shared): AppState,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let proxy = locked_proxy(&shared, &name).await?;
    Ok(json(StatusCode::OK, &ProxyJson::of(&proxy)))
}

async fn update_proxy(
    State(shared): AppState,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut proxy = locked_proxy(&shared, &name).await?;
    let input: ProxyInput = decode(&body)?;
    let was_enabled = proxy.enabled();
    let listen = input.listen.unwrap_or_else(|| proxy.listen.clone());
    let upstream = input.upstream.unwrap_or_else(|| proxy.upstream.clone());
    // A new listen address or upstream restarts the proxy, dropping its connections.
    if proxy.differs(&listen, &upstream).await? {
        proxy.stop().await;
        proxy.listen = listen;
        proxy.upstream = upstream;
    }
    if input.enabled.unwrap_or(was_enabled) {
        proxy.start().await?;
    } else {
        proxy.stop().await;
    }
    Ok(json(StatusCode::OK, &ProxyJson::of(&proxy)))
}

async fn delete_proxy(
    State(shared): AppState,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut proxies = shared.proxies.lock().await;
    let mut proxy = proxies
        .remove(&name)
        .ok_or_else(ApiError::proxy_not_found)?;
    proxy.stop().await;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(State(shared): AppState) -> Result<StatusCode, ApiError> {
    let mut proxies = shared.proxies.lock().await;
    for proxy in proxies.values_mut() {
        proxy.start().await?;
        proxy.toxics.clear();
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_toxics(
    State(shared): AppState,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let proxy = locked_proxy(&shared, &name).await?;
    let toxics: Vec<ToxicJson<'_>> = proxy.toxics.all().map(|t| ToxicJson::of(t)).collect();
    Ok(json(StatusCode::OK, &toxics))
}

async fn create_toxic(
    State(shared): AppState,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut proxy = locked_proxy(&shared, &name).await?;
    let input: ToxicInput = decode(&body)?;
    let stream_label = input.stream.unwrap_or_else(|| "downstream".to_owned());
    let stream = Stream::parse(&stream_label).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "stream was invalid, can be either upstream or downstream",
        )
    })?;
    let type_name = input.type_name.unwrap_or_default();
    let toxic_name = input
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{type_name}_{stream_label}"));
    let zero = Kind::zero(&type_name)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid toxic type"))?;
    if proxy.toxics.find(&toxic_name).is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "toxic already exists"));
    }
    let kind = zero
        .merge(input.attributes.as_ref().unwrap_or(&Value::Null))
        .map_err(ApiError::bad_body)?;
    let toxic = proxy.toxics.add(
        toxic_name,
        stream,
        stream_label,
        input.toxicity.unwrap_or(1.0),
        kind,
    );
    Ok(json(StatusCode::OK, &ToxicJson::of(&toxic)))
}

async fn show_toxic(
    State(shared): AppState,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let proxy = locked_proxy(&shared, &name).await?;
    let toxic = proxy
        .toxics
        .find(&toxic)
        .ok_or_else(ApiError::toxic_not_found)?;
    Ok(json(StatusCode::OK, &ToxicJson::of(toxic)))
}

async fn update_toxic(
    State(shared): AppState,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut proxy = locked_proxy(&shared, &name).await?;
    let current = Arc::clone(
        proxy
            .toxics
            .find(&toxic)
            .ok_or_else(ApiError::toxic_not_found)?,
    );
    let patch: ToxicPatch = decode(&body)?;
    // Only attributes (merged) and toxicity change; name, type and stream are fixed.
    let kind = current
        .kind
        .merge(patch.attributes.as_ref().unwrap_or(&Value::Null))
        .map_err(ApiError::bad_body)?;
    let toxicity = patch.toxicity.unwrap_or(current.toxicity);
    let updated = proxy
        .toxics
        .update(&toxic, kind, toxicity)
        .ok_or_else(ApiError::toxic_not_found)?;
    Ok(json(StatusCode::OK, &ToxicJson::of(&updated)))
}

async fn delete_toxic(
    State(shared): AppState,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut proxy = locked_proxy(&shared, &name).await?;
    if !proxy.toxics.remove(&toxic) {
        return Err(ApiError::toxic_not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

//! axum routes of the HTTP API, one file per route family: `pubsub.rs` (publish and bulk
//! publish; the logic is in `crate::publish`, shared with gRPC), `health.rs` (health and
//! metadata), `state.rs` (the state subset) and `invoke.rs` (self-invocation). This file holds
//! the router, the API token check and the fallback. Handlers validate in daprd's order (spec
//! §1.2) and map every failure through [`ApiError`].

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

mod health;
mod invoke;
mod pubsub;
mod state;

use health::{healthz, healthz_outbound, metadata};
use invoke::{forward_invocation, invoke};
use pubsub::{bulk_publish, publish};
use state::{delete_state, get_state, save_state};

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

pub(super) fn query_pairs(q: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// The field `name` of a JSON object in a request body, matched case-insensitively as Go's
/// decoder matches field names.
pub(super) fn json_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'a Value> {
    obj.iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The whole body, up to `limit` bytes: 413 only when the limit is what stopped it; a body that
/// cannot be read (a client gone mid-body, broken chunking) is a 400 naming why.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
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

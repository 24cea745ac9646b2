//! API tokens (spec notes §8.7).

use serde_json::json;

use super::{line, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::trial::{DEADLINE, Scenario, Trial};

const TOKEN_DOC: Option<&str> = Some("https://docs.dapr.io/operations/security/api-token/");
const APP_TOKEN_DOC: Option<&str> = Some("https://docs.dapr.io/operations/security/app-api-token/");

/// The API token of the trials that set one.
pub(crate) const TOKEN: &str = "s3cret";

/// A sidecar that wants [`TOKEN`], with a subscriber on `orders`.
pub(crate) fn guarded() -> Scenario {
    Scenario::new()
        .api_token(TOKEN)
        .subscribe("orders", "/orders")
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::auth::token_required",
            Must,
            "With DAPR_API_TOKEN set, a publish without the token answers 401 and is not delivered",
            "daprd pkg/api/http/middlewares.go: API token authentication",
            TOKEN_DOC,
            [Need::Launch],
            token_required
        ),
        check!(
            "core::auth::every_route_needs_token",
            Must,
            "With DAPR_API_TOKEN set, every route of the HTTP API but health answers 401 without the token, and no unauthenticated publish is delivered",
            "daprd pkg/api/http/middlewares.go: the token middleware wraps the whole API router; only /v1.0/healthz and /v1.0/healthz/outbound are exempt",
            TOKEN_DOC,
            [Need::Launch],
            every_route_needs_token
        ),
        check!(
            "core::auth::every_grpc_method_needs_token",
            Must,
            "With DAPR_API_TOKEN set, every method of the gRPC API answers UNAUTHENTICATED without the token (streams included), and no unauthenticated publish is delivered",
            "daprd pkg/api/grpc: the token interceptors (unary and stream) wrap the whole Dapr service",
            TOKEN_DOC,
            [Need::Launch, Need::Capability("api.grpc")],
            every_grpc_method_needs_token
        ),
        check!(
            "core::auth::token_accepted",
            Must,
            "With DAPR_API_TOKEN set, a publish carrying dapr-api-token is accepted and delivered",
            "daprd API token authentication: dapr-api-token header",
            TOKEN_DOC,
            [Need::Launch],
            token_accepted
        ),
        check!(
            "core::auth::wrong_token_rejected",
            Must,
            "A wrong dapr-api-token answers 401",
            "daprd API token authentication: exact match",
            TOKEN_DOC,
            [Need::Launch],
            wrong_token_rejected
        ),
        check!(
            "core::auth::healthz_exempt",
            Must,
            "Health endpoints answer without the API token",
            "daprd middlewares.go: /v1.0/healthz and /v1.0/healthz/outbound are exempt",
            TOKEN_DOC,
            [Need::Launch],
            healthz_exempt
        ),
        check!(
            "core::auth::metadata_needs_token",
            Should,
            "The metadata API needs the API token too",
            "daprd middlewares.go: only health endpoints are exempt",
            TOKEN_DOC,
            [Need::Launch],
            metadata_needs_token
        ),
        check!(
            "core::auth::unauthorized_plain_text",
            Should,
            "A 401 for a missing token is plain text, as daprd sends it",
            "daprd middlewares.go: 401 text/plain \"invalid api token\"",
            TOKEN_DOC,
            [Need::Launch],
            unauthorized_plain_text
        ),
        check!(
            "core::auth::app_token_on_subscribe",
            Must,
            "With APP_API_TOKEN set, GET /dapr/subscribe carries dapr-api-token",
            "daprd app channel: APP_API_TOKEN on every app call",
            APP_TOKEN_DOC,
            [Need::Launch],
            app_token_on_subscribe
        ),
        check!(
            "core::auth::app_token_on_delivery",
            Must,
            "With APP_API_TOKEN set, every delivery carries dapr-api-token",
            "daprd tests/integration/suite/daprd/pubsub/http/appapitoken.go",
            APP_TOKEN_DOC,
            [Need::Launch],
            app_token_on_delivery
        ),
        check!(
            "core::auth::api_token_not_forwarded",
            Should,
            "The caller's dapr-api-token is not forwarded to the app",
            "daprd middlewares.go: the token header is removed before processing",
            TOKEN_DOC,
            [Need::Launch],
            api_token_not_forwarded
        ),
    ]
}

/// A client with no token (or another one) against the trial's sidecar.
fn client_with(t: &Trial, token: Option<&str>) -> Result<harness::SidecarClient, Problem> {
    Ok(harness::SidecarClient::new(
        t.client().base_url().to_owned(),
        token.map(str::to_owned),
    )?)
}

async fn token_required(t: &mut Trial) -> Result<(), Problem> {
    t.start(guarded()).await?;
    let anon = client_with(t, None)?;
    let r = anon
        .publish(
            "pubsub",
            "orders",
            bytes::Bytes::from_static(br#"{"tck_id":"anon"}"#),
            Some("application/json"),
            &[],
        )
        .await?;
    status_is("status without a token", 401, &r)?;
    t.nothing_on("/orders", "an unauthenticated publish was delivered")
        .await
}

/// One request of the API surface: method, path and body (JSON when present). `{app}` in the
/// path is the trial's app id.
struct Route {
    method: http::Method,
    path: &'static str,
    body: Option<&'static str>,
}

/// Every HTTP route a client may call, health excepted (`core::auth::healthz_exempt`), in one
/// table: a route added to the API surface is added here, and so gets its token check.
fn api_surface() -> Vec<Route> {
    use http::Method;
    let r = |method: Method, path: &'static str, body: Option<&'static str>| Route {
        method,
        path,
        body,
    };
    let bulk = Some(
        r#"[{"entryId":"1","event":{"tck_id":"anon-bulk"},"contentType":"application/json"}]"#,
    );
    vec![
        r(
            Method::POST,
            "/v1.0/publish/pubsub/orders",
            Some(r#"{"tck_id":"anon-publish"}"#),
        ),
        r(
            Method::POST,
            "/v1.0-alpha1/publish/bulk/pubsub/orders",
            bulk,
        ),
        r(Method::POST, "/v1.0/publish/bulk/pubsub/orders", bulk),
        r(Method::GET, "/v1.0/metadata", None),
        r(
            Method::PUT,
            "/v1.0/metadata/tck-attribute",
            Some(r#""value""#),
        ),
        r(Method::GET, "/v1.0/state/statestore/k", None),
        r(
            Method::POST,
            "/v1.0/state/statestore",
            Some(r#"[{"key":"k","value":"v"}]"#),
        ),
        r(Method::DELETE, "/v1.0/state/statestore/k", None),
        r(Method::GET, "/v1.0/invoke/{app}/method/orders", None),
        r(Method::POST, "/v1.0/invoke/{app}/method/orders", Some("{}")),
        r(Method::GET, "/v1.0/subscribe-or-anything-else", None),
    ]
}

async fn every_route_needs_token(t: &mut Trial) -> Result<(), Problem> {
    t.start(guarded()).await?;
    let anon = client_with(t, None)?;
    let app = t.app_id();
    let mut wrong = Vec::new();
    for route in api_surface() {
        let path = route.path.replace("{app}", &app);
        let headers: &[(&str, &str)] = if route.body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let r = anon
            .request(
                route.method.clone(),
                &path,
                route.body.map(|b| bytes::Bytes::from_static(b.as_bytes())),
                headers,
            )
            .await?;
        if r.status != 401 {
            wrong.push(format!("{} {path}: {}", route.method, line(&r)));
        }
    }
    let id = t.publish("orders", json!({})).await?;
    let total = format!("{} API routes", api_surface().len());
    sealed(t, &id, wrong, &total, "401").await
}

/// Every method of the gRPC API a client may call, in one table, each called without the token:
/// the method and what came back (`None` is UNAUTHENTICATED). A method added to the API is
/// added here and gets its token check; the publishing rows carry ids that must never be
/// delivered.
async fn grpc_surface(api: &harness::GrpcApiClient) -> Vec<(&'static str, Option<String>)> {
    use dapr::dapr::proto::runtime::v1 as pb;
    let unauthenticated = |r: Result<(), tonic::Status>| match r {
        Err(s) if s.code() == tonic::Code::Unauthenticated => None,
        Err(s) => Some(format!("{:?}: {}", s.code(), s.message())),
        Ok(()) => Some("OK".to_owned()),
    };
    let mut raw = api.raw();
    let publish = pb::PublishEventRequest {
        pubsub_name: harness_engine::trial::PUBSUB.into(),
        topic: "orders".into(),
        data: br#"{"tck_id":"anon-grpc-publish"}"#.to_vec(),
        data_content_type: "application/json".into(),
        metadata: Default::default(),
    };
    let bulk = pb::BulkPublishRequest {
        pubsub_name: harness_engine::trial::PUBSUB.into(),
        topic: "orders".into(),
        entries: vec![pb::BulkPublishRequestEntry {
            entry_id: "1".into(),
            event: br#"{"tck_id":"anon-grpc-bulk"}"#.to_vec(),
            content_type: "application/json".into(),
            metadata: Default::default(),
        }],
        metadata: Default::default(),
    };
    let initial = pb::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(
            pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType::InitialRequest(
                pb::SubscribeTopicEventsRequestInitialAlpha1 {
                    pubsub_name: harness_engine::trial::PUBSUB.into(),
                    topic: "orders".into(),
                    ..Default::default()
                },
            ),
        ),
    };
    // One row: the method's name and what calling it without the token answered.
    macro_rules! row {
        ($name:literal, $call:expr) => {
            ($name, unauthenticated($call.await.map(|_| ())))
        };
    }
    #[expect(deprecated, reason = "the Alpha1 method is still served to older SDKs")]
    let bulk_alpha = row!(
        "BulkPublishEventAlpha1",
        raw.bulk_publish_event_alpha1(bulk.clone())
    );
    let get_state = pb::GetStateRequest {
        store_name: "statestore".into(),
        key: "k".into(),
        ..Default::default()
    };
    let set_metadata = pb::SetMetadataRequest {
        key: "tck".into(),
        value: "v".into(),
    };
    vec![
        row!("PublishEvent", raw.publish_event(publish)),
        row!("BulkPublishEvent", raw.bulk_publish_event(bulk)),
        bulk_alpha,
        row!(
            "GetMetadata",
            raw.get_metadata(pb::GetMetadataRequest::default())
        ),
        row!("SetMetadata", raw.set_metadata(set_metadata)),
        row!("GetState", raw.get_state(get_state)),
        row!(
            "InvokeService",
            raw.invoke_service(pb::InvokeServiceRequest::default())
        ),
        row!(
            "SubscribeTopicEventsAlpha1",
            raw.subscribe_topic_events_alpha1(futures::stream::iter([initial]))
        ),
    ]
}

async fn every_grpc_method_needs_token(t: &mut Trial) -> Result<(), Problem> {
    t.start(guarded()).await?;
    let anon = t.grpc_api()?.without_token();
    let rows = grpc_surface(&anon).await;
    let total = rows.len();
    let wrong: Vec<String> = rows
        .into_iter()
        .filter_map(|(method, got)| got.map(|g| format!("{method} without a token: {g}")))
        .collect();
    let id = t.publish_grpc("orders", json!({}), &[]).await?;
    sealed(
        t,
        &id,
        wrong,
        &format!("{total} gRPC methods"),
        "UNAUTHENTICATED",
    )
    .await
}

/// The verdict of a token check over a whole surface (`total`, such as `12 API routes`): the
/// calls in `wrong` did not answer `refusal` without the token, and no unauthenticated publish
/// may be delivered either (see [`anonymous_deliveries`]).
async fn sealed(
    t: &Trial,
    barrier: &str,
    wrong: Vec<String>,
    total: &str,
    refusal: &str,
) -> Result<(), Problem> {
    let leaked = anonymous_deliveries(t, barrier).await?;
    ensure(
        wrong.is_empty() && leaked.is_empty(),
        format!(
            "{} of {total} did not answer {refusal} without the token; {} unauthenticated publishes were delivered",
            wrong.len(),
            leaked.len()
        ),
        wrong.into_iter().chain(leaked),
    )
}

/// The unauthenticated publishes (ids `anon-…`) delivered on `/orders`, one line each. A publish
/// the sidecar accepted without the token would arrive before `barrier`, published with it on
/// the same topic, or at the latest within the observation window after it.
async fn anonymous_deliveries(t: &Trial, barrier: &str) -> Result<Vec<String>, Problem> {
    t.wait_msg("/orders", barrier, 1).await?;
    let seen = t.quiet("/orders").await;
    Ok(seen
        .iter()
        .filter_map(|d| d.tck_id.as_deref().filter(|x| x.starts_with("anon-")))
        .map(|x| format!("delivered without a token: {x}"))
        .collect())
}

async fn token_accepted(t: &mut Trial) -> Result<(), Problem> {
    t.start(guarded()).await?;
    let id = t.publish("orders", json!({})).await?;
    t.wait_msg("/orders", &id, 1).await?;
    Ok(())
}

async fn wrong_token_rejected(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().api_token(TOKEN)).await?;
    let r = client_with(t, Some("S3CRET"))?.metadata().await?;
    status_is("status with a wrong token", 401, &r)
}

async fn healthz_exempt(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().api_token(TOKEN)).await?;
    let anon = client_with(t, None)?;
    for r in [anon.healthz().await?, anon.healthz_outbound().await?] {
        status_is("health status without a token", 204, &r)?;
    }
    Ok(())
}

async fn metadata_needs_token(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().api_token(TOKEN)).await?;
    let r = client_with(t, None)?.metadata().await?;
    status_is("metadata status without a token", 401, &r)
}

async fn unauthorized_plain_text(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().api_token(TOKEN)).await?;
    let r = client_with(t, None)?.metadata().await?;
    let ct = r.header("content-type").unwrap_or("").to_owned();
    ensure(
        ct.starts_with("text/plain"),
        format!("401 Content-Type is {ct:?}"),
        [line(&r)],
    )
}

async fn app_token_on_subscribe(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .app_api_token("app-secret")
            .subscribe("orders", "/orders"),
    )
    .await?;
    let calls = t.app().wait_subscribe_calls(1, DEADLINE).await?;
    let got = calls[0].header("dapr-api-token").map(str::to_owned);
    ensure_eq(
        "dapr-api-token on /dapr/subscribe",
        Some("app-secret".to_owned()),
        got,
        [format!("headers: {:?}", calls[0].headers)],
    )
}

/// With `scenario` up and subscribed to `orders`, the `dapr-api-token` header of a delivery,
/// and the delivery's headers as evidence.
async fn delivered_token(
    t: &mut Trial,
    scenario: Scenario,
) -> Result<(Option<String>, String), Problem> {
    t.start(scenario.subscribe("orders", "/orders")).await?;
    let id = t.publish("orders", json!({})).await?;
    let d = t.wait_msg("/orders", &id, 1).await?;
    let token = d[0].header("dapr-api-token").map(str::to_owned);
    Ok((token, format!("headers: {:?}", d[0].request.headers)))
}

async fn app_token_on_delivery(t: &mut Trial) -> Result<(), Problem> {
    let (got, headers) = delivered_token(t, Scenario::new().app_api_token("app-secret")).await?;
    ensure_eq(
        "dapr-api-token on the delivery",
        Some("app-secret".to_owned()),
        got,
        [headers],
    )
}

async fn api_token_not_forwarded(t: &mut Trial) -> Result<(), Problem> {
    let (leaked, headers) = delivered_token(t, Scenario::new().api_token("caller-secret")).await?;
    ensure(
        leaked.is_none(),
        "the caller's API token reached the app",
        [headers],
    )
}

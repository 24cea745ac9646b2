//! The gRPC publish API (`dapr.proto.runtime.v1.Dapr`: `PublishEvent`, `BulkPublishEvent`,
//! `GetMetadata`; spec notes §1.8, §1.5, §9): what a Go or Python SDK client sees.
//!
//! Each check needs the capability `api.grpc`. The harness is the gRPC client; what was
//! published is judged by what the HTTP test app receives.

use dapr::dapr::proto::runtime::v1::actor_runtime::ActorRuntimeStatus;
use dapr::dapr::proto::runtime::v1::{
    BulkPublishRequest, BulkPublishRequestEntry, PublishEventRequest,
};
use serde_json::{Value, json};
use tonic::Code;
use tonic::metadata::AsciiMetadataValue;

use super::{scoped, start_orders};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::trial::{PUBSUB, Scenario, Trial};

const GRPC_API: Need = Need::Capability("api.grpc");
const PROTO: Option<&str> =
    Some("https://github.com/dapr/dapr/blob/master/dapr/proto/runtime/v1/dapr.proto");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::grpc_api::publish_delivered",
            Must,
            "PublishEvent with JSON data answers OK and the subscriber receives a CloudEvent of it (source = app id, datacontenttype application/json, the data)",
            "daprd pkg/api/grpc/grpc.go PublishEvent: the same publish path and envelope as HTTP (spec §1.8)",
            PROTO,
            [Need::Launch, GRPC_API],
            publish_delivered
        ),
        check!(
            "core::grpc_api::empty_content_type_text",
            Must,
            "PublishEvent without data_content_type publishes text/plain: the data arrives as a string",
            "daprd pkg/api/grpc/grpc.go: an empty data_content_type is text/plain (spec §1.8)",
            PROTO,
            [Need::Launch, GRPC_API],
            empty_content_type_text
        ),
        check!(
            "core::grpc_api::unknown_pubsub_invalid_argument",
            Must,
            "PublishEvent to an unknown pubsub answers INVALID_ARGUMENT (not NOT_FOUND)",
            "daprd pkg/api/errors/pubsub.go NotFound: gRPC code InvalidArgument (spec §1.5)",
            PROTO,
            [Need::Launch, GRPC_API],
            unknown_pubsub_invalid_argument
        ),
        check!(
            "core::grpc_api::empty_topic_invalid_argument",
            Must,
            "PublishEvent with an empty topic answers INVALID_ARGUMENT",
            "daprd pkg/api/errors/pubsub.go TopicEmpty: gRPC code InvalidArgument (spec §1.5)",
            PROTO,
            [Need::Launch, GRPC_API],
            empty_topic_invalid_argument
        ),
        check!(
            "core::grpc_api::bad_raw_payload_invalid_argument",
            Must,
            "PublishEvent with metadata rawPayload \"maybe\" answers INVALID_ARGUMENT",
            "daprd pkg/api/errors/pubsub.go RequestMetadata: gRPC code InvalidArgument (spec §1.5)",
            PROTO,
            [Need::Launch, GRPC_API],
            bad_raw_payload_invalid_argument
        ),
        check!(
            "core::grpc_api::scopes_permission_denied",
            Must,
            "PublishEvent to a topic publishingScopes deny answers PERMISSION_DENIED, and nothing is delivered",
            "daprd pkg/api/errors/pubsub.go Forbidden: gRPC code PermissionDenied (spec §1.5)",
            PROTO,
            [Need::Launch, GRPC_API],
            scopes_permission_denied
        ),
        check!(
            "core::grpc_api::metadata_without_prefix",
            Must,
            "PublishEvent metadata keys carry no metadata. prefix: ttlInSeconds 60 gives the envelope an expiration",
            "daprd pkg/api/grpc/grpc.go: request metadata is the component metadata as is (spec §1.8, §2.6)",
            PROTO,
            [Need::Launch, GRPC_API],
            metadata_without_prefix
        ),
        check!(
            "core::grpc_api::raw_payload_delivered_raw",
            Must,
            "PublishEvent with rawPayload true publishes the bytes as they are: no envelope reaches the broker",
            "daprd pkg/api/grpc/grpc.go and runtime/pubsub: rawPayload skips the envelope (spec §2.5)",
            PROTO,
            [Need::Launch, GRPC_API],
            raw_payload_delivered_raw
        ),
        check!(
            "core::grpc_api::raw_payload_trace",
            Should,
            "PublishEvent with rawPayload true hands the call's trace to the component as metadata: a raw subscription's CloudEvent carries it as traceid and tracestate",
            "daprd pkg/api/grpc/grpc.go PublishEvent (a raw payload's metadata gets traceid and tracestate) and pkg/runtime/subscription/subscription.go (a raw payload's CloudEvent takes traceid and tracestate from the message metadata)",
            PROTO,
            [Need::Launch, GRPC_API],
            raw_payload_trace
        ),
        check!(
            "core::grpc_api::bulk_publish_delivered",
            Must,
            "BulkPublishEvent answers with no failed entries and every entry is delivered, an entry's metadata.cloudevent.type overriding its envelope type",
            "daprd pkg/api/grpc/grpc.go BulkPublishEvent (spec §1.7, §1.8)",
            PROTO,
            [Need::Launch, GRPC_API, Need::Capability("bulk")],
            bulk_publish_delivered
        ),
        check!(
            "core::grpc_api::bulk_duplicate_entry_id",
            Must,
            "BulkPublishEvent with a repeated entry_id answers INVALID_ARGUMENT and publishes nothing",
            "daprd pkg/api/grpc/grpc.go: entry ids must be unique (spec §1.7)",
            PROTO,
            [Need::Launch, GRPC_API, Need::Capability("bulk")],
            bulk_duplicate_entry_id
        ),
        check!(
            "core::grpc_api::token_required",
            Must,
            "With DAPR_API_TOKEN set, gRPC calls without the token or with a wrong one answer UNAUTHENTICATED; with it PublishEvent succeeds",
            "daprd pkg/api/grpc/grpc.go token interceptor: dapr-api-token metadata (spec §9)",
            Some("https://docs.dapr.io/operations/security/api-token/"),
            [Need::Launch, GRPC_API],
            token_required
        ),
        check!(
            "core::grpc_api::traceparent_propagated",
            Must,
            "PublishEvent's traceparent request metadata becomes the published event's trace: the CloudEvent's traceparent and the delivery's traceparent header",
            "daprd pkg/diagnostics/grpc_tracing.go SpanContextFromIncomingGRPCMetadata (traceparent when there is no grpc-trace-bin) and pkg/api/grpc/grpc.go PublishEvent (the envelope's trace from the call's span)",
            PROTO,
            [Need::Launch, GRPC_API],
            traceparent_propagated
        ),
        check!(
            "core::grpc_api::metadata_lists_subscriptions",
            Should,
            "GetMetadata reports the app id, the runtime version (also as extended_metadata daprRuntimeVersion), the pubsub component, the app connection (port, protocol), the actor runtime as DISABLED with placement disconnected (no placement service) and the app's subscription with its routing rules",
            "daprd pkg/api/universal/metadata.go: the same metadata as GET /v1.0/metadata; pkg/actors/actors.go RuntimeStatus (no placement addresses: DISABLED, \"placement: disconnected\")",
            PROTO,
            [Need::Launch, GRPC_API],
            metadata_lists_subscriptions
        ),
    ]
}

fn request(topic: &str, data: &[u8], content_type: &str) -> PublishEventRequest {
    PublishEventRequest {
        pubsub_name: PUBSUB.into(),
        topic: topic.into(),
        data: data.to_vec(),
        data_content_type: content_type.into(),
        metadata: Default::default(),
    }
}

/// `PublishEvent` with `headers` as the call's gRPC metadata (the trace context, say); any
/// status but OK is a failure.
async fn publish_with_headers(
    t: &Trial,
    req: PublishEventRequest,
    headers: &[(&'static str, &'static str)],
) -> Result<(), Problem> {
    let api = t.grpc_api()?;
    let mut call = api.request(req);
    for (k, v) in headers {
        call.metadata_mut()
            .insert(*k, AsciiMetadataValue::from_static(v));
    }
    api.raw()
        .publish_event(call)
        .await
        .map(|_| ())
        .map_err(|s| {
            Problem::fail(
                format!("PublishEvent answered {:?}", s.code()),
                vec![s.message().to_owned()],
            )
        })
}

/// Requires `result` to be the error `code`.
fn expect_code(what: &str, result: Result<(), tonic::Status>, code: Code) -> Result<(), Problem> {
    match result {
        Ok(()) => Err(Problem::fail(
            format!("{what} answered OK instead of {code:?}"),
            vec![],
        )),
        Err(s) => ensure_eq(
            &format!("gRPC code of {what}"),
            code,
            s.code(),
            [format!("message: {}", s.message())],
        ),
    }
}

async fn publish_delivered(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t.publish_grpc("orders", json!({"orderId": 7}), &[]).await?;
    let d = t.wait_msg("/orders", &id, 1).await?;
    let ce = d[0].body_json.clone().unwrap_or(Value::Null);
    ce_has(
        &ce,
        [
            ("source", Value::String(t.app_id())),
            ("datacontenttype", json!("application/json")),
            ("data.orderId", json!(7)),
        ],
    )
}

/// Requires the delivered CloudEvent `ce` to hold each `(attribute, value)`; an attribute is
/// a key or a dotted path (`data.orderId`).
fn ce_has<const N: usize>(ce: &Value, expected: [(&str, Value); N]) -> Result<(), Problem> {
    let line = format!("delivered: {ce}");
    for (attribute, value) in expected {
        let got = attribute.split('.').fold(ce, |v, key| &v[key]);
        ensure_eq(attribute, value, got.clone(), [line.clone()])?;
    }
    Ok(())
}

async fn empty_content_type_text(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let marker = format!("plain-{}", t.nonce());
    t.grpc_api()?
        .publish(request("orders", marker.as_bytes(), ""))
        .await
        .map_err(|s| Problem::fail(format!("PublishEvent answered {:?}", s.code()), vec![]))?;
    let d = t.wait("/orders", 1).await?;
    let ce = d[0].body_json.clone().unwrap_or(Value::Null);
    ce_has(
        &ce,
        [
            ("datacontenttype", json!("text/plain")),
            ("data", json!(marker)),
        ],
    )
}

async fn unknown_pubsub_invalid_argument(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let mut req = request("orders", b"{}", "application/json");
    req.pubsub_name = "nope".into();
    let r = t.grpc_api()?.publish(req).await;
    expect_code("PublishEvent to pubsub `nope`", r, Code::InvalidArgument)
}

async fn empty_topic_invalid_argument(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let r = t
        .grpc_api()?
        .publish(request("", b"{}", "application/json"))
        .await;
    expect_code("PublishEvent with an empty topic", r, Code::InvalidArgument)
}

async fn bad_raw_payload_invalid_argument(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let mut req = request("orders", b"{}", "application/json");
    req.metadata.insert("rawPayload".into(), "maybe".into());
    let r = t.grpc_api()?.publish(req).await;
    expect_code(
        "PublishEvent with rawPayload=maybe",
        r,
        Code::InvalidArgument,
    )
}

async fn scopes_permission_denied(t: &mut Trial) -> Result<(), Problem> {
    let subscriptions = [("denied", "/denied"), ("allowed", "/allowed")];
    let rule = ("publishingScopes", "scoped=allowed");
    t.start(scoped(rule, &subscriptions)).await?;
    let r = t
        .grpc_api()?
        .publish(request("denied", b"{}", "application/json"))
        .await;
    expect_code(
        "PublishEvent to a topic outside publishingScopes",
        r,
        Code::PermissionDenied,
    )?;
    none_delivered_after(t, "allowed", "/denied", "a refused publish was delivered").await
}

/// After a refused publish, an allowed one to `topic` (delivered on `/<topic>`) is the barrier:
/// delivered in order on one sidecar, it shows that the refused one would have arrived by now.
/// Fails with `what` when anything but the barrier itself was delivered on `route`.
async fn none_delivered_after(
    t: &mut Trial,
    topic: &str,
    route: &str,
    what: &str,
) -> Result<(), Problem> {
    let barrier_route = format!("/{topic}");
    let barrier = t.publish_grpc(topic, json!({}), &[]).await?;
    t.wait_msg(&barrier_route, &barrier, 1).await?;
    let leaked: Vec<String> = t
        .app()
        .deliveries_on(route)
        .iter()
        .filter(|d| route != barrier_route || d.tck_id.as_deref() != Some(barrier.as_str()))
        .map(|d| d.answered.clone())
        .collect();
    ensure(leaked.is_empty(), what, leaked)
}

async fn metadata_without_prefix(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t
        .publish_grpc("orders", json!({}), &[("ttlInSeconds", "60")])
        .await?;
    let d = t.wait_msg("/orders", &id, 1).await?;
    let ce = d[0].body_json.clone().unwrap_or(Value::Null);
    ensure(
        ce.get("expiration").and_then(Value::as_str).is_some(),
        "the envelope has no expiration: ttlInSeconds was not read from the gRPC metadata",
        [format!("delivered: {ce}")],
    )
}

async fn raw_payload_delivered_raw(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscription(json!({
        "pubsubname": PUBSUB, "topic": "raw", "route": "/raw",
        "metadata": {"rawPayload": "true"}
    })))
    .await?;
    let id = t
        .publish_grpc("raw", json!({"n": 1}), &[("rawPayload", "true")])
        .await?;
    let d = t.wait_msg("/raw", &id, 1).await?;
    // A raw subscription wraps what the broker holds; an envelope published by mistake would
    // show up inside it as a CloudEvent with its own `specversion`.
    ensure(
        d[0].raw_payload,
        "the delivery is not the raw payload the publisher sent",
        [format!(
            "delivered: {}",
            String::from_utf8_lossy(&d[0].request.body)
        )],
    )
}

async fn raw_payload_trace(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscription(json!({
        "pubsubname": PUBSUB, "topic": "raw", "route": "/raw",
        "metadata": {"rawPayload": "true"}
    })))
    .await?;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let marker = format!("rpt-{}", t.nonce());
    let body = json!({"tck_id": marker}).to_string();
    let mut r = request("raw", body.as_bytes(), "application/json");
    r.metadata.insert("rawPayload".into(), "true".into());
    publish_with_headers(t, r, &[("traceparent", tp), ("tracestate", "tck=raw")]).await?;
    let d = t.wait_msg("/raw", &marker, 1).await?;
    let ce = d[0].body_json.clone().unwrap_or(Value::Null);
    // daprd 1.18.3 loses the call's tracestate (fixtures/targets/daprd.expect.toml).
    ce_has(
        &ce,
        [("traceid", json!(tp)), ("tracestate", json!("tck=raw"))],
    )
}

async fn bulk_publish_delivered(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let ids = [t.next_id(), t.next_id(), t.next_id()];
    let mut req = bulk(t, &ids);
    if let Some(e) = req.entries.first_mut() {
        e.metadata
            .insert("cloudevent.type".into(), "tck.grpc.bulk".into());
    }
    let resp = t.grpc_api()?.bulk_publish(req).await.map_err(|s| {
        Problem::fail(
            format!("BulkPublishEvent answered {:?}", s.code()),
            vec![s.message().to_owned()],
        )
    })?;
    ensure(
        resp.failed_entries.is_empty(),
        "BulkPublishEvent reported failed entries",
        resp.failed_entries
            .iter()
            .map(|e| format!("{}: {}", e.entry_id, e.error)),
    )?;
    for (i, id) in ids.iter().enumerate() {
        let d = t.wait_msg("/orders", id, 1).await?;
        if i == 0 {
            let ce_type = d[0].member("type");
            ensure_eq(
                "the envelope type of the entry with metadata cloudevent.type",
                json!("tck.grpc.bulk"),
                ce_type,
                [String::from_utf8_lossy(&d[0].request.body).into_owned()],
            )?;
        }
    }
    Ok(())
}

fn bulk(t: &Trial, ids: &[String]) -> BulkPublishRequest {
    BulkPublishRequest {
        pubsub_name: PUBSUB.into(),
        topic: "orders".into(),
        entries: ids
            .iter()
            .enumerate()
            .map(|(i, id)| BulkPublishRequestEntry {
                entry_id: format!("e{i}"),
                event: json!({"tck_id": id, "tck_trial": t.nonce()})
                    .to_string()
                    .into_bytes(),
                content_type: "application/json".into(),
                metadata: Default::default(),
            })
            .collect(),
        metadata: Default::default(),
    }
}

async fn bulk_duplicate_entry_id(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let ids = [t.next_id(), t.next_id()];
    let mut req = bulk(t, &ids);
    if let Some(e) = req.entries.get_mut(1) {
        e.entry_id = "e0".into();
    }
    let r = t.grpc_api()?.bulk_publish(req).await.map(|_| ());
    expect_code(
        "BulkPublishEvent with entry id e0 twice",
        r,
        Code::InvalidArgument,
    )?;
    let what = "entries of a refused bulk request were delivered";
    none_delivered_after(t, "orders", "/orders", what).await
}

async fn token_required(t: &mut Trial) -> Result<(), Problem> {
    t.start(super::auth::guarded()).await?;
    let api = t.grpc_api()?;
    let none = api
        .without_token()
        .publish(request("orders", b"{}", "application/json"))
        .await;
    expect_code("PublishEvent without a token", none, Code::Unauthenticated)?;
    let wrong = api
        .with_token("not-the-token")
        .map_err(|e| Problem::setup(&e))?
        .publish(request("orders", b"{}", "application/json"))
        .await;
    expect_code(
        "PublishEvent with a wrong token",
        wrong,
        Code::Unauthenticated,
    )?;
    let md = api.without_token().metadata().await.map(|_| ());
    expect_code("GetMetadata without a token", md, Code::Unauthenticated)?;
    let id = t.publish_grpc("orders", json!({}), &[]).await?;
    t.wait_msg("/orders", &id, 1).await?;
    let delivered = t.app().deliveries_on("/orders").len();
    ensure_eq(
        "deliveries (only the publish with the token)",
        1,
        delivered,
        [],
    )
}

async fn traceparent_propagated(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let marker = format!("gtp-{}", t.nonce());
    let body = json!({"tck_id": marker}).to_string();
    let r = request("orders", body.as_bytes(), "application/json");
    publish_with_headers(t, r, &[("traceparent", tp)]).await?;
    let d = t.wait_msg("/orders", &marker, 1).await?;
    let ce = d[0].body_json.clone().unwrap_or(Value::Null);
    let line = format!("delivered: {ce}");
    ensure_eq(
        "the CloudEvent's traceparent",
        json!(tp),
        ce["traceparent"].clone(),
        [line.clone()],
    )?;
    ensure_eq(
        "delivery traceparent header",
        Some(tp.to_owned()),
        d[0].header("traceparent").map(str::to_owned),
        [format!("headers: {:?}", d[0].request.headers), line],
    )
}

async fn metadata_lists_subscriptions(t: &mut Trial) -> Result<(), Problem> {
    // A v2 entry: one rule, and the default route that the published message takes.
    let rule = r#"event.type == "widget""#;
    t.start(Scenario::new().subscription(json!({
        "pubsubname": PUBSUB, "topic": "orders",
        "routes": {"rules": [{"match": rule, "path": "/widgets"}], "default": "/orders"}
    })))
    .await?;
    // Subscriptions are discovered after the sidecar is healthy: a publish that arrives is
    // the barrier after which they are in place.
    let id = t.publish_grpc("orders", json!({}), &[]).await?;
    t.wait_msg("/orders", &id, 1).await?;
    let md = t.grpc_api()?.metadata().await.map_err(|s| {
        Problem::fail(
            format!("GetMetadata answered {:?}", s.code()),
            vec![s.message().to_owned()],
        )
    })?;
    let evidence = format!("{md:?}");
    ensure_eq("id", t.app_id(), md.id.clone(), [])?;
    ensure(
        !md.runtime_version.is_empty()
            && md.extended_metadata.get("daprRuntimeVersion") == Some(&md.runtime_version),
        "GetMetadata's runtime_version is empty or differs from extended_metadata[daprRuntimeVersion]",
        [evidence.clone()],
    )?;
    let app = md.app_connection_properties.clone().unwrap_or_default();
    ensure_eq(
        "app_connection_properties (port, protocol)",
        (
            t.app_port().map(i32::from).unwrap_or_default(),
            t.app_protocol().as_str().to_owned(),
        ),
        (app.port, app.protocol),
        [evidence.clone()],
    )?;
    let actors = md.actor_runtime.clone().unwrap_or_default();
    ensure_eq(
        "actor_runtime (runtime_status, placement, host_ready)",
        (
            Some(ActorRuntimeStatus::Disabled),
            "placement: disconnected".to_owned(),
            false,
        ),
        (
            md.actor_runtime
                .as_ref()
                .and_then(|a| ActorRuntimeStatus::try_from(a.runtime_status).ok()),
            actors.placement,
            actors.host_ready,
        ),
        [evidence.clone()],
    )?;
    ensure(
        md.registered_components
            .iter()
            .any(|c| c.name == PUBSUB && c.r#type.starts_with("pubsub.")),
        "GetMetadata does not list the pubsub component",
        [evidence.clone()],
    )?;
    let Some(sub) = md
        .subscriptions
        .iter()
        .find(|s| s.pubsub_name == PUBSUB && s.topic == "orders")
    else {
        return Err(Problem::fail(
            "GetMetadata does not list the subscription to orders",
            vec![evidence],
        ));
    };
    // As GET /v1.0/metadata lists them (core::discovery::metadata_programmatic): the rules in
    // order, then the default route as a rule without a match.
    let rules: Vec<(String, String)> = sub
        .rules
        .iter()
        .flat_map(|r| &r.rules)
        .map(|r| (r.r#match.clone(), r.path.clone()))
        .collect();
    ensure_eq(
        "rules (match, path) of the subscription to orders",
        vec![
            (rule.to_owned(), "/widgets".to_owned()),
            (String::new(), "/orders".to_owned()),
        ],
        rules,
        [evidence],
    )
}

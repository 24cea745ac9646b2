//! Publish API: status codes, error bodies, topics, methods, limits and scopes
//! (daprd `POST /v1.0/publish/{pubsub}/{topic}`; spec notes §1).

use bytes::Bytes;
use serde_json::{Value, json};

use super::{line, rejected, scoped, start_orders, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::broker::Promise;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::trial::{Scenario, Trial};

const API_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/pubsub_api/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::publish::json_accepted",
            Must,
            "A JSON publish to a configured pubsub answers 204 with an empty body",
            "Dapr pub/sub API: Publish a message, HTTP response codes (204 = message delivered to the broker)",
            API_DOC,
            [Need::Launch],
            json_accepted
        ),
        check!(
            "core::publish::unknown_pubsub",
            Must,
            "A publish to an unknown pubsub answers 404 ERR_PUBSUB_NOT_FOUND",
            "daprd pkg/api/errors/pubsub.go NotFound; Dapr pub/sub API response codes",
            API_DOC,
            [],
            unknown_pubsub
        ),
        check!(
            "core::publish::error_body_json",
            Must,
            "Publish errors carry a JSON body with errorCode and message",
            "daprd error responses: application/json {errorCode, message} (dapr/kit errors)",
            API_DOC,
            [],
            error_body_json
        ),
        check!(
            "core::publish::error_details",
            Should,
            "Publish errors carry ErrorInfo details with reason, domain dapr.io and the request's metadata",
            "daprd richer error model: details[ErrorInfo{reason, domain: dapr.io, metadata}]; pkg/api/errors/pubsub.go",
            Some("https://docs.dapr.io/reference/errors/"),
            [],
            error_details
        ),
        check!(
            "core::publish::bad_raw_payload",
            Must,
            "A non-boolean metadata.rawPayload answers 400 ERR_PUBSUB_REQUEST_METADATA; Go's spellings of false (0, f, False) publish a CloudEvent as usual",
            "daprd onPublish: metadata deserialization error; the value is read with Go's strconv.ParseBool (components-contrib metadata.IsRawPayload)",
            API_DOC,
            [Need::Launch],
            bad_raw_payload
        ),
        check!(
            "core::publish::malformed_cloudevent_rejected",
            Must,
            "An application/cloudevents+json body that is not a JSON object is rejected with ERR_PUBSUB_CLOUD_EVENTS_SER and not delivered",
            "daprd pubsub.FromCloudEvent: body must be a JSON object",
            API_DOC,
            [Need::Launch],
            malformed_cloudevent_rejected
        ),
        check!(
            "core::publish::malformed_cloudevent_500",
            Should,
            "A malformed CloudEvent body answers HTTP 500, as daprd does (quirk)",
            "daprd tests/integration/suite/daprd/pubsub/http/errors.go: 500 ERR_PUBSUB_CLOUD_EVENTS_SER",
            API_DOC,
            [Need::Launch],
            malformed_cloudevent_500
        ),
        check!(
            "core::publish::topic_with_slashes",
            Must,
            "A topic containing '/' is published and delivered with the whole topic name",
            "daprd http.go: publish route {topic...} is a wildcard; the topic reaches the broker verbatim, so only brokers whose topic names allow '/' can carry it",
            API_DOC,
            [Need::Launch, Need::Promise(Promise::SlashInTopicNames)],
            topic_with_slashes
        ),
        check!(
            "core::publish::put_method",
            Should,
            "PUT is accepted on the publish endpoint like POST",
            "daprd http.go constructPubSubEndpoints: POST and PUT",
            API_DOC,
            [Need::Launch],
            put_method
        ),
        check!(
            "core::publish::missing_topic_404",
            Must,
            "A publish URL without a topic answers 404",
            "daprd routing: no topic falls through to 404",
            API_DOC,
            [],
            missing_topic_404
        ),
        check!(
            "core::publish::oversized_body_rejected",
            Must,
            "A body over the size limit is rejected, not delivered, and the sidecar keeps serving",
            "daprd --max-body-size (default 4Mi)",
            Some("https://docs.dapr.io/reference/arguments-annotations-overview/"),
            [Need::Launch],
            oversized_body_rejected
        ),
        check!(
            "core::publish::publishing_scopes_forbidden",
            Must,
            "A topic denied by publishingScopes answers 403 ERR_PUBSUB_FORBIDDEN",
            "daprd pkg/scopes: publishingScopes; Dapr docs Scope Pub/Sub topic access",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-scopes/"
            ),
            [Need::Launch],
            publishing_scopes_forbidden
        ),
        check!(
            "core::publish::allowed_topics_forbidden",
            Must,
            "A topic outside allowedTopics answers 403 ERR_PUBSUB_FORBIDDEN and an allowed one 204",
            "daprd pkg/scopes: allowedTopics",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-scopes/"
            ),
            [Need::Launch],
            allowed_topics_forbidden
        ),
        check!(
            "core::publish::protected_topics_forbidden",
            Must,
            "A topic in protectedTopics answers 403 ERR_PUBSUB_FORBIDDEN to an app without a publishing scope for it; an unprotected topic answers 204",
            "daprd pkg/scopes IsOperationAllowed: a protected topic needs an explicit scope",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-scopes/"
            ),
            [Need::Launch],
            protected_topics_forbidden
        ),
        check!(
            "core::publish::subscription_scopes_filter",
            Must,
            "A topic outside the app's subscriptionScopes is never delivered, though the app subscribes to it; a scoped topic is",
            "daprd pkg/scopes: subscriptionScopes restrict the topics an app may subscribe to",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-scopes/"
            ),
            [Need::Launch],
            subscription_scopes_filter
        ),
        check!(
            "core::publish::empty_json_body",
            Should,
            "An empty application/json body is accepted and delivered with data \"\"",
            "components-contrib pubsub/envelope.go: invalid JSON falls back to a string",
            API_DOC,
            [Need::Launch],
            empty_json_body
        ),
        check!(
            "core::publish::metadata_echoed_as_headers",
            Should,
            "Publisher metadata.* entries reach the subscriber as HTTP headers (in-memory broker)",
            "daprd postman/http: broker metadata becomes delivery headers",
            API_DOC,
            [Need::Launch],
            metadata_echoed_as_headers
        ),
        check!(
            "core::publish::metadata_content_length_ignored",
            Must,
            "A publisher's metadata.content-length never becomes the delivery's Content-Length: the subscriber receives the whole event",
            "daprd pkg/messaging/v1/invoke_method_request.go WithCustomHTTPMetadata: content-length is skipped",
            API_DOC,
            [Need::Launch],
            metadata_content_length_ignored
        ),
    ]
}

fn code_of(r: &harness::ApiResponse) -> String {
    r.error_code()
        .unwrap_or_else(|| format!("(no errorCode; body {})", String::from_utf8_lossy(&r.body)))
}

/// Starts a plain scenario unless the target is attached (then the attached sidecar is used).
async fn start_plain(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await
}

/// Starts a plain scenario and publishes `{}` to `orders` of a pubsub that does not exist,
/// with the query parameters `query`.
async fn publish_to_unknown_pubsub(
    t: &mut Trial,
    query: &[(&str, &str)],
) -> Result<harness::ApiResponse, Problem> {
    start_plain(t).await?;
    let r = t
        .client()
        .publish(
            "no-such-pubsub",
            "orders",
            Bytes::from_static(b"{}"),
            Some("application/json"),
            query,
        )
        .await?;
    Ok(r)
}

async fn json_accepted(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let r = t
        .publish_raw("orders", r#"{"orderId":1}"#, Some("application/json"), &[])
        .await?;
    status_is("status", 204, &r)?;
    ensure(r.body.is_empty(), "the 204 answer has a body", [line(&r)])
}

async fn unknown_pubsub(t: &mut Trial) -> Result<(), Problem> {
    let r = publish_to_unknown_pubsub(t, &[]).await?;
    rejected(&r, 404, "ERR_PUBSUB_NOT_FOUND")
}

async fn error_body_json(t: &mut Trial) -> Result<(), Problem> {
    let r = publish_to_unknown_pubsub(t, &[]).await?;
    let ct = r.header("content-type").unwrap_or("").to_owned();
    ensure(
        ct.starts_with("application/json"),
        format!("error Content-Type is {ct:?}, not application/json"),
        [line(&r)],
    )?;
    let body = r.json().unwrap_or(Value::Null);
    ensure(
        body["errorCode"].is_string() && body["message"].is_string(),
        "the error body lacks a string errorCode and message",
        [line(&r)],
    )
}

async fn error_details(t: &mut Trial) -> Result<(), Problem> {
    let r = publish_to_unknown_pubsub(t, &[("metadata.tckkey", "tck-value")]).await?;
    let body = r.json().unwrap_or(Value::Null);
    let info = body["details"].as_array().and_then(|d| {
        d.iter().find(|x| {
            x["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("ErrorInfo"))
        })
    });
    let Some(info) = info else {
        return Err(Problem::fail("no ErrorInfo in details", vec![line(&r)]));
    };
    // daprd passes the request's metadata (prefix stripped) as the ErrorInfo's metadata.
    let expected = [
        (
            "ErrorInfo.reason",
            json!("DAPR_PUBSUB_NOT_FOUND"),
            &info["reason"],
        ),
        ("ErrorInfo.domain", json!("dapr.io"), &info["domain"]),
        (
            "ErrorInfo.metadata.tckkey",
            json!("tck-value"),
            &info["metadata"]["tckkey"],
        ),
    ];
    for (what, want, got) in expected {
        ensure_eq(what, want, got.clone(), [line(&r)])?;
    }
    Ok(())
}

async fn bad_raw_payload(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let r = t
        .publish_raw("orders", "x", None, &[("metadata.rawPayload", "maybe")])
        .await?;
    rejected(&r, 400, "ERR_PUBSUB_REQUEST_METADATA")?;
    for (i, spelling) in ["0", "f", "False"].into_iter().enumerate() {
        let id = format!("rpf-{i}");
        let r = t
            .publish_raw(
                "orders",
                format!(r#"{{"tck_id":"{id}"}}"#),
                Some("application/json"),
                &[("metadata.rawPayload", spelling)],
            )
            .await?;
        status_is(&format!("status with rawPayload={spelling}"), 204, &r)?;
        let d = t.wait_msg("/orders", &id, 1).await?;
        ensure(
            !d[0].raw_payload
                && d[0]
                    .body_json
                    .as_ref()
                    .is_some_and(|b| b["specversion"].is_string()),
            format!("rawPayload={spelling} did not publish a CloudEvent"),
            [format!(
                "delivered: {}",
                String::from_utf8_lossy(&d[0].request.body)
            )],
        )?;
    }
    Ok(())
}

async fn malformed_cloudevent_rejected(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let mut ev = Vec::new();
    for body in ["[1,2]", "\"just a string\"", "{broken", ""] {
        let r = t
            .publish_raw("orders", body, Some("application/cloudevents+json"), &[])
            .await?;
        ev.push(format!("body {body:?}: {}", line(&r)));
        ensure(
            !r.is_success(),
            format!("body {body:?} was accepted"),
            ev.clone(),
        )?;
        ensure_eq(
            "errorCode",
            "ERR_PUBSUB_CLOUD_EVENTS_SER".to_owned(),
            code_of(&r),
            ev.clone(),
        )?;
    }
    t.nothing_on("/orders", "a rejected CloudEvent was delivered")
        .await
}

async fn malformed_cloudevent_500(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let r = t
        .publish_raw("orders", "[1]", Some("application/cloudevents+json"), &[])
        .await?;
    status_is("status", 500, &r)
}

async fn topic_with_slashes(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscribe("a/b/c", "/abc")).await?;
    let id = t.publish("a/b/c", json!({})).await?;
    let d = t.wait_msg("/abc", &id, 1).await?;
    let topic = d[0].member("topic");
    ensure_eq("CloudEvent topic", json!("a/b/c"), topic, t.evidence())
}

async fn put_method(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let r = t
        .client()
        .request(
            http::Method::PUT,
            "/v1.0/publish/pubsub/orders",
            Some(Bytes::from_static(br#"{"tck_id":"put-1"}"#)),
            &[("content-type", "application/json")],
        )
        .await?;
    status_is("status", 204, &r)?;
    t.wait_msg("/orders", "put-1", 1).await?;
    Ok(())
}

async fn missing_topic_404(t: &mut Trial) -> Result<(), Problem> {
    start_plain(t).await?;
    for path in ["/v1.0/publish/pubsub", "/v1.0/publish/pubsub/"] {
        let r = t
            .client()
            .request(
                http::Method::POST,
                path,
                Some(Bytes::from_static(b"{}")),
                &[],
            )
            .await?;
        status_is(&format!("status of POST {path}"), 404, &r)?;
    }
    Ok(())
}

async fn oversized_body_rejected(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let big = Bytes::from(vec![b'x'; 5 * 1024 * 1024]);
    // Closing the connection early is a rejection too; only a 2xx answer is a failure.
    match t
        .client()
        .publish(
            harness_engine::trial::PUBSUB,
            "orders",
            big,
            Some("text/plain"),
            &[],
        )
        .await
    {
        Ok(r) => ensure(
            !r.is_success(),
            "a 5 MiB body was accepted (default limit 4Mi)",
            [line(&r)],
        )?,
        Err(harness::ClientError::Timeout { .. }) => {
            return Err(Problem::fail("the oversized publish hung", vec![]));
        }
        Err(_) => {}
    }
    // A fresh client: whether a connection survives an oversized request is not the point here.
    let fresh = harness::SidecarClient::new(t.client().base_url().to_owned(), None)?;
    let r = fresh
        .publish(
            harness_engine::trial::PUBSUB,
            "orders",
            Bytes::from_static(br#"{"tck_id":"after"}"#),
            Some("application/json"),
            &[],
        )
        .await?;
    status_is(
        "status of a normal publish after the oversized one",
        204,
        &r,
    )?;
    t.wait_msg("/orders", "after", 1).await?;
    let seen = t.quiet("/orders").await;
    ensure_eq("deliveries on /orders", 1, seen.len(), t.evidence())
}

/// A topic-scoping rule of the component's metadata as a table row: with `key: value` on the
/// component (and the app id `scoped`), a publish to `denied` answers 403 with
/// `ERR_PUBSUB_FORBIDDEN` and a publish to `allowed` answers 204.
async fn forbidden(
    t: &mut Trial,
    (key, value): (&str, &str),
    denied: &str,
    allowed: &str,
) -> Result<(), Problem> {
    t.start(scoped((key, value), &[(allowed, "/a")])).await?;
    let r = t
        .publish_raw(denied, "{}", Some("application/json"), &[])
        .await?;
    let rule = format!("{key}: {value}");
    ensure_eq(
        &format!("status of a publish to {denied} ({rule})"),
        403,
        r.status,
        [line(&r)],
    )?;
    ensure_eq(
        "errorCode",
        "ERR_PUBSUB_FORBIDDEN".to_owned(),
        code_of(&r),
        [line(&r)],
    )?;
    let r = t
        .publish_raw(allowed, "{}", Some("application/json"), &[])
        .await?;
    ensure_eq(
        &format!("status of a publish to {allowed} ({rule})"),
        204,
        r.status,
        [line(&r)],
    )
}

async fn publishing_scopes_forbidden(t: &mut Trial) -> Result<(), Problem> {
    forbidden(
        t,
        ("publishingScopes", "scoped=allowed"),
        "denied",
        "allowed",
    )
    .await
}

async fn allowed_topics_forbidden(t: &mut Trial) -> Result<(), Problem> {
    forbidden(t, ("allowedTopics", "ok1,ok2"), "other", "ok2").await
}

async fn protected_topics_forbidden(t: &mut Trial) -> Result<(), Problem> {
    forbidden(t, ("protectedTopics", "secret"), "secret", "open").await
}

async fn subscription_scopes_filter(t: &mut Trial) -> Result<(), Problem> {
    let subscriptions = [("allowed", "/a"), ("denied", "/d")];
    let rule = ("subscriptionScopes", "scoped=allowed");
    t.start(scoped(rule, &subscriptions)).await?;
    // Publishing is not what subscriptionScopes restrict: both publishes are accepted.
    let denied = t.publish("denied", json!({})).await?;
    let allowed = t.publish("allowed", json!({})).await?;
    t.wait_msg("/a", &allowed, 1).await?;
    t.nothing_on(
        "/d",
        format!("{denied} on a topic outside subscriptionScopes was delivered"),
    )
    .await
}

async fn empty_json_body(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let r = t
        .publish_raw("orders", "", Some("application/json"), &[])
        .await?;
    status_is("status", 204, &r)?;
    let d = t.wait("/orders", 1).await?;
    let data = d[0].member("data");
    ensure_eq("data", json!(""), data, t.evidence())
}

async fn metadata_echoed_as_headers(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t
        .publish_query("orders", json!({}), &[("metadata.tckcustom", "hello")])
        .await?;
    let d = t.wait_msg("/orders", &id, 1).await?;
    let h = d[0].header("tckcustom").map(str::to_owned);
    ensure_eq(
        "header tckcustom",
        Some("hello".to_owned()),
        h,
        [format!("headers: {:?}", d[0].request.headers)],
    )
}

async fn metadata_content_length_ignored(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t
        .publish_query(
            "orders",
            json!({"padding": "a body far longer than one byte"}),
            &[("metadata.content-length", "1")],
        )
        .await?;
    let d = t.wait_msg("/orders", &id, 1).await?;
    let length = d[0].header("content-length").map(str::to_owned);
    match length {
        Some(l) if l != d[0].request.body.len().to_string() => Err(Problem::fail(
            "the delivery's Content-Length is not its body's length",
            vec![
                format!(
                    "content-length: {l}, body: {} bytes",
                    d[0].request.body.len()
                ),
                format!("headers: {:?}", d[0].request.headers),
            ],
        )),
        _ => Ok(()),
    }
}

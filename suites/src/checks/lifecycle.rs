//! Start-up and shutdown: a component daprd cannot create stops the sidecar with a clear error,
//! a resource document that is not YAML is skipped; SIGTERM lets accepted messages finish and
//! never dead-letters them; a misbehaving app does not bring the sidecar down.

use std::time::Duration;

use harness::{Script, ShutdownStep};
use serde_json::json;

use super::start_orders;
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::broker::Promise;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::trial::{DEADLINE, Scenario, Trial};

const COMPONENT_DOC: Option<&str> =
    Some("https://docs.dapr.io/operations/components/component-schema/");
const SHUTDOWN_DOC: Option<&str> =
    Some("https://docs.dapr.io/operations/resiliency/graceful-shutdown/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::lifecycle::unknown_component_type",
            Must,
            "A component of an unknown type stops start-up with an error naming the type",
            "daprd: component init failure is fatal unless ignoreErrors",
            COMPONENT_DOC,
            [Need::Launch],
            unknown_component_type
        ),
        check!(
            "core::lifecycle::malformed_yaml_skipped",
            Should,
            "A resource document that is not valid YAML is skipped: the sidecar starts and loads the other documents of the same file",
            "daprd 1.18 pkg/internal/loader/disk/manifest.go: loadManifestsFromFile only logs a warning naming the file; decodeYaml parses each `---` document on its own and skips those that fail",
            COMPONENT_DOC,
            [Need::Launch],
            malformed_yaml_skipped
        ),
        check!(
            "core::lifecycle::sigterm_delivers_accepted",
            Must,
            "On SIGTERM, messages already accepted (204) are delivered before exit and none is dead-lettered",
            "daprd graceful shutdown: in-flight deliveries finish, closing subscriptions never NACK (dapr/dapr#9604, #9619)",
            SHUTDOWN_DOC,
            [Need::Launch, Need::Promise(Promise::DrainOnShutdown)],
            sigterm_delivers_accepted
        ),
        check!(
            "core::lifecycle::sigterm_answers_request_in_flight",
            Should,
            "An API request in flight when SIGTERM arrives (a service invocation the app answers after 1 s) is answered before the sidecar exits",
            "daprd graceful shutdown: the API servers stop accepting and finish the requests in flight within --dapr-graceful-shutdown-seconds (Go's http.Server.Shutdown)",
            SHUTDOWN_DOC,
            [Need::Launch],
            sigterm_answers_request_in_flight
        ),
        check!(
            "core::lifecycle::sigterm_exits_in_grace",
            Should,
            "SIGTERM ends the sidecar within its grace period, without SIGKILL",
            "daprd --dapr-graceful-shutdown-seconds (default 5)",
            SHUTDOWN_DOC,
            [Need::Launch],
            sigterm_exits_in_grace
        ),
        check!(
            "core::lifecycle::survives_broken_app",
            Must,
            "An app that closes connections, hangs up or answers garbage does not crash the sidecar",
            "spec notes §4.3: transport errors are retriable errors, not fatal",
            None,
            [Need::Launch, Need::Promise(Promise::NackEndsDelivery)],
            survives_broken_app
        ),
    ]
}

async fn unknown_component_type(t: &mut Trial) -> Result<(), Problem> {
    let bad = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\nspec:\n  type: pubsub.does-not-exist\n  version: v1\n";
    let log = t
        .start_expecting_exit(Scenario::new().resource(bad))
        .await?;
    ensure(
        log.contains("pubsub.does-not-exist"),
        "the start-up error does not name the unknown type",
        vec![log],
    )
}

async fn malformed_yaml_skipped(t: &mut Trial) -> Result<(), Problem> {
    // One file: a broken document, then a valid declarative subscription.
    let file = "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: broken\nspec: [unclosed\n---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders-sub\nspec:\n  pubsubname: pubsub\n  topic: orders\n  routes:\n    default: /orders\n";
    t.start(Scenario::new().resource(file)).await?;
    let id = t.publish("orders", json!({})).await?;
    t.wait_msg("/orders", &id, 1).await?;
    Ok(())
}

async fn sigterm_delivers_accepted(t: &mut Trial) -> Result<(), Problem> {
    let slow = Script::Delay(Duration::from_millis(300), Box::new(Script::Success));
    t.start(
        Scenario::new()
            .subscribe_with_dlq("orders", "/orders", "poison", "/dlq")
            .script("/orders", slow),
    )
    .await?;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(t.publish("orders", json!({})).await?);
    }
    t.wait("/orders", 1).await?;
    let step = t.sidecar().terminate(DEADLINE).await;
    let delivered: Vec<String> = t
        .app()
        .deliveries_on("/orders")
        .into_iter()
        .filter_map(|d| d.tck_id)
        .collect();
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !delivered.contains(id))
        .cloned()
        .collect();
    let mut ev = t.evidence();
    ev.push(format!("shutdown ended by {step:?}"));
    ensure(
        missing.is_empty(),
        format!("accepted messages were not delivered before exit: {missing:?}"),
        ev.clone(),
    )?;
    ensure(
        t.app().deliveries_on("/dlq").is_empty(),
        "shutdown dead-lettered a healthy message",
        ev,
    )
}

async fn sigterm_answers_request_in_flight(t: &mut Trial) -> Result<(), Problem> {
    let slow = Script::Delay(Duration::from_secs(1), Box::new(Script::Success));
    t.start(Scenario::new().script("/tck/slow", slow)).await?;
    let client = t.client();
    let path = format!("/v1.0/invoke/{}/method/tck/slow", t.app_id());
    let call = tokio::spawn(async move {
        client
            .post(
                &path,
                bytes::Bytes::from_static(b"{}"),
                &[("content-type", "application/json")],
            )
            .await
    });
    // SIGTERM once the app holds the request.
    t.wait("/tck/slow", 1).await?;
    let step = t.sidecar().terminate(DEADLINE).await;
    let answer = match call.await {
        Ok(Ok(r)) => format!("HTTP {}", r.status),
        Ok(Err(e)) => format!("no answer: {e}"),
        Err(e) => format!("no answer: {e}"),
    };
    ensure_eq(
        "the answer to the request in flight at SIGTERM",
        "HTTP 200".to_owned(),
        answer,
        [format!("shutdown ended by {step:?}")],
    )
}

async fn sigterm_exits_in_grace(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t.publish("orders", json!({})).await?;
    t.wait_msg("/orders", &id, 1).await?;
    let step = t.sidecar().terminate(Duration::from_secs(6)).await;
    ensure_eq("how shutdown ended", Some(ShutdownStep::Sigterm), step, [])
}

async fn survives_broken_app(t: &mut Trial) -> Result<(), Problem> {
    let script = Script::for_messages([
        ("m-1", Script::CloseConnection),
        (
            "m-2",
            Script::Respond(200, bytes::Bytes::from_static(b"\xff\xfe not json")),
        ),
        ("m-3", Script::Http(503)),
    ]);
    t.start(super::orders(script)).await?;
    for _ in 0..3 {
        t.publish("orders", json!({})).await?;
    }
    t.wait("/orders", 3).await?;
    let id = t
        .publish("orders", json!({"after": "broken answers"}))
        .await?;
    t.wait_msg("/orders", &id, 1).await?;
    let r = t.client().healthz().await?;
    ensure_eq("healthz after broken answers", 204, r.status, t.evidence())
}

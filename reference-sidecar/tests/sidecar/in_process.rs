//! The sidecar run in-process against a small scripted app: the "done when" scenario of the
//! reference sidecar (envelope shape, RETRY counts, DLQ paths, unknown pubsub), plus start-up
//! errors. Every wait is on an observable condition with a deadline.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    App, IN_MEMORY, RETRY_POLICY, Sidecar, app_with_sidecar, assert_start_up_fails, error_code,
    pubsub_component,
};

/// The app and a sidecar subscribed to `orders` (dead letters to `poison`) and `poison`, with
/// the in-memory pubsub retried by the resiliency policy.
struct Harness {
    app: App,
    sidecar: Sidecar,
}

async fn start() -> Harness {
    let (app, sidecar) = app_with_sidecar(
        json!([
            {"pubsubname": "pubsub", "topic": "orders", "route": "/orders", "deadLetterTopic": "poison"},
            {"pubsubname": "pubsub", "topic": "poison", "route": "/dlq"},
        ]),
        &format!("{IN_MEMORY}{RETRY_POLICY}"),
    )
    .await;
    Harness { app, sidecar }
}

impl Harness {
    async fn request(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: &str,
    ) -> (StatusCode, bytes::Bytes) {
        self.sidecar.request(method, path, ct, body).await
    }

    /// Publishes `{"tag", "mode"}` to `orders`; the app answers by the mode.
    async fn publish(&self, tag: &str, mode: &str) {
        self.sidecar
            .publish_ok("orders", &json!({"tag": tag, "mode": mode}))
            .await;
    }

    /// FIFO barrier on the dead-letter topic: once this marker arrives, every earlier
    /// dead-letter copy has arrived too.
    async fn dlq_barrier(&self, marker: &str) {
        self.sidecar
            .publish_ok("poison", &json!({"tag": marker}))
            .await;
        self.app.wait("/dlq", marker, 1).await;
    }

    async fn stop(self) {
        self.sidecar.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_when_scenario() {
    let h = start().await;
    assert_eq!(h.app.subscribe_calls(), 1, "/dapr/subscribe called once");

    // A JSON publish arrives as a daprd-shaped CloudEvent.
    h.publish("plain", "ok").await;
    h.app.wait("/orders", "plain", 1).await;
    let plain = h.app.first("/orders", "plain");
    let (headers, ce) = (plain.headers, plain.ce);
    assert_eq!(headers["content-type"], "application/cloudevents+json");
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["source"], "checkout");
    assert_eq!(ce["topic"], "orders");
    assert_eq!(ce["pubsubname"], "pubsub");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["data"]["tag"], "plain");
    assert!(uuid::Uuid::parse_str(ce["id"].as_str().unwrap()).is_ok());
    assert!(ce["time"].as_str().unwrap().ends_with('Z'));

    // RETRY twice then SUCCESS: 3 deliveries, nothing dead-lettered.
    h.publish("r2", "retry2").await;
    h.app.wait("/orders", "r2", 3).await;
    // Always RETRY: exactly 3 deliveries, then exactly one DLQ copy of the original.
    h.publish("always", "retry").await;
    h.app.wait("/dlq", "always", 1).await;
    assert_eq!(h.app.count("/orders", "always"), 3);
    // DROP and 404: one delivery each, then the DLQ.
    h.publish("drop", "drop").await;
    h.publish("nf", "404").await;
    h.app.wait("/dlq", "drop", 1).await;
    h.app.wait("/dlq", "nf", 1).await;
    h.dlq_barrier("marker").await;
    assert_eq!(h.app.count("/orders", "r2"), 3);
    assert_eq!(h.app.count("/dlq", "r2"), 0);
    assert_eq!(h.app.count("/dlq", "always"), 1);
    assert_eq!(h.app.count("/orders", "drop"), 1);
    assert_eq!(h.app.count("/dlq", "drop"), 1);
    assert_eq!(h.app.count("/orders", "nf"), 1);
    assert_eq!(h.app.count("/dlq", "nf"), 1);
    let original = h.app.first("/orders", "always").ce;
    let dead = h.app.first("/dlq", "always").ce;
    assert_eq!(
        dead["topic"], "orders",
        "the DLQ copy keeps the original topic"
    );
    assert_eq!(
        dead["id"], original["id"],
        "the DLQ copy keeps the original id"
    );

    // Unknown pubsub; bad input: malformed CloudEvent, bad rawPayload, oversized body.
    for (path, ct, body, status, code) in [
        (
            "/v1.0/publish/nope/orders",
            Some("application/json"),
            "{}",
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
        ),
        (
            "/v1.0/publish/pubsub/orders",
            Some("application/cloudevents+json"),
            "[1]",
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
        ),
        (
            "/v1.0/publish/pubsub/orders?metadata.rawPayload=maybe",
            None,
            "x",
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_REQUEST_METADATA",
        ),
    ] {
        let (got, answer) = h.request("POST", path, ct, body).await;
        assert_eq!(got, status, "{path}");
        assert_eq!(error_code(&answer), code, "{path}");
    }
    let big = "x".repeat((1 << 20) + 1);
    let (status, _) = h
        .request("POST", "/v1.0/publish/pubsub/orders", None, &big)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Metadata lists the subscriptions with their dead-letter topics.
    let (status, body) = h.request("GET", "/v1.0/metadata", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let md: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(md["id"], "checkout");
    assert_eq!(md["subscriptions"][0]["deadLetterTopic"], "poison");
    assert_eq!(md["subscriptions"][0]["type"], "PROGRAMMATIC");
    h.stop().await;
}

#[tokio::test]
async fn start_up_errors_name_file_and_field() {
    assert_start_up_fails(
        &pubsub_component("pubsub.nonsense", &[]),
        &["resources.yaml", "spec.type", "pubsub.nonsense"],
    )
    .await;
}

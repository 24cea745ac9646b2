//! The sidecar run in-process against a small scripted app: the "done when" scenario of the
//! reference sidecar (envelope shape, RETRY counts, DLQ paths, unknown pubsub), plus start-up
//! errors. Every wait is on an observable condition with a deadline.

use axum::http::StatusCode;
use reference_sidecar::{Listeners, run};
use serde_json::{Value, json};

use crate::common::{App, Sidecar, config};

const RESOURCES: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: retries
spec:
  policies:
    retries:
      pubsubRetry:
        policy: constant
        duration: 10ms
        maxRetries: 2
  targets:
    components:
      pubsub:
        inbound:
          retry: pubsubRetry
"#;

/// The app, a sidecar subscribed to `orders` (dead letters to `poison`) and `poison`, and the
/// resources directory.
struct Harness {
    app: App,
    sidecar: Sidecar,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let (app, port) = App::start(json!([
        {"pubsubname": "pubsub", "topic": "orders", "route": "/orders", "deadLetterTopic": "poison"},
        {"pubsubname": "pubsub", "topic": "poison", "route": "/dlq"},
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resources.yaml"), RESOURCES).unwrap();
    let sidecar = Sidecar::start(config("checkout", Some(port), dir.path())).await;
    Harness {
        app,
        sidecar,
        _dir: dir,
    }
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

    // Unknown pubsub.
    let (status, body) = h
        .request(
            "POST",
            "/v1.0/publish/nope/orders",
            Some("application/json"),
            "{}",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorCode"], "ERR_PUBSUB_NOT_FOUND");

    // Bad input: malformed CloudEvent, bad rawPayload, oversized body.
    let (status, body) = h
        .request(
            "POST",
            "/v1.0/publish/pubsub/orders",
            Some("application/cloudevents+json"),
            "[1]",
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["errorCode"],
        "ERR_PUBSUB_CLOUD_EVENTS_SER"
    );
    let (status, body) = h
        .request(
            "POST",
            "/v1.0/publish/pubsub/orders?metadata.rawPayload=maybe",
            None,
            "x",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["errorCode"],
        "ERR_PUBSUB_REQUEST_METADATA"
    );
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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.nonsense\n  version: v1\n",
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = run(
        config("checkout", Some(1), dir.path()),
        Listeners {
            http: vec![listener],
            grpc: Vec::new(),
        },
        std::future::pending(),
    )
    .await
    .unwrap_err();
    let text = format!("{err:#}");
    let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(
        chain.contains("bad.yaml")
            && chain.contains("spec.type")
            && chain.contains("pubsub.nonsense"),
        "{text} / {chain}"
    );
}

//! The sidecar run in-process against a small scripted app: the "done when" scenario of the
//! reference sidecar (envelope shape, RETRY counts, DLQ paths, unknown pubsub), plus start-up
//! errors. Every wait is on an observable condition with a deadline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reference_sidecar::{Config, Listeners, run};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
struct App {
    deliveries: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    subscribe_calls: Arc<Mutex<u32>>,
    notify: Arc<Notify>,
}

async fn app_handler(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/dapr/subscribe" {
        *app.subscribe_calls.lock().unwrap() += 1;
        return axum::Json(json!([
            {"pubsubname": "pubsub", "topic": "orders", "route": "/orders", "deadLetterTopic": "poison"},
            {"pubsubname": "pubsub", "topic": "poison", "route": "/dlq"},
        ]))
        .into_response();
    }
    if path == "/dapr/config" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let ce: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mode = ce["data"]["mode"].as_str().unwrap_or("ok").to_owned();
    let id = ce["id"].as_str().unwrap_or("").to_owned();
    let attempt = {
        let mut a = app.attempts.lock().unwrap();
        let n = a.entry(format!("{path}:{id}")).or_insert(0);
        *n += 1;
        *n
    };
    app.deliveries
        .lock()
        .unwrap()
        .push((path.clone(), headers, ce));
    app.notify.notify_waiters();
    if path == "/dlq" {
        return StatusCode::OK.into_response();
    }
    match mode.as_str() {
        "retry2" if attempt <= 2 => axum::Json(json!({"status": "RETRY"})).into_response(),
        "always-retry" => axum::Json(json!({"status": "RETRY"})).into_response(),
        "drop" => axum::Json(json!({"status": "DROP"})).into_response(),
        "404" => StatusCode::NOT_FOUND.into_response(),
        _ => axum::Json(json!({"status": "SUCCESS"})).into_response(),
    }
}

impl App {
    fn count(&self, path: &str, tag: &str) -> usize {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, ce)| p == path && ce["data"]["tag"] == tag)
            .count()
    }

    async fn wait(&self, path: &str, tag: &str, n: usize) {
        let waited = tokio::time::timeout(DEADLINE, async {
            loop {
                let notified = self.notify.notified();
                if self.count(path, tag) >= n {
                    return;
                }
                notified.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "waited {DEADLINE:?} for {n} deliveries of {tag} on {path}, saw {}",
            self.count(path, tag)
        );
    }

    fn first(&self, path: &str, tag: &str) -> (HeaderMap, Value) {
        let d = self.deliveries.lock().unwrap();
        let (_, h, ce) = d
            .iter()
            .find(|(p, _, ce)| p == path && ce["data"]["tag"] == tag)
            .unwrap();
        (h.clone(), ce.clone())
    }
}

struct Harness {
    app: App,
    http: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), reference_sidecar::RunError>>,
    _dir: tempfile::TempDir,
}

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

fn config(dir: &std::path::Path, app_port: u16) -> Config {
    Config {
        app_id: "checkout".into(),
        app_port: Some(app_port),
        app_channel_address: "127.0.0.1".into(),
        app_protocol: "http".into(),
        resources_paths: vec![dir.to_owned()],
        config_file: None,
        app_max_concurrency: -1,
        max_body_size: 1 << 20,
        graceful_shutdown: Duration::from_secs(2),
        api_token: None,
        app_api_token: None,
        listen_addresses: vec!["127.0.0.1".parse().unwrap()],
        http_port: 0,
        grpc_port: 0,
        limits: reference_sidecar::Limits::default(),
    }
}

async fn start() -> Harness {
    let app = App::default();
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = app_listener.local_addr().unwrap().port();
    let router = Router::new().fallback(app_handler).with_state(app.clone());
    tokio::spawn(async move { axum::serve(app_listener, router).await });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resources.yaml"), RESOURCES).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(run(
        config(dir.path(), app_port),
        Listeners {
            http: vec![listener],
            grpc: Vec::new(),
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let h = Harness {
        app,
        http: format!("http://{addr}"),
        client,
        stop: Some(stop),
        done,
        _dir: dir,
    };
    h.wait_healthy().await;
    h
}

impl Harness {
    async fn request(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: &str,
    ) -> (StatusCode, Bytes) {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.http));
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    async fn publish(&self, tag: &str, mode: &str) {
        let body = json!({"tag": tag, "mode": mode}).to_string();
        let (status, _) = self
            .request(
                "POST",
                "/v1.0/publish/pubsub/orders",
                Some("application/json"),
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    async fn wait_healthy(&self) {
        let ok = tokio::time::timeout(DEADLINE, async {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                if self.request("GET", "/v1.0/healthz", None, "").await.0 == StatusCode::NO_CONTENT
                {
                    return;
                }
            }
        })
        .await;
        assert!(ok.is_ok(), "sidecar not healthy within {DEADLINE:?}");
    }

    /// FIFO barrier on the dead-letter topic: once this marker arrives, every earlier
    /// dead-letter copy has arrived too.
    async fn dlq_barrier(&self, marker: &str) {
        let body = json!({"tag": marker}).to_string();
        let (status, _) = self
            .request(
                "POST",
                "/v1.0/publish/pubsub/poison",
                Some("application/json"),
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        self.app.wait("/dlq", marker, 1).await;
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(DEADLINE, self.done)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_when_scenario() {
    let h = start().await;
    assert_eq!(
        *h.app.subscribe_calls.lock().unwrap(),
        1,
        "/dapr/subscribe called once"
    );

    // A JSON publish arrives as a daprd-shaped CloudEvent.
    h.publish("plain", "ok").await;
    h.app.wait("/orders", "plain", 1).await;
    let (headers, ce) = h.app.first("/orders", "plain");
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
    h.publish("always", "always-retry").await;
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
    let (_, original) = h.app.first("/orders", "always");
    let (_, dead) = h.app.first("/dlq", "always");
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
        config(dir.path(), 1),
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

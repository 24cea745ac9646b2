//! Helpers the in-process tests share: a scripted app, a sidecar running on its own tokio
//! runtime (so a test can crash it without a graceful shutdown), its configuration and resources
//! (`setup`), start-up errors, and a private `redis-server` on a loopback port with its own
//! directory.
//!
//! Every wait is on an observable condition with a deadline.

// The Kafka helpers are used only when the `kafka` feature builds the Kafka tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reference_sidecar::{Config, Listeners, RunError, run};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};

mod setup;

pub(crate) use setup::{IN_MEMORY, RETRY_POLICY, config, pubsub_component, resources};

/// How long anything expected may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `cond` every 10 ms until it holds; panics naming `what` after `deadline`.
pub(crate) async fn wait_until(
    what: &str,
    deadline: Duration,
    mut cond: impl AsyncFnMut() -> bool,
) {
    let done = tokio::time::timeout(deadline, async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if cond().await {
                return;
            }
        }
    })
    .await;
    assert!(done.is_ok(), "waited {deadline:?} for {what}");
}

/// One request the app received.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) ce: Value,
}

/// A scripted app. Its `/dapr/subscribe` answer is fixed at creation; deliveries behave by the
/// event's `data.mode`: `ok` (default), `retry` (always RETRY), `retry2` (RETRY on the first
/// two attempts of each event id), `drop` (DROP), `404` (a 404 status), `hang-first` (the first
/// attempt of each event id never gets an answer, later ones succeed). `/dlq` always succeeds.
///
/// [`App::start_echo`] makes an app for service invocation too: a path that no subscription
/// routes to answers 201 with a line echoing the request (method, path and query, body, and the
/// `dapr-api-token`, `x-custom` and `dapr-caller-app-id` headers), except `/missing` (404).
#[derive(Clone)]
pub(crate) struct App {
    subscriptions: Value,
    /// With [`App::start_echo`], the paths deliveries arrive on; `None` for every path.
    routes: Option<Vec<String>>,
    subscribe_calls: Arc<Mutex<u32>>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    notify: Arc<Notify>,
}

impl App {
    /// Serves the app on a loopback port of the current runtime; returns it and the port.
    pub(crate) async fn start(subscriptions: Value) -> (App, u16) {
        App::serve(subscriptions, None).await
    }

    /// Like [`App::start`], answering paths no subscription routes to as an echo.
    pub(crate) async fn start_echo(subscriptions: Value) -> (App, u16) {
        let routes = subscriptions
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["route"].as_str().map(str::to_owned))
            .chain(["/dlq".to_owned()])
            .collect();
        App::serve(subscriptions, Some(routes)).await
    }

    async fn serve(subscriptions: Value, routes: Option<Vec<String>>) -> (App, u16) {
        let app = App {
            subscriptions,
            routes,
            subscribe_calls: Arc::default(),
            deliveries: Arc::default(),
            attempts: Arc::default(),
            notify: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = Router::new().fallback(app_handler).with_state(app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (app, port)
    }

    /// Deliveries on `path` whose `data.tag` is `tag`.
    pub(crate) fn count(&self, path: &str, tag: &str) -> usize {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.path == path && d.ce["data"]["tag"] == tag)
            .count()
    }

    /// How many times the sidecar asked `/dapr/subscribe`.
    pub(crate) fn subscribe_calls(&self) -> u32 {
        *self.subscribe_calls.lock().unwrap()
    }

    /// The first delivery on `path` whose `data.tag` is `tag`.
    pub(crate) fn first(&self, path: &str, tag: &str) -> Delivery {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .find(|d| d.path == path && d.ce["data"]["tag"] == tag)
            .cloned()
            .unwrap_or_else(|| panic!("no delivery of {tag} on {path}"))
    }

    /// Waits for the first delivery, on any path, whose `data.tag` (or `data`) is `tag`.
    pub(crate) async fn wait_for(&self, tag: &str) -> Value {
        let found = tokio::time::timeout(DEADLINE, async {
            loop {
                let notified = self.notify.notified();
                let hit = self
                    .deliveries
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|d| d.ce["data"]["tag"] == tag || d.ce["data"] == tag)
                    .map(|d| d.ce.clone());
                if let Some(ce) = hit {
                    return ce;
                }
                notified.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no delivery tagged {tag} within {DEADLINE:?}"))
    }

    /// Every delivery on `path`, in arrival order.
    pub(crate) fn on(&self, path: &str) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` has seen at least `n` deliveries of `tag`.
    pub(crate) async fn wait(&self, path: &str, tag: &str, n: usize) {
        self.wait_within(path, tag, n, DEADLINE).await;
    }

    pub(crate) async fn wait_within(&self, path: &str, tag: &str, n: usize, deadline: Duration) {
        let waited = tokio::time::timeout(deadline, async {
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
            "waited {deadline:?} for {n} deliveries of {tag} on {path}, saw {}",
            self.count(path, tag)
        );
    }
}

async fn app_handler(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/dapr/subscribe" {
        *app.subscribe_calls.lock().unwrap() += 1;
        return axum::Json(app.subscriptions.clone()).into_response();
    }
    if path == "/dapr/config" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(routes) = &app.routes
        && !routes.contains(&path)
    {
        return echo(&method, &uri, &headers, &body);
    }
    let ce: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mode = ce["data"]["mode"].as_str().unwrap_or("ok").to_owned();
    let id = ce["id"].as_str().unwrap_or("").to_owned();
    let is_dlq = path == "/dlq";
    let attempt = {
        let mut a = app.attempts.lock().unwrap();
        let n = a.entry(format!("{path}:{id}")).or_insert(0);
        *n += 1;
        *n
    };
    app.deliveries
        .lock()
        .unwrap()
        .push(Delivery { path, headers, ce });
    app.notify.notify_waiters();
    if is_dlq {
        return axum::Json(json!({"status": "SUCCESS"})).into_response();
    }
    match mode.as_str() {
        "retry" => axum::Json(json!({"status": "RETRY"})).into_response(),
        "retry2" if attempt <= 2 => axum::Json(json!({"status": "RETRY"})).into_response(),
        "drop" => axum::Json(json!({"status": "DROP"})).into_response(),
        "404" => StatusCode::NOT_FOUND.into_response(),
        "hang-first" if attempt == 1 => std::future::pending().await,
        _ => axum::Json(json!({"status": "SUCCESS"})).into_response(),
    }
}

/// The echo app's answer to a request no subscription routes.
fn echo(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    if uri.path() == "/missing" {
        return (StatusCode::NOT_FOUND, "nope").into_response();
    }
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let text = format!(
        "{method} {} {} token={} custom={} caller={}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
        String::from_utf8_lossy(body),
        header("dapr-api-token"),
        header("x-custom"),
        header("dapr-caller-app-id"),
    );
    (StatusCode::CREATED, [("x-echo", "yes")], text).into_response()
}

/// A sidecar on its own runtime: [`Sidecar::crash`] drops every task at once, as a killed
/// process would, with no graceful shutdown and no acknowledgements.
pub(crate) struct Sidecar {
    /// The HTTP API's address.
    pub(crate) addr: SocketAddr,
    pub(crate) http: String,
    /// The gRPC API's URL.
    pub(crate) grpc: String,
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), RunError>>>,
    /// With [`Sidecar::with_resources`], the resources directory, kept for the sidecar's life.
    resources: Option<tempfile::TempDir>,
}

impl Sidecar {
    /// Starts the sidecar and waits until `/v1.0/healthz` answers 204.
    pub(crate) async fn start(config: Config) -> Sidecar {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let grpc = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        grpc.set_nonblocking(true).unwrap();
        let grpc_addr: SocketAddr = grpc.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = runtime.spawn(async move {
            let listeners = Listeners {
                http: vec![tokio::net::TcpListener::from_std(listener).unwrap()],
                grpc: vec![tokio::net::TcpListener::from_std(grpc).unwrap()],
            };
            run(config, listeners, async move {
                let _ = stopped.await;
            })
            .await
        });
        let s = Sidecar {
            addr,
            http: format!("http://{addr}"),
            grpc: format!("http://{grpc_addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            runtime: Some(runtime),
            stop: Some(stop),
            done: Some(done),
            resources: None,
        };
        s.wait_healthy().await;
        s
    }

    /// Starts a sidecar with app-id `checkout` in front of the app on `app_port`, reading `yaml`
    /// from a resources directory of its own; `adjust` changes the configuration first.
    pub(crate) async fn with_resources(
        app_port: Option<u16>,
        yaml: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Sidecar {
        let dir = resources(yaml);
        let mut config = config("checkout", app_port, dir.path());
        adjust(&mut config);
        let mut sidecar = Sidecar::start(config).await;
        sidecar.resources = Some(dir);
        sidecar
    }

    /// One request to the HTTP API, with a content type or none.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: &str,
    ) -> (StatusCode, Bytes) {
        let ct = ct.map(|ct| ("content-type", ct));
        let (status, _, body) = self.send(method, path, ct.as_slice(), body).await;
        (status, body)
    }

    /// One request to the HTTP API with `headers`; the answer's status, headers and body.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.http));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    /// A client of the gRPC API (the `dapr` crate's generated one).
    pub(crate) async fn grpc_client(
        &self,
    ) -> dapr::dapr::proto::runtime::v1::dapr_client::DaprClient<tonic::transport::Channel> {
        dapr::dapr::proto::runtime::v1::dapr_client::DaprClient::connect(self.grpc.clone())
            .await
            .unwrap()
    }

    /// Publishes JSON to `pubsub`/`topic` (the path may carry `?metadata.*`).
    pub(crate) async fn publish(&self, topic_path: &str, data: &Value) -> (StatusCode, Bytes) {
        self.request(
            "POST",
            &format!("/v1.0/publish/pubsub/{topic_path}"),
            Some("application/json"),
            &data.to_string(),
        )
        .await
    }

    /// Publishes and asserts 204.
    pub(crate) async fn publish_ok(&self, topic_path: &str, data: &Value) {
        let (status, body) = self.publish(topic_path, data).await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "publish to {topic_path}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    async fn wait_healthy(&self) {
        let ok = tokio::time::timeout(DEADLINE, async {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                if self.is_finished() {
                    return;
                }
                if self.request("GET", "/v1.0/healthz", None, "").await.0 == StatusCode::NO_CONTENT
                {
                    return;
                }
            }
        })
        .await;
        assert!(ok.is_ok(), "sidecar not healthy within {DEADLINE:?}");
        assert!(!self.is_finished(), "the sidecar stopped during start-up");
    }

    /// Whether `run` has returned (it never should on its own).
    pub(crate) fn is_finished(&self) -> bool {
        self.done.as_ref().is_none_or(|d| d.is_finished())
    }

    /// Graceful shutdown; `run` must return `Ok`.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(DEADLINE, done)
                .await
                .expect("sidecar did not stop within the deadline")
                .unwrap()
                .unwrap();
        }
    }

    /// Drops every task of the sidecar at once.
    pub(crate) fn crash(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another runtime; this variant does not block.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The usual subscriptions: `orders` on `pubsub`, delivered to `/orders`.
pub(crate) fn orders() -> Value {
    json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
}

/// A scripted app subscribed to `subscriptions`, and a sidecar in front of it reading `yaml`
/// ([`Sidecar::with_resources`]).
pub(crate) async fn app_with_sidecar(subscriptions: Value, yaml: &str) -> (App, Sidecar) {
    let (app, port) = App::start(subscriptions).await;
    let sidecar = Sidecar::with_resources(Some(port), yaml, |_| {}).await;
    (app, sidecar)
}

/// Runs a sidecar from `config` that must fail at start-up, and returns its error.
async fn start_up_error(config: Config) -> RunError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listeners = Listeners {
        http: vec![listener],
        ..Default::default()
    };
    run(config, listeners, std::future::pending())
        .await
        .unwrap_err()
}

/// Asserts that a sidecar (app-id `checkout`, no app) fails to start from `yaml` with an error
/// chain naming each of `parts`.
pub(crate) async fn assert_start_up_fails(yaml: &str, parts: &[&str]) {
    let dir = resources(yaml);
    let err = start_up_error(config("checkout", None, dir.path())).await;
    let text = format!("{:#}", anyhow::Error::new(err));
    for part in parts {
        assert!(
            text.contains(part),
            "the start-up error does not name {part:?}: {text}"
        );
    }
}

/// The `errorCode` of an API error body ("" when it has none).
pub(crate) fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).unwrap()["errorCode"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// A loopback port that was free a moment ago: bound, then released.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `redis-server` on a free loopback port, with its own directory and no persistence.
/// Killed on drop.
pub(crate) struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts it and waits until it answers PING. Panics with a clear message when
    /// `redis-server` is not installed.
    pub(crate) async fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.spawn().await;
        server
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (not found on PATH): the pubsub.redis tests start \
                 a private one; scripts/test.sh installs it, or run `apt-get install redis-server`"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let ready = tokio::time::timeout(DEADLINE, async {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                if self.ping().await {
                    return;
                }
            }
        })
        .await;
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        assert!(
            ready.is_ok(),
            "redis-server on {} did not answer PING within {DEADLINE:?}; its log:\n{log}",
            self.addr()
        );
    }

    async fn ping(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(self.addr()).await else {
            return false;
        };
        if s.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n"
    }

    /// Kills the server (its data is gone: no persistence).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub(crate) async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// A client connection for assertions on the server's state.
    pub(crate) async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://{}", self.addr()))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Entries of `topic` read by `group` and not yet acknowledged.
    pub(crate) async fn pending(&self, topic: &str, group: &str) -> i64 {
        let mut conn = self.connection().await;
        let reply: redis::Value = redis::cmd("XPENDING")
            .arg(topic)
            .arg(group)
            .query_async(&mut conn)
            .await
            .unwrap();
        match reply {
            redis::Value::Array(v) => match v.first() {
                Some(redis::Value::Int(n)) => *n,
                other => panic!("unexpected XPENDING reply {other:?}"),
            },
            other => panic!("unexpected XPENDING reply {other:?}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

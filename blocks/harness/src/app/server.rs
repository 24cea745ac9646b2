//! The test app's HTTP/1 server and its public handle, [`TestApp`].

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming as IncomingBody;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::recorder::{Control, Incoming, RecordedDelivery, RecordedRequest, Recorder, WaitError};
use super::script::{Action, Outcome, Script};

/// Why the test app could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestAppError {
    /// The port could not be bound.
    #[error("cannot bind the test app to 127.0.0.1:{port}")]
    Bind {
        /// The requested port (0 for any).
        port: u16,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
}

/// How the sidecar talks to the app (its `--app-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppProtocol {
    /// HTTP/1.1: `GET /dapr/subscribe` and POSTs.
    #[default]
    Http,
    /// gRPC: the `AppCallback` service.
    Grpc,
}

impl AppProtocol {
    /// The `--app-protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::Http => "http",
            AppProtocol::Grpc => "grpc",
        }
    }
}

/// Initial settings of a [`TestApp`]; everything but the protocol can be changed while it
/// runs.
#[derive(Debug, Clone)]
pub struct TestAppConfig {
    /// The body of `GET /dapr/subscribe` (status 200). Default: `[]`. A gRPC app answers
    /// `ListTopicSubscriptions` with the same entries.
    pub subscriptions: Value,
    /// The script for routes without their own. Default: [`Script::Success`].
    pub default_script: Script,
    /// HTTP (default) or gRPC.
    pub protocol: AppProtocol,
}

impl Default for TestAppConfig {
    fn default() -> TestAppConfig {
        TestAppConfig {
            subscriptions: Value::Array(Vec::new()),
            default_script: Script::Success,
            protocol: AppProtocol::Http,
        }
    }
}

/// What the app answers; changed by the test while the app runs.
pub(super) struct Behaviour {
    pub(super) subscribe_status: u16,
    pub(super) subscribe_body: Bytes,
    pub(super) subscribe_delay: Duration,
    /// How many of the next `GET /dapr/subscribe` calls get their connection closed unanswered
    /// (over gRPC: `ListTopicSubscriptions` calls answered UNAVAILABLE).
    pub(super) subscribe_drops: u32,
    scripts: HashMap<String, Script>,
    default_script: Script,
}

pub(super) struct Shared {
    pub(super) recorder: Recorder,
    behaviour: Mutex<Behaviour>,
    pub(super) in_flight: AtomicU32,
}

impl Shared {
    pub(super) fn behaviour(&self) -> MutexGuard<'_, Behaviour> {
        // Every update is a single assignment, so a poisoned lock holds consistent data.
        self.behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a subscription discovery call (`GET /dapr/subscribe` or gRPC
    /// `ListTopicSubscriptions`) and says how to answer it: `None` drops the call (one of the
    /// scripted drops is used up), else the status, body and delay to answer with.
    pub(super) fn discovery_answer(
        &self,
        incoming: Incoming,
    ) -> Option<(u16, Bytes, std::time::Duration)> {
        self.recorder.record_control(Control::Subscribe, incoming);
        let mut b = self.behaviour();
        if b.subscribe_drops > 0 {
            b.subscribe_drops -= 1;
            return None;
        }
        Some((
            b.subscribe_status,
            b.subscribe_body.clone(),
            b.subscribe_delay,
        ))
    }

    /// Takes a delivery: counts it in flight until the guard is dropped, records it, and plans
    /// its answer by its route's script, recorded in the gRPC form of the answer when `grpc`.
    pub(super) fn take_delivery(&self, incoming: Incoming, grpc: bool) -> (Action, InFlight<'_>) {
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = InFlight(&self.in_flight);
        let script = self.script_for(&incoming.path);
        let action = self
            .recorder
            .record_delivery(incoming, in_flight, |attempt, tck_id| {
                let action = script.plan(attempt, tck_id);
                let (answered, answer) = if grpc {
                    (action.grpc_describe(), action.grpc_label())
                } else {
                    (action.describe(), action.label())
                };
                (action, answered, answer)
            });
        (action, guard)
    }

    /// The script for requests to `route`.
    pub(super) fn script_for(&self, route: &str) -> Script {
        let b = self.behaviour();
        b.scripts
            .get(route)
            .cloned()
            .unwrap_or_else(|| b.default_script.clone())
    }
}

/// One listening incarnation of the app.
struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The scriptable test app: see the [module docs](crate::app).
///
/// Recordings and scripts survive [`TestApp::stop`] and [`TestApp::restart_on_same_port`].
/// Dropping the handle stops the server and closes every connection.
pub struct TestApp {
    shared: Arc<Shared>,
    port: u16,
    protocol: AppProtocol,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Marks a request whose connection must be closed without a response: hyper closes the
/// connection when the service returns an error.
#[derive(Debug, thiserror::Error)]
#[error("connection closed by script")]
struct CloseConnection;

/// Decrements the in-flight counter when a request's handling ends, however it ends.
pub(super) struct InFlight<'a>(pub(super) &'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TestApp {
    /// Starts the app on a free loopback port.
    pub async fn start(config: TestAppConfig) -> Result<TestApp, TestAppError> {
        TestApp::start_on(0, config).await
    }

    /// Starts the app on `127.0.0.1:port` (0 for any), for example a port a sidecar was
    /// already told to use.
    pub async fn start_on(port: u16, config: TestAppConfig) -> Result<TestApp, TestAppError> {
        let shared = Arc::new(Shared {
            recorder: Recorder::new(),
            behaviour: Mutex::new(Behaviour {
                subscribe_status: 200,
                subscribe_body: Bytes::from(config.subscriptions.to_string()),
                subscribe_delay: Duration::ZERO,
                subscribe_drops: 0,
                scripts: HashMap::new(),
                default_script: config.default_script,
            }),
            in_flight: AtomicU32::new(0),
        });
        let (listener, port) = bind(port).await?;
        let running = spawn_server(listener, Arc::clone(&shared), config.protocol);
        tracing::debug!(
            port,
            protocol = config.protocol.as_str(),
            "test app listening"
        );
        Ok(TestApp {
            shared,
            port,
            protocol: config.protocol,
            running: Mutex::new(Some(running)),
        })
    }

    /// The loopback port the app listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The protocol the app speaks.
    pub fn protocol(&self) -> AppProtocol {
        self.protocol
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops listening and closes every connection; requests in progress (including
    /// hanging ones) end without a response. Recordings are kept.
    pub async fn stop(&self) {
        let running = self.running_slot().take();
        if let Some(r) = running {
            let _ = r.shutdown.send(true);
            let _ = r.task.await;
        }
    }

    /// Stops the app if it runs, then listens again on the same port.
    pub async fn restart_on_same_port(&self) -> Result<(), TestAppError> {
        self.stop().await;
        let (listener, _) = bind(self.port).await?;
        let running = spawn_server(listener, Arc::clone(&self.shared), self.protocol);
        *self.running_slot() = Some(running);
        Ok(())
    }

    /// Whether the app is listening.
    pub fn is_running(&self) -> bool {
        self.running_slot().is_some()
    }

    /// Sets the JSON served (with 200) on `GET /dapr/subscribe`; any JSON value, so tests
    /// can send odd shapes.
    pub fn set_subscriptions(&self, subscriptions: Value) {
        self.set_subscribe_response(200, Bytes::from(subscriptions.to_string()));
    }

    /// Sets the exact status and body of `GET /dapr/subscribe` (malformed replies, 404...).
    pub fn set_subscribe_response(&self, status: u16, body: impl Into<Bytes>) {
        let mut b = self.shared.behaviour();
        b.subscribe_status = status;
        b.subscribe_body = body.into();
    }

    /// Delays every `GET /dapr/subscribe` answer by `delay`.
    pub fn set_subscribe_delay(&self, delay: Duration) {
        self.shared.behaviour().subscribe_delay = delay;
    }

    /// Closes the connection of each of the next `n` `GET /dapr/subscribe` calls without an
    /// answer (an app that is not ready yet); later calls are answered as set.
    pub fn set_subscribe_drops(&self, n: u32) {
        self.shared.behaviour().subscribe_drops = n;
    }

    /// Sets the behaviour for requests to `route` (the path without the query).
    pub fn script(&self, route: &str, script: Script) {
        self.shared
            .behaviour()
            .scripts
            .insert(route.to_owned(), script);
    }

    /// Sets the behaviour for routes without their own script.
    pub fn set_default_script(&self, script: Script) {
        self.shared.behaviour().default_script = script;
    }

    /// Every `GET /dapr/subscribe` call so far.
    pub fn subscribe_calls(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.subscribe_calls()
    }

    /// Every `GET /dapr/config` call so far (answered 404: the app has no configuration).
    pub fn config_calls(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.config_calls()
    }

    /// Every other request so far, in arrival order.
    pub fn deliveries(&self) -> Vec<RecordedDelivery> {
        self.shared.recorder.deliveries(None)
    }

    /// The requests to `route` so far, in arrival order.
    pub fn deliveries_on(&self, route: &str) -> Vec<RecordedDelivery> {
        self.shared.recorder.deliveries(Some(route))
    }

    /// Waits until at least `n` deliveries arrived (on `route`, or anywhere), then returns
    /// all of them.
    pub async fn wait_deliveries(
        &self,
        route: Option<&str>,
        n: usize,
        deadline: Duration,
    ) -> Result<Vec<RecordedDelivery>, WaitError> {
        self.shared
            .recorder
            .wait_for(n, deadline, |r| r.deliveries(route))
            .await
            .map_err(|got| WaitError::Deliveries {
                waited: deadline,
                route: route.map(str::to_owned),
                wanted: n,
                saw: got.len(),
            })
    }

    /// From now on requests to `route` are answered by its script as first attempts and only
    /// counted ([`TestApp::tallied`]), not recorded: for a route that takes a flood, such as a
    /// fuzz campaign's junk topic, whose every request would otherwise be kept, body and all,
    /// until the trial ends.
    pub fn tally_only(&self, route: &str) {
        self.shared.recorder.tally_only(route);
    }

    /// How many requests `route` answered since [`TestApp::tally_only`] named it.
    pub fn tallied(&self, route: &str) -> u64 {
        self.shared.recorder.tallied(route)
    }

    /// Waits until message `tck_id` (the harness's message id) arrived at least `n` times on
    /// `route`, then returns its deliveries there.
    pub async fn wait_message(
        &self,
        route: &str,
        tck_id: &str,
        n: usize,
        deadline: Duration,
    ) -> Result<Vec<RecordedDelivery>, WaitError> {
        self.shared
            .recorder
            .wait_message(route, tck_id, n, deadline)
            .await
    }

    /// Waits until at least `n` `GET /dapr/subscribe` calls arrived.
    pub async fn wait_subscribe_calls(
        &self,
        n: usize,
        deadline: Duration,
    ) -> Result<Vec<RecordedRequest>, WaitError> {
        self.shared
            .recorder
            .wait_for(n, deadline, Recorder::subscribe_calls)
            .await
            .map_err(|got| WaitError::SubscribeCalls {
                waited: deadline,
                wanted: n,
                saw: got.len(),
            })
    }

    /// Watches for `window` and returns the deliveries (on `route`, or anywhere) seen when
    /// it closes.
    ///
    /// This is an observation window for asserting that nothing more arrives (no
    /// redelivery after DROP, say), not a synchronisation: to wait for something that
    /// must happen, use [`TestApp::wait_deliveries`].
    pub async fn observe_quiet(
        &self,
        route: Option<&str>,
        window: Duration,
    ) -> Vec<RecordedDelivery> {
        tokio::time::sleep(window).await;
        self.shared.recorder.deliveries(route)
    }

    /// Every delivery so far as history events, timed relative to `trial_start`.
    pub fn history_events(&self, trial_start: std::time::Instant) -> Vec<harness_history::Event> {
        self.deliveries()
            .iter()
            .map(|d| d.to_history(trial_start))
            .collect()
    }

    fn running_slot(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(r) = self.running_slot().take() {
            let _ = r.shutdown.send(true);
            // Aborting the accept task drops its JoinSet, which aborts every connection.
            r.task.abort();
        }
    }
}

async fn bind(port: u16) -> Result<(TcpListener, u16), TestAppError> {
    let err = |source| TestAppError::Bind { port, source };
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(err)?;
    let bound = listener.local_addr().map_err(err)?.port();
    Ok((listener, bound))
}

fn spawn_server(listener: TcpListener, shared: Arc<Shared>, protocol: AppProtocol) -> Running {
    let (shutdown, rx) = watch::channel(false);
    let task = match protocol {
        AppProtocol::Http => tokio::spawn(accept_loop(listener, shared, rx)),
        AppProtocol::Grpc => tokio::spawn(super::grpc::serve(listener, shared, rx)),
    };
    Running { shutdown, task }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let stop = shutdown.clone();
    crate::serve::until_stopped(listener, stop, move |stream| {
        let shared = Arc::clone(&shared);
        let rx = shutdown.clone();
        async move {
            let service = service_fn(move |req| handle(Arc::clone(&shared), rx.clone(), req));
            // Errors here are closed or reset connections, including the ones the scripts
            // close on purpose.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

fn response(status: u16, content_type: Option<&str>, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type
        && let Ok(v) = http::HeaderValue::from_str(ct)
    {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

pub(super) use crate::serve::stopping;

async fn handle(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    req: Request<IncomingBody>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let (parts, body) = req.into_parts();
    // A client that goes away mid-body gets its connection closed.
    let body = body
        .collect()
        .await
        .map_err(|_| CloseConnection)?
        .to_bytes();
    let incoming = Incoming {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };

    if parts.method == http::Method::GET && incoming.path == "/dapr/subscribe" {
        let Some((status, body, delay)) = shared.discovery_answer(incoming) else {
            return Err(CloseConnection);
        };
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopping(shutdown) => return Err(CloseConnection),
            }
        }
        return Ok(response(status, Some("application/json"), body));
    }
    if parts.method == http::Method::GET && incoming.path == "/dapr/config" {
        shared.recorder.record_control(Control::Config, incoming);
        return Ok(response(404, None, Bytes::new()));
    }

    let (action, _in_flight) = shared.take_delivery(incoming, false);
    if !action.delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(action.delay) => {}
            _ = stopping(shutdown.clone()) => return Err(CloseConnection),
        }
    }
    match action.outcome {
        Outcome::Respond {
            status,
            content_type,
            body,
        } => Ok(response(status, content_type, body)),
        Outcome::Grpc(code) => Ok(response(
            super::script::http_status_for_grpc(code),
            Some("application/json"),
            Bytes::from(format!(r#"{{"grpc":{code}}}"#)),
        )),
        Outcome::Close => Err(CloseConnection),
        Outcome::Hang => {
            stopping(shutdown).await;
            Err(CloseConnection)
        }
    }
}

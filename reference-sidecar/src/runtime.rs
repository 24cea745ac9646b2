//! The runtime: loads resources, builds brokers and state stores, serves the HTTP and gRPC APIs,
//! discovers the app's subscriptions, starts deliveries, and shuts down gracefully.
//!
//! Start-up order mirrors daprd: components and API first (so `/v1.0/healthz/outbound` turns
//! 204 and publishing works early), then the wait for the app port, then `/dapr/subscribe`
//! exactly once, then the subscriptions, and only then `/v1.0/healthz` turns 204.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::serve::{self, Slots};
use crate::app_channel::{App, AppChannel, ChannelError, ChannelSettings};
use crate::broker::{Broker, BrokerError};
use crate::delivery::Deliverer;
use crate::limits::Limits;
use crate::resiliency::{Direction, DirectionPolicy, Resiliency};
use crate::resources::{self, ComponentDef, LoadError};
use crate::scopes::{Operation, Scopes};
use crate::secret::Secret;
use crate::state::{KeyPrefix, StateError, StateStore};
use crate::subscription::{self, Subscription};

/// Everything the sidecar is told at start. Its derived `Debug` is safe to log: the tokens are
/// [`Secret`]s.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--app-id`.
    pub app_id: String,
    /// `--app-port`; `None` = no app.
    pub app_port: Option<u16>,
    /// `--app-channel-address`.
    pub app_channel_address: String,
    /// `--app-protocol`: `http`, or `grpc` (with the `grpc` feature).
    pub app_protocol: String,
    /// `--resources-path` / `--components-path`.
    pub resources_paths: Vec<PathBuf>,
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--app-max-concurrency` (-1 unlimited).
    pub app_max_concurrency: i64,
    /// `--max-body-size` in bytes.
    pub max_body_size: usize,
    /// `--dapr-graceful-shutdown-seconds`.
    pub graceful_shutdown: Duration,
    /// `DAPR_API_TOKEN` (redacted in `Debug`).
    pub api_token: Option<Secret>,
    /// `APP_API_TOKEN` (redacted in `Debug`).
    pub app_api_token: Option<Secret>,
    /// Listen addresses (for the metadata API only; the listeners are passed in).
    pub listen_addresses: Vec<IpAddr>,
    /// `--dapr-http-port`.
    pub http_port: u16,
    /// `--dapr-grpc-port`.
    pub grpc_port: u16,
    /// Server and app-channel timeouts and caps (`Limits::default()` in the binary).
    pub limits: Limits,
}

/// The sockets the APIs serve on, bound by the caller (one per listen address).
#[derive(Debug, Default)]
pub struct Listeners {
    /// `--dapr-http-port` listeners.
    pub http: Vec<TcpListener>,
    /// `--dapr-grpc-port` listeners; ignored when the `grpc` feature is off.
    pub grpc: Vec<TcpListener>,
}

/// Start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A resource file is unreadable or invalid.
    #[error("loading resources")]
    Resources(#[from] LoadError),
    /// A component names an unknown type, has bad metadata, or cannot reach its broker.
    #[error("{file}: Component {name:?}: {}", .source.key_path())]
    Component {
        /// The file.
        file: PathBuf,
        /// The component name.
        name: String,
        /// What is wrong.
        #[source]
        source: BrokerError,
    },
    /// A state component names an unknown type, has bad metadata or cannot connect.
    #[error("{file}: Component {name:?}: {}", .source.key_path())]
    StateStore {
        /// The file.
        file: PathBuf,
        /// The component name.
        name: String,
        /// What is wrong.
        #[source]
        source: StateError,
    },
    /// A component type that is neither `pubsub.*` nor `state.*`.
    #[error(
        "{file}: Component {name:?}: spec.type: unknown component type {type_:?} (supported: {supported})"
    )]
    UnknownComponentType {
        /// The file.
        file: PathBuf,
        /// The component name.
        name: String,
        /// What the file said.
        type_: String,
        /// What this build supports.
        supported: String,
    },
    /// Two components share a name.
    #[error("{file}: Component {name:?}: metadata.name is already used by another component")]
    DuplicateComponent {
        /// The file of the second one.
        file: PathBuf,
        /// The name.
        name: String,
    },
    /// The app address or token is unusable.
    #[error("app channel")]
    Channel(#[from] ChannelError),
    /// An API server task ended abnormally.
    #[error("serving the API: {0}")]
    ServeTask(String),
    /// Serving the gRPC API failed.
    #[cfg(feature = "grpc")]
    #[error("serving the gRPC API")]
    ServeGrpc(#[source] tonic::transport::Error),
}

/// What the metadata API lists of a loaded component, pub/sub or state.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) name: String,
    pub(crate) type_: String,
    pub(crate) version: String,
}

impl Registered {
    fn of(def: &ComponentDef) -> Registered {
        Registered {
            name: def.name.clone(),
            type_: def.type_.clone(),
            version: def.version.clone(),
        }
    }
}

/// A loaded pub/sub component.
#[derive(Debug)]
pub struct Component {
    pub(crate) registered: Registered,
    pub(crate) broker: Broker,
    pub(crate) scopes: Arc<Scopes>,
    /// The outbound Resiliency policy, resolved once: resources never change after start-up,
    /// and resolving builds the `Default…Policy` names on every call.
    pub(crate) outbound: DirectionPolicy,
}

/// A loaded state component.
#[derive(Debug)]
pub struct StateComponent {
    pub(crate) registered: Registered,
    pub(crate) store: StateStore,
    pub(crate) key_prefix: KeyPrefix,
}

/// What kind of building block a component type is, by its prefix.
enum ComponentKind {
    PubSub,
    State,
    Unknown,
}

fn component_kind(type_: &str) -> ComponentKind {
    if type_.starts_with("pubsub.") {
        ComponentKind::PubSub
    } else if type_.starts_with("state.") {
        ComponentKind::State
    } else {
        ComponentKind::Unknown
    }
}

/// Logs the warnings loading `def` gave, naming its file and name.
fn log_warnings(def: &ComponentDef, warnings: Vec<String>) {
    for w in warnings {
        tracing::warn!("{}: Component {:?}: {w}", def.file.display(), def.name);
    }
}

/// Logs that `def` is loaded.
fn log_loaded(def: &ComponentDef) {
    tracing::info!(name = %def.name, type_ = %def.type_, file = %def.file.display(), "component loaded");
}

/// `def` takes a name a component loaded before it has.
fn duplicate(def: &ComponentDef) -> RunError {
    RunError::DuplicateComponent {
        file: def.file.clone(),
        name: def.name.clone(),
    }
}

async fn load_state_store(def: &ComponentDef) -> Result<StateComponent, RunError> {
    let (store, warnings) =
        StateStore::from_component(def)
            .await
            .map_err(|source| RunError::StateStore {
                file: def.file.clone(),
                name: def.name.clone(),
                source,
            })?;
    log_warnings(def, warnings);
    Ok(StateComponent {
        registered: Registered::of(def),
        store,
        key_prefix: KeyPrefix::from_metadata(&def.metadata),
    })
}

/// Shared state of a running sidecar.
pub struct Runtime {
    pub(crate) config: Config,
    pub(crate) components: BTreeMap<String, Component>,
    pub(crate) state_stores: BTreeMap<String, StateComponent>,
    /// The HTTP channel to the app, for service invocation (`None` without `--app-port`, or
    /// with a gRPC app).
    pub(crate) app: Option<AppChannel>,
    pub(crate) resiliency: Resiliency,
    /// The effective subscriptions, once discovery is done (declaratives before that).
    pub(crate) subscriptions: Mutex<Vec<Subscription>>,
    /// The open streaming subscriptions, by a key of their own.
    pub(crate) streams: Mutex<BTreeMap<u64, Subscription>>,
    next_stream: std::sync::atomic::AtomicU64,
    pub(crate) app_ready: AtomicBool,
    pub(crate) started: Instant,
}

impl Runtime {
    /// Every loaded component with its capabilities, pub/sub first (the metadata API's list).
    pub(crate) fn registered(
        &self,
    ) -> impl Iterator<Item = (&Registered, &'static [&'static str])> {
        let pubsubs = self
            .components
            .values()
            .map(|c| (&c.registered, c.broker.capabilities()));
        let stores = self
            .state_stores
            .values()
            .map(|s| (&s.registered, s.store.capabilities()));
        pubsubs.chain(stores)
    }

    /// The app's subscriptions, then the open streaming subscriptions (the metadata API's
    /// list).
    pub(crate) fn subscriptions(&self) -> Vec<Subscription> {
        let mut all = self
            .subscriptions
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if let Ok(streams) = self.streams.lock() {
            all.extend(streams.values().cloned());
        }
        all
    }

    /// Lists a streaming subscription; the key removes it.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) fn add_stream(&self, sub: Subscription) -> u64 {
        let key = self.next_stream.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.streams.lock() {
            s.insert(key, sub);
        }
        key
    }

    /// Unlists a streaming subscription.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) fn remove_stream(&self, key: u64) {
        if let Ok(mut s) = self.streams.lock() {
            s.remove(&key);
        }
    }
}

/// Runs the sidecar on the given listeners until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let started = Instant::now();
    let loaded = resources::load(&config.resources_paths, &config.app_id)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if let Some(path) = &config.config_file {
        for w in resources::load_configuration(path)? {
            tracing::warn!("{w}");
        }
    }
    let mut components = BTreeMap::new();
    let mut state_stores = BTreeMap::new();
    for def in &loaded.components {
        // Names are unique across building blocks.
        if state_stores.contains_key(&def.name)
            || (components.contains_key(&def.name)
                && matches!(component_kind(&def.type_), ComponentKind::State))
        {
            return Err(duplicate(def));
        }
        match component_kind(&def.type_) {
            ComponentKind::PubSub => {}
            ComponentKind::State => {
                let store = load_state_store(def).await?;
                log_loaded(def);
                state_stores.insert(def.name.clone(), store);
                continue;
            }
            ComponentKind::Unknown => {
                return Err(RunError::UnknownComponentType {
                    file: def.file.clone(),
                    name: def.name.clone(),
                    type_: def.type_.clone(),
                    supported: format!(
                        "{}, {}",
                        crate::broker::SUPPORTED_TYPES,
                        crate::state::SUPPORTED_TYPES
                    ),
                });
            }
        }
        let (broker, warnings) =
            Broker::from_component(def, &config.app_id)
                .await
                .map_err(|source| RunError::Component {
                    file: def.file.clone(),
                    name: def.name.clone(),
                    source,
                })?;
        log_warnings(def, warnings);
        if components.contains_key(&def.name) {
            return Err(duplicate(def));
        }
        log_loaded(def);
        components.insert(
            def.name.clone(),
            Component {
                registered: Registered::of(def),
                broker,
                scopes: Arc::new(Scopes::from_metadata(&def.metadata)),
                outbound: loaded.resiliency.resolve(&def.name, Direction::Outbound),
            },
        );
    }
    for s in &loaded.subscriptions {
        tracing::info!(pubsub = %s.pubsub, topic = %s.topic, dead_letter_topic = ?s.dead_letter_topic, "declarative subscription loaded");
    }
    let declarative = loaded.subscriptions;
    let app = match config.app_port {
        Some(port) => Some(app_channel(&config, port)?),
        None => None,
    };
    let rt = Arc::new(Runtime {
        config: config.clone(),
        components,
        state_stores,
        app: match &app {
            Some(App::Http(a)) => Some(a.clone()),
            _ => None,
        },
        resiliency: loaded.resiliency,
        subscriptions: Mutex::new(declarative.clone()),
        streams: Mutex::new(BTreeMap::new()),
        next_stream: std::sync::atomic::AtomicU64::new(0),
        app_ready: AtomicBool::new(false),
        started,
    });

    // The API first: publishing works before the app is up.
    let (stop_tx, stop_rx) = watch::channel(false);
    // Turns true when the grace period is over: deliveries stop retrying, API connections
    // still open are dropped.
    let (abort_tx, abort_rx) = watch::channel(false);
    let has_token = config.api_token.is_some();
    for (api, listeners) in [("HTTP", &listeners.http), ("gRPC", &listeners.grpc)] {
        let addrs: Vec<_> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        for w in serve::exposure_warnings(api, &addrs, has_token) {
            tracing::warn!("{w}");
        }
    }
    let http_slots = Slots::new(config.limits.max_http_connections);
    let mut servers = Vec::new();
    for listener in listeners.http {
        let router = crate::api::router(rt.clone());
        tracing::info!(addr = ?listener.local_addr().ok(), "HTTP API listening");
        servers.push(serve::serve_http(
            listener,
            router,
            http_slots.clone(),
            &config.limits,
            stop_rx.clone(),
            abort_rx.clone(),
        ));
    }

    #[cfg(feature = "grpc")]
    let grpc_slots = Slots::new(config.limits.max_grpc_connections);
    #[cfg(feature = "grpc")]
    let grpc_servers = crate::api::grpc::serve(&rt, listeners.grpc, &grpc_slots, &stop_rx);
    #[cfg(not(feature = "grpc"))]
    warn_grpc_not_served(&listeners.grpc);

    let consumers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let discovery = {
        let rt = rt.clone();
        let consumers = consumers.clone();
        tokio::spawn(
            async move { discover_and_start(rt, app, declarative, consumers, abort_rx).await },
        )
    };

    shutdown.await;
    // One grace period for everything, as daprd's runner (dapr/kit concurrency.RunnerCloserManager)
    // gives its whole shutdown: deliveries and API requests in flight finish within it, then
    // whatever is left is dropped and `run` returns.
    // A grace period too long for the clock (`--dapr-graceful-shutdown-seconds` near u64::MAX)
    // has no deadline.
    let deadline = tokio::time::Instant::now().checked_add(config.graceful_shutdown);
    tracing::info!("shutting down: no more publishes; draining in-flight deliveries");
    let _ = stop_tx.send(true);
    discovery.abort();
    for c in rt.components.values() {
        c.broker.close();
    }
    let handles: Vec<JoinHandle<()>> = consumers
        .lock()
        .map(|mut c| c.drain(..).collect())
        .unwrap_or_default();
    let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
    let drained = within(deadline, futures::future::join_all(handles)).await;
    if drained.is_none() {
        tracing::warn!(grace = ?config.graceful_shutdown, "grace period over: stopping deliveries without acknowledging or dead-lettering");
        let _ = abort_tx.send(true);
        for a in aborts {
            a.abort();
        }
    }
    // The API servers stopped accepting at `stop`; their connections finish the request in
    // flight (a publish, an invocation) within what is left of the grace period.
    let mut api_tasks = Vec::new();
    api_tasks.extend(servers.iter().map(JoinHandle::abort_handle));
    #[cfg(feature = "grpc")]
    api_tasks.extend(grpc_servers.iter().map(JoinHandle::abort_handle));
    let api_done = async {
        let mut result = Ok(());
        for s in servers {
            if let Err(e) = s.await
                && e.is_panic()
            {
                result = Err(RunError::ServeTask(e.to_string()));
            }
        }
        #[cfg(feature = "grpc")]
        for s in grpc_servers {
            match s.await {
                Ok(Err(e)) => result = Err(RunError::ServeGrpc(e)),
                Err(e) if e.is_panic() => result = Err(RunError::ServeTask(e.to_string())),
                _ => {}
            }
        }
        http_slots.drained().await;
        #[cfg(feature = "grpc")]
        grpc_slots.drained().await;
        result
    };
    match within(deadline, api_done).await {
        Some(r) => r?,
        None => {
            tracing::warn!(grace = ?config.graceful_shutdown, "grace period over: closing API connections with requests still in flight");
            let _ = abort_tx.send(true);
            for t in api_tasks {
                t.abort();
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The channel to the app in its protocol.
fn app_channel(config: &Config, port: u16) -> Result<App, ChannelError> {
    let settings = ChannelSettings {
        app_id: &config.app_id,
        token: config.app_api_token.as_ref().map(Secret::expose),
        max_concurrency: config.app_max_concurrency,
        limits: &config.limits,
        max_response_bytes: config.max_body_size,
    };
    match config.app_protocol.as_str() {
        "http" => Ok(App::Http(AppChannel::new(
            &config.app_channel_address,
            port,
            &settings,
        )?)),
        #[cfg(feature = "grpc")]
        "grpc" => Ok(App::Grpc(crate::app_channel::grpc::GrpcAppChannel::new(
            &config.app_channel_address,
            port,
            &settings,
        )?)),
        other => Err(ChannelError(format!(
            "app protocol {other:?} is not supported by this build"
        ))),
    }
}

async fn discover_and_start(
    rt: Arc<Runtime>,
    app: Option<App>,
    declarative: Vec<Subscription>,
    consumers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    abort: watch::Receiver<bool>,
) {
    let Some(app) = app else {
        tracing::info!("no --app-port: no app subscriptions");
        rt.app_ready.store(true, Ordering::Release);
        return;
    };
    app.wait_for_port().await;
    let discovery = match &app {
        App::Http(http) => {
            // daprd asks for the app config first; the answer does not matter for pub/sub.
            if let Err(e) = http.get_init_endpoint("config").await {
                tracing::debug!("no app configuration: {}", crate::api::error::chain(&e));
            }
            subscribe_call(http).await
        }
        #[cfg(feature = "grpc")]
        App::Grpc(grpc) => list_topic_subscriptions(grpc).await,
        // Never the app channel of `--app-port`.
        #[cfg(feature = "grpc")]
        App::Stream(_) => Discovery::NoneDeclared,
    };
    let effective = match discovery {
        Discovery::Subscriptions(programmatic) => subscription::merge(declarative, programmatic),
        Discovery::NoneDeclared => declarative,
        Discovery::Failed => Vec::new(),
    };
    for sub in &effective {
        start_subscription(&rt, &app, sub, &consumers, &abort);
    }
    if let Ok(mut s) = rt.subscriptions.lock() {
        *s = effective;
    }
    rt.app_ready.store(true, Ordering::Release);
    tracing::info!(
        "dapr initialized. Status: Running. Init Elapsed {}ms",
        rt.started.elapsed().as_millis()
    );
}

/// `fut`'s output, or `None` when `deadline` came first; without a deadline, `fut`'s output.
async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// A build without the `grpc` feature says so when asked for a gRPC port.
#[cfg(not(feature = "grpc"))]
fn warn_grpc_not_served(grpc_listeners: &[TcpListener]) {
    if !grpc_listeners.is_empty() {
        tracing::warn!("built without the `grpc` feature: the gRPC API is not served");
    }
}

enum Discovery {
    Subscriptions(Vec<Subscription>),
    NoneDeclared,
    /// A malformed reply: daprd starts no app subscriptions at all (declaratives included).
    Failed,
}

/// The wait after `wait` between discovery calls, under daprd's built-in initialization retries
/// (`DaprBuiltInInitializationRetries`: from 500 ms, growing by half, at most 1 s apart, for
/// HTTP and gRPC apps alike), without their ±50 % jitter.
fn next_init_wait(wait: Duration) -> Duration {
    wait.mul_f64(1.5).min(Duration::from_secs(1))
}

/// `GET /dapr/subscribe` under daprd's built-in initialization retries (3 retries, waits from
/// [`next_init_wait`]).
async fn subscribe_call(app: &AppChannel) -> Discovery {
    let mut wait = Duration::from_millis(500);
    let mut tries = 0;
    let (status, body) = loop {
        match app.get_init_endpoint("subscribe").await {
            Ok(r) => break r,
            Err(e) if tries < 3 => {
                let e = crate::api::error::chain(&e);
                tracing::warn!("error getting topic list from app, retrying in {wait:?}: {e}");
                tokio::time::sleep(wait).await;
                wait = next_init_wait(wait);
                tries += 1;
            }
            Err(e) => {
                let e = crate::api::error::chain(&e);
                tracing::error!(
                    "failed to get topic list from app: {e}; only declarative subscriptions start"
                );
                return Discovery::NoneDeclared;
            }
        }
    };
    match status {
        200..=299 => match subscription::parse_programmatic(&body) {
            Ok(parsed) => {
                for w in parsed.warnings {
                    tracing::warn!("{w}");
                }
                for s in &parsed.subscriptions {
                    tracing::info!(pubsub = %s.pubsub, topic = %s.topic, dead_letter_topic = ?s.dead_letter_topic, "programmatic subscription loaded");
                }
                Discovery::Subscriptions(parsed.subscriptions)
            }
            Err(e) => {
                tracing::error!(app = %app.addr(), "failed to subscribe to topics: invalid /dapr/subscribe reply: {e}; no app subscriptions start");
                Discovery::Failed
            }
        },
        404 => {
            tracing::debug!("user app did not subscribe to any topic");
            Discovery::NoneDeclared
        }
        other => {
            tracing::error!("app returned http status code {other} from subscription endpoint");
            Discovery::NoneDeclared
        }
    }
}

/// `ListTopicSubscriptions` under daprd's built-in initialization retries (3 retries, waits
/// from [`next_init_wait`]). An error after them starts no app subscriptions at
/// all, as daprd's subscriber does.
#[cfg(feature = "grpc")]
async fn list_topic_subscriptions(app: &crate::app_channel::grpc::GrpcAppChannel) -> Discovery {
    let mut wait = Duration::from_millis(500);
    let mut tries = 0;
    let resp = loop {
        match app.list_subscriptions().await {
            Ok(Some(r)) => break r,
            Ok(None) => {
                tracing::info!(
                    "pubsub subscriptions: gRPC app does not implement ListTopicSubscriptions"
                );
                return Discovery::NoneDeclared;
            }
            Err(e) if tries < 3 => {
                tracing::warn!("error getting topic list from app, retrying in {wait:?}: {e}");
                tokio::time::sleep(wait).await;
                wait = next_init_wait(wait);
                tries += 1;
            }
            Err(e) => {
                tracing::error!(app = %app.addr(), "failed to get topic list from app: {e}; no app subscriptions start");
                return Discovery::Failed;
            }
        }
    };
    match crate::app_channel::grpc::subscriptions(resp) {
        Ok(subs) => {
            for s in &subs {
                tracing::info!(pubsub = %s.pubsub, topic = %s.topic, dead_letter_topic = ?s.dead_letter_topic, "programmatic subscription loaded");
            }
            Discovery::Subscriptions(subs)
        }
        Err(e) => {
            tracing::error!(app = %app.addr(), "failed to subscribe to topics: invalid routing rule from ListTopicSubscriptions: {e}; no app subscriptions start");
            Discovery::Failed
        }
    }
}

fn start_subscription(
    rt: &Arc<Runtime>,
    app: &App,
    sub: &Subscription,
    consumers: &Mutex<Vec<JoinHandle<()>>>,
    abort: &watch::Receiver<bool>,
) {
    if let Some(handle) = subscribe(rt, app.clone(), sub, abort.clone())
        && let Ok(mut c) = consumers.lock()
    {
        c.push(handle);
    }
}

/// Starts the broker subscription of a streaming subscription (its consumer stops when the
/// returned task is aborted; `closed` turning true stops retries and dead-lettering);
/// `None` when scopes forbid it.
#[cfg(feature = "grpc")]
pub(crate) fn start_stream_subscription(
    rt: &Arc<Runtime>,
    app: App,
    sub: &Subscription,
    closed: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    subscribe(rt, app, sub, closed)
}

/// One subscription's consumer on its broker; `None` when the pubsub is not loaded, the entry
/// names no topic (nothing can be published to it), or scopes forbid the subscription.
fn subscribe(
    rt: &Arc<Runtime>,
    app: App,
    sub: &Subscription,
    abort: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let Some(component) = rt.components.get(&sub.pubsub) else {
        tracing::warn!(pubsub = %sub.pubsub, topic = %sub.topic, "subscription names a pubsub that is not loaded; not started");
        return None;
    };
    if sub.topic.is_empty() {
        tracing::warn!(pubsub = %sub.pubsub, "subscription names no topic; not started");
        return None;
    }
    if !component
        .scopes
        .allows(&rt.config.app_id, &sub.topic, Operation::Subscribe)
    {
        tracing::error!(
            "subscription to topic '{}' on pubsub '{}' is not allowed",
            sub.topic,
            sub.pubsub
        );
        return None;
    }
    let deliverer = Arc::new(Deliverer {
        raw_payload: sub.raw_payload(),
        sub: sub.clone(),
        app,
        app_id: rt.config.app_id.clone(),
        broker: component.broker.clone(),
        scopes: component.scopes.clone(),
        inbound: rt.resiliency.resolve(&sub.pubsub, Direction::Inbound),
        outbound: component.outbound.clone(),
        abort,
    });
    Some(component.broker.subscribe(&sub.topic, deliverer))
}

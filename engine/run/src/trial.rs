//! A trial: one scenario brought up for one check (resources, the scripted test app, the
//! target sidecar), the helpers a check body uses to publish and observe, and the history
//! of everything that happened.
//!
//! Waits are on observable conditions with a deadline ([`DEADLINE`]). Asserting that nothing
//! *more* arrives needs an observation window ([`QUIET`]); it is named as such where used.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use harness::fault::{Fault, Hop, Proc};
use harness::{
    ApiResponse, KafkaServer, RecordedDelivery, RedisServer, Script, Sidecar, SidecarClient,
    SidecarOptions, TestApp, TestAppConfig,
};
use harness_history::{EventKind, FaultEvent, FaultPhase, History, MessageId, Phase, Publish};
use serde_json::{Value, json};

use crate::broker::{Broker, BrokerServer};
use crate::chaos::proxies::Proxies;
use crate::env::RunEnv;
use crate::problem::Problem;

/// How long any expected event may take.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The observation window used to assert that no further delivery arrives.
pub const QUIET: Duration = Duration::from_millis(600);
/// The pubsub component every scenario gets.
pub const PUBSUB: &str = "pubsub";

/// What to bring up: built with chained calls, then passed to [`Trial::start`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Scenario {
    component_metadata: Vec<(String, String)>,
    resources: Vec<String>,
    subscriptions: Vec<Value>,
    subscribe_reply: Option<(u16, Bytes)>,
    subscribe_drops: u32,
    scripts: Vec<(String, Script)>,
    default_script: Script,
    api_token: Option<String>,
    app_api_token: Option<String>,
    app_at_start: bool,
    app_id: Option<String>,
    proxied: Vec<Hop>,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario::new()
    }
}

impl Scenario {
    /// An in-memory `pubsub` component, no subscriptions, an app that answers SUCCESS.
    pub fn new() -> Scenario {
        Scenario {
            component_metadata: Vec::new(),
            resources: Vec::new(),
            subscriptions: Vec::new(),
            subscribe_reply: None,
            subscribe_drops: 0,
            scripts: Vec::new(),
            default_script: Script::Success,
            api_token: None,
            app_api_token: None,
            app_at_start: true,
            app_id: None,
            proxied: Vec::new(),
        }
    }

    /// A programmatic v1 subscription: `topic` delivered to `route`.
    pub fn subscribe(self, topic: &str, route: &str) -> Scenario {
        self.subscription(json!({"pubsubname": PUBSUB, "topic": topic, "route": route}))
    }

    /// `topic` → `route` with dead-letter topic `dlq`, and a subscription of `dlq` → `dlq_route`.
    pub fn subscribe_with_dlq(
        self,
        topic: &str,
        route: &str,
        dlq: &str,
        dlq_route: &str,
    ) -> Scenario {
        self.subscription(
            json!({"pubsubname": PUBSUB, "topic": topic, "route": route, "deadLetterTopic": dlq}),
        )
        .subscribe(dlq, dlq_route)
    }

    /// Any programmatic subscription entry, as the app will serve it.
    pub fn subscription(mut self, entry: Value) -> Scenario {
        self.subscriptions.push(entry);
        self
    }

    /// Serve exactly this `/dapr/subscribe` reply instead of the entries.
    pub fn subscribe_reply(mut self, status: u16, body: impl Into<Bytes>) -> Scenario {
        self.subscribe_reply = Some((status, body.into()));
        self
    }

    /// The app closes the connection of its first `n` `GET /dapr/subscribe` calls unanswered
    /// (a gRPC app fails its first `n` `ListTopicSubscriptions` calls with UNAVAILABLE; an app
    /// started with the scenario; one started later answers every call).
    pub fn drop_subscribe_calls(mut self, n: u32) -> Scenario {
        self.subscribe_drops = n;
        self
    }

    /// An extra resource document (YAML): a declarative subscription, a Resiliency, ...
    pub fn resource(mut self, yaml: impl Into<String>) -> Scenario {
        self.resources.push(yaml.into());
        self
    }

    /// An inbound constant retry policy on `pubsub`.
    pub fn retry_constant(self, duration: &str, max_retries: i64) -> Scenario {
        self.retry_policy(&format!(
            "policy: constant\n        duration: {duration}\n        maxRetries: {max_retries}"
        ))
    }

    /// An inbound retry policy on `pubsub`; `body` is the policy's fields at 8 spaces indent.
    pub fn retry_policy(self, body: &str) -> Scenario {
        self.resource(format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: tck-resiliency\nspec:\n  policies:\n    retries:\n      tckRetry:\n        {body}\n  targets:\n    components:\n      {PUBSUB}:\n        inbound:\n          retry: tckRetry\n"
        ))
    }

    /// Routes these hops through fault proxies, so that network faults can be injected on
    /// them (see [`Trial::inject`]).
    pub fn through_proxies(mut self, hops: &[Hop]) -> Scenario {
        self.proxied = hops.to_vec();
        self
    }

    /// A metadata item on the `pubsub` component (scopes, ...).
    pub fn component_metadata(mut self, name: &str, value: &str) -> Scenario {
        self.component_metadata
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// How the app answers on `route`.
    pub fn script(mut self, route: &str, script: Script) -> Scenario {
        self.scripts.push((route.to_owned(), script));
        self
    }

    /// How the app answers on routes without their own script.
    pub fn default_script(mut self, script: Script) -> Scenario {
        self.default_script = script;
        self
    }

    /// Run the sidecar with `DAPR_API_TOKEN`.
    pub fn api_token(mut self, token: &str) -> Scenario {
        self.api_token = Some(token.to_owned());
        self
    }

    /// Run the sidecar with `APP_API_TOKEN`.
    pub fn app_api_token(mut self, token: &str) -> Scenario {
        self.app_api_token = Some(token.to_owned());
        self
    }

    /// Do not start the app with the sidecar; call [`Trial::start_app`] later.
    pub fn app_later(mut self) -> Scenario {
        self.app_at_start = false;
        self
    }

    /// A fixed app-id instead of a random one.
    pub fn app_id(mut self, id: &str) -> Scenario {
        self.app_id = Some(id.to_owned());
        self
    }
}

/// The running pieces of a trial.
pub struct Cluster {
    /// The trial's private broker process, when the broker has one.
    broker: Option<BrokerServer>,
    /// Whether `broker` came from, and may go back to, the idle Kafka brokers of the process
    /// (see [`RunEnv::reuse_kafka`]): cleared once the check gets hold of the broker itself,
    /// to fault it.
    broker_reusable: bool,
    app: Option<TestApp>,
    app_config: TestAppConfig,
    app_scripts: Vec<(String, Script)>,
    subscribe_reply: Option<(u16, Bytes)>,
    sidecar: Sidecar,
    /// The directory the sidecar reads its resources from.
    resources: std::path::PathBuf,
    /// Fault proxies on the hops the scenario routes through.
    proxies: Option<Proxies>,
    /// Streaming subscriptions the check opened, in opening order.
    streams: Vec<harness::StreamSubscriber>,
}

/// One check's world: see the module docs.
pub struct Trial {
    env: Arc<RunEnv>,
    id: String,
    seed: u64,
    /// Carried in every payload the trial publishes (`tck_trial`), so that a delivery from
    /// any other trial is recognised as foreign (see `harness_checkers::foreign`).
    nonce: String,
    started: Instant,
    cluster: Option<Cluster>,
    /// The test app of a start whose sidecar failed to launch or to become ready (what it was
    /// asked is evidence).
    unready_app: Option<TestApp>,
    next_msg: u64,
    history: History,
    observations: Vec<String>,
    /// The protocol the test app speaks, and so the sidecar's `--app-protocol`.
    app_protocol: harness::AppProtocol,
}

impl Trial {
    /// A trial for check `id` with its own seed.
    pub fn new(env: Arc<RunEnv>, id: &str, seed: u64) -> Trial {
        Trial {
            env,
            id: id.to_owned(),
            seed,
            // Not a random choice of the check (nothing it decides depends on the value), so it
            // does not come from the seed: two runs with one seed must still tell their trials
            // apart.
            nonce: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            started: Instant::now(),
            cluster: None,
            unready_app: None,
            next_msg: 0,
            history: History::new(),
            observations: Vec::new(),
            app_protocol: harness::AppProtocol::Http,
        }
    }

    /// The trial's test app speaks `protocol` (before [`Trial::start`]).
    pub fn with_app_protocol(mut self, protocol: harness::AppProtocol) -> Trial {
        self.app_protocol = protocol;
        self
    }

    /// The protocol the test app speaks.
    pub fn app_protocol(&self) -> harness::AppProtocol {
        self.app_protocol
    }

    /// Records a measurement for the reports (how order broke, a duplicate rate). It never
    /// decides the verdict; a check asserts what the broker promises and observes the rest.
    pub fn observe(&mut self, note: impl Into<String>) {
        self.observations.push(note.into());
    }

    /// The measurements recorded with [`Trial::observe`].
    pub fn observations(&self) -> &[String] {
        &self.observations
    }

    /// The nonce every payload of this trial carries as `tck_trial`.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The trial's seed (every random choice of the check comes from it).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The run environment.
    pub fn env(&self) -> &RunEnv {
        &self.env
    }

    /// The check id with `.` for `::`, plus the start of the nonce: names of directories,
    /// logs and proxies, unique even when one check runs twice in one run directory.
    fn safe_id(&self) -> String {
        format!("{}-{}", self.id.replace("::", "."), &self.nonce[..6])
    }

    /// Writes the resources, starts the app (unless `app_later`) and launches the sidecar.
    pub async fn start(&mut self, s: Scenario) -> Result<(), Problem> {
        match self.launch(s).await? {
            Ok(()) => Ok(()),
            Err(e) => Err(Problem::setup(&e)),
        }
    }

    /// Like [`Trial::start`] for a scenario the target must refuse: succeeds with the tail of the
    /// sidecar's log when the sidecar exits during start-up, fails when it becomes ready.
    pub async fn start_expecting_exit(&mut self, s: Scenario) -> Result<String, Problem> {
        match self.launch(s).await? {
            Ok(()) => Err(Problem::fail(
                "the sidecar started although its resources are invalid",
                vec![],
            )),
            Err(harness::LaunchError::Ready {
                source:
                    harness::ReadyError::Exited {
                        status, log_tail, ..
                    },
                ..
            }) => Ok(format!("{status}; log:\n{log_tail}")),
            Err(e) => Err(Problem::setup(&e)),
        }
    }

    /// Brings up the scenario; the inner result is the sidecar launch.
    async fn launch(&mut self, s: Scenario) -> Result<Result<(), harness::LaunchError>, Problem> {
        let dir = self
            .env
            .run_dir
            .join("resources")
            .join(self.env.broker.name())
            .join(format!("{}-{}", self.safe_id(), self.next_msg));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let proxied = |hop: Hop| s.proxied.contains(&hop);
        let mut proxies = if s.proxied.is_empty() {
            None
        } else {
            let prefix = format!("{}-{}-{}", self.safe_id(), self.env.broker, self.next_msg);
            Some(Proxies::connect(self.env.toxiproxy_url.as_deref(), self.seed, prefix).await?)
        };
        // A Kafka client reconnects to the address the broker advertises, so a proxy in front
        // of the broker exists before the broker does (pointing nowhere yet) and is what the
        // broker advertises; it is pointed at the broker once that runs.
        let mut advertised = None;
        if proxied(Hop::SidecarToBroker) && self.env.broker == Broker::Kafka {
            if self.env.kafka.is_some() {
                return Err(Problem::Setup(
                    "a proxy in front of an external Kafka (PUBSUB_TCK_KAFKA) would be bypassed: clients reconnect to the address it advertises".into(),
                ));
            }
            if let Some(p) = proxies.as_mut() {
                advertised = Some(p.add(Hop::SidecarToBroker, "127.0.0.1:9").await?);
            }
        }
        let broker_reusable =
            self.env.reuse_kafka && self.env.broker == Broker::Kafka && advertised.is_none();
        let broker = self
            .start_broker(&dir, advertised.as_deref(), broker_reusable)
            .await?;
        let template_path = self.env.workspace_root.join(self.env.broker.template());
        let template = std::fs::read_to_string(&template_path)
            .map_err(|e| Problem::Setup(format!("cannot read {}: {e}", template_path.display())))?;
        let metadata: String = s
            .component_metadata
            .iter()
            .map(|(k, v)| {
                format!(
                    "  - name: {k}\n    value: {}\n",
                    serde_json::to_string(v).unwrap_or_default()
                )
            })
            .collect();
        let external = match self.env.broker {
            Broker::InMemory => None,
            Broker::Redis => self.env.redis.clone(),
            Broker::Kafka => self.env.kafka.clone(),
        };
        let mut broker_addr = broker
            .as_ref()
            .map(|r| r.addr().to_owned())
            .or(external)
            .unwrap_or_default();
        if let (true, Some(p)) = (proxied(Hop::SidecarToBroker), proxies.as_mut()) {
            match self.env.broker {
                Broker::InMemory => {
                    return Err(Problem::Setup(
                        "the in-memory broker lives inside the sidecar: there is no broker hop to proxy".into(),
                    ));
                }
                Broker::Redis => broker_addr = p.add(Hop::SidecarToBroker, &broker_addr).await?,
                Broker::Kafka => {
                    p.retarget(Hop::SidecarToBroker, &broker_addr).await?;
                    broker_addr = advertised.clone().unwrap_or(broker_addr);
                }
            }
        }
        let component = template
            .replace("{{name}}", PUBSUB)
            .replace("{{redis_host}}", &broker_addr)
            .replace("{{kafka_brokers}}", &broker_addr)
            .replace("{{metadata}}\n", &metadata)
            .replace("{{metadata}}", &metadata);
        std::fs::write(dir.join("00-component.yaml"), component)?;
        for (i, doc) in s.resources.iter().enumerate() {
            std::fs::write(dir.join(format!("{:02}-resource.yaml", i + 1)), doc)?;
        }
        let app_config = TestAppConfig {
            subscriptions: Value::Array(s.subscriptions.clone()),
            default_script: s.default_script.clone(),
            protocol: self.app_protocol,
        };
        let app = if s.app_at_start {
            let app = self
                .new_app(0, &app_config, &s.scripts, &s.subscribe_reply)
                .await?;
            app.set_subscribe_drops(s.subscribe_drops);
            Some(app)
        } else {
            None
        };
        let mut opts = SidecarOptions::new(&dir, self.env.run_dir.join("logs"));
        if let Some(id) = &s.app_id {
            opts.app_id = id.clone();
        }
        opts.app_port = app.as_ref().map(TestApp::port);
        if let (true, Some(p)) = (proxied(Hop::SidecarToApp), proxies.as_mut()) {
            let Some(app) = app.as_ref() else {
                return Err(Problem::Setup(
                    "a proxy in front of the app needs the app at start (not app_later)".into(),
                ));
            };
            let listen = p
                .add(Hop::SidecarToApp, &format!("127.0.0.1:{}", app.port()))
                .await?;
            opts.app_port = Some(port_of(&listen)?);
        }
        opts.api_token = s.api_token.clone();
        opts.app_protocol = self.app_protocol;
        if let Some(t) = &s.app_api_token {
            opts.extra_env.insert("APP_API_TOKEN".into(), t.clone());
        }
        let mut sidecar = match Sidecar::launch(&self.env.target, opts).await {
            Ok(sidecar) => sidecar,
            Err(e) => {
                self.unready_app = app;
                return Ok(Err(e));
            }
        };
        // A target may answer its outbound readiness before it has loaded its components and
        // exit afterwards (daprd does): an exit here is the launch failing, like one before.
        if app.is_some()
            && let Err(source) = sidecar.wait_healthz(DEADLINE).await
        {
            self.unready_app = app;
            return Ok(Err(harness::LaunchError::Ready {
                target: sidecar.target_name().to_owned(),
                source,
            }));
        }
        if let (true, Some(p)) = (proxied(Hop::AppToSidecar), proxies.as_mut()) {
            let port = sidecar.http_port().ok_or_else(|| {
                Problem::Setup("the sidecar has no HTTP port to put a proxy in front of".into())
            })?;
            p.add(Hop::AppToSidecar, &format!("127.0.0.1:{port}"))
                .await?;
        }
        self.cluster = Some(Cluster {
            broker,
            broker_reusable,
            app,
            app_config,
            app_scripts: s.scripts,
            subscribe_reply: s.subscribe_reply,
            sidecar,
            resources: dir,
            proxies,
            streams: Vec::new(),
        });
        Ok(Ok(()))
    }

    /// Starts the trial's private broker process, if its broker has one; a `reusable` Kafka
    /// broker may be one an earlier trial handed back.
    async fn start_broker(
        &self,
        dir: &std::path::Path,
        advertised: Option<&str>,
        reusable: bool,
    ) -> Result<Option<BrokerServer>, Problem> {
        match self.env.broker {
            Broker::InMemory => Ok(None),
            Broker::Redis if self.env.redis.is_some() => Ok(None),
            Broker::Redis => {
                let name = format!("redis-{}", self.safe_id());
                let (dir, logs) = (dir.join("redis"), self.log_dir());
                let server = match self.env.broker_port {
                    Some(port) => RedisServer::start_on_port(port, &dir, &logs, &name).await,
                    None => RedisServer::start(&dir, &logs, &name).await,
                }
                .map_err(|e| Problem::setup(&e))?;
                Ok(Some(BrokerServer::Redis(server)))
            }
            Broker::Kafka if self.env.kafka.is_some() => Ok(None),
            Broker::Kafka => {
                let Some(home) = &self.env.kafka_home else {
                    return Err(Problem::Setup(
                        "no Kafka broker: set PUBSUB_TCK_KAFKA_HOME (scripts/kafka.sh) or PUBSUB_TCK_KAFKA"
                            .into(),
                    ));
                };
                let name = format!("kafka-{}", self.safe_id());
                let (dir, logs) = (dir.join("kafka"), self.log_dir());
                if reusable {
                    return KafkaServer::take(home, &dir, &logs, &name)
                        .await
                        .map(|k| Some(BrokerServer::Kafka(k)))
                        .map_err(|e| Problem::setup(&e));
                }
                BrokerServer::start_kafka(home, &dir, &logs, &name, advertised)
                    .await
                    .map(Some)
                    .map_err(|e| Problem::setup(&e))
            }
        }
    }

    /// `host:port` of the broker the trial's component talks to (its private server, or the
    /// external one), for looking at the broker's own state; `None` for in-memory.
    pub fn broker_addr(&self) -> Option<String> {
        let private = self
            .cluster
            .as_ref()
            .and_then(|c| c.broker.as_ref())
            .map(|b| b.addr().to_owned());
        private.or_else(|| match self.env.broker {
            Broker::InMemory => None,
            Broker::Redis => self.env.redis.clone(),
            Broker::Kafka => self.env.kafka.clone(),
        })
    }

    /// The trial's private broker, for faults (kill, restart); `None` for in-memory or an
    /// external broker.
    pub fn broker_server(&mut self) -> Option<&mut BrokerServer> {
        let c = self.cluster.as_mut()?;
        c.broker_reusable = false;
        c.broker.as_mut()
    }

    async fn new_app(
        &self,
        port: u16,
        config: &TestAppConfig,
        scripts: &[(String, Script)],
        reply: &Option<(u16, Bytes)>,
    ) -> Result<TestApp, Problem> {
        let app = TestApp::start_on(port, config.clone()).await?;
        for (route, script) in scripts {
            app.script(route, script.clone());
        }
        if let Some((status, body)) = reply {
            app.set_subscribe_response(*status, body.clone());
        }
        Ok(app)
    }

    #[allow(clippy::expect_used)] // calling it before `Trial::start` is a bug in the check body
    fn cluster(&self) -> &Cluster {
        self.cluster
            .as_ref()
            .expect("invariant: a check calls Trial::start before using the cluster")
    }

    /// The test app of the last start whose sidecar failed to launch or to become ready, if the
    /// scenario started one with it: what the sidecar asked it is evidence of why.
    pub fn unready_app(&self) -> Option<&TestApp> {
        self.unready_app.as_ref()
    }

    /// The test app (started).
    #[allow(clippy::expect_used)] // calling it before `Trial::start` is a bug in the check body
    pub fn app(&self) -> &TestApp {
        self.cluster()
            .app
            .as_ref()
            .expect("invariant: the app is started (app_later scenarios call start_app first)")
    }

    /// The directory the sidecar reads its resources from (files written there count from the
    /// sidecar's next start).
    pub fn resources_dir(&self) -> std::path::PathBuf {
        self.cluster().resources.clone()
    }

    /// The sidecar handle.
    #[allow(clippy::expect_used)] // calling it before `Trial::start` is a bug in the check body
    pub fn sidecar(&mut self) -> &mut Sidecar {
        &mut self
            .cluster
            .as_mut()
            .expect("invariant: a check calls Trial::start first")
            .sidecar
    }

    /// An API client for the sidecar (carries the API token of the scenario).
    pub fn client(&self) -> SidecarClient {
        self.cluster().sidecar.client()
    }

    /// A client for publishing load: through the app→sidecar proxy when the scenario has one.
    pub fn load_client(&self) -> Result<SidecarClient, Problem> {
        let proxy = self
            .cluster()
            .proxies
            .as_ref()
            .and_then(|p| p.listen(Hop::AppToSidecar));
        match proxy {
            Some(listen) => SidecarClient::new(
                format!("http://{listen}"),
                self.cluster()
                    .sidecar
                    .client()
                    .api_token()
                    .map(str::to_owned),
            )
            .map_err(|e| Problem::setup(&e)),
            None => Ok(self.client()),
        }
    }

    /// Which Toxiproxy the trial's fault proxies live on (bundled, or a real one and its
    /// version), when the scenario routes hops through proxies.
    pub fn fault_proxy(&self) -> Option<String> {
        self.cluster
            .as_ref()
            .and_then(|c| c.proxies.as_ref())
            .map(Proxies::identity)
    }

    /// The sidecar's app-id.
    pub fn app_id(&self) -> String {
        self.cluster().sidecar.app_id().to_owned()
    }

    /// The app port the sidecar was given (`None` for a sidecar without an app).
    pub fn app_port(&self) -> Option<u16> {
        self.cluster().sidecar.app_port()
    }

    /// Starts the app of an `app_later` scenario on the port the sidecar was given.
    pub async fn start_app(&mut self) -> Result<(), Problem> {
        let c = self.cluster();
        let port = c
            .sidecar
            .app_port()
            .ok_or_else(|| Problem::Setup("the sidecar has no app port".into()))?;
        let app = self
            .new_app(port, &c.app_config, &c.app_scripts, &c.subscribe_reply)
            .await?;
        if let Some(c) = self.cluster.as_mut() {
            c.app = Some(app);
        }
        Ok(())
    }

    /// A fresh harness message id (`m-<n>`).
    pub fn next_id(&mut self) -> String {
        self.next_msg += 1;
        format!("m-{}", self.next_msg)
    }

    fn at(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Publishes `data` (a JSON object; `tck_id` is added) as `application/json` to `topic` and
    /// requires 204. Returns the message id.
    pub async fn publish(&mut self, topic: &str, data: Value) -> Result<String, Problem> {
        self.publish_query(topic, data, &[]).await
    }

    /// [`Trial::publish`] with query parameters (`metadata.*`).
    pub async fn publish_query(
        &mut self,
        topic: &str,
        mut data: Value,
        query: &[(&str, &str)],
    ) -> Result<String, Problem> {
        let id = self.next_id();
        if let Value::Object(o) = &mut data {
            o.insert("tck_id".into(), Value::String(id.clone()));
            o.insert("tck_trial".into(), Value::String(self.nonce.clone()));
        }
        let key = data
            .get("tck_key")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let seq = data.get("tck_seq").and_then(Value::as_u64);
        let mut p = Publish::new(MessageId::new(id.clone()), topic, Phase::Invoke);
        p.key = key.clone();
        p.seq = seq;
        self.history
            .record(self.at(), EventKind::Publish(p.clone()));
        let result = self
            .client()
            .publish(
                PUBSUB,
                topic,
                Bytes::from(data.to_string()),
                Some("application/json"),
                query,
            )
            .await;
        let at = self.at();
        match result {
            Ok(r) if r.status == 204 => {
                p.phase = Phase::Ok;
                p.status = Some(204);
                self.history.record(at, EventKind::Publish(p));
                Ok(id)
            }
            Ok(r) => {
                p.phase = Phase::Fail;
                p.status = Some(r.status);
                self.history.record(at, EventKind::Publish(p));
                Err(Problem::fail(
                    format!("publish to {topic} answered {} instead of 204", r.status),
                    vec![
                        format!("message {id}"),
                        format!("response body: {}", String::from_utf8_lossy(&r.body)),
                    ],
                ))
            }
            Err(e) => {
                // The outcome is unknown: the message may or may not have been accepted.
                p.phase = Phase::Info;
                p.detail = Some(e.to_string());
                self.history.record(at, EventKind::Publish(p));
                Err(Problem::setup(&e))
            }
        }
    }

    /// A client for the sidecar's gRPC API (carrying the scenario's API token).
    pub fn grpc_api(&self) -> Result<harness::GrpcApiClient, Problem> {
        match self.cluster().sidecar.grpc_client() {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(Problem::setup(&e)),
            None => Err(Problem::Setup(
                "the target has no gRPC port (attached targets are reached over HTTP only)".into(),
            )),
        }
    }

    /// Publishes `data` (a JSON object; `tck_id` and `tck_trial` are added) with gRPC
    /// `PublishEvent` as `application/json` with `metadata`, and requires OK. Returns the
    /// message id.
    pub async fn publish_grpc(
        &mut self,
        topic: &str,
        mut data: Value,
        metadata: &[(&str, &str)],
    ) -> Result<String, Problem> {
        let id = self.next_id();
        if let Value::Object(o) = &mut data {
            o.insert("tck_id".into(), Value::String(id.clone()));
            o.insert("tck_trial".into(), Value::String(self.nonce.clone()));
        }
        let mut p = Publish::new(MessageId::new(id.clone()), topic, Phase::Invoke);
        self.history
            .record(self.at(), EventKind::Publish(p.clone()));
        let req = dapr::dapr::proto::runtime::v1::PublishEventRequest {
            pubsub_name: PUBSUB.into(),
            topic: topic.into(),
            data: data.to_string().into_bytes(),
            data_content_type: "application/json".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let result = self.grpc_api()?.publish(req).await;
        let at = self.at();
        match result {
            Ok(()) => {
                p.phase = Phase::Ok;
                self.history.record(at, EventKind::Publish(p));
                Ok(id)
            }
            Err(status) => {
                p.phase = Phase::Fail;
                p.detail = Some(format!("{:?}: {}", status.code(), status.message()));
                self.history.record(at, EventKind::Publish(p));
                Err(Problem::fail(
                    format!(
                        "gRPC PublishEvent to {topic} answered {:?} instead of OK",
                        status.code()
                    ),
                    vec![format!("message {id}"), status.message().to_owned()],
                ))
            }
        }
    }

    /// Any publish request; nothing is required of the answer.
    pub async fn publish_raw(
        &self,
        topic: &str,
        body: impl Into<Bytes>,
        content_type: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<ApiResponse, Problem> {
        Ok(self
            .client()
            .publish(PUBSUB, topic, body.into(), content_type, query)
            .await?)
    }

    /// Waits for at least `n` deliveries on `route`.
    pub async fn wait(&self, route: &str, n: usize) -> Result<Vec<RecordedDelivery>, Problem> {
        Ok(self.app().wait_deliveries(Some(route), n, DEADLINE).await?)
    }

    /// Waits until message `id` was delivered at least `n` times on `route`.
    pub async fn wait_msg(
        &self,
        route: &str,
        id: &str,
        n: usize,
    ) -> Result<Vec<RecordedDelivery>, Problem> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let all = self.app().deliveries_on(route);
            let mine: Vec<RecordedDelivery> = all
                .iter()
                .filter(|d| d.tck_id.as_deref() == Some(id))
                .cloned()
                .collect();
            if mine.len() >= n {
                return Ok(mine);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || self
                    .app()
                    .wait_deliveries(Some(route), all.len() + 1, left)
                    .await
                    .is_err()
            {
                return Err(Problem::fail(
                    format!(
                        "waited {DEADLINE:?} for {n} deliveries of {id} on {route}, saw {}",
                        mine.len()
                    ),
                    delivery_lines(&self.app().deliveries()),
                ));
            }
        }
    }

    /// Deliveries of message `id` on `route` so far.
    pub fn deliveries_of(&self, route: &str, id: &str) -> Vec<RecordedDelivery> {
        self.app()
            .deliveries_on(route)
            .into_iter()
            .filter(|d| d.tck_id.as_deref() == Some(id))
            .collect()
    }

    /// Observation window: everything on `route` once [`QUIET`] has passed.
    pub async fn quiet(&self, route: &str) -> Vec<RecordedDelivery> {
        self.app().observe_quiet(Some(route), QUIET).await
    }

    /// Every recorded delivery (the app's, then each stream's), one line each, for evidence.
    pub fn evidence(&self) -> Vec<String> {
        let mut lines = self
            .cluster
            .as_ref()
            .and_then(|c| c.app.as_ref())
            .map(|a| delivery_lines(&a.deliveries()))
            .unwrap_or_default();
        for s in self.cluster.iter().flat_map(|c| c.streams.iter()) {
            lines.extend(delivery_lines(&s.deliveries()));
        }
        lines
    }

    /// Opens a streaming subscription to `topic` (with `dead_letter_topic`, if any) answered
    /// by `script`; returns its index for [`Trial::stream`].
    pub async fn open_stream(
        &mut self,
        topic: &str,
        dead_letter_topic: Option<&str>,
        script: Script,
    ) -> Result<usize, Problem> {
        let req = harness::StreamRequest {
            pubsub: PUBSUB.into(),
            topic: topic.into(),
            dead_letter_topic: dead_letter_topic.map(str::to_owned),
            metadata: Default::default(),
        };
        let stream = self.try_open_stream(req, script).await.map_err(|e| {
            Problem::fail(
                format!("cannot open a streaming subscription to {topic}: {e}"),
                vec![],
            )
        })?;
        #[allow(clippy::expect_used)] // calling it before `Trial::start` is a bug in the check body
        let c = self
            .cluster
            .as_mut()
            .expect("invariant: a check calls Trial::start first");
        c.streams.push(stream);
        Ok(c.streams.len() - 1)
    }

    /// Opens a streaming subscription as given, without keeping it: the sidecar's refusal is
    /// the result.
    pub async fn try_open_stream(
        &self,
        req: harness::StreamRequest,
        script: Script,
    ) -> Result<harness::StreamSubscriber, harness::StreamError> {
        let client = match self.grpc_api() {
            Ok(c) => c,
            Err(p) => {
                return Err(harness::StreamError::NoInitialResponse(format!(
                    "no gRPC client: {p:?}"
                )));
            }
        };
        harness::StreamSubscriber::open(&client, req, script, DEADLINE).await
    }

    /// The stream opened `i`-th.
    pub fn stream(&self, i: usize) -> &harness::StreamSubscriber {
        &self.cluster().streams[i]
    }

    /// Closes the stream opened `i`-th (its recordings stay).
    pub fn close_stream(&mut self, i: usize) {
        if let Some(c) = self.cluster.as_mut() {
            c.streams[i].close();
        }
    }

    /// Waits until message `id` arrived at least `n` times on stream `i`.
    pub async fn wait_stream_msg(
        &self,
        i: usize,
        id: &str,
        n: usize,
    ) -> Result<Vec<RecordedDelivery>, Problem> {
        let s = self.stream(i);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let all = s.deliveries();
            let mine: Vec<RecordedDelivery> = all
                .iter()
                .filter(|d| d.tck_id.as_deref() == Some(id))
                .cloned()
                .collect();
            if mine.len() >= n {
                return Ok(mine);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.wait_deliveries(all.len() + 1, left).await.is_err() {
                return Err(Problem::fail(
                    format!(
                        "waited {DEADLINE:?} for {n} deliveries of {id} on {}, saw {}",
                        s.route(),
                        mine.len()
                    ),
                    self.evidence(),
                ));
            }
        }
    }

    /// The history: publishes as they happened plus every delivery the app recorded.
    pub fn history(&self) -> History {
        let mut h = History::new();
        let mut events: Vec<harness_history::Event> = self.history.events().to_vec();
        if let Some(app) = self.cluster.as_ref().and_then(|c| c.app.as_ref()) {
            events.extend(app.history_events(self.started));
        }
        for s in self.cluster.iter().flat_map(|c| c.streams.iter()) {
            events.extend(s.history_events(self.started));
        }
        events.sort_by_key(|e| e.at_micros);
        for e in events {
            h.push(e);
        }
        h
    }

    /// The sidecar's exit, if it exited although nothing stopped it on purpose (a crash), with
    /// the end of its log.
    pub fn sidecar_exit(&mut self) -> Option<String> {
        let c = self.cluster.as_mut()?;
        let name = c.sidecar.child().map(|ch| ch.name().to_owned())?;
        let (status, tail) = c.sidecar.unexpected_exit()?;
        Some(format!(
            "the sidecar `{name}` exited ({status}) during the trial; last log lines:\n{tail}"
        ))
    }

    /// The broker's exit, if it exited although nothing stopped it on purpose (a crash, a port
    /// another process took), with the end of its log.
    pub fn broker_exit(&mut self) -> Option<String> {
        let b = self.cluster.as_mut()?.broker.as_mut()?;
        let name = b.child_name();
        let (status, tail) = b.unexpected_exit()?;
        Some(format!(
            "the broker `{name}` exited ({status}) during the trial; last log lines:\n{tail}"
        ))
    }

    /// Waits up to `deadline` for a launched sidecar to exit, unless it was stopped on purpose
    /// or is already known to have exited. A process that dies closes its connections a moment
    /// before its exit status can be read, so a request it broke off can come back before
    /// [`Trial::sidecar_exit`] would see the exit; the runner calls this after such an error.
    pub async fn settle_sidecar_exit(&mut self, deadline: Duration) {
        if let Some(child) = self.cluster.as_mut().and_then(|c| c.sidecar.child_mut())
            && !child.is_stopping()
        {
            child.wait_exit(deadline).await;
        }
    }

    /// Stops the sidecar (SIGTERM, then SIGKILL) and the app. A reusable Kafka broker goes
    /// back to the process's idle brokers when `clean` (the check ended without any problem)
    /// and the sidecar is gone; any other broker is stopped.
    pub async fn finish(&mut self, clean: bool) {
        if let Some(mut c) = self.cluster.take() {
            // Closed first: an open stream would keep the sidecar's gRPC server busy.
            c.streams.clear();
            let mut sidecar_gone = false;
            if !c.sidecar.is_attached() {
                let _ = c.sidecar.terminate(Duration::from_secs(3)).await;
                sidecar_gone = c
                    .sidecar
                    .child_mut()
                    .is_some_and(|child| child.try_exit_status().is_some());
            }
            if let Some(app) = c.app.take() {
                app.stop().await;
            }
            if let Some(p) = c.proxies.take() {
                p.delete().await;
            }
            if let (true, true, true, Some(BrokerServer::Kafka(k))) =
                (c.broker_reusable, clean, sidecar_gone, c.broker.take())
            {
                k.hand_back().await;
            }
        }
    }

    /// When the trial started: history times are microseconds since this instant.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Adds events recorded elsewhere (a load task) to the trial's history.
    pub fn absorb(&mut self, events: Vec<harness_history::Event>) {
        for e in events {
            self.history.push(e);
        }
    }

    /// Applies `fault` and records it in the history: a fault's start when it has taken
    /// effect, its stop when it was healed.
    pub async fn inject(&mut self, fault: &Fault) -> Result<(), Problem> {
        let span = tracing::info_span!("fault", kind = %fault.kind(), detail = %fault.detail());
        let _enter = span.enter();
        let phase = if fault.is_start() {
            FaultPhase::Start
        } else {
            FaultPhase::Stop
        };
        self.apply(fault).await?;
        let event = FaultEvent {
            kind: fault.kind(),
            phase,
            detail: Some(fault.detail()),
        };
        self.history.record(self.at(), EventKind::Fault(event));
        Ok(())
    }

    async fn apply(&mut self, fault: &Fault) -> Result<(), Problem> {
        let signal = |e: harness::SignalError| Problem::setup(&e);
        match fault {
            Fault::Kill(Proc::Sidecar) => {
                self.sidecar().kill().await;
            }
            Fault::Restart(Proc::Sidecar) => {
                self.sidecar()
                    .restart()
                    .await
                    .map_err(|e| Problem::setup(&e))?;
                self.sidecar().wait_healthz(DEADLINE).await?;
            }
            Fault::Pause(Proc::Sidecar) => {
                let child = self.sidecar().child_mut().ok_or_else(attached)?;
                child.pause().map_err(signal)?;
                took_effect(child, true).await?;
            }
            Fault::Resume(Proc::Sidecar) => {
                let child = self.sidecar().child_mut().ok_or_else(attached)?;
                child.resume().map_err(signal)?;
                took_effect(child, false).await?;
            }
            Fault::Kill(Proc::App) => self.app().stop().await,
            Fault::Restart(Proc::App) => self.app().restart_on_same_port().await?,
            Fault::Pause(Proc::App) | Fault::Resume(Proc::App) => {
                return Err(Problem::Setup(
                    "the test app runs inside the harness and cannot be paused".into(),
                ));
            }
            Fault::Kill(Proc::Broker) => self.private_broker()?.kill().await,
            Fault::Restart(Proc::Broker) => self
                .private_broker()?
                .restart()
                .await
                .map_err(|e| Problem::setup(&e))?,
            Fault::Pause(Proc::Broker) => {
                let broker = self.private_broker()?;
                broker.pause().map_err(signal)?;
                if let Some(child) = broker.child() {
                    took_effect(child, true).await?;
                }
            }
            Fault::Resume(Proc::Broker) => {
                let broker = self.private_broker()?;
                broker.resume().map_err(signal)?;
                if let Some(child) = broker.child() {
                    took_effect(child, false).await?;
                }
            }
            Fault::AddToxic { .. }
            | Fault::RemoveToxic { .. }
            | Fault::ProxyDown(_)
            | Fault::ProxyUp(_) => self.apply_network(fault).await?,
        }
        Ok(())
    }

    /// Network faults need the trial's proxies (see [`Scenario::through_proxies`]).
    async fn apply_network(&mut self, fault: &Fault) -> Result<(), Problem> {
        match self.cluster.as_ref().and_then(|c| c.proxies.as_ref()) {
            Some(p) => p.apply(fault).await,
            None => Err(Problem::Setup(format!(
                "no fault proxy on hop {}: the scenario routes no hop through proxies",
                fault.hop().map_or("-", |h| h.name())
            ))),
        }
    }

    fn private_broker(&mut self) -> Result<&mut BrokerServer, Problem> {
        match self.broker_server() {
            Some(b) if b.is_private() => Ok(b),
            _ => Err(Problem::Setup(
                "the broker is not a private process of this trial (in-memory, external or a container)"
                    .into(),
            )),
        }
    }

    /// Where this trial's sidecar logs go.
    pub fn log_dir(&self) -> PathBuf {
        self.env.run_dir.join("logs")
    }
}

/// The port of a `host:port` a proxy listens on.
fn port_of(listen: &str) -> Result<u16, Problem> {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            Problem::Setup(format!(
                "the fault proxy listens on {listen:?}, not host:port"
            ))
        })
}

fn attached() -> Problem {
    Problem::Setup("the sidecar is attached, not a child of the harness".into())
}

/// One evidence line per delivery: time, route, message, attempt, answer.
pub fn delivery_lines(ds: &[RecordedDelivery]) -> Vec<String> {
    ds.iter()
        .map(|d| {
            format!(
                "{:>8.1} ms {} {} msg={} ce_id={} attempt={} answered={}",
                d.at_micros as f64 / 1000.0,
                d.method,
                d.path,
                d.tck_id.as_deref().unwrap_or("-"),
                d.ce_id.as_deref().unwrap_or("-"),
                d.attempt,
                d.answered
            )
        })
        .collect()
}

/// A pause counts once every process of the group is stopped, a resume once none is: a
/// SIGSTOP that has not taken effect yet would let the check pass without its fault.
async fn took_effect(child: &harness::Child, stopped: bool) -> Result<(), Problem> {
    child
        .wait_group_state(stopped, Duration::from_secs(2))
        .await
        .map_err(|e| Problem::setup(&e))
}

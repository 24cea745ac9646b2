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

mod bringup;
mod faults;
mod scenario;
mod traffic;

pub use scenario::Scenario;
pub use traffic::delivery_lines;

/// How long any expected event may take.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The observation window used to assert that no further delivery arrives.
pub const QUIET: Duration = Duration::from_millis(600);
/// The pubsub component every scenario gets.
pub const PUBSUB: &str = "pubsub";

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
        let name = b.name();
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

    /// Where this trial's sidecar logs go.
    pub fn log_dir(&self) -> PathBuf {
        self.env.run_dir.join("logs")
    }
}

fn attached() -> Problem {
    Problem::Setup("the sidecar is attached, not a child of the harness".into())
}

//! Multi-process scenarios of the `apps` profile: the tutorial apps of `fixtures/apps/` run as
//! child processes next to target sidecars launched from the target file.
//!
//! An [`AppsWorld`] owns what one check brings up: the resources directory, the trial's private
//! redis-server when the flow needs one, one sidecar per app id, and the apps (Python from the
//! venv named by `PUBSUB_TCK_PYTHON`, Node with `NODE_PATH` under `PUBSUB_TCK_NODE_PREFIX`).
//! Every process logs into the run's `logs/`. [`AppsWorld::finish`] stops everything in reverse
//! start order; dropping the world instead SIGKILLs each process group.
//!
//! The apps get their ports the way the Dapr SDKs expect them: `APP_PORT` for their own,
//! `DAPR_HTTP_PORT` and `DAPR_GRPC_PORT` for their sidecar's. Each app exposes a small control
//! surface (`POST /trigger`, `GET /received`) so that checks wait on observable state
//! ([`poll`]) instead of sleeping. What the apps must have seen is decided in `checks/apps.rs`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use harness::{
    ApiResponse, Child, PortLease, PortReservation, ProcessSpec, RedisServer, Sidecar,
    SidecarClient, SidecarOptions, TargetFile,
};
use serde_json::Value;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::env::{self, RunEnv};
use crate::problem::Problem;
use crate::trial::{DEADLINE, PUBSUB, Trial};

/// How often [`poll`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long an app process may take to serve its readiness path (Python imports are slow on a
/// busy machine).
const APP_READY: Duration = Duration::from_secs(30);

/// A language runtime the tutorial apps need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// CPython from a venv with `fixtures/apps/python/requirements.txt`.
    Python,
    /// `node` on PATH with `fixtures/apps/node/package.json` installed under an npm prefix.
    Node,
    /// The `tckapps` binary of `fixtures/apps/go` (the official Go SDK), one service per mode.
    Go,
}

impl Runtime {
    /// Why this runtime cannot be used, if it cannot: decided from the environment and the
    /// file system only, without starting anything.
    pub fn unavailable(self) -> Option<String> {
        let rt = env::app_runtimes();
        match self {
            Runtime::Python => missing_file(
                "PUBSUB_TCK_PYTHON",
                rt.python.as_deref(),
                "no Python venv with fixtures/apps/python/requirements.txt (the README's test command creates one)",
                "the README's test command creates the venv",
            ),
            Runtime::Node => match &rt.node_prefix {
                _ if !env::program_on_path("node") => Some("`node` is not on PATH".to_owned()),
                None => Some("PUBSUB_TCK_NODE_PREFIX is not set: no npm prefix with fixtures/apps/node/package.json installed (the README's test command installs it)".to_owned()),
                Some(p) if !p.join("node_modules").join("@dapr").join("dapr").is_dir() => {
                    Some(format!(
                        "PUBSUB_TCK_NODE_PREFIX={} has no node_modules/@dapr/dapr (the README's test command installs it)",
                        p.display()
                    ))
                }
                Some(_) => None,
            },
            Runtime::Go => missing_file(
                "PUBSUB_TCK_GO_APPS",
                rt.go_apps.as_deref(),
                "no tckapps binary built from fixtures/apps/go (the README's test command builds it with scripts/go-apps.sh)",
                "scripts/go-apps.sh builds it",
            ),
        }
    }
}

/// Why the file variable `var` names cannot be used: `unset` says what is missing when it is
/// not set, `hint` how to make the file when it names none.
fn missing_file(var: &str, path: Option<&Path>, unset: &str, hint: &str) -> Option<String> {
    match path {
        None => Some(format!("{var} is not set: {unset}")),
        Some(p) if !p.is_file() => Some(format!("{var}={} is not a file ({hint})", p.display())),
        Some(_) => None,
    }
}

/// How to tell that an app is up.
#[derive(Debug, Clone, Copy)]
pub enum Ready {
    /// `GET {path}` answers 2xx.
    Http(&'static str),
    /// The app logged a line containing this text.
    LogLine(&'static str),
}

/// One tutorial app of `fixtures/apps/`.
#[derive(Debug, Clone, Copy)]
pub struct AppSpec {
    /// Log name and app-id stem, such as `order-service`.
    pub name: &'static str,
    /// Its runtime.
    pub runtime: Runtime,
    /// The script, relative to `fixtures/apps/` (for Go: the `tckapps` mode).
    pub script: &'static str,
    /// Its readiness condition.
    pub ready: Ready,
}

/// A running tutorial app.
#[derive(Debug)]
pub struct App {
    child: Child,
    client: SidecarClient,
}

impl App {
    /// `POST {path}` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<ApiResponse, Problem> {
        Ok(self
            .client
            .post(
                path,
                Bytes::from(body.to_string()),
                &[("content-type", "application/json")],
            )
            .await?)
    }

    /// `GET {path}`, which must answer 2xx with JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, Problem> {
        let r = self.client.get(path).await?;
        match r.json() {
            Some(v) if r.is_success() => Ok(v),
            _ => Err(Problem::Setup(format!(
                "app `{}`: GET {path} answered {} {}",
                self.child.name(),
                r.status,
                String::from_utf8_lossy(&r.body)
            ))),
        }
    }

    /// The last lines of its log, for evidence.
    pub fn log_tail(&self) -> String {
        self.child.log_tail(15)
    }
}

/// Everything one apps check brought up; see the module docs.
pub struct AppsWorld {
    target: TargetFile,
    workspace_root: PathBuf,
    log_dir: PathBuf,
    resources_dir: PathBuf,
    /// Appended to app ids and log names, so that parallel checks never share them.
    suffix: String,
    redis: Option<RedisServer>,
    sidecars: Vec<Sidecar>,
    apps: Vec<App>,
    /// The app ports handed out by [`AppsWorld::app_port`].
    ports: PortLease,
}

impl AppsWorld {
    /// A fresh resources directory with the `pubsub` component of the run's broker and, with
    /// `state`, a Redis `statestore`. Starts the trial's private redis-server when the broker
    /// is Redis (or uses `PUBSUB_TCK_REDIS`). Only in-memory and Redis are supported.
    pub async fn new(trial: &Trial, state: bool) -> Result<AppsWorld, Problem> {
        AppsWorld::for_env(trial.env(), state).await
    }

    /// [`AppsWorld::new`] outside a trial (`pubsub-tck bench apps`).
    pub async fn for_env(env: &RunEnv, state: bool) -> Result<AppsWorld, Problem> {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let log_dir = env.run_dir.join("logs");
        let resources_dir = env
            .run_dir
            .join("resources")
            .join(env.broker.name())
            .join(format!("apps-{suffix}"));
        std::fs::create_dir_all(&resources_dir)?;
        let redis = match env.broker {
            Broker::Redis => Some(match &env.broker_sources.redis {
                Some(addr) => RedisServer::external(addr.clone()),
                None => RedisServer::start(
                    &resources_dir.join("redis"),
                    &log_dir,
                    &format!("redis-apps-{suffix}"),
                )
                .await
                .map_err(|e| Problem::setup(&e))?,
            }),
            Broker::InMemory => None,
            other => {
                return Err(Problem::Setup(format!(
                    "the apps flows do not support broker `{other}`"
                )));
            }
        };
        let redis_host = redis.as_ref().map(|r| r.addr().to_owned());
        let mut components = vec![(PUBSUB, env.broker.template())];
        if state {
            components.push(("statestore", "fixtures/components/state-redis.yaml".into()));
        }
        for (i, (name, template)) in components.into_iter().enumerate() {
            let path = env.workspace_root.join(&template);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Problem::Setup(format!("cannot read {}: {e}", path.display())))?;
            if text.contains("{{redis_host}}") && redis_host.is_none() {
                return Err(Problem::Setup(format!(
                    "{template} needs Redis, and the run's broker is `{}`",
                    env.broker
                )));
            }
            let rendered = text
                .replace("{{name}}", name)
                .replace("{{redis_host}}", redis_host.as_deref().unwrap_or_default())
                .replace("{{metadata}}\n", "")
                .replace("{{metadata}}", "");
            std::fs::write(resources_dir.join(format!("{i:02}-{name}.yaml")), rendered)?;
        }
        Ok(AppsWorld {
            target: env.target.clone(),
            workspace_root: env.workspace_root.clone(),
            log_dir,
            resources_dir,
            suffix,
            redis,
            sidecars: Vec::new(),
            apps: Vec::new(),
            ports: PortLease::default(),
        })
    }

    /// Copies one more resource file of the workspace (a Resiliency, say) next to the
    /// components, for the sidecars launched after it.
    pub fn resource_file(&self, workspace_path: &str) -> Result<(), Problem> {
        let from = self.workspace_root.join(workspace_path);
        let name = from
            .file_name()
            .map(|n| format!("50-{}", n.to_string_lossy()))
            .ok_or_else(|| Problem::Setup(format!("{workspace_path} names no file")))?;
        std::fs::copy(&from, self.resources_dir.join(name))
            .map_err(|e| Problem::Setup(format!("cannot copy {}: {e}", from.display())))?;
        Ok(())
    }

    /// One free loopback port for an app: the sidecar launched for it and the app itself bind
    /// it later, as with `app_later` trials. It stays leased to this world until it finishes,
    /// so no other trial is handed it meanwhile.
    pub fn app_port(&mut self) -> Result<u16, Problem> {
        let lease = PortReservation::new(1)
            .map_err(|e| Problem::setup(&e))?
            .release();
        let port = lease.ports()[0];
        self.ports.merge(lease);
        Ok(port)
    }

    /// `{stem}-{suffix}`: the app id of a sidecar in this world.
    pub fn app_id(&self, stem: &str) -> String {
        format!("{stem}-{}", self.suffix)
    }

    /// Launches a sidecar with app id `{stem}-{suffix}` for an app that will listen on
    /// `app_port`, and waits for its readiness path. Returns its index.
    pub async fn sidecar(&mut self, stem: &str, app_port: u16) -> Result<usize, Problem> {
        self.sidecar_for(stem, app_port, harness::AppProtocol::Http)
            .await
    }

    /// [`AppsWorld::sidecar`] for an app speaking `protocol`.
    pub async fn sidecar_for(
        &mut self,
        stem: &str,
        app_port: u16,
        protocol: harness::AppProtocol,
    ) -> Result<usize, Problem> {
        let mut opts = SidecarOptions::new(&self.resources_dir, &self.log_dir);
        opts.app_id = self.app_id(stem);
        opts.app_port = Some(app_port);
        opts.app_protocol = protocol;
        self.sidecars
            .push(Sidecar::launch(&self.target, opts).await?);
        Ok(self.sidecars.len() - 1)
    }

    /// A sidecar of this world.
    pub fn sidecar_ref(&self, i: usize) -> &Sidecar {
        &self.sidecars[i]
    }

    /// Waits until sidecar `i` answers `GET /v1.0/healthz`: its app was reached and its
    /// subscriptions started.
    pub async fn wait_subscribed(&mut self, i: usize) -> Result<(), Problem> {
        self.sidecars[i].wait_healthz(DEADLINE).await?;
        Ok(())
    }

    /// Starts `spec` on `port` talking to sidecar `sidecar` (its HTTP and gRPC ports in
    /// `DAPR_HTTP_PORT` and `DAPR_GRPC_PORT`), with `extra_env`, and waits until it is up.
    /// Returns its index.
    pub async fn app(
        &mut self,
        spec: AppSpec,
        port: u16,
        sidecar: usize,
        extra_env: &[(&str, &str)],
    ) -> Result<usize, Problem> {
        self.app_with_control(spec, port, None, sidecar, extra_env)
            .await
    }

    /// [`AppsWorld::app`] for an app whose control endpoints (readiness, `GET /state`) are on
    /// a port of their own (`CONTROL_PORT`), because `port` serves gRPC.
    pub async fn app_with_control(
        &mut self,
        spec: AppSpec,
        port: u16,
        control_port: Option<u16>,
        sidecar: usize,
        extra_env: &[(&str, &str)],
    ) -> Result<usize, Problem> {
        let rt = env::app_runtimes();
        let script = self
            .workspace_root
            .join("fixtures")
            .join("apps")
            .join(spec.script);
        let sc = &self.sidecars[sidecar];
        let (http_port, grpc_port) = match (sc.http_port(), sc.grpc_port()) {
            (Some(h), Some(g)) => (h, g),
            _ => {
                return Err(Problem::Setup(
                    "the apps flows need a launched sidecar with known ports".into(),
                ));
            }
        };
        let (program, arg) = match (spec.runtime, &rt.python, &rt.go_apps) {
            (Runtime::Python, Some(python), _) => (python.clone(), script.to_string_lossy()),
            (Runtime::Python, None, _) => {
                return Err(Problem::Setup("PUBSUB_TCK_PYTHON is not set".into()));
            }
            (Runtime::Node, _, _) => (PathBuf::from("node"), script.to_string_lossy()),
            (Runtime::Go, _, Some(bin)) => (bin.clone(), spec.script.into()),
            (Runtime::Go, _, None) => {
                return Err(Problem::Setup("PUBSUB_TCK_GO_APPS is not set".into()));
            }
        };
        let mut proc = ProcessSpec::new(program)
            .arg(arg)
            .env("APP_PORT", port.to_string())
            .env("DAPR_HTTP_PORT", http_port.to_string())
            .env("DAPR_GRPC_PORT", grpc_port.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .env("CONTROL_PORT", control_port.unwrap_or(port).to_string())
            .envs(extra_env.iter().copied())
            .name(format!("app-{}-{}", spec.name, self.suffix))
            .log_dir(&self.log_dir);
        if let Some(dir) = script.parent() {
            proc = proc.cwd(dir);
        }
        if let (Runtime::Node, Some(prefix)) = (spec.runtime, &rt.node_prefix) {
            proc = proc.env(
                "NODE_PATH",
                prefix.join("node_modules").to_string_lossy().into_owned(),
            );
        }
        let mut child = proc.spawn().map_err(|e| Problem::setup(&e))?;
        let url = format!("http://127.0.0.1:{}", control_port.unwrap_or(port));
        match spec.ready {
            Ready::Http(path) => {
                child
                    .wait_http_ready(&format!("{url}{path}"), APP_READY)
                    .await?
            }
            Ready::LogLine(line) => child.wait_log_line(line, APP_READY).await?,
        }
        let client = SidecarClient::new(url, None)?;
        self.apps.push(App { child, client });
        Ok(self.apps.len() - 1)
    }

    /// Launches a sidecar named after `spec` for an app speaking `protocol`, starts `spec`
    /// behind it (a gRPC app with its control endpoints on a port of their own) and waits
    /// until the sidecar has reached it. Returns the sidecar's index and the app's.
    pub async fn subscriber(
        &mut self,
        spec: AppSpec,
        protocol: harness::AppProtocol,
    ) -> Result<(usize, usize), Problem> {
        let port = self.app_port()?;
        let control = match protocol {
            harness::AppProtocol::Grpc => Some(self.app_port()?),
            harness::AppProtocol::Http => None,
        };
        let sidecar = self.sidecar_for(spec.name, port, protocol).await?;
        let app = self
            .app_with_control(spec, port, control, sidecar, &[])
            .await?;
        self.wait_subscribed(sidecar).await?;
        Ok((sidecar, app))
    }

    /// [`AppsWorld::app`] on a port of its own, for an app that only calls sidecar `sidecar`
    /// (one already launched for another app).
    pub async fn caller(
        &mut self,
        spec: AppSpec,
        sidecar: usize,
        extra_env: &[(&str, &str)],
    ) -> Result<usize, Problem> {
        let port = self.app_port()?;
        self.app(spec, port, sidecar, extra_env).await
    }

    /// A running app of this world.
    pub fn app_ref(&self, i: usize) -> &App {
        &self.apps[i]
    }

    /// One evidence line per process: where its log is, and the tail of each app's log.
    pub fn evidence(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "resources: {}; logs: {}/*-{}.log",
            self.resources_dir.display(),
            self.log_dir.display(),
            self.suffix
        )];
        for app in &self.apps {
            lines.push(format!("log of {}:\n{}", app.child.name(), app.log_tail()));
        }
        lines
    }

    /// Stops the apps, then the sidecars, then the broker (reverse start order).
    pub async fn finish(mut self) {
        for mut app in self.apps.drain(..).rev() {
            app.child.terminate(Duration::from_secs(3)).await;
        }
        for mut sc in self.sidecars.drain(..).rev() {
            let _ = sc.terminate(Duration::from_secs(3)).await;
        }
        if let Some(mut r) = self.redis.take()
            && r.is_private()
        {
            r.kill().await;
        }
    }
}

/// Calls `probe` every 50 ms until it returns `Ok(Ok(value))`, or fails after `deadline` with
/// the last "not yet" description (`Ok(Err(seen))`). A `Err(problem)` ends the wait at once.
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> Result<T, Problem>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, Problem>>,
{
    let until = Instant::now() + deadline;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let seen = match probe().await? {
            Ok(v) => return Ok(v),
            Err(seen) => seen,
        };
        if Instant::now() >= until {
            return Err(Problem::fail(
                format!("waited {deadline:?} for {what}"),
                vec![format!("last seen: {seen}")],
            ));
        }
    }
}

//! Launching a target: ports, command line, spawn, readiness, and the handle that follows.
//!
//! [`Sidecar::launch`] turns a [`TargetFile`] and [`SidecarOptions`] into a running (or,
//! for `url = ...` targets, attached) sidecar.
//! It knows the sidecar only through its target file and its HTTP API.
//! Process mechanics live in [`crate::proc`]; what to publish and check lives in suites.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::client::{ClientError, SidecarClient};
use crate::ports::{PortError, PortReservation};
use crate::proc::{
    Child, PollOutcome, ProcessSpec, ReadyError, ShutdownStep, SpawnError, poll_until_2xx,
};
use crate::target::{LaunchVars, TargetError, TargetFile};

/// The default time a sidecar gets to answer its readiness path.
pub const DEFAULT_READY_DEADLINE: Duration = Duration::from_secs(20);
/// How many times a launch that lost a port race is tried.
const PORT_RACE_ATTEMPTS: u32 = 3;
/// The full-readiness path (§8.7): 204 once the app was reached and subscriptions started.
pub const HEALTHZ_PATH: &str = "/v1.0/healthz";

/// Why a sidecar could not be launched or restarted.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Ports could not be reserved.
    #[error("cannot reserve ports for target `{target}`")]
    Ports {
        /// The target's name.
        target: String,
        /// The cause.
        #[source]
        source: PortError,
    },
    /// The command line could not be expanded.
    #[error("cannot build the command line of target `{target}`")]
    CommandLine {
        /// The target's name.
        target: String,
        /// The cause.
        #[source]
        source: TargetError,
    },
    /// The process could not be started.
    #[error("cannot start target `{target}`")]
    Spawn {
        /// The target's name.
        target: String,
        /// The cause.
        #[source]
        source: SpawnError,
    },
    /// The sidecar did not answer its readiness path in time, or exited.
    #[error("target `{target}` did not become ready")]
    Ready {
        /// The target's name.
        target: String,
        /// The cause, with the log tail.
        #[source]
        source: ReadyError,
    },
    /// The API client could not be built.
    #[error("cannot build an API client for target `{target}`")]
    Client {
        /// The target's name.
        target: String,
        /// The cause.
        #[source]
        source: ClientError,
    },
    /// Something other than the launched sidecar answered on its port.
    #[error(
        "port {port} of target `{target}` is answered by a sidecar with app id {stranger:?}, not by the one this trial started (app id {ours:?}); another process holds the port"
    )]
    Foreign {
        /// The target's name.
        target: String,
        /// The HTTP API port.
        port: u16,
        /// The app id that answered.
        stranger: String,
        /// The app id the harness launched the sidecar with.
        ours: String,
    },
    /// The operation needs a process, but the harness only attached to this target.
    #[error("target `{target}` is attached, the harness does not own its process")]
    Attached {
        /// The target's name.
        target: String,
    },
}

/// Per-launch settings of a sidecar.
#[derive(Debug, Clone)]
#[must_use]
pub struct SidecarOptions {
    /// `{app_id}`. Default: `app-` plus 8 random hex digits.
    pub app_id: String,
    /// The app's port. `None` reserves one that nothing listens on yet, readable through
    /// [`Sidecar::app_port`], so a test app can come up later with `TestApp::start_on`.
    pub app_port: Option<u16>,
    /// `{resources_dir}`.
    pub resources_dir: PathBuf,
    /// `{config_file}`.
    pub config_file: Option<PathBuf>,
    /// Environment variables added on top of the target file's `env`.
    pub extra_env: BTreeMap<String, String>,
    /// Where the sidecar's log goes (`<log_dir>/<target>-<app_id>.log`).
    pub log_dir: PathBuf,
    /// How long the readiness path may take. Default: 20 s.
    pub ready_deadline: Duration,
    /// When set, the sidecar gets `DAPR_API_TOKEN` and the client sends `dapr-api-token`.
    pub api_token: Option<String>,
    /// `{app_protocol}`. Default: HTTP.
    pub app_protocol: crate::AppProtocol,
}

impl SidecarOptions {
    /// Options with a random app id, a reserved app port, no config file and a 20 s
    /// readiness deadline.
    pub fn new(resources_dir: impl Into<PathBuf>, log_dir: impl Into<PathBuf>) -> SidecarOptions {
        let id = uuid::Uuid::new_v4().simple().to_string();
        SidecarOptions {
            app_id: format!("app-{}", &id[..8]),
            app_port: None,
            resources_dir: resources_dir.into(),
            config_file: None,
            extra_env: BTreeMap::new(),
            log_dir: log_dir.into(),
            ready_deadline: DEFAULT_READY_DEADLINE,
            api_token: None,
            app_protocol: crate::AppProtocol::Http,
        }
    }
}

/// A launched or attached sidecar.
#[derive(Debug)]
pub struct Sidecar {
    target: String,
    app_id: String,
    http_url: String,
    http_port: Option<u16>,
    grpc_port: Option<u16>,
    metrics_port: Option<u16>,
    app_port: Option<u16>,
    ready_path: String,
    ready_deadline: Duration,
    client: SidecarClient,
    child: Option<Child>,
}

impl Sidecar {
    /// Launches the target (or attaches to it) and waits for its readiness path to answer
    /// 2xx. Children run with the workspace root as their working directory.
    pub async fn launch(
        target: &TargetFile,
        options: SidecarOptions,
    ) -> Result<Sidecar, LaunchError> {
        let name = target.name().to_owned();
        let client_err = |source| LaunchError::Client {
            target: name.clone(),
            source,
        };
        if let Some(url) = target.url() {
            let client = SidecarClient::new(url, options.api_token.clone()).map_err(client_err)?;
            let http_port = url.parse::<http::Uri>().ok().and_then(|u| u.port_u16());
            let sidecar = Sidecar {
                target: name.clone(),
                app_id: options.app_id,
                http_url: url.to_owned(),
                http_port,
                grpc_port: None,
                metrics_port: None,
                app_port: options.app_port,
                ready_path: target.ready_path().to_owned(),
                ready_deadline: options.ready_deadline,
                client,
                child: None,
            };
            let ready = format!("{url}{}", target.ready_path());
            poll_ready_attached(&name, &ready, options.ready_deadline)
                .await
                .map_err(|source| LaunchError::Ready {
                    target: name,
                    source,
                })?;
            return Ok(sidecar);
        }

        // Ports stay leased to this launch (see `crate::ports`), but another process on the
        // machine may still bind one between release and spawn. A start-up that fails on a
        // taken port is retried with fresh ports; any other failure is final.
        let mut attempt = 1;
        loop {
            match Sidecar::spawn_once(target, options.clone()).await {
                Err(LaunchError::Ready {
                    source: ReadyError::Exited { ref log_tail, .. },
                    ..
                }) if attempt < PORT_RACE_ATTEMPTS
                    && log_tail.contains("Address already in use") =>
                {
                    tracing::warn!(target = %name, attempt, "a port was taken between reservation and start-up; retrying with fresh ports");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One spawn with freshly reserved ports, up to readiness.
    async fn spawn_once(
        target: &TargetFile,
        options: SidecarOptions,
    ) -> Result<Sidecar, LaunchError> {
        let name = target.name().to_owned();
        let client_err = |source| LaunchError::Client {
            target: target.name().to_owned(),
            source,
        };
        let wanted = if options.app_port.is_some() { 5 } else { 6 };
        let reservation = PortReservation::new(wanted).map_err(|source| LaunchError::Ports {
            target: name.clone(),
            source,
        })?;
        let ports = reservation.ports().to_vec();
        let (http_port, grpc_port, metrics_port, internal_grpc_port, wrapper_port) =
            (ports[0], ports[1], ports[2], ports[3], ports[4]);
        // Without an app port of its own the sidecar gets a reserved one that the test app binds
        // later (`TestApp::start_on`); the lease keeps it out of other trials meanwhile.
        let app_port = options.app_port.unwrap_or(ports[ports.len() - 1]);
        let vars = LaunchVars {
            app_id: options.app_id.clone(),
            app_port,
            http_port,
            grpc_port,
            metrics_port,
            internal_grpc_port,
            wrapper_port,
            app_protocol: options.app_protocol.as_str(),
            resources_dir: options.resources_dir.clone(),
            config_file: options.config_file.clone(),
        };
        let (program, args, mut env) =
            target
                .command_line(&vars)
                .map_err(|source| LaunchError::CommandLine {
                    target: name.clone(),
                    source,
                })?;
        env.extend(options.extra_env.clone());
        if let Some(token) = &options.api_token {
            env.insert("DAPR_API_TOKEN".to_owned(), token.clone());
        }
        let spec = ProcessSpec::new(program)
            .args(args)
            .envs(env)
            .cwd(target.root())
            .name(format!("{name}-{}", options.app_id))
            .log_dir(&options.log_dir);
        let http_url = format!("http://127.0.0.1:{http_port}");
        let client =
            SidecarClient::new(&http_url, options.api_token.clone()).map_err(client_err)?;
        // The child holds the lease for its whole life, restarts included.
        let child = spec
            .hold_ports(reservation.release())
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                target: name.clone(),
                source,
            })?;
        let mut sidecar = Sidecar {
            target: name,
            app_id: options.app_id,
            http_url,
            http_port: Some(http_port),
            grpc_port: Some(grpc_port),
            metrics_port: Some(metrics_port),
            app_port: Some(app_port),
            ready_path: target.ready_path().to_owned(),
            ready_deadline: options.ready_deadline,
            client,
            child: Some(child),
        };
        sidecar.wait_ready().await?;
        Ok(sidecar)
    }

    /// Waits for the readiness path, then proves that the answer came from the launched
    /// process and not from whoever else holds the port: the metadata API must report the
    /// app id this sidecar was launched with.
    async fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let url = format!("{}{}", self.http_url, self.ready_path);
        let deadline = self.ready_deadline;
        let result = match &mut self.child {
            Some(child) => child.wait_http_ready(&url, deadline).await,
            None => poll_ready_attached(&self.target, &url, deadline).await,
        };
        result.map_err(|source| LaunchError::Ready {
            target: self.target.clone(),
            source,
        })?;
        if self.child.is_some() {
            self.check_identity().await?;
        }
        Ok(())
    }

    /// Compares the metadata API's `id` with the launch's app id. A target whose metadata
    /// API does not answer with an id cannot prove anything and passes.
    async fn check_identity(&self) -> Result<(), LaunchError> {
        let Ok(resp) = self.client.metadata().await else {
            return Ok(());
        };
        let id = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned)));
        match id {
            Some(id) if resp.status / 100 == 2 && id != self.app_id => Err(LaunchError::Foreign {
                target: self.target.clone(),
                port: self.http_port.unwrap_or(0),
                stranger: id,
                ours: self.app_id.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether the harness attached to an already running sidecar instead of starting one.
    pub fn is_attached(&self) -> bool {
        self.child.is_none()
    }

    /// The target's name.
    pub fn target_name(&self) -> &str {
        &self.target
    }

    /// The app id the sidecar was started with.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The base URL of the HTTP API, such as `http://127.0.0.1:41234`.
    pub fn http_url(&self) -> &str {
        &self.http_url
    }

    /// The HTTP API port (for attached targets: the URL's explicit port, if any).
    pub fn http_port(&self) -> Option<u16> {
        self.http_port
    }

    /// The gRPC API port; `None` for attached targets.
    pub fn grpc_port(&self) -> Option<u16> {
        self.grpc_port
    }

    /// The metrics port; `None` for attached targets.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// The port the sidecar expects the app on; for attached targets, the one passed in
    /// the options.
    pub fn app_port(&self) -> Option<u16> {
        self.app_port
    }

    /// A client for the HTTP API (cheap to clone).
    pub fn client(&self) -> SidecarClient {
        self.client.clone()
    }

    /// A client for the gRPC API (carrying the API token, if any); `None` for attached targets.
    pub fn grpc_client(&self) -> Option<Result<crate::GrpcApiClient, crate::GrpcClientError>> {
        let port = self.grpc_port?;
        Some(crate::GrpcApiClient::new(
            &format!("127.0.0.1:{port}"),
            self.client.api_token(),
        ))
    }

    /// The process, unless attached.
    pub fn child(&self) -> Option<&Child> {
        self.child.as_ref()
    }

    /// The process, unless attached, for pause/resume and signals.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Waits for full readiness: `GET /v1.0/healthz` answering 2xx (204 per §8.7), which
    /// needs the app to be listening. Fails early if the process exits.
    pub async fn wait_healthz(&mut self, deadline: Duration) -> Result<(), ReadyError> {
        let url = format!("{}{HEALTHZ_PATH}", self.http_url);
        match &mut self.child {
            Some(child) => child.wait_http_ready(&url, deadline).await,
            None => poll_ready_attached(&self.target, &url, deadline).await,
        }
    }

    /// How the sidecar exited, with the end of its log, if it exited although the harness
    /// never stopped it; `None` while it runs, after a deliberate stop, or when attached.
    pub fn unexpected_exit(&mut self) -> Option<(ExitStatus, String)> {
        self.child.as_mut()?.unexpected_exit()
    }

    /// SIGKILLs the sidecar's process group; `None` when attached.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.kill().await
    }

    /// Runs the shutdown ladder (SIGTERM, `grace`, SIGKILL); `None` when attached.
    pub async fn terminate(&mut self, grace: Duration) -> Option<ShutdownStep> {
        Some(self.child.as_mut()?.terminate(grace).await)
    }

    /// Kills the sidecar if it runs and starts it again with the same command line and
    /// ports, then waits for its readiness path.
    pub async fn restart(&mut self) -> Result<(), LaunchError> {
        let Some(child) = self.child.as_mut() else {
            return Err(LaunchError::Attached {
                target: self.target.clone(),
            });
        };
        child.restart().await.map_err(|source| LaunchError::Spawn {
            target: self.target.clone(),
            source,
        })?;
        self.wait_ready().await
    }
}

async fn poll_ready_attached(name: &str, url: &str, deadline: Duration) -> Result<(), ReadyError> {
    match poll_until_2xx(url, deadline, || None).await {
        PollOutcome::Ready => Ok(()),
        PollOutcome::Exited(status) => Err(ReadyError::Exited {
            name: name.to_owned(),
            awaited: format!("{url} to answer 2xx"),
            status,
            log_tail: String::new(),
        }),
        PollOutcome::TimedOut { last } => Err(ReadyError::Timeout {
            name: name.to_owned(),
            awaited: format!("{url} to answer 2xx"),
            waited: deadline,
            last,
            log_tail: String::new(),
        }),
    }
}

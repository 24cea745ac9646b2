//! The run environment: which target, where the workspace and the run directory are, the seed.
//!
//! This is the only reader of the `PUBSUB_TCK_*` environment variables:
//! `PUBSUB_TCK_TARGET` (target file, default `fixtures/targets/reference.toml`),
//! `PUBSUB_TCK_SEED` (seed for random choices; printed in every report),
//! `PUBSUB_TCK_REPORT_DIR` (where `cargo test` runs keep logs, default `reports/cargo-test`),
//! `PUBSUB_TCK_BROKERS` (comma-separated brokers, or `all`),
//! `PUBSUB_TCK_REDIS` (`host:port` of a Redis to use instead of a private redis-server per trial),
//! `PUBSUB_TCK_KAFKA` (`host:port` of a Kafka to use instead of a private broker per trial),
//! `PUBSUB_TCK_KAFKA_HOME` (the Apache Kafka home the private brokers run from: `lib/` and
//! `log4j.properties`; scripts/kafka.sh fetches it and prints it, scripts/test.sh sets this).
//! `PUBSUB_TCK_PYTHON` (the venv Python of the `apps` profile) and `PUBSUB_TCK_NODE_PREFIX` (the npm
//! prefix of its Node apps), both set by scripts/test.sh. `PUBSUB_TCK_FAIL_FAST` and
//! `PUBSUB_TCK_STRICT` are read by the conformance suite (`suites::conformance`) alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use harness::TargetFile;

use crate::broker::{self, Broker};

/// Everything a run shares.
#[derive(Debug, Clone)]
pub struct RunEnv {
    /// The loaded target file.
    pub target: TargetFile,
    /// The workspace root (where `fixtures/` is).
    pub workspace_root: PathBuf,
    /// The run directory: `logs/` and `resources/` go below it.
    pub run_dir: PathBuf,
    /// Seed of every random choice in this run.
    pub seed: u64,
    /// The broker behind the `pubsub` component.
    pub broker: Broker,
    /// Where the broker comes from.
    pub broker_sources: harness::BrokerSources,
    /// A Toxiproxy to use for fault proxies (`TOXIPROXY_URL`); unset: the bundled server.
    pub toxiproxy_url: Option<String>,
    /// Requests per campaign of the `robustness` profile (`--budget`, `PUBSUB_TCK_BUDGET`).
    pub budget: u64,
    /// Start a trial's private redis-server on exactly this port instead of a free one: only
    /// for the test that proves a taken port ends in a setup error.
    #[doc(hidden)]
    pub broker_port: Option<u16>,
    /// Whether a trial that did not fault its private Kafka broker hands it, emptied, to a
    /// later trial instead of stopping it (`harness::broker::KafkaServer::take`): a JVM start
    /// is most of what a Kafka trial costs. Off, every trial starts its own broker.
    pub reuse_kafka: bool,
}

/// The run environment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The kit's files could not be unpacked (see [`crate::kit`]).
    #[error("cannot unpack the kit's files")]
    Kit(#[source] std::io::Error),
    /// No target file was given, and the kit root has no default one.
    #[error(
        "no target file: pass --target FILE or set PUBSUB_TCK_TARGET (`pubsub-tck init --name NAME --command PATH` writes one)"
    )]
    NoTarget,
    /// The target file is invalid.
    #[error("cannot load target file {path}")]
    Target {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<harness::TargetError>,
    },
    /// A variable has a bad value.
    #[error("{name}: {message}")]
    Var {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An expectations file names a check or a broker that does not exist.
    #[error("expectations file {}: {problem}", path.display())]
    Expectations {
        /// The file.
        path: PathBuf,
        /// What it names wrongly.
        problem: String,
    },
    /// The run directory cannot be created.
    #[error("cannot create the run directory {path}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Settings read from the environment (or given on the command line, which wins).
#[derive(Debug, Clone, Default)]
pub struct EnvSettings {
    /// Target file path.
    pub target: Option<PathBuf>,
    /// Seed.
    pub seed: Option<u64>,
    /// Report base directory.
    pub report_dir: Option<PathBuf>,
    /// Brokers to run on.
    pub brokers: Option<Vec<Broker>>,
    /// Where the brokers come from.
    pub broker_sources: harness::BrokerSources,
    /// A Toxiproxy to use for fault proxies (`TOXIPROXY_URL`); unset: the bundled server.
    pub toxiproxy_url: Option<String>,
    /// Brokers to start in containers (feature `testcontainers`), from `PUBSUB_TCK_CONTAINERS`.
    pub containers: Option<Vec<Broker>>,
    /// Requests per campaign of the `robustness` profile; unset: [`DEFAULT_BUDGET`].
    pub budget: Option<u64>,
    /// Hand each private Kafka broker a trial did not fault on to later trials (see
    /// [`RunEnv::reuse_kafka`]). Set by front-ends that run every trial on one tokio runtime
    /// for the life of the process; never read from the environment.
    pub reuse_kafka: bool,
}

/// Requests per campaign of the `robustness` profile when no budget is given (CI's size; the
/// nightly size is `--budget 1000000`).
pub const DEFAULT_BUDGET: u64 = 20_000;

impl EnvSettings {
    /// Reads `PUBSUB_TCK_TARGET`, `PUBSUB_TCK_SEED` and `PUBSUB_TCK_REPORT_DIR`.
    pub fn from_env() -> Result<EnvSettings, EnvError> {
        let seed = match std::env::var("PUBSUB_TCK_SEED") {
            Ok(s) => Some(s.trim().parse().map_err(|_| EnvError::Var {
                name: "PUBSUB_TCK_SEED",
                message: format!("{s:?} is not a non-negative integer"),
            })?),
            Err(_) => None,
        };
        let brokers = match std::env::var("PUBSUB_TCK_BROKERS") {
            Ok(s) => Some(broker::parse_list(&s).map_err(|message| EnvError::Var {
                name: "PUBSUB_TCK_BROKERS",
                message,
            })?),
            Err(_) => None,
        };
        let containers = match std::env::var("PUBSUB_TCK_CONTAINERS") {
            Ok(s) if !s.trim().is_empty() => {
                Some(broker::parse_list(&s).map_err(|message| EnvError::Var {
                    name: "PUBSUB_TCK_CONTAINERS",
                    message,
                })?)
            }
            _ => None,
        };
        let budget = match std::env::var("PUBSUB_TCK_BUDGET") {
            Ok(s) => {
                Some(
                    s.trim()
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| EnvError::Var {
                            name: "PUBSUB_TCK_BUDGET",
                            message: format!("{s:?} is not a positive integer"),
                        })?,
                )
            }
            Err(_) => None,
        };
        Ok(EnvSettings {
            containers,
            budget,
            toxiproxy_url: std::env::var("TOXIPROXY_URL")
                .ok()
                .filter(|s| !s.trim().is_empty()),
            target: std::env::var_os("PUBSUB_TCK_TARGET").map(PathBuf::from),
            seed,
            report_dir: std::env::var_os("PUBSUB_TCK_REPORT_DIR").map(PathBuf::from),
            brokers,
            broker_sources: harness::BrokerSources::from_env(),
            reuse_kafka: false,
        })
    }
}

/// Finds the kit root for a run started in `start`: the nearest ancestor holding the kit's
/// `fixtures/`, else the copy built into this crate, unpacked once ([`crate::kit`]).
pub fn find_workspace(start: &Path) -> Result<PathBuf, EnvError> {
    crate::kit::find(start).map_err(EnvError::Kit)
}

/// The default base directory of reports: `reports/` of the kit root for a run inside the
/// repository, else `reports/` of the current directory (never the unpacked kit's copy).
pub fn reports_base(workspace_root: &Path, cwd: &Path) -> PathBuf {
    if cwd.starts_with(workspace_root) {
        workspace_root.join("reports")
    } else {
        cwd.join("reports")
    }
}

/// The target file of a run: the one given, else this repository's reference target. A relative
/// path that does not exist from the current directory is tried against the kit root.
pub fn target_path(given: Option<&Path>, workspace_root: &Path) -> Result<PathBuf, EnvError> {
    let path = match given {
        Some(p) => p.to_owned(),
        None => {
            let default = workspace_root
                .join("fixtures")
                .join("targets")
                .join("reference.toml");
            if !default.is_file() {
                return Err(EnvError::NoTarget);
            }
            default
        }
    };
    Ok(if path.is_relative() && !path.exists() {
        workspace_root.join(&path)
    } else {
        path
    })
}

/// Every entry of an expectations file must name a check of the catalog (`check_ids`) and
/// known brokers, so a typo cannot silently expect nothing.
fn check_expectations(
    file: &harness::Expectations,
    check_ids: &[&'static str],
) -> Result<(), EnvError> {
    for e in file.entries() {
        let problem = if !check_ids.contains(&e.check.as_str()) {
            Some(format!(
                "no check has the id {:?} (see `pubsub-tck list`)",
                e.check
            ))
        } else {
            e.brokers
                .iter()
                .find(|b| Broker::parse(b).is_none())
                .map(|b| format!("{}: unknown broker {b:?}", e.check))
        };
        if let Some(problem) = problem {
            return Err(EnvError::Expectations {
                path: file.path().to_owned(),
                problem,
            });
        }
    }
    Ok(())
}

impl RunEnv {
    /// Whether the target promises `promise` on this run's broker (its target file's
    /// `[promises]`, else the broker's defaults).
    pub fn keeps(&self, promise: crate::broker::Promise) -> bool {
        self.target.keeps(self.broker, promise)
    }

    /// The variable that made this run's broker external, if it is: the trial cannot kill or
    /// restart it.
    pub fn external_broker(&self) -> Option<&'static str> {
        match self.broker {
            Broker::InMemory => None,
            Broker::Redis => self
                .broker_sources
                .redis
                .as_ref()
                .map(|_| "PUBSUB_TCK_REDIS"),
            Broker::Kafka => self
                .broker_sources
                .kafka
                .as_ref()
                .map(|_| "PUBSUB_TCK_KAFKA"),
        }
    }
}

impl RunEnv {
    /// Loads the target, checks that its expectations file names only checks of `check_ids`
    /// (the catalog's), and prepares `run_dir`.
    pub fn new(
        settings: &EnvSettings,
        check_ids: &[&'static str],
        workspace_root: PathBuf,
        run_dir: PathBuf,
        broker: Broker,
    ) -> Result<Arc<RunEnv>, EnvError> {
        let target_path = target_path(settings.target.as_deref(), &workspace_root)?;
        let target = TargetFile::load(&target_path).map_err(|source| EnvError::Target {
            path: target_path.clone(),
            source: Box::new(source),
        })?;
        if let Some(file) = target.expectations() {
            check_expectations(file, check_ids)?;
        }
        for sub in ["logs", "resources"] {
            let p = run_dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| EnvError::RunDir { path: p, source })?;
        }
        let seed = settings.seed.unwrap_or_else(random_seed);
        Ok(Arc::new(RunEnv {
            target,
            workspace_root,
            run_dir,
            seed,
            broker,
            broker_sources: settings.broker_sources.clone(),
            toxiproxy_url: settings.toxiproxy_url.clone(),
            budget: settings.budget.unwrap_or(DEFAULT_BUDGET),
            broker_port: None,
            reuse_kafka: settings.reuse_kafka,
        }))
    }
}

/// Why `broker` cannot be used on this machine, if it cannot.
pub fn broker_unavailable(broker: Broker, settings: &EnvSettings) -> Option<String> {
    match broker {
        Broker::InMemory => None,
        Broker::Redis if settings.broker_sources.redis.is_some() => None,
        Broker::Redis => (!on_path("redis-server"))
            .then(|| "redis-server is not on PATH and PUBSUB_TCK_REDIS is not set (the README's test command installs it)".to_owned()),
        Broker::Kafka if settings.broker_sources.kafka.is_some() => None,
        Broker::Kafka => match &settings.broker_sources.kafka_home {
            None => Some("PUBSUB_TCK_KAFKA_HOME (Apache Kafka, as scripts/kafka.sh fetches it) and PUBSUB_TCK_KAFKA are not set (the README's test command fetches Kafka and sets PUBSUB_TCK_KAFKA_HOME)".to_owned()),
            Some(p) if !p.join("lib").is_dir() => Some(format!("PUBSUB_TCK_KAFKA_HOME={} has no lib/ directory (scripts/kafka.sh prints the directory to use)", p.display())),
            Some(_) if !on_path("java") => Some("java is not on PATH (Apache Kafka needs Java 17 or newer)".to_owned()),
            Some(_) => None,
        },
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// A fresh seed when none was given: from a random UUID, printed so the run can be replayed.
pub fn random_seed() -> u64 {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) % 1_000_000_000
}

/// The language runtimes of the `apps` profile's tutorial apps (`fixtures/apps/`), read once
/// from `PUBSUB_TCK_PYTHON`, `PUBSUB_TCK_NODE_PREFIX` and `PUBSUB_TCK_GO_APPS`.
#[derive(Debug, Clone, Default)]
pub struct AppRuntimes {
    /// The Python interpreter of a venv with `fixtures/apps/python/requirements.txt` installed.
    pub python: Option<PathBuf>,
    /// The npm prefix holding `node_modules/` for `fixtures/apps/node/package.json`.
    pub node_prefix: Option<PathBuf>,
    /// The `tckapps` binary built from `fixtures/apps/go` (scripts/go-apps.sh).
    pub go_apps: Option<PathBuf>,
}

/// The app runtimes of this process (read on first use; listing checks reads them, so a
/// missing runtime shows as a skip reason before anything runs).
pub fn app_runtimes() -> &'static AppRuntimes {
    static RUNTIMES: std::sync::OnceLock<AppRuntimes> = std::sync::OnceLock::new();
    RUNTIMES.get_or_init(|| AppRuntimes {
        python: std::env::var_os("PUBSUB_TCK_PYTHON")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        node_prefix: std::env::var_os("PUBSUB_TCK_NODE_PREFIX")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        go_apps: std::env::var_os("PUBSUB_TCK_GO_APPS")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
    })
}

/// Whether `program` is an executable file on `PATH` (`node` for the Node apps).
pub fn program_on_path(program: &str) -> bool {
    on_path(program)
}

/// What runs besides the target, for the reports: each broker's implementation and version and
/// the fault proxy, keyed by role (`broker redis` → `Redis 7.0.15`).
pub fn environment(
    brokers: &[Broker],
    settings: &EnvSettings,
) -> std::collections::BTreeMap<String, String> {
    let mut env = std::collections::BTreeMap::new();
    for &b in brokers {
        let what = match b {
            Broker::InMemory => "inside the sidecar".to_owned(),
            Broker::Redis => match &settings.broker_sources.redis {
                Some(addr) => format!("Redis at {addr} (external)"),
                None => redis_version().map_or_else(
                    || "redis-server (version unknown)".to_owned(),
                    |v| format!("Redis {v}, one private server per trial"),
                ),
            },
            Broker::Kafka => match (
                &settings.broker_sources.kafka,
                &settings.broker_sources.kafka_home,
            ) {
                (Some(addr), _) => format!("Kafka at {addr} (external)"),
                (None, Some(home)) => kafka_version(home).map_or_else(
                    || format!("Apache Kafka from {} (version unknown)", home.display()),
                    |v| format!("Apache Kafka {v} (KRaft), one private broker per trial"),
                ),
                (None, None) => "not available".to_owned(),
            },
        };
        env.insert(format!("broker {b}"), what);
    }
    let proxy = match &settings.toxiproxy_url {
        Some(url) => match toxiproxy_version(url) {
            Some(v) => format!("Toxiproxy {v} at {url}"),
            None => format!("Toxiproxy at {url} (GET /version did not answer)"),
        },
        None => format!(
            "bundled tck-toxiproxy {} (in-process)",
            harness_toxiproxy::SERVER_VERSION
        ),
    };
    env.insert("fault proxy".to_owned(), proxy);
    env
}

/// `7.0.15` from `redis-server --version` (`Redis server v=7.0.15 sha=...`).
fn redis_version() -> Option<String> {
    let out = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
    Some(v.to_owned())
}

/// `3.9.2` from the broker jar's name (`lib/kafka_2.13-3.9.2.jar`).
fn kafka_version(home: &Path) -> Option<String> {
    std::fs::read_dir(home.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = name.strip_prefix("kafka_2.13-")?.strip_suffix(".jar")?;
            (!v.contains('-')).then(|| v.to_owned())
        })
}

/// The version a Toxiproxy at `url` reports on `GET /version` (a plain HTTP/1.0 exchange, two
/// seconds at most; only loopback URLs are used).
fn toxiproxy_version(url: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let authority = url.strip_prefix("http://")?.trim_end_matches('/');
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .ok()?
        .next()?;
    let timeout = std::time::Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(s, "GET /version HTTP/1.0\r\nHost: {authority}\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.take(64 * 1024).read_to_string(&mut reply).ok()?;
    let body = reply.split("\r\n\r\n").nth(1)?.trim();
    // The server answers the bare version, or JSON with a "version" field.
    let v = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j.get("version").and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    (!v.is_empty()).then_some(v)
}

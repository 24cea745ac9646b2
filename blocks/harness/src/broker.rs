//! Brokers the harness brings up for trials: a private `redis-server`, or a private Apache Kafka
//! broker (KRaft, broker and controller in one JVM), on free loopback ports with its own
//! directory, so that a trial can kill and restart it without touching any other trial's broker.
//!
//! Owns starting, readiness, kill and restart. Readiness proves identity: the probe must reach
//! the process the harness started, not whatever else listens on the port (a neighbour that was
//! handed the same port, say): Redis answers `INFO server` with its `process_id`, which must be
//! the child's pid; the Kafka broker answers a `Metadata` request with the cluster id it was
//! started with. An answer from someone else is a setup error naming the port and the
//! stranger ([`BrokerError::Foreign`]). A child that exits because its port was taken after
//! the reservation is started again on a fresh port.
//! [`Broker`] names the kinds; which component YAML points at a broker is the engine's
//! business, and so is where Kafka comes from (`PUBSUB_TCK_KAFKA_HOME`, which scripts/kafka.sh fills and scripts/test.sh sets).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ports::{PortError, PortReservation};
use crate::proc::{Child, ProcessSpec, SignalError, SpawnError};

/// Where a run's brokers come from: an external broker's address, else a private broker per
/// trial (Redis from `PATH`, Kafka from its Apache Kafka home).
#[derive(Debug, Clone, Default)]
pub struct BrokerSources {
    /// An external Redis (`host:port`, `PUBSUB_TCK_REDIS`) instead of a private server per trial.
    pub redis: Option<String>,
    /// An external Kafka (`host:port`, `PUBSUB_TCK_KAFKA`) instead of a private broker per trial.
    pub kafka: Option<String>,
    /// The Apache Kafka home (`lib/`, `log4j.properties`) private brokers run from
    /// (`PUBSUB_TCK_KAFKA_HOME`).
    pub kafka_home: Option<PathBuf>,
}

impl BrokerSources {
    /// The sources the environment names; an empty variable is unset.
    pub fn from_env() -> BrokerSources {
        let var = |name| std::env::var(name).ok().filter(|s: &String| !s.is_empty());
        BrokerSources {
            redis: var("PUBSUB_TCK_REDIS"),
            kafka: var("PUBSUB_TCK_KAFKA"),
            kafka_home: var("PUBSUB_TCK_KAFKA_HOME").map(PathBuf::from),
        }
    }
}

/// How long a fresh broker may take to answer its readiness probe.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How often the readiness probe is repeated.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// How long one probe may take.
/// (A JVM broker accepts connections a moment before it answers them.)
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Launches on fresh ports when the child could not bind the one it was given.
const PORT_RACE_ATTEMPTS: usize = 3;

/// A kind of broker a run can put behind the target's `pubsub` component. Swapping brokers
/// changes only the component YAML (`fixtures/components/<name>.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Broker {
    /// `pubsub.in-memory`: inside the sidecar process.
    InMemory,
    /// `pubsub.redis`: Redis Streams on a private `redis-server` per trial.
    Redis,
    /// `pubsub.kafka`: a private Apache Kafka broker (KRaft, log on disk) per trial.
    Kafka,
}

impl Broker {
    /// Every broker, in report order.
    pub const ALL: [Broker; 3] = [Broker::InMemory, Broker::Redis, Broker::Kafka];

    /// The name used in test names, reports, target files and `--broker`.
    pub fn name(self) -> &'static str {
        match self {
            Broker::InMemory => "in-memory",
            Broker::Redis => "redis",
            Broker::Kafka => "kafka",
        }
    }

    /// Parses a `--broker` / `PUBSUB_TCK_BROKERS` item.
    pub fn parse(s: &str) -> Option<Broker> {
        Broker::ALL.into_iter().find(|b| b.name() == s.trim())
    }

    /// The component type; a target runs checks on a broker other than in-memory only when
    /// its target file lists this type among its capabilities.
    pub fn component_type(self) -> &'static str {
        match self {
            Broker::InMemory => "pubsub.in-memory",
            Broker::Redis => "pubsub.redis",
            Broker::Kafka => "pubsub.kafka",
        }
    }

    /// The component template, relative to the workspace root.
    pub fn template(self) -> String {
        format!("fixtures/components/{}.yaml", self.name())
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a comma-separated broker list; `all` means every broker.
pub fn parse_list(s: &str) -> Result<Vec<Broker>, String> {
    parse_list_or_all(s, &Broker::ALL, Broker::parse, |p| {
        format!("unknown broker {p:?} (in-memory, redis, kafka or all)")
    })
}

/// Parses a comma-separated `list` of names with `parse`, blank entries skipped; the word
/// `all` stands for every item of `all`. A name `parse` does not know fails with
/// `unknown(name)`.
pub(crate) fn parse_list_or_all<T: Copy>(
    list: &str,
    all: &[T],
    parse: impl Fn(&str) -> Option<T>,
    unknown: impl Fn(&str) -> String,
) -> Result<Vec<T>, String> {
    if list.trim() == "all" {
        return Ok(all.to_vec());
    }
    list.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| parse(p).ok_or_else(|| unknown(p)))
        .collect()
}

/// A broker could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No free port.
    #[error("cannot reserve a port for {what}")]
    Port {
        /// The kind of broker, such as `redis-server`.
        what: &'static str,
        /// Why.
        #[source]
        source: PortError,
    },
    /// The data directory cannot be created.
    #[error("cannot create the broker directory {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    /// The binary is missing or would not start.
    #[error("cannot start {what} ({hint})")]
    Spawn {
        /// The kind of broker.
        what: &'static str,
        /// Where the binary comes from.
        hint: String,
        /// Why.
        #[source]
        source: SpawnError,
    },
    /// The Kafka storage template could not be formatted.
    #[error("cannot format Kafka storage: {detail}")]
    KafkaFormat {
        /// What went wrong, with the format tool's last lines.
        detail: String,
    },
    /// It exited before it answered.
    #[error(
        "{what} on port {port} exited ({status}) before it answered; last log lines:\n{log_tail}"
    )]
    Exited {
        /// The kind of broker.
        what: &'static str,
        /// Its port.
        port: u16,
        /// How it exited.
        status: std::process::ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// It did not answer in time.
    #[error(
        "{what} on port {port} did not answer {probe} within {waited:?} (last attempt: {last}); last log lines:\n{log_tail}"
    )]
    NotReady {
        /// The kind of broker.
        what: &'static str,
        /// The readiness probe, such as `INFO server`.
        probe: &'static str,
        /// Its port.
        port: u16,
        /// How long the harness waited.
        waited: Duration,
        /// What the last probe saw.
        last: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Something else answered on the broker's port: the probe did not reach the process the
    /// harness started.
    #[error(
        "port {port} is answered by {stranger}, not by the {what} this trial started ({ours}); another process holds the port"
    )]
    Foreign {
        /// The kind of broker.
        what: &'static str,
        /// The port.
        port: u16,
        /// Who answered, such as `redis-server pid 4242`.
        stranger: String,
        /// Who should have, such as `pid 4343`.
        ours: String,
    },
}

/// What a private redis-server writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Append-only file, fsync on every write: a restart keeps every acknowledged write
    /// (what conformance trials need).
    FsyncAlways,
    /// Nothing on disk (what a benchmark of the sidecar wants: no disk in the latency).
    None,
}

/// How a broker proves it is the process the harness started.
#[derive(Debug, Clone)]
enum Identity {
    /// `INFO server` answers `process_id:<the child's pid>`.
    RedisPid,
    /// A `Metadata` request answers this cluster id and lists a broker at this address (what
    /// the broker advertises: its own listener, or the fault proxy in front of it). Brokers of
    /// one run share a cluster id (their storage is formatted once), so the address is what
    /// tells them apart.
    KafkaBroker {
        /// The cluster id the storage was formatted with.
        cluster: String,
        /// The advertised `host:port`.
        advertised: String,
    },
}

impl Identity {
    fn probe_name(&self) -> &'static str {
        match self {
            Identity::RedisPid => "INFO server",
            Identity::KafkaBroker { .. } => "a Kafka Metadata request",
        }
    }
}

/// What one readiness probe saw.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// The process the harness started (or, for an external broker, any broker).
    Ours,
    /// Someone else, described.
    Stranger(String),
    /// Nothing usable yet, described.
    Nothing(String),
}

/// A broker process the harness owns, or an external one given by address: the part every
/// broker shares (address, child, readiness with identity, kill, pause, restart). A
/// [`RedisServer`] and a [`KafkaServer`] are each one of these (they dereference to it) plus
/// what only that kind of broker does.
#[derive(Debug)]
pub struct BrokerProcess {
    what: &'static str,
    /// What to check when the process cannot be started.
    hint: &'static str,
    addr: String,
    port: u16,
    identity: Identity,
    /// How long a start or restart may take to answer.
    deadline: Duration,
    child: Option<Child>,
}

impl BrokerProcess {
    /// Reserves `ports` ports, spawns `spec(ports)` holding them (the first is the one clients
    /// use), and waits until the probe reaches the child. A child that exits because a port was
    /// taken is launched again on fresh ports.
    async fn start(
        what: &'static str,
        hint: &'static str,
        identity: impl Fn(u16) -> Identity,
        ports: usize,
        deadline: Duration,
        mut spec: impl FnMut(&[u16]) -> Result<ProcessSpec, BrokerError>,
    ) -> Result<BrokerProcess, BrokerError> {
        let mut attempt = 1;
        loop {
            let reserved =
                PortReservation::new(ports).map_err(|source| BrokerError::Port { what, source })?;
            let port = reserved.ports()[0];
            let spec = spec(reserved.ports())?;
            let child = spec
                .hold_ports(reserved.release())
                .spawn()
                .map_err(|source| BrokerError::Spawn {
                    what,
                    hint: hint.to_owned(),
                    source,
                })?;
            let mut server = BrokerProcess {
                what,
                hint,
                addr: format!("127.0.0.1:{port}"),
                port,
                identity: identity(port),
                deadline,
                child: Some(child),
            };
            match server.wait_ready(deadline).await {
                Err(BrokerError::Exited { log_tail, .. })
                    if attempt < PORT_RACE_ATTEMPTS && bind_failed(&log_tail) =>
                {
                    tracing::warn!(
                        what,
                        port,
                        attempt,
                        "a port was taken before the broker bound it; starting again on fresh ports"
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(server),
            }
        }
    }

    fn external(
        what: &'static str,
        hint: &'static str,
        addr: String,
        identity: Identity,
    ) -> BrokerProcess {
        BrokerProcess {
            what,
            hint,
            port: port_of(&addr),
            addr,
            identity,
            deadline: READY_DEADLINE,
            child: None,
        }
    }

    /// `host:port`, as component metadata wants it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The process, unless external.
    pub fn child(&self) -> Option<&Child> {
        self.child.as_ref()
    }

    /// Probes until the broker answers as the process the harness started, it exits, or
    /// `deadline` passes.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), BrokerError> {
        let started = Instant::now();
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stranger = None;
        let mut last = "no attempt".to_owned();
        loop {
            tick.tick().await;
            let pid = self.child.as_ref().map(Child::pid);
            match self.probe(pid).await {
                Answer::Ours => return Ok(()),
                Answer::Stranger(who) => stranger = Some(who),
                Answer::Nothing(seen) => last = seen,
            }
            let exited = self.child.as_mut().and_then(Child::try_exit_status);
            if exited.is_some() || started.elapsed() >= deadline {
                if let Some(stranger) = stranger {
                    return Err(BrokerError::Foreign {
                        what: self.what,
                        port: self.port,
                        stranger,
                        ours: pid.map_or_else(
                            || "an external broker".to_owned(),
                            |p| format!("pid {p}"),
                        ),
                    });
                }
                let log_tail = self
                    .child
                    .as_ref()
                    .map(|c| c.log_tail(20))
                    .unwrap_or_default();
                return Err(match exited {
                    Some(status) => BrokerError::Exited {
                        what: self.what,
                        port: self.port,
                        status,
                        log_tail,
                    },
                    None => BrokerError::NotReady {
                        what: self.what,
                        probe: self.identity.probe_name(),
                        port: self.port,
                        waited: started.elapsed(),
                        last,
                        log_tail,
                    },
                });
            }
        }
    }

    /// One readiness probe; `pid` is the child's, `None` for an external broker.
    async fn probe(&self, pid: Option<u32>) -> Answer {
        let attempt = async {
            match &self.identity {
                Identity::RedisPid => match redis_pid(&self.addr).await {
                    Err(e) => Answer::Nothing(e),
                    Ok(got) if pid.is_none_or(|p| p == got) => Answer::Ours,
                    Ok(got) => Answer::Stranger(format!("redis-server pid {got}")),
                },
                Identity::KafkaBroker {
                    cluster,
                    advertised,
                } => match crate::kafka_wire::cluster(&self.addr).await {
                    Err(e) => Answer::Nothing(e),
                    Ok(_) if pid.is_none() => Answer::Ours,
                    Ok((got, brokers))
                        if got.as_deref() == Some(cluster.as_str())
                            && brokers.iter().any(|b| b == advertised) =>
                    {
                        Answer::Ours
                    }
                    Ok((got, brokers)) => Answer::Stranger(format!(
                        "a Kafka broker of cluster {:?} advertising {} (this trial's is {cluster:?} at {advertised})",
                        got.unwrap_or_default(),
                        brokers.join(", ")
                    )),
                },
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Answer::Nothing(format!("no answer within {PROBE_TIMEOUT:?}")))
    }

    /// Whether the harness owns the process (so it can kill and restart it).
    pub fn is_private(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILLs the broker (a crash: what it had not written is lost).
    pub async fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill().await;
        }
    }

    /// SIGSTOPs the broker (a hung broker: connections stay open, nothing answers). A no-op
    /// on an external broker; callers check [`Self::is_private`].
    pub fn pause(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::pause)
    }

    /// SIGCONTs a paused broker.
    pub fn resume(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::resume)
    }

    /// Starts it again on the same port and directory, and waits until it answers.
    pub async fn restart(&mut self) -> Result<(), BrokerError> {
        if let Some(c) = self.child.as_mut() {
            c.restart().await.map_err(|source| BrokerError::Spawn {
                what: self.what,
                hint: self.hint.to_owned(),
                source,
            })?;
        }
        self.wait_ready(self.deadline).await
    }

    /// How the broker exited, with the end of its log, if it exited although the harness
    /// never stopped it.
    pub fn unexpected_exit(&mut self) -> Option<(std::process::ExitStatus, String)> {
        self.child.as_mut()?.unexpected_exit()
    }

    /// The process's log name, or the address of an external broker.
    pub fn name(&self) -> String {
        self.child
            .as_ref()
            .map_or_else(|| self.addr.clone(), |c| c.name().to_owned())
    }
}

/// Whether a log says the process could not bind its listening port.
fn bind_failed(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("addrinuse")
}

/// A broker type is its [`BrokerProcess`] plus what only that kind of broker does.
macro_rules! deref_to_process {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = BrokerProcess;

            fn deref(&self) -> &BrokerProcess {
                &self.server
            }
        }

        impl std::ops::DerefMut for $t {
            fn deref_mut(&mut self) -> &mut BrokerProcess {
                &mut self.server
            }
        }
    };
}

const REDIS_HINT: &str = "is redis-server installed? the README's test command installs it";

/// A private redis-server, or an external one given by address.
#[derive(Debug)]
pub struct RedisServer {
    server: BrokerProcess,
}

deref_to_process!(RedisServer);

impl RedisServer {
    /// Starts `redis-server` on a free loopback port with data in `dir` (append-only file on,
    /// so a restart keeps acknowledged writes) and logs in `log_dir`.
    pub async fn start(dir: &Path, log_dir: &Path, name: &str) -> Result<RedisServer, BrokerError> {
        RedisServer::start_with(dir, log_dir, name, Durability::FsyncAlways).await
    }

    /// Starts `redis-server` like [`RedisServer::start`], with the given durability.
    pub async fn start_with(
        dir: &Path,
        log_dir: &Path,
        name: &str,
        durability: Durability,
    ) -> Result<RedisServer, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::Dir(dir.to_owned(), e))?;
        let spec = |ports: &[u16]| Ok(redis_spec(ports[0], dir, log_dir, name, durability));
        let server = BrokerProcess::start(
            "redis-server",
            REDIS_HINT,
            |_| Identity::RedisPid,
            1,
            READY_DEADLINE,
            spec,
        )
        .await?;
        Ok(RedisServer { server })
    }

    /// Starts `redis-server` on `port` exactly, without retrying elsewhere: for tests of what
    /// happens when the port is taken.
    #[doc(hidden)]
    pub async fn start_on_port(
        port: u16,
        dir: &Path,
        log_dir: &Path,
        name: &str,
    ) -> Result<RedisServer, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::Dir(dir.to_owned(), e))?;
        let child = redis_spec(port, dir, log_dir, name, Durability::FsyncAlways)
            .spawn()
            .map_err(|source| BrokerError::Spawn {
                what: "redis-server",
                hint: REDIS_HINT.to_owned(),
                source,
            })?;
        let mut server = BrokerProcess {
            what: "redis-server",
            hint: REDIS_HINT,
            addr: format!("127.0.0.1:{port}"),
            port,
            identity: Identity::RedisPid,
            deadline: READY_DEADLINE,
            child: Some(child),
        };
        server.wait_ready(READY_DEADLINE).await?;
        Ok(RedisServer { server })
    }

    /// A Redis someone else runs (for example from `PUBSUB_TCK_REDIS`); kill and restart are
    /// not available.
    pub fn external(addr: impl Into<String>) -> RedisServer {
        RedisServer {
            server: BrokerProcess::external(
                "redis-server",
                REDIS_HINT,
                addr.into(),
                Identity::RedisPid,
            ),
        }
    }
}

fn redis_spec(
    port: u16,
    dir: &Path,
    log_dir: &Path,
    name: &str,
    durability: Durability,
) -> ProcessSpec {
    let appendonly = match durability {
        Durability::FsyncAlways => "yes",
        Durability::None => "no",
    };
    ProcessSpec::new("redis-server")
        .args([
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            appendonly.to_owned(),
            "--appendfsync".to_owned(),
            "always".to_owned(),
            // No background rewrite of the append-only file: a trial's file stays small enough,
            // and a rewrite (a fork that compresses the whole data set) costs CPU that the
            // other trials on the machine need (the robustness campaigns publish megabytes).
            "--auto-aof-rewrite-percentage".to_owned(),
            "0".to_owned(),
            "--dir".to_owned(),
            dir.display().to_string(),
            "--protected-mode".to_owned(),
            "no".to_owned(),
        ])
        .name(name)
        .log_dir(log_dir)
}

/// The `process_id` of the Redis at `addr`, from `INFO server`.
async fn redis_pid(addr: &str) -> Result<u32, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(b"INFO server\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(pid) = parse_info_pid(&reply)? {
            return Ok(pid);
        }
        let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&reply)
            ));
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > 1 << 16 {
            return Err("INFO reply larger than 64 KiB".to_owned());
        }
    }
}

/// `Ok(Some(pid))` once `reply` holds a `process_id` line, `Ok(None)` while more is needed,
/// `Err` for an error reply (such as `-LOADING`).
fn parse_info_pid(reply: &[u8]) -> Result<Option<u32>, String> {
    if reply.first() == Some(&b'-') {
        return Err(String::from_utf8_lossy(reply).trim_end().to_owned());
    }
    let text = String::from_utf8_lossy(reply);
    for line in text.split("\r\n") {
        if let Some(v) = line.strip_prefix("process_id:") {
            return v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("bad process_id line {line:?}"));
        }
    }
    Ok(None)
}

const KAFKA_HINT: &str = "is java on PATH and PUBSUB_TCK_KAFKA_HOME what scripts/kafka.sh prints?";

/// How long a Kafka broker may take to answer: a JVM starts in about 2 s, a restart after a
/// crash waits out the dead broker's session (`broker.session.timeout.ms`, 2 s here) too.
const KAFKA_READY_DEADLINE: Duration = Duration::from_secs(45);

/// The storage every private broker of this process starts from: formatted once (the format
/// tool is a JVM start of its own), copied for each broker.
static KAFKA_TEMPLATE: tokio::sync::OnceCell<Result<KafkaTemplate, String>> =
    tokio::sync::OnceCell::const_new();

/// A formatted, never-started KRaft log directory and the cluster id it carries.
#[derive(Debug)]
struct KafkaTemplate {
    /// Holds the directory for the life of the process.
    _root: tempfile::TempDir,
    /// The formatted log directory.
    data: PathBuf,
    cluster: String,
}

/// A private Apache Kafka broker (one JVM running a combined broker and controller, KRaft, on
/// two loopback ports), or an external one given by address.
///
/// Its log is on disk in the trial's directory: a restart (after a kill, too) keeps every record
/// and committed offset the broker had acknowledged (Kafka does not fsync each record, so a
/// machine crash could lose them; a process crash cannot).
#[derive(Debug)]
pub struct KafkaServer {
    // Declared first, so dropped first: the broker is killed before its log is removed.
    server: BrokerProcess,
    /// The broker's log directory, in a temporary directory of its own rather than the trial's
    /// report directory: the KRaft metadata log preallocates 20 MiB of sparse index files that
    /// any copy of a report would write out. Removed when the server is dropped.
    _data: Option<tempfile::TempDir>,
}

deref_to_process!(KafkaServer);

impl KafkaServer {
    /// Starts a broker from the Kafka home `home` (`lib/` and `log4j.properties`, as
    /// scripts/kafka.sh lays them out) with its configuration and log in `dir` and its output in
    /// `<log_dir>/<name>.log`, advertising its own address.
    pub async fn start(
        home: &Path,
        dir: &Path,
        log_dir: &Path,
        name: &str,
    ) -> Result<KafkaServer, BrokerError> {
        KafkaServer::start_advertising(home, dir, log_dir, name, None).await
    }

    /// Like [`start`](Self::start), advertising `advertised` (`host:port`) to clients instead
    /// of its own address: a fault proxy in front of the broker must be what clients reconnect
    /// to after reading the cluster metadata.
    pub async fn start_advertising(
        home: &Path,
        dir: &Path,
        log_dir: &Path,
        name: &str,
        advertised: Option<&str>,
    ) -> Result<KafkaServer, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::Dir(dir.to_owned(), e))?;
        let data_root = tempfile::Builder::new()
            .prefix("pubsub-tck-kafka-log-")
            .tempdir()
            .map_err(|e| BrokerError::Dir(std::env::temp_dir(), e))?;
        let template = KAFKA_TEMPLATE
            .get_or_init(|| async { format_template(home).await })
            .await
            .as_ref()
            .map_err(|detail| BrokerError::KafkaFormat {
                detail: detail.clone(),
            })?;
        let cluster = template.cluster.clone();
        let advertised_for =
            |port: u16| advertised.map_or_else(|| format!("127.0.0.1:{port}"), str::to_owned);
        let spec = |ports: &[u16]| {
            let (port, controller) = (ports[0], ports[1]);
            let data = data_root.path().join("data");
            // A fresh copy of the formatted storage each launch (a retried launch too).
            let _ = std::fs::remove_dir_all(&data);
            copy_dir(&template.data, &data).map_err(|e| BrokerError::Dir(data.clone(), e))?;
            let config = dir.join("server.properties");
            std::fs::write(
                &config,
                kafka_properties(port, controller, &advertised_for(port), &data),
            )
            .map_err(|e| BrokerError::Dir(config.clone(), e))?;
            Ok(kafka_jvm(home, "kafka.Kafka")
                .arg(config.display().to_string())
                .name(name)
                .log_dir(log_dir))
        };
        let identity = |port: u16| Identity::KafkaBroker {
            cluster: cluster.clone(),
            advertised: advertised_for(port),
        };
        let server = BrokerProcess::start(
            "kafka broker",
            KAFKA_HINT,
            identity,
            2,
            KAFKA_READY_DEADLINE,
            spec,
        )
        .await?;
        Ok(KafkaServer {
            server,
            _data: Some(data_root),
        })
    }

    /// A Kafka someone else runs (for example from `PUBSUB_TCK_KAFKA`); kill and restart are
    /// not available.
    pub fn external(addr: impl Into<String>) -> KafkaServer {
        KafkaServer {
            _data: None,
            server: BrokerProcess::external(
                "kafka broker",
                KAFKA_HINT,
                addr.into(),
                Identity::KafkaBroker {
                    cluster: String::new(),
                    advertised: String::new(),
                },
            ),
        }
    }
}

/// A JVM running `main` from the Kafka classpath, small and quick to start: a fixed small heap,
/// the serial collector, only the fast compiler (the broker's load here is light), and the
/// class-data archive scripts/kafka.sh records, when there is one.
fn kafka_jvm(home: &Path, main: &str) -> ProcessSpec {
    let mut args = vec![
        "-Xms256m".to_owned(),
        "-Xmx512m".to_owned(),
        "-XX:+UseSerialGC".to_owned(),
        "-XX:TieredStopAtLevel=1".to_owned(),
        "-Djava.awt.headless=true".to_owned(),
    ];
    let archive = home.join("kafka.jsa");
    if archive.is_file() {
        args.push(format!("-XX:SharedArchiveFile={}", archive.display()));
        args.push("-Xlog:cds=off".to_owned());
    }
    args.push(format!(
        "-Dlog4j.configuration=file:{}",
        home.join("log4j.properties").display()
    ));
    // The wildcard is Java's, not a shell's: `java` expands `lib/*` itself.
    args.push("-cp".to_owned());
    args.push(format!("{}/*", home.join("lib").display()));
    args.push(main.to_owned());
    ProcessSpec::new("java").args(args)
}

/// One combined broker and controller on loopback, sized for a trial: four partitions per topic
/// unless a client asks otherwise (so that a partition key matters, as in production), replication factors of one, a small cleaner buffer (its 128 MiB
/// default is allocated on the heap), no delay before the first consumer-group rebalance, group
/// session timeouts down to 500 ms (the component templates use short ones so that a crashed
/// member leaves within a trial), and a dead broker's registration expiring after 2 s (so a
/// restart after a kill answers in seconds). Index files are preallocated at 64 KiB instead of
/// 10 MiB: they are sparse on disk, but anything that copies a trial directory (an archive, a
/// report's `latest` copy) would otherwise write 20 MiB per partition.
fn kafka_properties(port: u16, controller: u16, advertised: &str, data: &Path) -> String {
    format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners=PLAINTEXT://{advertised}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={}\n\
         num.partitions=4\n\
         default.replication.factor=1\n\
         offsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         transaction.state.log.num.partitions=1\n\
         group.initial.rebalance.delay.ms=0\n\
         group.min.session.timeout.ms=500\n\
         broker.session.timeout.ms=2000\n\
         broker.heartbeat.interval.ms=500\n\
         num.network.threads=2\n\
         num.io.threads=2\n\
         log.cleaner.dedupe.buffer.size=2097152\n\
         log.index.size.max.bytes=65536\n\
         auto.create.topics.enable=true\n",
        data.display()
    )
}

/// A random Kafka cluster id: a UUID in base64url without padding, never starting with `-`
/// (Kafka's own `Uuid.randomUuid` draws again too: the storage tool would read such an id as
/// an option, one draw in 64, and every Kafka trial of the process would fail).
/// Brokers that trials handed back clean, for later trials of this process: starting a JVM
/// costs about 1.5 s of CPU, most of what a Kafka trial costs on a small machine.
static KAFKA_IDLE: std::sync::Mutex<Vec<KafkaServer>> = std::sync::Mutex::new(Vec::new());

/// At most this many idle brokers are kept; more are stopped.
const KAFKA_IDLE_MAX: usize = 8;

/// How long emptying a broker for its next trial may take.
const KAFKA_EMPTY_DEADLINE: Duration = Duration::from_secs(10);

impl KafkaServer {
    /// A private broker for the trial `name`: one an earlier trial handed back with
    /// [`KafkaServer::hand_back`] (its log marked where this trial's part begins), else a new
    /// one from [`KafkaServer::start`]. Call it, `hand_back` and `stop_idle` on one tokio
    /// runtime that lives as long as the process: a broker's process handle belongs to the
    /// runtime it was started on.
    pub async fn take(
        home: &Path,
        dir: &Path,
        log_dir: &Path,
        name: &str,
    ) -> Result<KafkaServer, BrokerError> {
        loop {
            let idle = KAFKA_IDLE.lock().ok().and_then(|mut v| v.pop());
            let Some(mut server) = idle else {
                break;
            };
            // One that died while idle is dropped; the next one is tried.
            if server.unexpected_exit().is_none()
                && let Some(child) = server.server.child.as_mut()
            {
                child.mark_log(&format!("now the broker of {name}"));
                return Ok(server);
            }
        }
        KafkaServer::start(home, dir, log_dir, name).await
    }

    /// Hands a private broker back for later trials of this process, once it is empty: every
    /// topic its trial made is deleted and its metadata lists none (a new topic of the same
    /// name starts empty, with a new topic id). Consumer groups stay; each trial's app id, and
    /// so its group, is its own. The caller must have stopped every client of the broker (the
    /// sidecar), and must not hand back a broker its trial faulted (killed, paused,
    /// restarted). A broker that cannot be emptied is stopped instead, with a warning.
    pub async fn hand_back(self) {
        if !self.is_private() || self.child().is_none_or(|c| c.is_paused()) {
            return;
        }
        if let Err(e) = empty(self.addr()).await {
            tracing::warn!(addr = %self.addr(), "not reusing a Kafka broker: {e}");
            return;
        }
        if let Ok(mut idle) = KAFKA_IDLE.lock()
            && idle.len() < KAFKA_IDLE_MAX
        {
            idle.push(self);
        }
    }

    /// Stops every broker handed back and not taken again: call it once the last trial of the
    /// process has ended, since brokers run in process groups of their own.
    pub async fn stop_idle() {
        let idle = KAFKA_IDLE
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for mut server in idle {
            server.kill().await;
        }
    }
}

/// Deletes every topic of the broker at `addr` and waits until its metadata lists none.
async fn empty(addr: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let topics = crate::kafka_wire::topics(addr).await?;
        if topics.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= KAFKA_EMPTY_DEADLINE {
            return Err(format!(
                "topics {topics:?} still listed {KAFKA_EMPTY_DEADLINE:?} after their deletion"
            ));
        }
        crate::kafka_wire::delete_topics(addr, &topics, 5_000).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cluster_id() -> String {
    loop {
        let id = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            uuid::Uuid::new_v4().as_bytes(),
        );
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Formats a KRaft log directory once, with a cluster id of its own (22 characters of
/// base64url, the form Kafka's own tool makes).
async fn format_template(home: &Path) -> Result<KafkaTemplate, String> {
    let root = tempfile::Builder::new()
        .prefix("pubsub-tck-kafka-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for the storage template: {e}"))?;
    let cluster = cluster_id();
    let data = root.path().join("data");
    let config = root.path().join("format.properties");
    // Any ports do: formatting reads the configuration, it opens no socket.
    std::fs::write(
        &config,
        kafka_properties(9092, 9093, "127.0.0.1:9092", &data),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let mut child = kafka_jvm(home, "kafka.tools.StorageTool")
        .args([
            "format".to_owned(),
            "-t".to_owned(),
            cluster.clone(),
            "-c".to_owned(),
            config.display().to_string(),
        ])
        .name("kafka-format")
        .log_dir(root.path())
        .spawn()
        .map_err(|e| format!("cannot start java ({KAFKA_HINT}): {e}"))?;
    match child.wait_exit(Duration::from_secs(60)).await {
        Some(status) if status.success() && data.join("meta.properties").is_file() => {
            Ok(KafkaTemplate {
                _root: root,
                data,
                cluster,
            })
        }
        Some(status) => Err(format!(
            "the storage format tool exited ({status}); last lines:\n{}",
            child.log_tail(10)
        )),
        None => Err(format!(
            "the storage format tool did not finish within 60 s; last lines:\n{}",
            child.log_tail(10)
        )),
    }
}

/// Copies the directory tree `from` to `to` (files and directories only).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists() {
        assert_eq!(parse_list("all").unwrap(), Broker::ALL.to_vec());
        assert_eq!(
            parse_list("redis, in-memory").unwrap(),
            vec![Broker::Redis, Broker::InMemory]
        );
        assert!(parse_list("kafkaesque").is_err());
    }

    #[test]
    fn cluster_ids_never_read_as_an_option() {
        for _ in 0..2000 {
            let id = cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'), "{id}");
        }
    }

    #[test]
    fn info_reply_pid() {
        assert_eq!(
            parse_info_pid(b"$120\r\n# Server\r\nredis_version:7.0.15\r\n"),
            Ok(None)
        );
        assert_eq!(
            parse_info_pid(b"$120\r\n# Server\r\nprocess_id:4242\r\nrun_id:x\r\n"),
            Ok(Some(4242))
        );
        assert!(parse_info_pid(b"-LOADING Redis is loading\r\n").is_err());
    }

    #[test]
    fn bind_failures_are_recognised() {
        assert!(bind_failed(
            "# Warning: Could not create server TCP listening socket 127.0.0.1:4000: bind: Address already in use"
        ));
        assert!(bind_failed("Error: Io(Os { code: 98, kind: AddrInUse })"));
        assert!(!bind_failed("Ready to accept connections"));
    }
}

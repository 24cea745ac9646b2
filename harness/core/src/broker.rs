//! Brokers the harness brings up for trials: a private `redis-server`, or a private Kafka-protocol
//! broker (the `tansu` binary, memory engine), on a free loopback port with its own directory,
//! so that a trial can kill and restart it without touching any shared broker.
//!
//! Owns starting, readiness, kill and restart. Readiness proves identity: the probe must reach
//! the process the harness started, not whatever else listens on the port (a neighbour that was
//! handed the same port, say): Redis answers `INFO server` with its `process_id`, which must be
//! the child's pid; the Kafka broker answers a `Metadata` request with the cluster id it was
//! started with. An answer from someone else is a setup error naming the port and the
//! stranger ([`BrokerError::Foreign`]). A child that exits because its port was taken after
//! the reservation is started again on a fresh port.
//! Which component YAML points at a broker is the suites' business, and so is where the
//! `tansu` binary comes from (`PUBSUB_TCK_TANSU`, set by scripts/test.sh).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ports::{PortError, PortReservation};
use crate::proc::{Child, ProcessSpec, SignalError, SpawnError};

/// How long a fresh broker may take to answer its readiness probe.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How often the readiness probe is repeated.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// How long one probe may take.
/// (A JVM broker accepts connections a moment before it answers them.)
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Launches on fresh ports when the child could not bind the one it was given.
const PORT_RACE_ATTEMPTS: usize = 3;

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
    /// A `Metadata` request answers this cluster id.
    KafkaCluster(String),
}

impl Identity {
    fn probe_name(&self) -> &'static str {
        match self {
            Identity::RedisPid => "INFO server",
            Identity::KafkaCluster(_) => "a Kafka Metadata request",
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
/// broker shares (address, child, readiness with identity, kill, pause, restart).
#[derive(Debug)]
struct Server {
    what: &'static str,
    addr: String,
    port: u16,
    identity: Identity,
    child: Option<Child>,
}

impl Server {
    /// Reserves a port, spawns `spec(port)` holding it, and waits until the probe reaches the
    /// child. A child that exits because its port was taken is launched again on a fresh port.
    async fn start(
        what: &'static str,
        hint: &str,
        identity: Identity,
        spec: impl Fn(u16) -> ProcessSpec,
    ) -> Result<Server, BrokerError> {
        let mut attempt = 1;
        loop {
            let ports =
                PortReservation::new(1).map_err(|source| BrokerError::Port { what, source })?;
            let port = ports.ports()[0];
            let spec = spec(port);
            let child =
                spec.hold_ports(ports.release())
                    .spawn()
                    .map_err(|source| BrokerError::Spawn {
                        what,
                        hint: hint.to_owned(),
                        source,
                    })?;
            let mut server = Server {
                what,
                addr: format!("127.0.0.1:{port}"),
                port,
                identity: identity.clone(),
                child: Some(child),
            };
            match server.wait_ready(READY_DEADLINE).await {
                Err(BrokerError::Exited { log_tail, .. })
                    if attempt < PORT_RACE_ATTEMPTS && bind_failed(&log_tail) =>
                {
                    tracing::warn!(
                        what,
                        port,
                        attempt,
                        "the port was taken before the broker bound it; starting again on a fresh port"
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(server),
            }
        }
    }

    fn external(what: &'static str, addr: String, identity: Identity) -> Server {
        Server {
            what,
            port: port_of(&addr),
            addr,
            identity,
            child: None,
        }
    }

    /// Probes until the child answers, it exits, or `deadline` passes.
    async fn wait_ready(&mut self, deadline: Duration) -> Result<(), BrokerError> {
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
                Identity::KafkaCluster(want) => match kafka_cluster_id(&self.addr).await {
                    Err(e) => Answer::Nothing(e),
                    Ok(got) if pid.is_none() || got.as_deref() == Some(want.as_str()) => {
                        Answer::Ours
                    }
                    Ok(got) => Answer::Stranger(format!(
                        "a Kafka broker of cluster {:?} (this trial's is {want:?})",
                        got.unwrap_or_default()
                    )),
                },
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Answer::Nothing(format!("no answer within {PROBE_TIMEOUT:?}")))
    }

    fn is_private(&self) -> bool {
        self.child.is_some()
    }

    async fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill().await;
        }
    }

    fn pause(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::pause)
    }

    fn resume(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::resume)
    }

    async fn restart(&mut self, hint: &str) -> Result<(), BrokerError> {
        if let Some(c) = self.child.as_mut() {
            c.restart().await.map_err(|source| BrokerError::Spawn {
                what: self.what,
                hint: hint.to_owned(),
                source,
            })?;
        }
        self.wait_ready(READY_DEADLINE).await
    }

    fn unexpected_exit(&mut self) -> Option<(std::process::ExitStatus, String)> {
        self.child.as_mut()?.unexpected_exit()
    }
}

/// Whether a log says the process could not bind its listening port.
fn bind_failed(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("addrinuse")
}

/// Forwards the shared operations of [`Server`] as the public API of a broker type.
macro_rules! server_api {
    ($hint:expr) => {
        /// `host:port`, as component metadata wants it.
        pub fn addr(&self) -> &str {
            &self.server.addr
        }

        /// Whether the harness owns the process (so it can kill and restart it).
        pub fn is_private(&self) -> bool {
            self.server.is_private()
        }

        /// The process, unless external.
        pub fn child(&self) -> Option<&Child> {
            self.server.child.as_ref()
        }

        /// Probes until the broker answers as the process the harness started.
        pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), BrokerError> {
            self.server.wait_ready(deadline).await
        }

        /// SIGKILLs the broker (a crash: what it had not written is lost).
        pub async fn kill(&mut self) {
            self.server.kill().await
        }

        /// SIGSTOPs the broker (a hung broker: connections stay open, nothing answers). A
        /// no-op on an external broker; callers check [`Self::is_private`].
        pub fn pause(&mut self) -> Result<(), SignalError> {
            self.server.pause()
        }

        /// SIGCONTs a paused broker.
        pub fn resume(&mut self) -> Result<(), SignalError> {
            self.server.resume()
        }

        /// Starts it again on the same port and directory, and waits until it answers.
        pub async fn restart(&mut self) -> Result<(), BrokerError> {
            self.server.restart($hint).await
        }

        /// How the broker exited, with the end of its log, if it exited although the harness
        /// never stopped it.
        pub fn unexpected_exit(&mut self) -> Option<(std::process::ExitStatus, String)> {
            self.server.unexpected_exit()
        }
    };
}

const REDIS_HINT: &str = "is redis-server installed? the README's test command installs it";

/// A private redis-server, or an external one given by address.
#[derive(Debug)]
pub struct RedisServer {
    server: Server,
}

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
        let spec = |port: u16| redis_spec(port, dir, log_dir, name, durability);
        let server = Server::start("redis-server", REDIS_HINT, Identity::RedisPid, spec).await?;
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
        let mut server = Server {
            what: "redis-server",
            addr: format!("127.0.0.1:{port}"),
            port,
            identity: Identity::RedisPid,
            child: Some(child),
        };
        server.wait_ready(READY_DEADLINE).await?;
        Ok(RedisServer { server })
    }

    /// A Redis someone else runs (for example from `PUBSUB_TCK_REDIS`); kill and restart are
    /// not available.
    pub fn external(addr: impl Into<String>) -> RedisServer {
        RedisServer {
            server: Server::external("redis-server", addr.into(), Identity::RedisPid),
        }
    }

    server_api!(REDIS_HINT);
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

const KAFKA_HINT: &str = "scripts/tansu.sh fetches it";

/// A private Kafka-protocol broker (`tansu broker`, memory engine), or an external one given by
/// address.
///
/// The memory engine keeps nothing across a restart: after [`restart`](Self::restart) the
/// broker is empty (topics, records and committed offsets are gone).
#[derive(Debug)]
pub struct KafkaServer {
    server: Server,
}

impl KafkaServer {
    /// Starts `binary` (a tansu build with the memory engine) on a free loopback port, advertising
    /// that same address, with its working directory `dir` and logs in `log_dir`.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        log_dir: &Path,
        name: &str,
    ) -> Result<KafkaServer, BrokerError> {
        KafkaServer::start_advertising(binary, dir, log_dir, name, None).await
    }

    /// Like [`start`](Self::start), advertising `advertised` (`host:port`) to clients instead
    /// of its own address: a fault proxy in front of the broker must be what clients reconnect
    /// to after reading the cluster metadata.
    pub async fn start_advertising(
        binary: &Path,
        dir: &Path,
        log_dir: &Path,
        name: &str,
        advertised: Option<&str>,
    ) -> Result<KafkaServer, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::Dir(dir.to_owned(), e))?;
        // A cluster id no other broker has: the readiness probe checks it.
        let cluster = format!("tck-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let spec = |port: u16| {
            let url = format!("tcp://127.0.0.1:{port}");
            let advertised = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
            ProcessSpec::new(binary)
                .args([
                    "broker".to_owned(),
                    "--cluster-id".to_owned(),
                    cluster.clone(),
                    "--listener-url".to_owned(),
                    url,
                    "--advertised-listener-url".to_owned(),
                    advertised,
                    "--storage-engine".to_owned(),
                    "memory://tansu/".to_owned(),
                ])
                .cwd(dir)
                .name(name)
                .log_dir(log_dir)
        };
        let hint = format!("{}; {KAFKA_HINT}", binary.display());
        let server = Server::start(
            "kafka broker",
            &hint,
            Identity::KafkaCluster(cluster.clone()),
            spec,
        )
        .await?;
        Ok(KafkaServer { server })
    }

    /// A Kafka someone else runs (for example from `PUBSUB_TCK_KAFKA`); kill and restart are
    /// not available.
    pub fn external(addr: impl Into<String>) -> KafkaServer {
        KafkaServer {
            server: Server::external(
                "kafka broker",
                addr.into(),
                Identity::KafkaCluster(String::new()),
            ),
        }
    }

    server_api!(KAFKA_HINT);
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The correlation id of the readiness request.
const PROBE_CORRELATION: i32 = 0x7463_6b31;

/// The cluster id a Kafka broker reports in a `Metadata` v4 response (written by hand: the
/// harness has no Kafka client). v4 is the oldest version Kafka 4 still answers (KIP-896), and
/// like every version up to v8 it has no tagged fields.
async fn kafka_cluster_id(addr: &str) -> Result<Option<String>, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(&metadata_request())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let len = u32::from_be_bytes(len) as usize;
    if !(8..=1 << 20).contains(&len) {
        return Err(format!("a response of {len} bytes"));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)
        .await
        .map_err(|e| format!("read: {e}"))?;
    parse_metadata_cluster_id(&body)
}

/// `Metadata` (key 3) v4 with no topics: size, api key, version, correlation id, client id,
/// an empty topic array, `allow_auto_topic_creation = false`.
fn metadata_request() -> Vec<u8> {
    let client_id = b"pubsub-tck";
    let mut body = Vec::with_capacity(24 + client_id.len());
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(&PROBE_CORRELATION.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.extend_from_slice(&0i32.to_be_bytes());
    body.push(0);
    let mut req = Vec::with_capacity(4 + body.len());
    req.extend_from_slice(&(body.len() as u32).to_be_bytes());
    req.extend_from_slice(&body);
    req
}

/// Reads the cluster id out of a `Metadata` v4 response (after the size): correlation id,
/// throttle time, brokers `[node_id, host, port, rack]`, cluster id (nullable string).
fn parse_metadata_cluster_id(body: &[u8]) -> Result<Option<String>, String> {
    let mut r = Reader(body);
    if r.i32()? != PROBE_CORRELATION {
        return Err("a response to someone else's request".to_owned());
    }
    let _throttle = r.i32()?;
    let brokers = r.i32()?;
    for _ in 0..brokers.max(0) {
        let _node = r.i32()?;
        let _host = r.string()?;
        let _port = r.i32()?;
        let _rack = r.string()?;
    }
    r.string()
}

/// A cursor over a Kafka response.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("a truncated Metadata response".to_owned());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A nullable string: int16 length (-1 is null), then the bytes.
    fn string(&mut self) -> Result<Option<String>, String> {
        let b = self.take(2)?;
        let len = i16::from_be_bytes([b[0], b[1]]);
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_request_frame() {
        let req = metadata_request();
        assert_eq!(&req[..4], &(req.len() as u32 - 4).to_be_bytes());
        assert_eq!(&req[4..8], &[0, 3, 0, 4]);
        assert_eq!(&req[req.len() - 5..], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn metadata_response_cluster_id() {
        let mut b = PROBE_CORRELATION.to_be_bytes().to_vec();
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        b.extend_from_slice(&1i32.to_be_bytes()); // one broker
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&9i16.to_be_bytes());
        b.extend_from_slice(b"127.0.0.1");
        b.extend_from_slice(&9092i32.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes()); // no rack
        b.extend_from_slice(&5i16.to_be_bytes());
        b.extend_from_slice(b"tck-1");
        assert_eq!(parse_metadata_cluster_id(&b), Ok(Some("tck-1".to_owned())));
        assert!(parse_metadata_cluster_id(&b[..b.len() - 2]).is_err());
        b[0] ^= 1;
        assert!(parse_metadata_cluster_id(&b).is_err());
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

//! Brokers the harness brings up for trials: a private `redis-server`, or a private Kafka-protocol
//! broker (the `tansu` binary, memory engine), on a free loopback port with its own directory,
//! so that a trial can kill and restart it without touching any shared broker.
//!
//! Owns starting, readiness (a real `PING`, or a real Kafka `ApiVersions` round trip, against a
//! deadline), kill and restart. Which component YAML points at it is the suites' business, and
//! so is where the `tansu` binary comes from (`PUBSUB_TCK_TANSU`, set by scripts/test.sh).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ports::{PortError, PortReservation};
use crate::proc::{Child, ProcessSpec, SignalError, SpawnError};

/// How long a fresh redis-server may take to answer PING.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// A broker could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No free port.
    #[error("cannot reserve a port for redis-server")]
    Port(#[source] PortError),
    /// The data directory cannot be created.
    #[error("cannot create the redis-server directory {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    /// The binary is missing or would not start.
    #[error("cannot start redis-server (is it installed? the README's test command installs it)")]
    Spawn(#[source] SpawnError),
    /// The Kafka-protocol broker binary would not start.
    #[error("cannot start the kafka broker {} (scripts/tansu.sh fetches it)", binary.display())]
    KafkaSpawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: SpawnError,
    },
    /// The Kafka-protocol broker started but did not answer ApiVersions in time.
    #[error(
        "kafka broker on port {port} did not answer ApiVersions within {waited:?}; last log lines:\n{log_tail}"
    )]
    KafkaNotReady {
        /// Its port.
        port: u16,
        /// How long the harness waited.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// It started but did not answer PING in time.
    #[error(
        "redis-server on port {port} did not answer PING within {waited:?}; last log lines:\n{log_tail}"
    )]
    NotReady {
        /// Its port.
        port: u16,
        /// How long the harness waited.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
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

/// A private redis-server, or an external one given by address.
#[derive(Debug)]
pub struct RedisServer {
    addr: String,
    child: Option<Child>,
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
        let appendonly = match durability {
            Durability::FsyncAlways => "yes",
            Durability::None => "no",
        };
        let ports = PortReservation::new(1).map_err(BrokerError::Port)?;
        let port = ports.ports()[0];
        let spec = ProcessSpec::new("redis-server")
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
            .log_dir(log_dir);
        ports.release();
        let child = spec.spawn().map_err(BrokerError::Spawn)?;
        let mut server = RedisServer {
            addr: format!("127.0.0.1:{port}"),
            child: Some(child),
        };
        server.wait_ready(READY_DEADLINE).await?;
        Ok(server)
    }

    /// A Redis someone else runs (for example from `PUBSUB_TCK_REDIS`); kill and restart are
    /// not available.
    pub fn external(addr: impl Into<String>) -> RedisServer {
        RedisServer {
            addr: addr.into(),
            child: None,
        }
    }

    /// `host:port`, as component metadata `redisHost` wants it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the harness owns the process (so it can kill and restart it).
    pub fn is_private(&self) -> bool {
        self.child.is_some()
    }

    /// Polls `PING` until `+PONG` or the deadline.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), BrokerError> {
        let addr = self.addr.clone();
        poll_ready(&mut self.child, deadline, || ping(&addr))
            .await
            .map_err(|(waited, log_tail)| BrokerError::NotReady {
                port: port_of(&self.addr),
                waited,
                log_tail,
            })
    }

    /// SIGKILLs the server (a crash: what it had not written is lost).
    pub async fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill().await;
        }
    }

    /// SIGSTOPs the server (a hung broker: connections stay open, nothing answers). A no-op
    /// on an external server; callers check [`Self::is_private`].
    pub fn pause(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::pause)
    }

    /// SIGCONTs a paused server.
    pub fn resume(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::resume)
    }

    /// Starts it again on the same port and directory, and waits for PING.
    pub async fn restart(&mut self) -> Result<(), BrokerError> {
        if let Some(c) = self.child.as_mut() {
            c.restart().await.map_err(BrokerError::Spawn)?;
        }
        self.wait_ready(READY_DEADLINE).await
    }
}

/// One `PING` round trip; false on any error.
async fn ping(addr: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A private Kafka-protocol broker (`tansu broker`, memory engine), or an external one given by
/// address.
///
/// The memory engine keeps nothing across a restart: after [`restart`](Self::restart) the
/// broker is empty (topics, records and committed offsets are gone).
#[derive(Debug)]
pub struct KafkaServer {
    addr: String,
    binary: PathBuf,
    child: Option<Child>,
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
        let ports = PortReservation::new(1).map_err(BrokerError::Port)?;
        let port = ports.ports()[0];
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
        let spec = ProcessSpec::new(binary)
            .args([
                "broker".to_owned(),
                "--listener-url".to_owned(),
                url.clone(),
                "--advertised-listener-url".to_owned(),
                advertised,
                "--storage-engine".to_owned(),
                "memory://tansu/".to_owned(),
            ])
            .cwd(dir)
            .name(name)
            .log_dir(log_dir);
        ports.release();
        let child = spec.spawn().map_err(|source| BrokerError::KafkaSpawn {
            binary: binary.to_owned(),
            source,
        })?;
        let mut server = KafkaServer {
            addr: format!("127.0.0.1:{port}"),
            binary: binary.to_owned(),
            child: Some(child),
        };
        server.wait_ready(READY_DEADLINE).await?;
        Ok(server)
    }

    /// A Kafka someone else runs (for example from `PUBSUB_TCK_KAFKA`); kill and restart are
    /// not available.
    pub fn external(addr: impl Into<String>) -> KafkaServer {
        KafkaServer {
            addr: addr.into(),
            binary: PathBuf::new(),
            child: None,
        }
    }

    /// `host:port`, as component metadata `brokers` wants it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the harness owns the process (so it can kill and restart it).
    pub fn is_private(&self) -> bool {
        self.child.is_some()
    }

    /// Polls an `ApiVersions` round trip until it succeeds or the deadline passes.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), BrokerError> {
        let addr = self.addr.clone();
        poll_ready(&mut self.child, deadline, || api_versions(&addr))
            .await
            .map_err(|(waited, log_tail)| BrokerError::KafkaNotReady {
                port: port_of(&self.addr),
                waited,
                log_tail,
            })
    }

    /// SIGKILLs the broker. With the memory engine everything it held is lost.
    pub async fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill().await;
        }
    }

    /// SIGSTOPs the broker. A no-op on an external broker; callers check
    /// [`Self::is_private`].
    pub fn pause(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::pause)
    }

    /// SIGCONTs a paused broker.
    pub fn resume(&mut self) -> Result<(), SignalError> {
        self.child.as_mut().map_or(Ok(()), Child::resume)
    }

    /// Starts it again on the same port (empty), and waits for ApiVersions.
    pub async fn restart(&mut self) -> Result<(), BrokerError> {
        if let Some(c) = self.child.as_mut() {
            c.restart()
                .await
                .map_err(|source| BrokerError::KafkaSpawn {
                    binary: self.binary.clone(),
                    source,
                })?;
        }
        self.wait_ready(READY_DEADLINE).await
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The correlation id of the readiness request.
const PROBE_CORRELATION: i32 = 0x7463_6b31;

/// One Kafka `ApiVersions` v0 round trip (written by hand: the harness has no Kafka client);
/// true if the broker answers with our correlation id and error code 0.
async fn api_versions(addr: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(&api_versions_request()).await.ok()?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let len = usize::try_from(u32::from_be_bytes(len)).ok()?;
        if !(6..=1 << 20).contains(&len) {
            return Some(false);
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.ok()?;
        Some(api_versions_ok(&body))
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// `ApiVersions` (key 18) v0: size, api key, api version, correlation id, client id.
fn api_versions_request() -> Vec<u8> {
    let client_id = b"pubsub-tck";
    let mut body = Vec::with_capacity(16 + client_id.len());
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&PROBE_CORRELATION.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut req = Vec::with_capacity(4 + body.len());
    req.extend_from_slice(&(body.len() as u32).to_be_bytes());
    req.extend_from_slice(&body);
    req
}

/// A v0 response body starts with the correlation id and an error code.
fn api_versions_ok(body: &[u8]) -> bool {
    body.len() >= 6
        && body[..4] == PROBE_CORRELATION.to_be_bytes()
        && body[4..6] == 0i16.to_be_bytes()
}

/// Polls `probe` every 20 ms until it answers true; fails early when the owned process exits.
/// On failure: how long it waited and the end of the process's log.
async fn poll_ready<F, Fut>(
    child: &mut Option<Child>,
    deadline: Duration,
    mut probe: F,
) -> Result<(), (Duration, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if probe().await {
            return Ok(());
        }
        let exited = child.as_mut().and_then(Child::try_exit_status).is_some();
        if exited || started.elapsed() >= deadline {
            let log_tail = child.as_ref().map(|c| c.log_tail(20)).unwrap_or_default();
            return Err((started.elapsed(), log_tail));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_frames() {
        let req = api_versions_request();
        assert_eq!(&req[..4], &(req.len() as u32 - 4).to_be_bytes());
        assert_eq!(&req[4..8], &[0, 18, 0, 0]);
        let mut ok = PROBE_CORRELATION.to_be_bytes().to_vec();
        ok.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        assert!(api_versions_ok(&ok));
        ok[5] = 35;
        assert!(!api_versions_ok(&ok));
    }
}

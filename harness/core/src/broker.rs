//! Brokers the harness brings up for trials: a private `redis-server` on a free loopback port
//! with its own data directory, so that a trial can kill and restart it without touching any
//! shared Redis.
//!
//! Owns starting, readiness (a real `PING` against a deadline), kill and restart. Which
//! component YAML points at it is the suites' business.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ports::{PortError, PortReservation};
use crate::proc::{Child, ProcessSpec, SpawnError};

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
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::Dir(dir.to_owned(), e))?;
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
                "yes".to_owned(),
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
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if ping(&self.addr).await {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(Child::try_exit_status)
                .is_some();
            if exited || started.elapsed() >= deadline {
                let port = self
                    .addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let log_tail = self
                    .child
                    .as_ref()
                    .map(|c| c.log_tail(20))
                    .unwrap_or_default();
                return Err(BrokerError::NotReady {
                    port,
                    waited: started.elapsed(),
                    log_tail,
                });
            }
        }
    }

    /// SIGKILLs the server (a crash: what it had not written is lost).
    pub async fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill().await;
        }
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

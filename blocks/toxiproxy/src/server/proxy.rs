//! One proxy: its configuration, its toxics, and while enabled a listener with an accept
//! task that owns every connection it accepted.
//!
//! Disabling (or deleting, or replacing) a proxy stops the accept task, which drops the
//! listener (new clients are refused) and aborts every connection task, closing both of
//! its sockets; the call returns once all of that is done. Enabling binds the last listen
//! address again. Listen addresses must be loopback.
//! Not here: the HTTP API (`api`) and what happens to bytes (`link`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::link::{ConnectionSpec, link_seed, serve_connection};
use super::toxics::{Stream, ToxicSet};

/// A pause after a failed accept (such as too many open files), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listen address could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenError {
    /// The address is not `host:port`, or the host does not resolve.
    #[error("address {listen}: cannot resolve")]
    Resolve {
        /// The listen address.
        listen: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The address is not a loopback address; this server listens on loopback only.
    #[error("listen address {listen} is not a loopback address")]
    NotLoopback {
        /// The listen address.
        listen: String,
    },
    /// Binding failed (the port is taken, say).
    #[error("listen tcp {addr}")]
    Bind {
        /// The resolved address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Resolves a listen address to the loopback address to bind: an empty string means
/// `127.0.0.1:0`, and a name such as `localhost` resolves to its IPv4 loopback address
/// when it has one.
pub(crate) async fn resolve_listen(listen: &str) -> Result<SocketAddr, ListenError> {
    if listen.is_empty() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    let candidates: Vec<SocketAddr> = match listen.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => tokio::net::lookup_host(listen)
            .await
            .map_err(|source| ListenError::Resolve {
                listen: listen.to_owned(),
                source,
            })?
            .collect(),
    };
    let loopback = |v4: bool| {
        candidates
            .iter()
            .copied()
            .find(|a| a.ip().is_loopback() && a.is_ipv4() == v4)
    };
    loopback(true)
        .or_else(|| loopback(false))
        .ok_or_else(|| ListenError::NotLoopback {
            listen: listen.to_owned(),
        })
}

/// A proxy of the server.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) name: String,
    /// As given until the proxy is first bound, then the bound address (port 0 resolved).
    pub(crate) listen: String,
    pub(crate) upstream: String,
    pub(crate) toxics: ToxicSet,
    running: Option<Running>,
    /// Accept order of the next connection, across restarts; it seeds the links.
    ordinal: Arc<AtomicU64>,
    server_seed: u64,
    /// Set (or dropped) when the whole server shuts down.
    shutdown: watch::Receiver<bool>,
}

/// The accept task of an enabled proxy.
#[derive(Debug)]
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A proxy dropped without `stop` (the server going away) still closes everything:
        // aborting the accept task drops the listener and the connection tasks.
        self.task.abort();
    }
}

impl Proxy {
    pub(crate) fn new(
        name: String,
        listen: String,
        upstream: String,
        server_seed: u64,
        shutdown: watch::Receiver<bool>,
    ) -> Proxy {
        Proxy {
            name,
            listen,
            upstream,
            toxics: ToxicSet::new(),
            running: None,
            ordinal: Arc::new(AtomicU64::new(0)),
            server_seed,
            shutdown,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.running.is_some()
    }

    /// Whether `listen` and `upstream` differ from this proxy's, the Go server's way: the new
    /// listen address is resolved and compared with the current one as text.
    pub(crate) async fn differs(&self, listen: &str, upstream: &str) -> Result<bool, ListenError> {
        let resolved = resolve_listen(listen).await?;
        Ok(self.listen != resolved.to_string() || self.upstream != upstream)
    }

    /// Binds the listen address and starts accepting; nothing happens if already enabled.
    pub(crate) async fn start(&mut self) -> Result<(), ListenError> {
        if self.running.is_some() {
            return Ok(());
        }
        let addr = resolve_listen(&self.listen).await?;
        let (listener, bound) = super::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source })?;
        self.listen = bound.to_string();
        let (stop, stopped) = oneshot::channel();
        let acceptor = Acceptor {
            proxy: Arc::from(self.name.as_str()),
            upstream: Arc::from(self.upstream.as_str()),
            chains: [
                self.toxics.subscribe(Stream::Upstream),
                self.toxics.subscribe(Stream::Downstream),
            ],
            ordinal: Arc::clone(&self.ordinal),
            server_seed: self.server_seed,
        };
        let task = tokio::spawn(acceptor.run(listener, stopped, self.shutdown.clone()));
        tracing::info!(proxy = %self.name, listen = %bound, upstream = %self.upstream, "proxy started");
        self.running = Some(Running {
            stop: Some(stop),
            task,
        });
        Ok(())
    }

    /// Closes the listener and every connection, and returns when they are closed.
    pub(crate) async fn stop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        if let Some(stop) = running.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut running.task).await
            && error.is_panic()
        {
            tracing::error!(proxy = %self.name, %error, "accept task panicked");
        }
        tracing::info!(proxy = %self.name, "proxy stopped");
    }
}

/// What the accept task of a proxy needs.
struct Acceptor {
    proxy: Arc<str>,
    upstream: Arc<str>,
    chains: [watch::Receiver<super::toxics::Chain>; 2],
    ordinal: Arc<AtomicU64>,
    server_seed: u64,
}

impl Acceptor {
    async fn run(
        self,
        listener: TcpListener,
        mut stopped: oneshot::Receiver<()>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                // The guard `wait_for` returns is dropped inside, before any await below.
                () = async { let _ = shutdown.wait_for(|down| *down).await; } => break,
                accepted = listener.accept() => match accepted {
                    Ok((client, peer)) => {
                        let ordinal = self.ordinal.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(proxy = %self.proxy, %peer, ordinal, "accepted client");
                        connections.spawn(serve_connection(client, self.spec(ordinal)));
                    }
                    Err(error) => {
                        tracing::warn!(proxy = %self.proxy, %error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                // Reap finished connections so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        connections.shutdown().await;
    }

    fn spec(&self, ordinal: u64) -> ConnectionSpec {
        ConnectionSpec {
            proxy: Arc::clone(&self.proxy),
            upstream: Arc::clone(&self.upstream),
            chains: self.chains.clone(),
            seeds: Stream::ALL.map(|s| link_seed(self.server_seed, &self.proxy, ordinal, s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_addresses_resolve_to_loopback_only() {
        assert_eq!(
            resolve_listen("").await.unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            resolve_listen("127.0.0.1:26379").await.unwrap().port(),
            26379
        );
        assert!(resolve_listen("[::1]:0").await.unwrap().ip().is_loopback());
        assert!(
            resolve_listen("localhost:0")
                .await
                .unwrap()
                .ip()
                .is_loopback()
        );
        assert!(matches!(
            resolve_listen("0.0.0.0:0").await,
            Err(ListenError::NotLoopback { .. })
        ));
        assert!(matches!(
            resolve_listen("no-port").await,
            Err(ListenError::Resolve { .. })
        ));
    }
}

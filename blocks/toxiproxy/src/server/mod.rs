//! The server: the Toxiproxy v2 HTTP API (`api`) over a set of proxies (`proxy`) whose
//! connections carry bytes through toxics (`link`, `toxics`).
//!
//! [`spawn`] runs it in-process on a loopback address and returns a [`ServerHandle`];
//! dropping the handle (or [`ServerHandle::shutdown`]) stops the API and closes every proxy
//! and connection. Every random choice comes from one seed ([`ServerHandle::seed`]), so a
//! run with the same seed and the same sequence of operations replays.
//!
//! The API follows the Go server's routes, status codes and JSON shapes; the deliberate
//! differences are listed in the crate documentation.

mod api;
mod link;
mod proxy;
mod toxics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

/// The Toxiproxy version whose API this server implements; `GET /version` reports it.
pub const API_VERSION: &str = "2.12.0";

/// The version of this server itself (`tck-toxiproxy`, the crate's version), which a report
/// names beside [`API_VERSION`] to tell the bundled server from a real Toxiproxy.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long [`ServerHandle::shutdown`] lets open API requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The API address is not a loopback address.
    #[error("the api address {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    /// The API address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// State shared by the API handlers.
#[derive(Debug)]
struct Shared {
    /// Proxies by name. The lock is held for a whole API operation, so operations apply
    /// one at a time, in order, as in the Go server.
    proxies: Mutex<BTreeMap<String, proxy::Proxy>>,
    seed: u64,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn new_proxy(&self, name: String, listen: String, upstream: String) -> proxy::Proxy {
        proxy::Proxy::new(name, listen, upstream, self.seed, self.shutdown.clone())
    }
}

/// A running server. Dropping it stops the API and closes every proxy and connection
/// (asynchronously); [`ServerHandle::shutdown`] does the same and waits for it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    seed: u64,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// A listener bound to `addr`, and the address it bound (port 0 resolved).
async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Starts the server on `addr` (a loopback address; port 0 picks a free port).
///
/// `seed` seeds every random choice (toxicity draws, jitter, slicer cuts); without one a
/// random seed is picked, which [`ServerHandle::seed`] reports so that a run can be replayed.
/// Must be called within a tokio runtime, which then runs the server.
pub async fn spawn(addr: SocketAddr, seed: Option<u64>) -> Result<ServerHandle, SpawnError> {
    if !addr.ip().is_loopback() {
        return Err(SpawnError::NotLoopback(addr));
    }
    let (listener, bound) = bind(addr)
        .await
        .map_err(|source| SpawnError::Bind { addr, source })?;
    let seed = seed.unwrap_or_else(|| fastrand::u64(..));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        proxies: Mutex::new(BTreeMap::new()),
        seed,
        shutdown: shutdown_rx.clone(),
    });
    let app = api::router(Arc::clone(&shared));
    let mut signal = shutdown_rx;
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // Err means the handle is gone, which is a shutdown too.
                let _ = signal.wait_for(|down| *down).await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "toxiproxy api server failed");
        }
    });
    tracing::info!(addr = %bound, seed, "toxiproxy server listening");
    Ok(ServerHandle {
        addr: bound,
        seed,
        shared,
        shutdown,
        task: Some(task),
    })
}

impl ServerHandle {
    /// The address the API listens on (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, such as `http://127.0.0.1:8474`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The seed of every random choice of this server.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Stops the API, closes every proxy and its connections, and waits until they are.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        {
            let mut proxies = self.shared.proxies.lock().await;
            for proxy in proxies.values_mut() {
                proxy.stop().await;
            }
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Every accept task watches this flag and closes its listener and connections.
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

//! The API listeners: accepting connections under a cap, the first-byte and header-read
//! timeouts, graceful shutdown of each connection, and the warning for an API exposed beyond
//! loopback without a token. The routes are the business of `http/` and `grpc.rs`.
//!
//! Each API has a fixed number of connection slots (`Limits::max_http_connections`,
//! `max_grpc_connections`): the accept loop takes a slot before it accepts, so at the cap
//! further clients wait in the kernel's backlog instead of costing memory and file descriptors.
//! A connection gives its slot back when it closes, which is also how shutdown knows that every
//! connection is done ([`Slots::drained`]).
//!
//! A connection must send its first byte within `header_read_timeout`, and on HTTP/1.1 its whole
//! request head too (hyper's `header_read_timeout`, which needs the timer set here: `axum::serve`
//! sets none, so hyper's own 30 s default never applied). Without the first-byte check a client
//! that connects and sends nothing would hold a slot forever, because hyper-util's protocol
//! detection (HTTP/1.1 or h2c, as daprd's `h2c.NewHandler` serves both) reads with no timer.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::limits::Limits;

/// HTTP/2 streams per h2c connection on the HTTP API: Go's `http2.Server` default (250), which
/// daprd's `h2c.NewHandler(r, &http2.Server{})` uses.
const H2C_MAX_CONCURRENT_STREAMS: u32 = 250;

/// The connection slots of one API.
#[derive(Clone)]
pub(crate) struct Slots {
    sem: Arc<Semaphore>,
    max: u32,
}

impl Slots {
    /// `max` slots (at least one; at most what a semaphore can count).
    pub(crate) fn new(max: usize) -> Slots {
        let max = u32::try_from(max.clamp(1, Semaphore::MAX_PERMITS))
            .unwrap_or(u32::MAX)
            .max(1);
        Slots {
            sem: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// Waits for a free slot; `None` once the API is stopping.
    async fn take(&self, stop: &mut watch::Receiver<bool>) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => None,
            slot = self.sem.clone().acquire_owned() => slot.ok(),
        }
    }

    /// Resolves once every connection has given its slot back.
    pub(crate) async fn drained(&self) {
        let _ = self.sem.acquire_many(self.max).await;
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.max as usize - self.sem.available_permits()
    }
}

/// Accepts the next connection once a slot is free; `None` once the API is stopping. Accept
/// errors that concern one connection are skipped; others (out of file descriptors) are logged
/// and retried after a pause, as `axum::serve` does.
async fn accept(
    listener: &TcpListener,
    slots: &Slots,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let slot = slots.take(stop).await?;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return None,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, _)) => {
                // Go, and so daprd, disables Nagle's algorithm on every TCP connection; without
                // that a small write that follows another unacknowledged one waits for an ACK.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY on an API connection: {e}");
                }
                return Some((tcp, slot));
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::error!("accepting an API connection: {e}; retrying in 1s");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Whether the client sent something within `within` (a peek: the byte stays for hyper;
/// `readable()` alone may report readiness spuriously).
async fn first_byte(tcp: &TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, tcp.peek(&mut byte)).await,
        Ok(Ok(1))
    )
}

/// Serves the HTTP API on `listener` until `stop` turns true. A connection then finishes the
/// request in flight and closes; `force` turning true drops it wherever it is.
pub(crate) fn serve_http(
    listener: TcpListener,
    router: Router,
    slots: Slots,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
    force: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2C_MAX_CONCURRENT_STREAMS);
    let first_byte_within = limits.header_read_timeout;
    tokio::spawn(async move {
        while let Some((tcp, slot)) = accept(&listener, &slots, &mut stop).await {
            let service = TowerToHyperService::new(router.clone());
            let builder = builder.clone();
            let (mut stop, mut force) = (stop.clone(), force.clone());
            tokio::spawn(async move {
                let _slot = slot;
                tokio::select! {
                    biased;
                    // No request yet: nothing to finish.
                    _ = stop.wait_for(|s| *s) => return,
                    sent = first_byte(&tcp, first_byte_within) => if !sent { return },
                }
                let mut conn = pin!(builder.serve_connection(TokioIo::new(tcp), service));
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!("API connection ended: {e}");
                        }
                        return;
                    }
                    _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
                }
                tokio::select! {
                    _ = conn => {}
                    _ = force.wait_for(|f| *f) => {}
                }
            });
        }
    })
}

/// A gRPC API connection holding its slot until it is dropped.
#[cfg(feature = "grpc")]
pub(crate) struct SlotStream {
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
}

#[cfg(feature = "grpc")]
mod grpc_io {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, ReadBuf};
    use tonic::transport::server::{Connected, TcpConnectInfo};

    use super::SlotStream;

    impl AsyncRead for SlotStream {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.tcp).poll_read(cx, buf)
        }
    }

    forward_async_write!(SlotStream, tcp);

    impl Connected for SlotStream {
        type ConnectInfo = TcpConnectInfo;

        fn connect_info(&self) -> TcpConnectInfo {
            self.tcp.connect_info()
        }
    }
}

/// The connections of the gRPC API on `listener` as tonic's incoming stream: each holds a slot,
/// and is handed to tonic only once it sent its first byte (a separate task per connection
/// waits for that, so a silent client never holds up the others). The stream ends when `stop`
/// turns true.
#[cfg(feature = "grpc")]
pub(crate) fn grpc_incoming(
    listener: TcpListener,
    slots: Slots,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<SlotStream, io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<SlotStream>(64);
    let first_byte_within = limits.header_read_timeout;
    tokio::spawn(async move {
        while let Some((tcp, slot)) = accept(&listener, &slots, &mut stop).await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if first_byte(&tcp, first_byte_within).await {
                    let _ = tx.send(SlotStream { tcp, _slot: slot }).await;
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        let conn = rx.recv().await?;
        Some((Ok(conn), rx))
    })
}

/// Warnings for listeners that accept connections from beyond this host while no
/// `DAPR_API_TOKEN` protects the API (daprd's documentation asks for a token then).
pub(crate) fn exposure_warnings(api: &str, addrs: &[SocketAddr], has_token: bool) -> Vec<String> {
    if has_token {
        return Vec::new();
    }
    addrs
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| {
            format!(
                "the {api} API listens on {a}, which is reachable from other hosts, and DAPR_API_TOKEN is not set: anyone who can connect may publish, read state and invoke the app"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_loopback_addresses_without_a_token_warn() {
        let addrs: Vec<SocketAddr> = [
            "127.0.0.1:3500",
            "[::1]:3500",
            "0.0.0.0:3500",
            "10.1.2.3:3500",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let w = exposure_warnings("HTTP", &addrs, false);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("0.0.0.0:3500") && w[0].contains("DAPR_API_TOKEN"),
            "{w:?}"
        );
        assert!(w[1].contains("10.1.2.3:3500"), "{w:?}");
        assert!(exposure_warnings("HTTP", &addrs, true).is_empty());
        assert!(exposure_warnings("gRPC", &addrs[..2], false).is_empty());
    }

    #[tokio::test]
    async fn slots_bound_accepts_and_drain() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Slots::new(2);
        let (stop_tx, mut stop) = watch::channel(false);
        let accepting = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Some(c) = accept(&listener, &slots, &mut stop).await {
                    held.push(c);
                }
                held
            })
        };
        let _clients: Vec<_> = futures::future::join_all((0..3).map(|_| TcpStream::connect(addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Two are accepted; the third waits in the backlog for a slot.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while slots.open() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "two connections accepted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(slots.open(), 2);
        stop_tx.send(true).unwrap();
        let held = accepting.await.unwrap();
        assert_eq!(held.len(), 2);
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), slots.drained())
            .await
            .expect("every slot is back once the connections are dropped");
    }
}

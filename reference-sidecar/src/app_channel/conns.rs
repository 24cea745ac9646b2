//! Keep-alive HTTP/1.1 connections to the app for deliveries.
//!
//! A delivery takes an idle connection (or opens one), sends one request, reads the whole
//! answer and puts the connection back. This is all a sidecar needs towards one app on
//! loopback, and it costs less per message than a general client's pool (keyed by origin,
//! with waiters, idle timers and connection racing). Service invocation, whose answers stream
//! back to the caller, keeps the general client.
//!
//! Every segment read from the app is acknowledged at once ([`QuickAck`]). Linux delays the
//! acknowledgement of data that arrives on a connection where this side just sent a request,
//! hoping to carry it on the next request, for up to 40 ms. An app that writes an answer's head
//! and body in two writes with Nagle's algorithm on (Python's `http.server`, for one) holds the
//! body until the head is acknowledged: without the immediate acknowledgement every delivery on
//! a kept-alive connection would wait out the delay.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

/// Idle connections kept for later deliveries; more may be open while deliveries run.
const MAX_IDLE: usize = 256;

/// The app's delivery connections.
#[derive(Clone)]
pub(super) struct Conns {
    addr: Arc<str>,
    connect_timeout: Duration,
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

/// A TCP connection that acknowledges what it reads at once (see the module docs): after
/// every read that returned data it sets `TCP_QUICKACK`, which sends the pending
/// acknowledgement now. Linux clears the flag on its own, hence once per read.
struct QuickAck(TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            quick_ack(&self.0);
        }
        polled
    }
}

forward_async_write!(QuickAck, 0);

/// Acknowledges the data read so far on `stream` now (a no-op where the option does not exist).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn quick_ack(stream: &TcpStream) {
    // A failure leaves the kernel's delayed acknowledgement in place: slower, still correct.
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quick_ack(_stream: &TcpStream) {}

/// A connection lent to one exchange; [`Lease::release`] returns it once its answer is read.
pub(super) struct Lease {
    sender: SendRequest<Full<Bytes>>,
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

impl Lease {
    /// Puts the connection back for the next delivery (unless it closed meanwhile). Call it
    /// only after the answer's body has been read to the end: HTTP/1 carries one exchange at a
    /// time.
    pub(super) fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(self.sender);
        }
    }
}

impl Conns {
    /// Connections to `addr` (`host:port`), opened on demand.
    pub(super) fn new(addr: Arc<str>, connect_timeout: Duration) -> Conns {
        Conns {
            addr,
            connect_timeout,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) and returns the answer's head with the lease of
    /// its connection. A request that an idle connection could not take because the app had
    /// closed it is sent again on another connection; nothing is sent twice.
    pub(super) async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), String> {
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err("the connection to the app closed before the request".into());
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let lease = Lease {
                        sender,
                        idle: self.idle.clone(),
                    };
                    return Ok((resp, lease));
                }
                Err(mut e) => match e.take_message() {
                    // Not written: the idle connection was closed by the app meanwhile.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(e.into_error().to_string()),
                },
            }
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let connect = tokio::net::TcpStream::connect(&*self.addr);
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(r) => r.map_err(|e| format!("dial tcp {}: {e}", self.addr))?,
            Err(_) => {
                return Err(format!(
                    "dial tcp {}: i/o timeout after {:?}",
                    self.addr, self.connect_timeout
                ));
            }
        };
        // Deliveries are small request/response exchanges: send each at once.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(QuickAck(stream)))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("app connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

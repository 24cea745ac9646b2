//! The in-process HTTP servers of a bench run, on hyper and loopback only:
//!
//! - the subscribed app: answers `GET /dapr/subscribe` with one subscription and records, for
//!   each `POST` delivery, the instant it was read, under the phase and sequence number its
//!   payload carries ([`crate::payload::parse_marker`]); it answers 200 with an empty body
//!   (SUCCESS) and does nothing else, so that it adds as little as possible to end-to-end
//!   latency;
//! - the no-op baseline: answers `204` to every request after reading its body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::payload::parse_marker;
use crate::record::PhaseRecorder;

/// The component name in every bench resource.
pub(crate) const PUBSUB: &str = "pubsub";
/// The topic the first target's phases publish to; the others' are [`topic`].
pub(crate) const TOPIC: &str = "bench";

/// The topic of the `i`-th target of a run (from 0): every target has its own, so that sidecars
/// sharing a broker never deliver each other's messages.
pub(crate) fn topic(i: usize) -> String {
    if i == 0 {
        TOPIC.to_owned()
    } else {
        format!("{TOPIC}-{}", i + 1)
    }
}
/// The app route deliveries arrive on.
pub(crate) const ROUTE: &str = "/bench";

/// The recorders of the phases in flight, by phase number. Receivers (the app, the direct
/// broker consumers) look a delivery's phase up here.
#[derive(Debug, Default)]
pub(crate) struct Phases {
    map: RwLock<HashMap<u16, Arc<PhaseRecorder>>>,
}

impl Phases {
    pub(crate) fn insert(&self, phase: u16, rec: Arc<PhaseRecorder>) {
        if let Ok(mut m) = self.map.write() {
            m.insert(phase, rec);
        }
    }

    pub(crate) fn remove(&self, phase: u16) {
        if let Ok(mut m) = self.map.write() {
            m.remove(&phase);
        }
    }

    /// Records a delivery read at `at`; false when its payload names no phase in flight.
    pub(crate) fn record(&self, body: &[u8], at: Instant) -> bool {
        let Some((phase, seq)) = parse_marker(body) else {
            return false;
        };
        let rec = self.map.read().ok().and_then(|m| m.get(&phase).cloned());
        match rec {
            Some(rec) => {
                rec.received(seq, at);
                true
            }
            None => false,
        }
    }
}

/// What a server does with requests.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// The app subscribed to `topic`.
    App {
        /// Where deliveries are recorded.
        phases: Arc<Phases>,
        /// The topic it subscribes to.
        topic: Arc<str>,
    },
    /// 204 to everything.
    Noop,
}

/// A running server; stopped on [`Server::stop`] or drop.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves.
    pub(crate) async fn start(mode: Mode) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = &mut rx => break,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let mode = mode.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, mode.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Server {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections (open ones end when their peer closes them).
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET /dapr/subscribe`: one subscription of `topic` to [`ROUTE`].
fn subscriptions(topic: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!([{"pubsubname": PUBSUB, "topic": topic, "route": ROUTE}]);
    reply(StatusCode::OK, body.to_string())
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let body: Bytes = body.into();
    let empty = body.is_empty();
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    if !empty {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    r
}

async fn handle(req: Request<Incoming>, mode: Mode) -> Result<Response<Full<Bytes>>, Infallible> {
    let (phases, topic) = match mode {
        Mode::Noop => {
            let _ = req.into_body().collect().await;
            return Ok(reply(StatusCode::NO_CONTENT, Bytes::new()));
        }
        Mode::App { phases, topic } => (phases, topic),
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/dapr/subscribe") => Ok(subscriptions(&topic)),
        (Method::POST, ROUTE) => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new())),
            };
            phases.record(&body, Instant::now());
            Ok(reply(StatusCode::OK, Bytes::new()))
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, Bytes::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::PayloadMaker;

    #[test]
    fn each_target_subscribes_to_its_own_topic() {
        for (i, want) in [(0, "bench"), (1, "bench-2")] {
            let r = subscriptions(&topic(i));
            let body = futures_body(r);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                v,
                serde_json::json!([{"pubsubname": PUBSUB, "topic": want, "route": ROUTE}])
            );
        }
    }

    fn futures_body(r: Response<Full<Bytes>>) -> Bytes {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(r.into_body().collect())
            .unwrap()
            .to_bytes()
    }

    #[test]
    fn deliveries_reach_their_phase() {
        let phases = Phases::default();
        let t0 = Instant::now();
        let rec = Arc::new(PhaseRecorder::new(t0, 4));
        phases.insert(3, rec.clone());
        let p = PayloadMaker::new(60, 1);
        assert!(phases.record(&p.make(3, 2), t0));
        assert!(!phases.record(&p.make(4, 2), t0));
        assert!(!phases.record(b"not a bench message", t0));
        phases.remove(3);
        assert!(!phases.record(&p.make(3, 1), t0));
        assert_eq!(rec.snapshot().receive_count, vec![0, 0, 1, 0]);
    }
}

//! What the benches share: their runtime, criterion's settings and timed rounds, a minimal app
//! on hyper (subscription discovery,
//! deliveries answered 200 with an empty body, a no-op endpoint for the baseline round trip), a
//! publishing client, the sidecar's configuration and in-memory resources (those of the
//! in-process tests), and percentiles.
//!
//! The app records when each delivery arrived by the `"seq":N` its data carries, without decoding
//! the CloudEvent, so that it costs as little as an app can.

// Each bench uses a different part of this module.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Notify;

// The sidecar's configuration and resources, as the in-process tests build them.
#[path = "../../tests/sidecar/common/setup.rs"]
pub(crate) mod setup;

/// The runtime every bench runs its async side on: two workers.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The criterion settings of the benches, with `measurement` per bench.
pub(crate) fn criterion(measurement: Duration) -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement)
        .sample_size(30)
}

/// `iters` rounds on `rt`, one after another, adding up the time each says it took (for
/// criterion's `iter_custom`, with `block_on` instead of its async support: one feature less).
pub(crate) fn sum_rounds(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    mut round: impl AsyncFnMut() -> Duration,
) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            total += round().await;
        }
        total
    })
}

/// The topic the app subscribes to (route `/orders`); publishing to any other topic delivers
/// nothing.
pub(crate) const TOPIC: &str = "orders";

/// The app's state, shared with the bench.
#[derive(Default)]
pub(crate) struct App {
    delivered: AtomicU64,
    notify: Notify,
    /// Arrival time by sequence number, when recording.
    arrivals: Mutex<Option<Vec<(u64, Instant)>>>,
}

impl App {
    /// Deliveries so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Waits until at least `n` deliveries arrived, or `deadline` passed; returns the count.
    pub(crate) async fn wait_delivered(&self, n: u64, deadline: Duration) -> u64 {
        let _ = tokio::time::timeout(deadline, async {
            loop {
                let notified = self.notify.notified();
                if self.delivered() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await;
        self.delivered()
    }

    /// Starts recording arrival times (clears earlier ones).
    pub(crate) fn record(&self) {
        *self.arrivals.lock().unwrap() = Some(Vec::with_capacity(1 << 16));
    }

    /// Stops recording and returns the arrivals.
    pub(crate) fn take_arrivals(&self) -> Vec<(u64, Instant)> {
        self.arrivals.lock().unwrap().take().unwrap_or_default()
    }
}

/// Serves the app on a loopback port of the current runtime.
pub(crate) async fn start_app() -> (Arc<App>, u16) {
    let app = Arc::new(App::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = app.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let app = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(app.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (app, port)
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: StatusCode, body: &'static [u8]| {
        let mut r = Response::new(Full::new(Bytes::from_static(body)));
        *r.status_mut() = status;
        Ok(r)
    };
    match path.as_str() {
        "/dapr/subscribe" => reply(
            StatusCode::OK,
            br#"[{"pubsubname":"pubsub","topic":"orders","route":"/orders"}]"#,
        ),
        "/dapr/config" => reply(StatusCode::NOT_FOUND, b""),
        "/noop" => reply(StatusCode::NO_CONTENT, b""),
        _ => {
            let now = Instant::now();
            if let Some(arrivals) = app.arrivals.lock().unwrap().as_mut()
                && let Some(seq) = seq_of(&body)
            {
                arrivals.push((seq, now));
            }
            app.delivered.fetch_add(1, Ordering::AcqRel);
            app.notify.notify_waiters();
            reply(StatusCode::OK, b"")
        }
    }
}

/// The number after the first `"seq":`.
fn seq_of(body: &[u8]) -> Option<u64> {
    let at = body.windows(6).position(|w| w == br#""seq":"#)? + 6;
    let digits: &[u8] = &body[at..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// A JSON payload of about `size` bytes carrying `"seq":seq`.
pub(crate) fn payload(seq: u64, size: usize) -> Bytes {
    let mut s = format!(r#"{{"seq":{seq},"customer":"c-42","pad":""#);
    while s.len() + 2 < size {
        s.push('x');
    }
    s.push_str(r#""}"#);
    Bytes::from(s)
}

/// A keep-alive HTTP/1.1 client (TCP_NODELAY on).
pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// POSTs `body` as JSON and returns the status (the body is read to its end).
pub(crate) async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: Bytes,
) -> StatusCode {
    let req = Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .unwrap();
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            status
        }
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

/// GETs `url` and returns the status, or `None` when nothing answers.
pub(crate) async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
) -> Option<StatusCode> {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let resp = client.request(req).await.ok()?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    Some(status)
}

/// Polls `/v1.0/healthz` until it answers 204.
pub(crate) async fn wait_healthy(client: &Client<HttpConnector, Full<Bytes>>, sidecar: SocketAddr) {
    let url = format!("http://{sidecar}/v1.0/healthz");
    let ok = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if get(client, &url).await == Some(StatusCode::NO_CONTENT) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "the sidecar did not become healthy within 60 s");
}

/// The `q` quantile (0..=1) of sorted durations.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds with three decimals.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

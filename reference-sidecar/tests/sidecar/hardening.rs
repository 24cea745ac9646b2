//! Limits of the running sidecar, in-process with shortened `Limits`: the header-read and
//! first-byte timeouts of the HTTP API, the cap on the app's answers, the invocation timeout,
//! the init-call timeout, and the bounded shutdown drain.
//!
//! Every wait has a deadline; the timeouts under test are short so that the tests are fast.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reference_sidecar::Limits;
use reference_sidecar::app_channel::{AppChannel, ChannelSettings, InitError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{IN_MEMORY, Sidecar};

const DEADLINE: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(300);
const CAP: usize = 64 << 10;

/// An app with a big answer, a hanging one and a small one; `/dapr/subscribe` answers `[]`.
async fn app() -> u16 {
    let router = Router::new()
        .route("/dapr/subscribe", routing::get(|| async { "[]" }))
        .route("/small", routing::get(|| async { "ok" }))
        .route("/big", routing::get(big))
        .route("/dapr/big", routing::get(big))
        .route("/hang", routing::get(hang))
        .route("/dapr/hang", routing::get(hang))
        .route("/hang-drain", routing::get(hang_drain));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

async fn big() -> Vec<u8> {
    vec![b'x'; CAP + 1]
}

async fn hang() -> &'static str {
    std::future::pending().await
}

/// Signals when `/hang-drain` (used by one test only) has the request.
static DRAIN_REQUEST_ARRIVED: tokio::sync::Notify = tokio::sync::Notify::const_new();

async fn hang_drain() -> &'static str {
    DRAIN_REQUEST_ARRIVED.notify_one();
    std::future::pending().await
}

fn limits() -> Limits {
    Limits {
        header_read_timeout: SHORT,
        invoke_timeout: SHORT,
        app_init_timeout: SHORT,
        ..Limits::default()
    }
}

/// A sidecar with the in-memory pubsub, `limits`, a 64 KiB body cap and `grace` to shut down,
/// in front of [`app`].
async fn start(grace: Duration, limits: Limits) -> Sidecar {
    Sidecar::with_resources(Some(app().await), IN_MEMORY, |config| {
        config.max_body_size = CAP;
        config.graceful_shutdown = grace;
        config.limits = limits;
    })
    .await
}

/// GET on a fresh connection: status and body.
async fn get(s: &Sidecar, path: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = hyper::Request::get(format!("http://{}{path}", s.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// How long until the server closes `tcp` (reads return 0), at most `DEADLINE`.
async fn closed_after(mut tcp: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(DEADLINE, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for {DEADLINE:?}"),
        }
    }
}

#[tokio::test]
async fn silent_and_slow_clients_are_cut_off() {
    let s = start(Duration::from_secs(2), limits()).await;
    // Connects and sends nothing.
    let silent = TcpStream::connect(s.addr).await.unwrap();
    let took = closed_after(silent).await;
    assert!(took < SHORT * 5, "silent client closed after {took:?}");
    // Sends half a request head and stalls.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_after(slow).await < SHORT * 5);
    // A complete request is still served; the keep-alive connection it leaves is closed once
    // it has been idle for the header-read timeout (hyper's timer covers the wait for the next
    // request head).
    let mut kept = TcpStream::connect(s.addr).await.unwrap();
    kept.write_all(b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(DEADLINE, kept.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 204"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let took = closed_after(kept).await;
    assert!(
        took >= SHORT / 2 && took < SHORT * 5,
        "idle keep-alive closed after {took:?}"
    );
}

#[tokio::test]
async fn invocation_answers_are_capped_and_timed_out() {
    let s = start(Duration::from_secs(2), limits()).await;
    assert_eq!(
        get(&s, "/v1.0/invoke/checkout/method/small").await,
        (200, "ok".to_owned())
    );
    let (status, body) = get(&s, "/v1.0/invoke/checkout/method/big").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("ERR_DIRECT_INVOKE") && body.contains(&format!("{CAP} byte cap")),
        "{body}"
    );
    let started = Instant::now();
    let (status, body) = get(&s, "/v1.0/invoke/checkout/method/hang").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("did not answer within"), "{body}");
    assert!(started.elapsed() < SHORT * 5);
}

#[tokio::test]
async fn shutdown_drops_requests_still_in_flight_after_the_grace_period() {
    let grace = Duration::from_millis(500);
    let long_invocations = Limits {
        invoke_timeout: Duration::from_secs(60),
        ..limits()
    };
    let s = start(grace, long_invocations).await;
    // An invocation that hangs longer than the grace period.
    let mut hung = TcpStream::connect(s.addr).await.unwrap();
    hung.write_all(b"GET /v1.0/invoke/checkout/method/hang-drain HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, DRAIN_REQUEST_ARRIVED.notified())
        .await
        .expect("the invocation reached the app");
    let started = Instant::now();
    s.stop().await; // `run` returns `Ok` within the deadline
    let took = started.elapsed();
    assert!(
        took >= grace && took < grace + Duration::from_secs(1),
        "took {took:?}"
    );
    // The hung request's connection was dropped.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, hung.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn init_calls_time_out_and_are_capped() {
    let port = app().await;
    let limits = limits();
    let settings = ChannelSettings {
        app_id: "checkout",
        token: None,
        max_concurrency: -1,
        limits: &limits,
        max_response_bytes: CAP,
    };
    let channel = AppChannel::new("127.0.0.1", port, &settings).unwrap();
    assert_eq!(
        channel.get_init_endpoint("subscribe").await.unwrap().1,
        Bytes::from_static(b"[]")
    );
    let started = Instant::now();
    let e = channel.get_init_endpoint("hang").await.unwrap_err();
    assert!(matches!(e, InitError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < SHORT * 5);
    let e = channel.get_init_endpoint("big").await.unwrap_err();
    assert!(matches!(e, InitError::TooLarge { cap: CAP, .. }), "{e}");
    assert!(e.to_string().contains("checkout"), "{e}");
}

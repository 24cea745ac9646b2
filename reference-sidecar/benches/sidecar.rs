//! Criterion benchmarks of the whole sidecar, in-process: the library's `run` on loopback
//! listeners with the in-memory broker, and a minimal app (`support`) in the same process.
//! Delivery to an app is HTTP by contract, so these go over loopback TCP; nothing else is
//! mocked.
//!
//! - `sidecar/noop_round_trip`: a POST to the app's no-op endpoint, the baseline a publish is
//!   compared with.
//! - `sidecar/publish_204`: one HTTP publish of a 1 KB JSON body to a topic nobody subscribes
//!   to, until its 204 (the publish path alone).
//! - `sidecar/publish_deliver/N`: N publishes, one after another, until all N reached the app
//!   (the publish and delivery paths together).

// clippy's allow-unwrap-in-tests does not cover bench targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::StatusCode;
use reference_sidecar::{Config, Listeners, run};
use support::setup;

fn sidecar_benches(c: &mut Criterion) {
    let rt = support::runtime();
    let dir = setup::resources(setup::IN_MEMORY);
    let (app, app_port, sidecar) = rt.block_on(async {
        let (app, app_port) = support::start_app().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sidecar: SocketAddr = listener.local_addr().unwrap();
        let listeners = Listeners {
            http: vec![listener],
            grpc: Vec::new(),
        };
        let config = Config {
            max_body_size: 4 << 20,
            graceful_shutdown: Duration::from_secs(1),
            ..setup::config("bench", Some(app_port), dir.path())
        };
        tokio::spawn(run(config, listeners, std::future::pending()));
        support::wait_healthy(&support::client(), sidecar).await;
        (app, app_port, sidecar)
    });
    let client = support::client();
    let noop = format!("http://127.0.0.1:{app_port}/noop");
    let unsubscribed = format!("http://{sidecar}/v1.0/publish/pubsub/unsubscribed");
    let orders = format!("http://{sidecar}/v1.0/publish/pubsub/{}", support::TOPIC);
    let body = support::payload(0, 1024);

    let mut g = c.benchmark_group("sidecar");
    // `iter_custom` with `block_on` instead of criterion's async support: one feature less.
    for (name, url) in [("noop_round_trip", &noop), ("publish_204", &unsubscribed)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let status = support::post(&client, url, body.clone()).await;
                        assert!(status.is_success(), "{name}: {status}");
                    }
                    started.elapsed()
                })
            })
        });
    }
    for n in [1u64, 100] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("publish_deliver", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                support::sum_rounds(&rt, iters, async || {
                    let base = app.delivered();
                    let started = Instant::now();
                    for _ in 0..n {
                        let status = support::post(&client, &orders, body.clone()).await;
                        assert_eq!(status, StatusCode::NO_CONTENT);
                    }
                    let seen = app.wait_delivered(base + n, Duration::from_secs(10)).await;
                    assert!(seen >= base + n, "deliveries stalled at {seen}");
                    started.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion(Duration::from_secs(3));
    targets = sidecar_benches
}
criterion_main!(benches);

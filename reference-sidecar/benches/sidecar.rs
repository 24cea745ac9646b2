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

fn config(resources: &std::path::Path, app_port: u16) -> Config {
    Config {
        app_id: "bench".into(),
        app_port: Some(app_port),
        app_channel_address: "127.0.0.1".into(),
        app_protocol: "http".into(),
        resources_paths: vec![resources.to_owned()],
        config_file: None,
        app_max_concurrency: -1,
        max_body_size: 4 << 20,
        graceful_shutdown: Duration::from_secs(1),
        api_token: None,
        app_api_token: None,
        listen_addresses: vec!["127.0.0.1".parse().unwrap()],
        http_port: 0,
        grpc_port: 0,
        limits: reference_sidecar::Limits::default(),
    }
}

fn sidecar_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pubsub.yaml"), support::RESOURCES).unwrap();
    let (app, app_port, sidecar) = rt.block_on(async {
        let (app, app_port) = support::start_app().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sidecar: SocketAddr = listener.local_addr().unwrap();
        let listeners = Listeners {
            http: vec![listener],
            grpc: Vec::new(),
        };
        tokio::spawn(run(
            config(dir.path(), app_port),
            listeners,
            std::future::pending(),
        ));
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
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let base = app.delivered();
                        let started = Instant::now();
                        for _ in 0..n {
                            let status = support::post(&client, &orders, body.clone()).await;
                            assert_eq!(status, StatusCode::NO_CONTENT);
                        }
                        let seen = app.wait_delivered(base + n, Duration::from_secs(10)).await;
                        assert!(seen >= base + n, "deliveries stalled at {seen}");
                        total += started.elapsed();
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = sidecar_benches
}
criterion_main!(benches);

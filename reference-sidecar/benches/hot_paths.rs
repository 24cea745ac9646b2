//! Criterion micro-benchmarks of refsidecar's per-message hot paths, through the library's
//! public API only: building the envelope on publish, reading the CloudEvent head on delivery,
//! routing, classifying the app's answer, and the in-memory broker's publish → handler hand-off.
//!
//! Bench ids are stable (they are compared across commits); add new ones rather than renaming.
//! `cargo bench -p reference-sidecar --bench hot_paths -- envelope/` runs one group.

// clippy's allow-unwrap-in-tests does not cover bench targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::StatusCode;
use reference_sidecar::app_channel::classify;
use reference_sidecar::broker::memory::InMemory;
use reference_sidecar::broker::{Broker, Handler, Message, Nack};
use reference_sidecar::cloudevent::{Head, Overrides, PublishContext, envelope};
use reference_sidecar::routing::{Rule, route};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// A JSON object of about `n` bytes, shaped like an order event.
fn json_payload(n: usize) -> Vec<u8> {
    let mut s = String::from(r#"{"orderId":12345,"customer":"c-42","amount":99.5,"items":["#);
    let mut i = 0;
    while s.len() + 40 < n {
        s.push_str(&format!(r#"{{"sku":"sku-{i:05}","qty":{}}},"#, i % 7 + 1));
        i += 1;
    }
    s.push_str(r#"{"sku":"last","qty":1}],"note":"x"}"#);
    s.into_bytes()
}

fn ctx() -> PublishContext<'static> {
    PublishContext {
        pubsub: "pubsub",
        topic: "orders",
        app_id: "checkout",
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate: "",
        ttl: None,
        overrides: Overrides::default(),
        now: OffsetDateTime::from_unix_timestamp(1_767_348_672).unwrap(),
    }
}

fn envelope_benches(c: &mut Criterion) {
    let json = json_payload(1024);
    let text: Vec<u8> = "lorem ipsum dolor sit amet, \"quoted\" and plain text. "
        .repeat(20)
        .into_bytes()[..1024]
        .to_vec();
    let binary: Vec<u8> = (0..1024u32).map(|i| (i * 31 % 256) as u8).collect();
    let own_ce = format!(
        r#"{{"specversion":"1.0","id":"a-1","source":"orders-svc","type":"order.created","datacontenttype":"application/json","data":{}}}"#,
        String::from_utf8_lossy(&json)
    )
    .into_bytes();
    let ctx = ctx();

    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(1024));
    for (name, ct, body) in [
        ("build/json_1k", Some("application/json"), &json),
        ("build/text_1k", Some("text/plain"), &text),
        ("build/binary_1k", Some("application/octet-stream"), &binary),
        (
            "build/cloudevent_1k",
            Some("application/cloudevents+json"),
            &own_ce,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| envelope(black_box(&ctx), black_box(ct), black_box(body)).unwrap())
        });
    }
    // The delivery side: the attributes read from every message before routing.
    let built = envelope(&ctx, Some("application/json"), &json).unwrap();
    g.bench_function("parse/head_1k", |b| {
        b.iter(|| Head::parse(black_box(&built)).unwrap())
    });
    g.finish();
}

fn routing_benches(c: &mut Criterion) {
    let body = envelope(&ctx(), Some("application/json"), &json_payload(1024)).unwrap();
    let decode = || serde_json::from_slice::<serde_json::Value>(&body).ok();
    let default_only = vec![Rule::new("", "/orders").unwrap()];
    let cel_first = vec![
        Rule::new(r#"event.type == "com.dapr.event.sent""#, "/sent").unwrap(),
        Rule::new("", "/orders").unwrap(),
    ];
    let cel_third = vec![
        Rule::new(r#"event.type == "widget""#, "/widgets").unwrap(),
        Rule::new("event.data.amount > 1000.0", "/big").unwrap(),
        Rule::new(r#"event.data.customer == "c-42""#, "/c42").unwrap(),
        Rule::new("", "/orders").unwrap(),
    ];
    let mut g = c.benchmark_group("routing");
    for (name, rules, expect) in [
        ("default", &default_only, "/orders"),
        ("cel/first_rule", &cel_first, "/sent"),
        ("cel/third_rule", &cel_third, "/c42"),
    ] {
        assert_eq!(route(rules, decode).unwrap(), Some(expect));
        g.bench_function(name, |b| {
            b.iter(|| {
                route(black_box(rules), || {
                    serde_json::from_slice::<serde_json::Value>(black_box(&body)).ok()
                })
                .unwrap()
            })
        });
    }
    g.finish();
}

fn app_status_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("app_status");
    for (name, code, body) in [
        ("empty_200", 200, &b""[..]),
        ("success", 200, br#"{"status":"SUCCESS"}"#),
        ("retry", 200, br#"{"status":"RETRY"}"#),
        ("drop", 200, br#"{"status":"DROP"}"#),
        (
            "success_with_fields",
            200,
            br#"{"message":"processed order 12345","status":"SUCCESS","took":3}"#,
        ),
        ("not_json", 200, b"OK"),
        ("http_500", 500, b"internal error"),
    ] {
        let status = StatusCode::from_u16(code).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| classify(black_box(status), black_box(body)))
        });
    }
    g.finish();
}

/// Counts handled messages and wakes the bench when the expected count is reached
/// (`notify_waiters` wakes futures created before the call and stores no permit, so a wake-up
/// never leaks into the next iteration).
struct Count {
    handled: AtomicU64,
    target: AtomicU64,
    done: Notify,
}

impl Handler for Count {
    async fn handle(&self, _msg: Message) -> Result<(), Nack> {
        let n = self.handled.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.done.notify_waiters();
        }
        Ok(())
    }
}

fn memory_benches(c: &mut Criterion) {
    let rt = support::runtime();
    let broker = Broker::InMemory(InMemory::new());
    let handler = Arc::new(Count {
        handled: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        done: Notify::new(),
    });
    // The consumer task is spawned on `rt`.
    let _consumer = {
        let _entered = rt.enter();
        broker.subscribe("orders", handler.clone())
    };
    let msg = Message {
        data: Bytes::from(envelope(&ctx(), Some("application/json"), &json_payload(1024)).unwrap()),
        metadata: Arc::default(),
    };

    let mut g = c.benchmark_group("memory");
    for batch in [1u64, 1000] {
        g.throughput(Throughput::Elements(batch));
        g.bench_with_input(
            BenchmarkId::new("publish_deliver", batch),
            &batch,
            |b, &batch| {
                b.iter_custom(|iters| {
                    support::sum_rounds(&rt, iters, async || {
                        let base = handler.handled.load(Ordering::Acquire);
                        handler.target.store(base + batch, Ordering::Release);
                        let started = Instant::now();
                        let done = handler.done.notified();
                        for _ in 0..batch {
                            broker.publish("orders", msg.clone()).await.unwrap();
                        }
                        if handler.handled.load(Ordering::Acquire) < base + batch {
                            done.await;
                        }
                        started.elapsed()
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion(Duration::from_secs(2));
    targets = envelope_benches, routing_benches, app_status_benches, memory_benches
}
criterion_main!(benches);

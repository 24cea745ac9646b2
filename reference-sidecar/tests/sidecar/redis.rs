//! `pubsub.redis` end to end: the sidecar run in-process against a private `redis-server`
//! (started per test on a free loopback port, never the shared one on 6379) and a scripted app.
//!
//! Covers publish → deliver with metadata, FIFO with `concurrency: 1`, RETRY under a retry
//! policy then the dead-letter topic, the backlog a new consumer group receives, reclaim of an
//! entry a crashed sidecar read but never acknowledged, a Redis that goes away and comes back,
//! and metadata errors at start-up. These tests fail (they do not skip) when `redis-server` is
//! not installed.

use std::time::Duration;

use crate::common::{
    App, DEADLINE, RETRY_POLICY, RedisServer, Sidecar, app_with_sidecar, assert_start_up_fails,
    config, error_code, free_port, orders, pubsub_component, resources, wait_until,
};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// A `pubsub.redis` component named `pubsub` on `server`, plus `extra` metadata.
fn component(server: &RedisServer, extra: &[(&str, &str)]) -> String {
    let host = server.addr();
    pubsub_component(
        "pubsub.redis",
        &[&[("redisHost", host.as_str())], extra].concat(),
    )
}

async fn wait_acked(server: &RedisServer, topic: &str, group: &str) {
    wait_until(
        &format!("no pending entries of {topic} in group {group}"),
        DEADLINE,
        async || server.pending(topic, group).await == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_then_deliver_with_metadata_and_ack() {
    let server = RedisServer::start().await;
    let (app, sidecar) = app_with_sidecar(orders(), &component(&server, &[])).await;

    sidecar
        .publish_ok("orders?metadata.colour=blue", &json!({"tag": "a"}))
        .await;
    app.wait("/orders", "a", 1).await;
    let d = &app.on("/orders")[0];
    assert_eq!(d.headers["content-type"], "application/cloudevents+json");
    assert_eq!(
        d.headers["colour"], "blue",
        "publish metadata travels with the entry"
    );
    assert_eq!(d.ce["topic"], "orders");
    assert_eq!(d.ce["pubsubname"], "pubsub");
    assert_eq!(d.ce["source"], "checkout");
    // The consumer group is the app-id, and a delivered message is acknowledged.
    wait_acked(&server, "orders", "checkout").await;
    let mut conn = server.connection().await;
    let len: i64 = redis::cmd("XLEN")
        .arg("orders")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1, "the stream keeps the entry");
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_one_keeps_fifo() {
    let server = RedisServer::start().await;
    let (app, sidecar) =
        app_with_sidecar(orders(), &component(&server, &[("concurrency", "1")])).await;

    for i in 0..50 {
        sidecar
            .publish_ok("orders", &json!({"tag": "fifo", "seq": i}))
            .await;
    }
    app.wait("/orders", "fifo", 50).await;
    let seen: Vec<i64> = app
        .on("/orders")
        .iter()
        .map(|d| d.ce["data"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policy_then_dead_letter_then_ack() {
    let server = RedisServer::start().await;
    let (app, sidecar) = app_with_sidecar(
        json!([
            {"pubsubname": "pubsub", "topic": "orders", "route": "/orders", "deadLetterTopic": "poison"},
            {"pubsubname": "pubsub", "topic": "poison", "route": "/dlq"},
            {"pubsubname": "pubsub", "topic": "plain", "route": "/plain"},
        ]),
        &(component(&server, &[("concurrency", "1")]) + RETRY_POLICY),
    )
    .await;

    // RETRY every time: 1 + maxRetries attempts, then exactly one dead-letter copy.
    sidecar
        .publish_ok("orders", &json!({"tag": "always", "mode": "retry"}))
        .await;
    app.wait("/dlq", "always", 1).await;
    // FIFO barrier on the dead-letter topic: once the marker is in, every earlier copy is too.
    sidecar
        .publish_ok("poison", &json!({"tag": "marker"}))
        .await;
    app.wait("/dlq", "marker", 1).await;
    assert_eq!(app.count("/orders", "always"), 3);
    assert_eq!(app.count("/dlq", "always"), 1);
    let original = &app.on("/orders")[0].ce;
    let dead = &app.on("/dlq")[0].ce;
    assert_eq!(dead["id"], original["id"], "the copy is the original event");
    assert_eq!(dead["topic"], "orders");
    wait_acked(&server, "orders", "checkout").await;

    // Without a dead-letter topic the failed message is acknowledged too (contrib ≥ 1.17):
    // resiliency is the only retry, and Redis does not redeliver it.
    sidecar
        .publish_ok("plain", &json!({"tag": "gone", "mode": "retry"}))
        .await;
    app.wait("/plain", "gone", 3).await;
    wait_acked(&server, "plain", "checkout").await;
    sidecar.publish_ok("plain", &json!({"tag": "after"})).await;
    app.wait("/plain", "after", 1).await;
    assert_eq!(
        app.count("/plain", "gone"),
        3,
        "no redelivery after the ack"
    );
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_group_receives_the_backlog() {
    let server = RedisServer::start().await;
    let dir = resources(&component(&server, &[]));
    // A publisher with no app: nothing subscribes yet, and the stream keeps the messages.
    let publisher = Sidecar::start(config("publisher", None, dir.path())).await;
    for i in 0..3 {
        publisher
            .publish_ok("orders", &json!({"tag": format!("early-{i}")}))
            .await;
    }
    publisher.stop().await;

    let (app, port) = App::start(orders()).await;
    let sidecar = Sidecar::start(config("checkout", Some(port), dir.path())).await;
    for i in 0..3 {
        app.wait("/orders", &format!("early-{i}"), 1).await;
    }
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_read_by_a_crashed_sidecar_is_reclaimed() {
    let server = RedisServer::start().await;
    let (app, port) = App::start(orders()).await;

    // The first sidecar reads the entry and crashes while the app is still on it.
    let first = Sidecar::with_resources(Some(port), &component(&server, &[]), |_| {}).await;
    first
        .publish_ok("orders", &json!({"tag": "stuck", "mode": "hang-first"}))
        .await;
    app.wait("/orders", "stuck", 1).await;
    first.crash();
    assert_eq!(server.pending("orders", "checkout").await, 1);

    // Same app-id, so same group and consumer: only the reclaimer can bring the entry back.
    let second = Sidecar::with_resources(
        Some(port),
        &component(
            &server,
            &[("processingTimeout", "1s"), ("redeliverInterval", "200")],
        ),
        |_| {},
    )
    .await;
    app.wait("/orders", "stuck", 2).await;
    let ids: Vec<Value> = app
        .on("/orders")
        .iter()
        .map(|d| d.ce["id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1], "the same event is redelivered");
    wait_acked(&server, "orders", "checkout").await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_publish_then_recovers() {
    let mut server = RedisServer::start().await;
    let (app, sidecar) = app_with_sidecar(orders(), &component(&server, &[])).await;
    sidecar
        .publish_ok("orders", &json!({"tag": "before"}))
        .await;
    app.wait("/orders", "before", 1).await;

    server.stop();
    let (status, body) = sidecar.publish("orders", &json!({"tag": "lost"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body), "ERR_PUBSUB_PUBLISH_MESSAGE");
    assert!(!sidecar.is_finished(), "the sidecar keeps running");

    // Restarted empty: the client reconnects and the consumer recreates its group (NOGROUP).
    server.restart().await;
    let recovery = Duration::from_secs(20);
    wait_until(
        "a publish to succeed after the restart",
        recovery,
        async || {
            sidecar.publish("orders", &json!({"tag": "after"})).await.0 == StatusCode::NO_CONTENT
        },
    )
    .await;
    app.wait_within("/orders", "after", 1, recovery).await;
    assert_eq!(
        app.count("/orders", "lost"),
        0,
        "a refused publish is not delivered"
    );
    sidecar.stop().await;
}

#[tokio::test]
async fn bad_metadata_fails_start_up_naming_the_key() {
    // No server is needed: metadata is validated before connecting.
    for (key, value) in [
        ("concurrency", "abc"),
        ("processingTimeout", "5 lots"),
        ("enableTLS", "true"),
        ("redisType", "cluster"),
    ] {
        let yaml = pubsub_component(
            "pubsub.redis",
            &[("redisHost", "127.0.0.1:1"), (key, value)],
        );
        assert_start_up_fails(
            &yaml,
            &["resources.yaml", &format!("spec.metadata.{key}"), value],
        )
        .await;
    }
}

#[tokio::test]
async fn unreachable_redis_fails_start_up() {
    // A port nothing listens on.
    let host = format!("127.0.0.1:{}", free_port());
    assert_start_up_fails(
        &pubsub_component("pubsub.redis", &[("redisHost", &host)]),
        &["spec.metadata.redisHost", "cannot connect to redis"],
    )
    .await;
}

/// Not Redis, but the same start-up path: a build without the `kafka` feature refuses
/// `pubsub.kafka` with an error naming the file, `spec.type` and the feature.
#[cfg(not(feature = "kafka"))]
#[tokio::test]
async fn kafka_without_the_feature_fails_start_up() {
    let yaml = pubsub_component("pubsub.kafka", &[("brokers", "127.0.0.1:1")]);
    assert_start_up_fails(
        &yaml,
        &[
            "resources.yaml",
            "spec.type",
            "built without the kafka feature",
        ],
    )
    .await;
}

//! `pubsub.kafka` end to end (built with the `kafka` feature only): the sidecar run in-process
//! against a private Kafka-protocol broker (the `tansu` binary named by `PUBSUB_TCK_TANSU`, which
//! scripts/tansu.sh fetches; started per test on a free loopback port) and a scripted app.
//!
//! Covers publish → deliver with the record key and headers, per-key order across partitions,
//! offsets committed only once the outcome is final (a message whose handler never finished is
//! redelivered to a restarted sidecar of the same group), the component's own retries of a nack,
//! and metadata errors at start-up. These tests fail (they do not skip) when the broker binary is
//! not available.
#![cfg(feature = "kafka")]
// clippy's allow-unwrap-in-tests does not cover integration-test directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{App, DEADLINE, Sidecar, config, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A private tansu broker (memory engine) on a free loopback port. Killed on drop.
struct Tansu {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Tansu {
    async fn start() -> Tansu {
        let binary = std::env::var_os("PUBSUB_TCK_TANSU").map(PathBuf::from).expect(
            "PUBSUB_TCK_TANSU is not set: the pubsub.kafka tests start a private Kafka-protocol \
             broker; run `export PUBSUB_TCK_TANSU=$(scripts/tansu.sh)` (scripts/test.sh does it)",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let server = Tansu {
            port,
            _dir: dir,
            child,
        };
        wait_until("the broker to accept connections", DEADLINE, async || {
            server.answers().await
        })
        .await;
        server
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// An ApiVersions v0 round trip.
    async fn answers(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(self.addr()).await else {
            return false;
        };
        let req: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0, 0];
        if s.write_all(&req).await.is_err() {
            return false;
        }
        let mut head = [0u8; 10];
        s.read_exact(&mut head).await.is_ok() && head[4..10] == [0, 0, 0, 7, 0, 0]
    }

    /// The offset `group` has committed on partition 0 of `topic`, if any.
    async fn committed(&self, group: &str, topic: &str) -> Option<i64> {
        let addr = self.addr();
        let (group, topic) = (group.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", &group)
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, 0);
            let got = c.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
            match got.find_partition(&topic, 0)?.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            }
        })
        .await
        .unwrap()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `pubsub.kafka` component named `pubsub` on `server` with test-friendly group timeouts,
/// plus `extra` metadata.
fn component(server: &Tansu, extra: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  \
         type: pubsub.kafka\n  version: v1\n  metadata:\n  - name: brokers\n    value: \"{}\"\n  \
         - name: authType\n    value: none\n  - name: initialOffset\n    value: oldest\n  \
         - name: sessionTimeout\n    value: 1500ms\n  - name: heartbeatInterval\n    value: 300ms\n",
        server.addr()
    );
    for (k, v) in extra {
        yaml.push_str(&format!("  - name: {k}\n    value: \"{v}\"\n"));
    }
    yaml
}

fn resources(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resources.yaml"), yaml).unwrap();
    dir
}

fn orders() -> Value {
    json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_then_deliver_with_key_and_headers() {
    let server = Tansu::start().await;
    let (app, port) = App::start(orders()).await;
    let dir = resources(&component(&server, &[]));
    let sidecar = Sidecar::start(config("checkout", Some(port), dir.path())).await;

    sidecar
        .publish_ok(
            "orders?metadata.partitionKey=k1&metadata.colour=blue",
            &json!({"tag": "a"}),
        )
        .await;
    app.wait("/orders", "a", 1).await;
    let d = &app.on("/orders")[0];
    assert_eq!(d.headers["content-type"], "application/cloudevents+json");
    assert_eq!(d.headers["colour"], "blue", "metadata travels as a header");
    assert_eq!(d.headers["__key"], "k1", "partitionKey is the record key");
    assert_eq!(d.headers["__topic"], "orders");
    assert_eq!(d.headers["__partition"], "0");
    assert_eq!(d.headers["__offset"], "0");
    assert!(d.headers.contains_key("__timestamp"));
    assert_eq!(d.ce["topic"], "orders");
    assert_eq!(d.ce["source"], "checkout");
    // The consumer group is the app-id, and the handled record's offset is committed.
    wait_until("the offset to be committed", DEADLINE, async || {
        server.committed("checkout", "orders").await == Some(1)
    })
    .await;
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_same_partition_same_order() {
    let server = Tansu::start().await;
    let (app, port) = App::start(orders()).await;
    let dir = resources(&component(&server, &[("partitionCount", "4")]));
    let sidecar = Sidecar::start(config("checkout", Some(port), dir.path())).await;

    let keys = ["k1", "k2", "k3", "k4", "k5"];
    for seq in 0..20 {
        for key in keys {
            sidecar
                .publish_ok(
                    &format!("orders?metadata.partitionKey={key}"),
                    &json!({"tag": key, "seq": seq}),
                )
                .await;
        }
    }
    let mut partitions = std::collections::BTreeSet::new();
    for key in keys {
        app.wait("/orders", key, 20).await;
        let mine: Vec<_> = app
            .on("/orders")
            .into_iter()
            .filter(|d| d.ce["data"]["tag"] == key)
            .collect();
        let seqs: Vec<i64> = mine
            .iter()
            .map(|d| d.ce["data"]["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, (0..20).collect::<Vec<_>>(), "order of key {key}");
        let parts: std::collections::BTreeSet<_> = mine
            .iter()
            .map(|d| d.headers["__partition"].to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            parts.len(),
            1,
            "key {key} stays on one partition: {parts:?}"
        );
        partitions.extend(parts);
    }
    assert!(
        partitions.len() > 1,
        "five keys over four partitions use more than one: {partitions:?}"
    );
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_message_is_redelivered_to_the_same_group() {
    let server = Tansu::start().await;
    let (app, port) = App::start(orders()).await;
    let dir = resources(&component(&server, &[]));

    let first = Sidecar::start(config("checkout", Some(port), dir.path())).await;
    first.publish_ok("orders", &json!({"tag": "done"})).await;
    app.wait("/orders", "done", 1).await;
    wait_until("the first offset to be committed", DEADLINE, async || {
        server.committed("checkout", "orders").await == Some(1)
    })
    .await;
    // The app never answers the first attempt: the outcome is never final, so nothing is
    // committed for it.
    first
        .publish_ok("orders", &json!({"tag": "stuck", "mode": "hang-first"}))
        .await;
    app.wait("/orders", "stuck", 1).await;
    first.crash();
    assert_eq!(server.committed("checkout", "orders").await, Some(1));

    // Same app-id, so same consumer group: it resumes at the committed offset.
    let second = Sidecar::start(config("checkout", Some(port), dir.path())).await;
    app.wait_within("/orders", "stuck", 2, Duration::from_secs(20))
        .await;
    wait_until("the second offset to be committed", DEADLINE, async || {
        server.committed("checkout", "orders").await == Some(2)
    })
    .await;
    assert_eq!(
        app.count("/orders", "done"),
        1,
        "a committed record is not redelivered"
    );
    let ids: Vec<Value> = app
        .on("/orders")
        .iter()
        .filter(|d| d.ce["data"]["tag"] == "stuck")
        .map(|d| d.ce["id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1], "the same event is redelivered");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_is_retried_by_the_component_then_skipped() {
    let server = Tansu::start().await;
    let (app, port) = App::start(orders()).await;
    let dir = resources(&component(
        &server,
        &[("backOffDuration", "50ms"), ("backOffMaxRetries", "2")],
    ));
    let sidecar = Sidecar::start(config("checkout", Some(port), dir.path())).await;

    sidecar
        .publish_ok("orders", &json!({"tag": "bad", "mode": "retry"}))
        .await;
    sidecar.publish_ok("orders", &json!({"tag": "next"})).await;
    // The partition is held back while the component retries: `next` comes only after the
    // third (last) attempt of `bad`.
    app.wait("/orders", "next", 1).await;
    let tags: Vec<Value> = app
        .on("/orders")
        .iter()
        .map(|d| d.ce["data"]["tag"].clone())
        .collect();
    assert_eq!(tags, ["bad", "bad", "bad", "next"]);
    wait_until("both offsets to be committed", DEADLINE, async || {
        server.committed("checkout", "orders").await == Some(2)
    })
    .await;
    sidecar.stop().await;
}

/// The `Display` of every error in the chain, joined.
fn chain(err: &dyn std::error::Error) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[tokio::test]
async fn bad_metadata_fails_start_up_naming_the_key() {
    // No broker is needed: metadata is validated before connecting.
    let yaml = |k: &str, v: &str| {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  \
             type: pubsub.kafka\n  version: v1\n  metadata:\n  - name: brokers\n    value: \
             127.0.0.1:1\n  - name: {k}\n    value: \"{v}\"\n"
        )
    };
    let none = "  - name: authType\n    value: none\n";
    let cases = [
        (yaml("authType", "password"), "authType", "password"),
        (
            yaml("initialOffset", "middle") + none,
            "initialOffset",
            "middle",
        ),
    ];
    for (component, key, value) in cases {
        let dir = resources(&component);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listeners = reference_sidecar::Listeners {
            http: vec![listener],
            ..Default::default()
        };
        let err = reference_sidecar::run(
            config("checkout", None, dir.path()),
            listeners,
            std::future::pending(),
        )
        .await
        .unwrap_err();
        let text = chain(&err);
        assert!(
            text.contains("resources.yaml")
                && text.contains(&format!("spec.metadata.{key}"))
                && text.contains(value),
            "{text}"
        );
    }
}

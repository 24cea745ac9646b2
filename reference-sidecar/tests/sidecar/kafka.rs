//! `pubsub.kafka` end to end (built with the `kafka` feature only): the sidecar run in-process
//! against a private Apache Kafka broker and a scripted app. Each test starts its own broker, one
//! combined KRaft node on loopback ports with its data in the test's temp dir, from the Kafka home
//! directory named by `PUBSUB_TCK_KAFKA_HOME` (it holds `lib/`, `log4j.properties` and maybe
//! `kafka.jsa`; scripts/kafka.sh fetches it and prints its path).
//!
//! Covers publish → deliver with the record key and headers, per-key order across partitions,
//! offsets committed only once the outcome is final (a message whose handler never finished is
//! redelivered to a restarted sidecar of the same group), the component's own retries of a nack,
//! and metadata errors at start-up. These tests fail (they do not skip) when Kafka or `java` is
//! not available.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    App, DEADLINE, Sidecar, app_with_sidecar, assert_start_up_fails, orders, pubsub_component,
    wait_until,
};
use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long a broker may take from exec to "Kafka Server started" (about 2–3 s when idle; a
/// parallel build on a 2-core machine can stretch it a lot).
const BROKER_START: Duration = Duration::from_secs(60);

/// The JVM flags for both the storage format and the broker: a small heap, the serial collector
/// and C1 only, which start fastest and are plenty for a test broker (see the Kafka notes).
const JVM_FLAGS: [&str; 4] = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
];

/// One combined broker and controller on loopback. `group.min.session.timeout.ms` lets the
/// component's 1500 ms session timeout join a group (Kafka's default minimum is 6 s); the short
/// broker session makes a restart after a kill quick; one partition per auto-created topic.
const SERVER_PROPERTIES: &str = "\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={dir}/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
broker.session.timeout.ms=2000
broker.heartbeat.interval.ms=500
num.network.threads=2
num.io.threads=2
log.cleaner.dedupe.buffer.size=2097152
auto.create.topics.enable=true
";

/// A private Apache Kafka broker (one KRaft node) on free loopback ports, its config, data and
/// log (`kafka.log`) in its own temp dir. Killed on drop.
struct KafkaBroker {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl KafkaBroker {
    /// Writes `server.properties`, formats the storage and starts the broker; returns once it has
    /// logged "Kafka Server started" and answers a request. The ports come from `bind(0)` and are
    /// free again for about a second while the JVM starts, so another test's connection can take
    /// one: a broker that exits because its port was taken is started again on fresh ports.
    async fn start() -> KafkaBroker {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let mut server = KafkaBroker::launch().await;
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(e) if attempt < ATTEMPTS && e.contains("Address already in use") => {}
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// One start on fresh ports, not yet waited for.
    async fn launch() -> KafkaBroker {
        let home = std::env::var_os("PUBSUB_TCK_KAFKA_HOME").map(PathBuf::from).expect(
            "PUBSUB_TCK_KAFKA_HOME is not set: the pubsub.kafka tests start a private Apache Kafka \
             broker; run `export PUBSUB_TCK_KAFKA_HOME=$(bash scripts/kafka.sh)`",
        );
        assert!(
            home.join("lib").is_dir() && home.join("log4j.properties").is_file(),
            "PUBSUB_TCK_KAFKA_HOME={} is not a Kafka home (a directory with lib/ and \
             log4j.properties); scripts/kafka.sh fetches one",
            home.display()
        );
        // Held until just before the broker starts, so no other test takes the ports meanwhile.
        let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let controller = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = broker.local_addr().unwrap().port();
        let cport = controller.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let properties = SERVER_PROPERTIES
            .replace("{port}", &port.to_string())
            .replace("{cport}", &cport.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        std::fs::write(dir.path().join("server.properties"), properties).unwrap();

        let mut format = java(&home, dir.path());
        format
            .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id()])
            .args(["-c", "server.properties"]);
        let format = tokio::process::Command::from(format)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run java (is a JDK 17 on PATH?): {e}"));
        assert!(
            format.status.success(),
            "kafka.tools.StorageTool format failed ({}):\n{}{}",
            format.status,
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );

        let log = std::fs::File::create(dir.path().join("kafka.log")).unwrap();
        drop((broker, controller));
        let child = java(&home, dir.path())
            .args(["kafka.Kafka", "server.properties"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run java (is a JDK 17 on PATH?): {e}"));
        KafkaBroker { port, dir, child }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls until the broker has logged that it started and answers ApiVersions; the error
    /// has the tail of its log if it exits, and a timeout panics.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + BROKER_START;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "the Kafka broker on {} exited during start-up ({status}); its log ends:\n{}",
                    self.addr(),
                    self.log_tail()
                ));
            }
            let started = std::fs::read_to_string(self.dir.path().join("kafka.log"))
                .is_ok_and(|log| log.contains("Kafka Server started"));
            if started && self.answers().await {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "the Kafka broker on {} did not start within {BROKER_START:?}; its log ends:\n{}",
                self.addr(),
                self.log_tail()
            );
        }
    }

    /// The last 40 lines of the broker's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("kafka.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// An ApiVersions v0 round trip. A connection may be accepted before the broker processes
    /// requests, so the attempt has its own timeout.
    async fn answers(&self) -> bool {
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect(self.addr()).await.ok()?;
            let req: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0, 0];
            s.write_all(&req).await.ok()?;
            let mut head = [0u8; 10];
            s.read_exact(&mut head).await.ok()?;
            Some(head[4..10] == [0, 0, 0, 7, 0, 0])
        };
        tokio::time::timeout(Duration::from_secs(1), attempt)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
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

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        // SIGKILL: an orderly stop can take seconds with clients connected, and the data goes
        // with the temp dir anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `java` with the test JVM flags, Kafka's classpath and logging config, run in `dir`. The
/// classpath wildcard is one argument: java expands it, no shell is involved.
fn java(home: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new("java");
    cmd.args(JVM_FLAGS);
    // The class-data archive scripts/kafka.sh records saves about 0.8 s per start; the JVM
    // ignores one that does not match this JDK or classpath.
    let archive = home.join("kafka.jsa");
    if archive.is_file() {
        cmd.arg(format!("-XX:SharedArchiveFile={}", archive.display()));
    }
    cmd.arg(format!(
        "-Dlog4j.configuration=file:{}",
        home.join("log4j.properties").display()
    ))
    .arg("-cp")
    .arg(home.join("lib").join("*"))
    .current_dir(dir)
    .stdin(Stdio::null());
    cmd
}

/// A random cluster id as `kafka-storage random-uuid` prints it: 16 bytes in unpadded base64url.
/// Kafka never hands out one that starts with `-` (it would read as a command-line flag).
fn cluster_id() -> String {
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// A `pubsub.kafka` component named `pubsub` on `server` with test-friendly group timeouts,
/// plus `extra` metadata.
fn component(server: &KafkaBroker, extra: &[(&str, &str)]) -> String {
    let brokers = server.addr();
    let base = [
        ("brokers", brokers.as_str()),
        ("authType", "none"),
        ("initialOffset", "oldest"),
        ("sessionTimeout", "1500ms"),
        ("heartbeatInterval", "300ms"),
    ];
    pubsub_component("pubsub.kafka", &[&base, extra].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_then_deliver_with_key_and_headers() {
    let server = KafkaBroker::start().await;
    let (app, sidecar) = app_with_sidecar(orders(), &component(&server, &[])).await;

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
    let server = KafkaBroker::start().await;
    let (app, sidecar) =
        app_with_sidecar(orders(), &component(&server, &[("partitionCount", "4")])).await;

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
    let server = KafkaBroker::start().await;
    let (app, port) = App::start(orders()).await;
    let yaml = component(&server, &[]);

    let first = Sidecar::with_resources(Some(port), &yaml, |_| {}).await;
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
    let second = Sidecar::with_resources(Some(port), &yaml, |_| {}).await;
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
    let server = KafkaBroker::start().await;
    let (app, sidecar) = app_with_sidecar(
        orders(),
        &component(
            &server,
            &[("backOffDuration", "50ms"), ("backOffMaxRetries", "2")],
        ),
    )
    .await;

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

#[tokio::test]
async fn bad_metadata_fails_start_up_naming_the_key() {
    // No broker is needed: metadata is validated before connecting.
    let brokers = ("brokers", "127.0.0.1:1");
    let cases = [
        (
            vec![brokers, ("authType", "password")],
            "authType",
            "password",
        ),
        (
            vec![brokers, ("initialOffset", "middle"), ("authType", "none")],
            "initialOffset",
            "middle",
        ),
    ];
    for (metadata, key, value) in cases {
        assert_start_up_fails(
            &pubsub_component("pubsub.kafka", &metadata),
            &["resources.yaml", &format!("spec.metadata.{key}"), value],
        )
        .await;
    }
}

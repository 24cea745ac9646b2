//! The direct-to-broker baselines: the same broker without a sidecar, driven by the same
//! open-loop generator, with a consumer in this process that records receives like the app.
//!
//! - in-memory: a tokio channel (the floor of any in-process queue);
//! - Redis: `XADD` on one connection per worker, and a consumer group read with `XREADGROUP`
//!   (then `XACK`) on a connection of its own;
//! - Kafka (feature `kafka`): produce with `acks=all` and no linger, and a consumer in its own
//!   group reading from the earliest offset.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::Broker;
use crate::load::Transport;
use crate::receiver::Phases;

/// A running direct baseline: the publish transport and the consumer task.
pub(crate) struct Direct {
    pub(crate) method: String,
    pub(crate) transport: Transport,
    stop: tokio::sync::watch::Sender<bool>,
    consumer: tokio::task::JoinHandle<()>,
}

impl Direct {
    /// Stops the consumer.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        drop(self.transport);
        let _ = self.consumer.await;
    }
}

/// Sets up the baseline of `broker` at `addr` (`host:port`; unused for in-memory); `tag` makes
/// stream, topic and group names unique to the run. The error is the reason it is unavailable.
pub(crate) async fn start(
    broker: Broker,
    addr: &str,
    phases: Arc<Phases>,
    tag: &str,
) -> Result<Direct, String> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    match broker {
        Broker::InMemory => {
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            let consumer = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    phases.record(&b, Instant::now());
                }
            });
            Ok(Direct {
                method: "tokio channel".to_owned(),
                transport: Transport::Channel { tx },
                stop,
                consumer,
            })
        }
        Broker::Redis => redis_start(addr, phases, tag, stop, stopped).await,
        #[cfg(feature = "kafka")]
        Broker::Kafka => kafka_start(addr, phases, tag, stop, stopped).await,
        #[cfg(not(feature = "kafka"))]
        Broker::Kafka => Err("pubsub-tck was built without its `kafka` feature (build it with `--features kafka` for the direct Kafka baseline)".to_owned()),
    }
}

const GROUP: &str = "bench";

async fn redis_start(
    addr: &str,
    phases: Arc<Phases>,
    tag: &str,
    stop: tokio::sync::watch::Sender<bool>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<Direct, String> {
    let client = redis::Client::open(format!("redis://{addr}/"))
        .map_err(|e| format!("bad Redis address {addr}: {e}"))?;
    let stream = format!("bench-direct-{tag}");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("cannot connect to Redis at {addr}: {e}"))?;
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await;
    created.map_err(|e| format!("XGROUP CREATE {stream}: {e}"))?;
    let key = stream.clone();
    let consumer = tokio::spawn(async move {
        redis_consume(con, key, phases, stopped).await;
    });
    Ok(Direct {
        method: "XADD + XREADGROUP".to_owned(),
        transport: Transport::Redis { client, stream },
        stop,
        consumer,
    })
}

async fn redis_consume(
    mut con: redis::aio::MultiplexedConnection,
    stream: String,
    phases: Arc<Phases>,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    use redis::streams::{StreamReadOptions, StreamReadReply};
    // A short block keeps the stop flag responsive; the connection is this task's alone, so
    // a blocked read delays no publish.
    let opts = StreamReadOptions::default()
        .group(GROUP, "c1")
        .count(512)
        .block(100);
    while !*stopped.borrow() {
        let reply: redis::RedisResult<Option<StreamReadReply>> =
            redis::AsyncCommands::xread_options(&mut con, &[stream.as_str()], &[">"], &opts).await;
        let reply = match reply {
            Ok(Some(reply)) => reply,
            // The block expired with nothing to read.
            Ok(None) => continue,
            // A broken connection: back off instead of spinning; the phase reports what was
            // not received.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let at = Instant::now();
        let mut ids = Vec::new();
        for key in reply.keys {
            for entry in key.ids {
                if let Some(redis::Value::BulkString(data)) = entry.map.get("data") {
                    phases.record(data, at);
                }
                ids.push(entry.id);
            }
        }
        if !ids.is_empty() {
            let _: redis::RedisResult<u64> =
                redis::AsyncCommands::xack(&mut con, &stream, GROUP, &ids).await;
        }
    }
}

#[cfg(feature = "kafka")]
async fn kafka_start(
    addr: &str,
    phases: Arc<Phases>,
    tag: &str,
    stop: tokio::sync::watch::Sender<bool>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<Direct, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{Consumer as _, StreamConsumer};
    use rdkafka::message::Message as _;
    use rdkafka::producer::FutureProducer;

    let topic = format!("bench-direct-{tag}");
    let base = |c: &mut ClientConfig| {
        c.set("bootstrap.servers", addr)
            .set("allow.auto.create.topics", "false");
    };
    let mut admin_cfg = ClientConfig::new();
    base(&mut admin_cfg);
    let admin: AdminClient<DefaultClientContext> = admin_cfg
        .create()
        .map_err(|e| format!("Kafka admin client: {e}"))?;
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .map_err(|e| format!("creating topic {topic}: {e}"))?;
    for r in results {
        r.map_err(|(t, e)| format!("creating topic {t}: {e}"))?;
    }
    let mut producer_cfg = ClientConfig::new();
    base(&mut producer_cfg);
    // No linger: each message is sent as soon as it is produced, like a latency-minded client.
    producer_cfg.set("acks", "all").set("linger.ms", "0");
    let producer: FutureProducer = producer_cfg
        .create()
        .map_err(|e| format!("Kafka producer: {e}"))?;
    let mut consumer_cfg = ClientConfig::new();
    base(&mut consumer_cfg);
    consumer_cfg
        .set("group.id", format!("bench-direct-{tag}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "10");
    let consumer: StreamConsumer = consumer_cfg
        .create()
        .map_err(|e| format!("Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| format!("subscribing to {topic}: {e}"))?;
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                m = consumer.recv() => {
                    if let Some(p) = m.as_ref().ok().and_then(|m| m.payload()) {
                        phases.record(p, Instant::now());
                    }
                }
            }
        }
    });
    Ok(Direct {
        method: "produce + consume".to_owned(),
        transport: Transport::Kafka { producer, topic },
        stop,
        consumer: task,
    })
}

//! `pubsub.kafka` on librdkafka (the `rdkafka` crate), as components-contrib's Kafka component
//! behaves (spec §5.6, §7, §8.3). Built only with the `kafka` cargo feature.
//!
//! Owns the component metadata ([`Settings::parse`]), one producer shared by every publish, an
//! admin client that creates topics, and per subscription one consumer in the component's
//! consumer group. It does not own what a delivery does (`delivery.rs`) nor resiliency retries.
//!
//! Wire format: a message is one record; its value is the published bytes, its key is the
//! publish metadata `partitionKey` (alias `__key`), and every metadata entry is also a record
//! header. A delivery carries the headers back as metadata plus `__key`, `__topic`,
//! `__partition`, `__offset` and `__timestamp`, as contrib does.
//!
//! Consumption is serial per subscription: one record at a time, in fetch order, which keeps
//! per-partition order (and with one partition per topic, topic order). A record's offset is
//! stored only once the handler's outcome is final, and the stored offsets are committed every
//! second, when a partition moves to another member, and when the consumer closes, as
//! contrib's sarama consumer group marks offsets and commits them every second. A record in
//! flight or not yet committed when the sidecar dies is therefore delivered again (at least
//! once). A commit per record would cost the broker a write to its offsets topic per message,
//! which on a small machine showed as refsidecar's publish latency.
//!
//! A nack is retried by the component itself, like contrib's `consumeRetryEnabled` (default true
//! for pub/sub): every `backOffDuration` (default 5 s) up to `backOffMaxRetries` times (default
//! -1, forever), holding back the records behind it. Only then is the offset committed and the
//! record skipped.
//!
//! Topics: refsidecar creates a topic it publishes to or subscribes to first, with the broker's
//! default partition count and replication factor, the count and replication contrib's client
//! gets from the broker's auto-creation (librdkafka's consumer would otherwise not see a topic
//! created after it subscribed until its next metadata refresh, minutes later). With
//! `partitionCount` (a refsidecar-only key) it asks for that many partitions instead. An
//! existing topic is used as it is.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metadata::{Lookup, bad, unsupported_keys};
use super::{BrokerError, Closing, Handler, Message, PublishError};

/// How often stored offsets are committed: sarama's default auto-commit interval.
const COMMIT_INTERVAL_MS: &str = "1000";

/// Keys we read. Lookups are case-insensitive, as daprd's metadata decoding is.
const SUPPORTED_KEYS: &[&str] = &[
    "brokers",
    "authType",
    "authRequired",
    "consumerGroup",
    "consumerID",
    "clientID",
    "initialOffset",
    "maxMessageBytes",
    "consumeRetryEnabled",
    "backOffPolicy",
    "backOffDuration",
    "backOffMaxRetries",
    "consumeRetryInterval",
    "sessionTimeout",
    "heartbeatInterval",
    "partitionCount",
    "publishTimeout",
];

/// How long start-up waits for the brokers to answer a metadata request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialOffset {
    /// Only records produced after the group's first assignment (contrib's default).
    Newest,
    /// Everything the topic still holds.
    Oldest,
}

/// The validated metadata of one `pubsub.kafka` component.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `brokers`: comma-separated `host:port`.
    pub brokers: String,
    /// `consumerGroup`, else `consumerID`, else the app-id.
    pub consumer_group: String,
    /// `clientID` (contrib's default is `sarama`).
    pub client_id: String,
    /// `initialOffset`.
    pub initial_offset: InitialOffset,
    /// `maxMessageBytes`: the producer's largest record.
    pub max_message_bytes: Option<usize>,
    /// `consumeRetryEnabled`: whether a nack is retried by the component.
    pub consume_retry: bool,
    /// `backOffDuration`: the constant wait between component retries.
    pub backoff: Duration,
    /// `backOffMaxRetries`: `None` retries forever (contrib's -1).
    pub max_retries: Option<u64>,
    /// `consumeRetryInterval`: the pause after a consume error.
    pub consume_retry_interval: Duration,
    /// `sessionTimeout`: a member that sends no heartbeat for this long leaves the group.
    pub session_timeout: Duration,
    /// `heartbeatInterval`.
    pub heartbeat_interval: Duration,
    /// `partitionCount` (refsidecar only): refsidecar creates its topics with this many
    /// partitions; unset, with the broker's default.
    pub partition_count: Option<i32>,
    /// `publishTimeout` (refsidecar only): how long a publish waits for the delivery report.
    pub publish_timeout: Duration,
}

impl Settings {
    /// Validates component metadata. `app_id` is the default consumer group. Unknown keys come
    /// back as warnings; a bad value is an error naming the key.
    pub fn parse(
        md: &BTreeMap<String, String>,
        app_id: &str,
    ) -> Result<(Settings, Vec<String>), BrokerError> {
        let m = Lookup(md);
        let warnings = unsupported_keys(md, SUPPORTED_KEYS)
            .map(|k| format!("spec.metadata {k} is ignored by refsidecar's pubsub.kafka"))
            .collect();

        let brokers = m
            .get("brokers")
            .ok_or(BrokerError::MissingMetadata { key: "brokers" })?
            .to_owned();
        // contrib maps the legacy `authRequired: false` to `authType: none`.
        let auth = match (m.get("authType"), m.get("authRequired")) {
            (Some(a), _) => a.to_owned(),
            (None, Some(_)) if !m.bool("authRequired")? => "none".to_owned(),
            _ => return Err(BrokerError::MissingMetadata { key: "authType" }),
        };
        if !auth.eq_ignore_ascii_case("none") {
            return Err(bad(
                "authType",
                &auth,
                "only `none` is supported by refsidecar",
            ));
        }
        let consumer_group = m
            .get("consumerGroup")
            .or_else(|| m.get("consumerID"))
            .unwrap_or(app_id)
            .to_owned();
        let client_id = m.get("clientID").unwrap_or("sarama").to_owned();
        let initial_offset = match m.get("initialOffset") {
            None => InitialOffset::Newest,
            Some(v) if v.eq_ignore_ascii_case("newest") => InitialOffset::Newest,
            Some(v) if v.eq_ignore_ascii_case("oldest") => InitialOffset::Oldest,
            Some(v) => return Err(bad("initialOffset", v, "expected newest or oldest")),
        };
        let max_message_bytes = m.positive("maxMessageBytes")?;
        let consume_retry = match m.get("consumeRetryEnabled") {
            None => true,
            Some(_) => m.bool("consumeRetryEnabled")?,
        };
        m.only(
            "backOffPolicy",
            "constant",
            "only `constant` is supported by refsidecar",
        )?;
        let backoff = m
            .duration("backOffDuration")?
            .unwrap_or(Duration::from_secs(5));
        let max_retries = match m.get("backOffMaxRetries") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(-1) => None,
                Ok(n) if n >= 0 => Some(n.unsigned_abs()),
                _ => {
                    return Err(bad(
                        "backOffMaxRetries",
                        v,
                        "expected -1 (forever) or a non-negative integer",
                    ));
                }
            },
        };
        let consume_retry_interval = m
            .duration("consumeRetryInterval")?
            .unwrap_or(Duration::from_millis(100));
        let session_timeout = m
            .duration("sessionTimeout")?
            .unwrap_or(Duration::from_secs(10));
        let heartbeat_interval = m
            .duration("heartbeatInterval")?
            .unwrap_or(Duration::from_secs(3));
        if heartbeat_interval >= session_timeout {
            return Err(bad(
                "heartbeatInterval",
                m.get("heartbeatInterval").unwrap_or("3s"),
                "must be shorter than sessionTimeout",
            ));
        }
        let partition_count = match m.positive("partitionCount")? {
            None => None,
            Some(n) => Some(
                i32::try_from(n)
                    .map_err(|_| bad("partitionCount", &n.to_string(), "too many partitions"))?,
            ),
        };
        let publish_timeout = m
            .duration("publishTimeout")?
            .unwrap_or(Duration::from_secs(10));
        Ok((
            Settings {
                brokers,
                consumer_group,
                client_id,
                initial_offset,
                max_message_bytes,
                consume_retry,
                backoff,
                max_retries,
                consume_retry_interval,
                session_timeout,
                heartbeat_interval,
                partition_count,
                publish_timeout,
            },
            warnings,
        ))
    }

    fn base_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            // refsidecar creates its topics itself (module docs).
            .set("allow.auto.create.topics", "false");
        c
    }

    fn producer_config(&self) -> ClientConfig {
        let mut c = self.base_config();
        c.set("acks", "all")
            .set(
                "message.timeout.ms",
                self.publish_timeout.as_millis().to_string(),
            )
            // Per-key order must survive producer retries.
            .set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1")
            // A publish waits for its acknowledgement, so lingering for a batch (librdkafka's
            // default is 5 ms) only adds latency; concurrent publishes still share requests.
            .set("linger.ms", "0");
        if let Some(n) = self.max_message_bytes {
            c.set("message.max.bytes", n.to_string());
        }
        c
    }

    fn consumer_config(&self) -> ClientConfig {
        let mut c = self.base_config();
        c.set("group.id", &self.consumer_group)
            // librdkafka commits what `Subscription::done` stored (module docs).
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", COMMIT_INTERVAL_MS)
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.initial_offset {
                    InitialOffset::Newest => "latest",
                    InitialOffset::Oldest => "earliest",
                },
            )
            .set(
                "session.timeout.ms",
                self.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                self.heartbeat_interval.as_millis().to_string(),
            )
            .set("enable.partition.eof", "false")
            // The longest a fetch waits for data (librdkafka's default is 500 ms). A broker that
            // answers a fetch as soon as data arrives makes this an idle poll interval only;
            // one that waits out the time (as some Kafka-protocol brokers do) adds up to this
            // much to every delivery. 50 ms bounds that at 20 idle fetches per second.
            .set("fetch.wait.max.ms", "50");
        c
    }
}

/// A running `pubsub.kafka` component; clones share the producer.
#[derive(Clone)]
pub struct Kafka {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: Settings,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics known to exist, so that only the first publish or subscribe pays for the check.
    topics: Mutex<HashSet<String>>,
    /// Flips to true once on close; every consumer loop watches it.
    closing: watch::Sender<bool>,
}

impl Kafka {
    /// Creates the clients and asks the brokers for metadata, as contrib's `Init` does: an
    /// unreachable cluster fails start-up.
    pub async fn connect(settings: Settings) -> Result<Kafka, BrokerError> {
        let err = |source| BrokerError::KafkaConnect {
            brokers: settings.brokers.clone(),
            source,
        };
        let producer: FutureProducer = settings.producer_config().create().map_err(err)?;
        let admin: AdminClient<DefaultClientContext> =
            settings.base_config().create().map_err(err)?;
        let probe = producer.clone();
        // fetch_metadata blocks its thread until the answer or the timeout.
        tokio::task::spawn_blocking(move || {
            probe
                .client()
                .fetch_metadata(None, Timeout::After(CONNECT_TIMEOUT))
                .map(drop)
        })
        .await
        .map_err(|_| err(KafkaError::Canceled))?
        .map_err(err)?;
        let (closing, _) = watch::channel(false);
        Ok(Kafka {
            inner: Arc::new(Inner {
                settings,
                producer,
                admin,
                topics: Mutex::new(HashSet::new()),
                closing,
            }),
        })
    }

    /// Produces one record and waits for the broker's acknowledgement.
    ///
    /// Publishing still works after [`close`](Self::close), for dead-letter copies from
    /// draining handlers (see `redis/consumer.rs`).
    pub(crate) async fn publish(&self, topic: &str, msg: Message) -> Result<(), PublishError> {
        self.inner
            .ensure_topic(topic)
            .await
            .map_err(PublishError::Kafka)?;
        let key = metadata_key(&msg.metadata);
        let mut headers = OwnedHeaders::new_with_capacity(msg.metadata.len());
        for (k, v) in msg.metadata.iter() {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: Some(v.as_bytes()),
            });
        }
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic)
            .payload(&msg.data[..])
            .headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        self.inner
            .producer
            .send(record, Timeout::Never)
            .await
            .map(drop)
            .map_err(|(e, _)| PublishError::Kafka(e))
    }

    /// Starts the consumer of one subscription. The task ends after close, once the record in
    /// flight (if any) has been handled.
    pub(crate) fn subscribe<H: Handler>(&self, topic: &str, handler: Arc<H>) -> JoinHandle<()> {
        let sub = Subscription {
            inner: self.inner.clone(),
            topic: topic.to_owned(),
            closing: Closing::new(&self.inner.closing),
        };
        tokio::spawn(sub.run(handler))
    }

    /// Stops consuming; a record in flight finishes; uncommitted records stay for the group.
    pub(crate) fn close(&self) {
        self.inner.closing.send_replace(true);
    }
}

impl Inner {
    /// Creates `topic` unless it exists: with `partitionCount` partitions, else with the
    /// broker's defaults (-1 asks for them, KIP-464).
    async fn ensure_topic(&self, topic: &str) -> Result<(), KafkaError> {
        if self.known(topic) {
            return Ok(());
        }
        let partitions = self.settings.partition_count.unwrap_or(-1);
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
        let opts = AdminOptions::new().operation_timeout(Some(Timeout::After(CONNECT_TIMEOUT)));
        let results = self.admin.create_topics([&new], &opts).await?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(KafkaError::AdminOp(code)),
            }
        }
        if let Ok(mut set) = self.topics.lock() {
            set.insert(topic.to_owned());
        }
        Ok(())
    }

    fn known(&self, topic: &str) -> bool {
        self.topics
            .lock()
            .map(|s| s.contains(topic))
            .unwrap_or(false)
    }
}

/// The record key: publish metadata `partitionKey`, else `__key`.
fn metadata_key(md: &BTreeMap<String, String>) -> Option<&str> {
    md.get("partitionKey")
        .or_else(|| md.get("__key"))
        .map(String::as_str)
}

/// The handler's view of a record: its value, and its headers plus contrib's `__` entries.
fn message_of(rec: &OwnedMessage) -> Message {
    let mut md = BTreeMap::new();
    if let Some(headers) = rec.headers() {
        for h in headers.iter() {
            let v = h.value.map(String::from_utf8_lossy).unwrap_or_default();
            md.insert(h.key.to_owned(), v.into_owned());
        }
    }
    if let Some(k) = rec.key() {
        md.insert("__key".to_owned(), String::from_utf8_lossy(k).into_owned());
    }
    md.insert("__topic".to_owned(), rec.topic().to_owned());
    md.insert("__partition".to_owned(), rec.partition().to_string());
    md.insert("__offset".to_owned(), rec.offset().to_string());
    if let Some(ms) = rec.timestamp().to_millis() {
        md.insert("__timestamp".to_owned(), ms.to_string());
    }
    Message {
        data: Bytes::copy_from_slice(rec.payload().unwrap_or_default()),
        metadata: Arc::new(md),
    }
}

/// The consumer of one topic.
struct Subscription {
    inner: Arc<Inner>,
    topic: String,
    closing: Closing,
}

impl Subscription {
    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    async fn run<H: Handler>(self, handler: Arc<H>) {
        let Some(consumer) = self.join().await else {
            return;
        };
        loop {
            let next = tokio::select! {
                biased;
                _ = self.closing.closed() => None,
                r = consumer.recv() => Some(r.map(|m| m.detach())),
            };
            let rec = match next {
                None => break,
                Some(Ok(rec)) => rec,
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, "kafka: consume error: {e}");
                    if !self
                        .closing
                        .sleep(self.settings().consume_retry_interval)
                        .await
                    {
                        break;
                    }
                    continue;
                }
            };
            if !self.handle(&rec, handler.as_ref()).await {
                tracing::warn!(topic = %self.topic, partition = rec.partition(), offset = rec.offset(), "kafka: message not processed; its offset stays uncommitted for redelivery");
                break;
            }
            self.done(&consumer, &rec);
        }
        // Closing the consumer leaves the group and waits for the broker: off the runtime.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }

    /// Creates the topic if needed and joins the group, retrying until done; `None` if closed.
    async fn join(&self) -> Option<StreamConsumer> {
        let mut wait = Duration::from_millis(100);
        loop {
            if self.closing.is_closing() {
                return None;
            }
            match self.try_join().await {
                Ok(c) => return Some(c),
                Err(e) => {
                    tracing::warn!(topic = %self.topic, group = %self.settings().consumer_group, "kafka: cannot subscribe, retrying in {wait:?}: {e}");
                    if !self.closing.sleep(wait).await {
                        return None;
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn try_join(&self) -> Result<StreamConsumer, KafkaError> {
        self.inner.ensure_topic(&self.topic).await?;
        let consumer: StreamConsumer = self.settings().consumer_config().create()?;
        consumer.subscribe(&[self.topic.as_str()])?;
        Ok(consumer)
    }

    /// Runs the handler until its outcome is final: success, retries exhausted, or retries off.
    /// False if the broker started closing before that.
    async fn handle<H: Handler>(&self, rec: &OwnedMessage, handler: &H) -> bool {
        let msg = message_of(rec);
        let s = self.settings();
        let mut retries = 0u64;
        loop {
            if handler.handle(msg.clone()).await.is_ok() {
                return true;
            }
            if self.closing.is_closing() {
                return false;
            }
            let exhausted = !s.consume_retry || s.max_retries.is_some_and(|max| retries >= max);
            if exhausted {
                tracing::error!(topic = %self.topic, partition = rec.partition(), offset = rec.offset(), "kafka: message not processed after {retries} component retries; skipping it");
                return true;
            }
            retries += 1;
            tracing::warn!(topic = %self.topic, partition = rec.partition(), offset = rec.offset(), "kafka: handler failed; component retry {retries} in {:?}", s.backoff);
            if !self.closing.sleep(s.backoff).await {
                return false;
            }
        }
    }

    /// Stores the offset after `rec`, for the next commit (module docs).
    fn done(&self, consumer: &StreamConsumer, rec: &OwnedMessage) {
        // librdkafka stores the offset after the one given: the next record to read.
        if let Err(e) = consumer.store_offset(rec.topic(), rec.partition(), rec.offset()) {
            // The record will be delivered again after a restart or rebalance: a duplicate,
            // never a loss.
            tracing::error!(topic = %self.topic, partition = rec.partition(), offset = rec.offset(), "kafka: error storing offset: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<(Settings, Vec<String>), BrokerError> {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::parse(&md, "app")
    }

    fn check_err(pairs: &[(&str, &str)], key_path: &str) {
        let e = parse(pairs).unwrap_err();
        assert_eq!(e.key_path(), key_path, "{e}");
    }

    const BASE: [(&str, &str); 2] = [("brokers", "127.0.0.1:9092"), ("authType", "none")];

    #[test]
    fn defaults_as_contrib() {
        let (s, w) = parse(&BASE).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.consumer_group, "app");
        assert_eq!(s.client_id, "sarama");
        assert_eq!(s.initial_offset, InitialOffset::Newest);
        assert!(s.consume_retry);
        assert_eq!(s.backoff, Duration::from_secs(5));
        assert_eq!(s.max_retries, None);
        assert_eq!(s.partition_count, None);
        assert_eq!(s.max_message_bytes, None);
    }

    #[test]
    fn values() {
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("consumerID", "cid"),
            ("initialOffset", "OLDEST"),
            ("maxMessageBytes", "2048"),
            ("backOffDuration", "250ms"),
            ("backOffMaxRetries", "3"),
            ("sessionTimeout", "1500ms"),
            ("heartbeatInterval", "300"),
            ("partitionCount", "4"),
            ("unknownKey", "x"),
        ]);
        let (s, w) = parse(&pairs).unwrap();
        assert_eq!(s.consumer_group, "cid");
        assert_eq!(s.initial_offset, InitialOffset::Oldest);
        assert_eq!(s.max_message_bytes, Some(2048));
        assert_eq!(s.backoff, Duration::from_millis(250));
        assert_eq!(s.max_retries, Some(3));
        assert_eq!(s.session_timeout, Duration::from_millis(1500));
        assert_eq!(s.heartbeat_interval, Duration::from_millis(300));
        assert_eq!(s.partition_count, Some(4));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("unknownKey"), "{w:?}");

        pairs.push(("consumerGroup", "grp"));
        assert_eq!(parse(&pairs).unwrap().0.consumer_group, "grp");
        let (s, _) = parse(&[
            BASE[0],
            ("authRequired", "false"),
            ("backOffMaxRetries", "-1"),
        ])
        .unwrap();
        assert_eq!(s.max_retries, None);
    }

    #[test]
    fn errors_name_the_key() {
        check_err(&[("authType", "none")], "spec.metadata.brokers");
        check_err(&[BASE[0]], "spec.metadata.authType");
        check_err(
            &[BASE[0], ("authType", "password")],
            "spec.metadata.authType",
        );
        // One bad value on top of valid metadata.
        for (key, value) in [
            ("initialOffset", "middle"),
            ("maxMessageBytes", "-1"),
            ("backOffMaxRetries", "-2"),
            ("backOffPolicy", "exponential"),
            ("heartbeatInterval", "20s"),
        ] {
            check_err(
                &[BASE[0], BASE[1], (key, value)],
                &format!("spec.metadata.{key}"),
            );
        }
    }

    #[test]
    fn record_key() {
        let md = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            metadata_key(&md(&[("partitionKey", "a"), ("__key", "b")])),
            Some("a")
        );
        assert_eq!(metadata_key(&md(&[("__key", "b")])), Some("b"));
        assert_eq!(metadata_key(&md(&[("other", "c")])), None);
    }
}

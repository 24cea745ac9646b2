//! Brokers: what a pub/sub component is underneath. Publish appends a message to a topic;
//! subscribe starts a consumer that hands each message to a [`Handler`] and acks or nacks it
//! by the handler's answer.
//!
//! The set of brokers is a closed enum (no dynamic dispatch on the hot path):
//! `pubsub.in-memory`, `pubsub.redis` (Redis Streams) and, with the `kafka` cargo feature,
//! `pubsub.kafka`.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
pub(crate) mod metadata;
pub mod redis;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use crate::resources::ComponentDef;

/// One message as the broker stores it.
#[derive(Debug, Clone)]
pub struct Message {
    /// The exact bytes published (normally a CloudEvent JSON).
    pub data: Bytes,
    /// Publish metadata, travelling with the message.
    pub metadata: Arc<BTreeMap<String, String>>,
}

/// The handler refused the message; what happens next is the broker's rule.
#[derive(Debug)]
pub struct Nack;

/// A consumer's view of its component closing, which every consumer loop of the Redis and
/// Kafka components checks between steps.
#[derive(Clone)]
pub(crate) struct Closing(tokio::sync::watch::Receiver<bool>);

impl Closing {
    /// Watches `closing`, which the component sets once when it closes.
    pub(crate) fn new(closing: &tokio::sync::watch::Sender<bool>) -> Closing {
        Closing(closing.subscribe())
    }

    /// Whether the component has started closing.
    pub(crate) fn is_closing(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the component starts closing.
    pub(crate) async fn closed(&self) {
        let mut closing = self.0.clone();
        let _ = closing.wait_for(|c| *c).await;
    }

    /// Sleeps for `d`; false if the component started closing meanwhile.
    pub(crate) async fn sleep(&self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = self.closed() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

/// Consumes messages for one subscription.
pub trait Handler: Send + Sync + 'static {
    /// Processes one message; `Ok` acks it.
    fn handle(&self, msg: Message) -> impl Future<Output = Result<(), Nack>> + Send;
}

/// A component type we cannot run, or bad metadata for one we can.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// `spec.type` is not a supported pub/sub type.
    #[error("unknown component type {type_:?} (supported: {supported})")]
    UnknownType {
        /// What the file said.
        type_: String,
        /// What we support.
        supported: &'static str,
    },
    /// A metadata value we cannot use.
    #[error("invalid value {value:?} for {key}: {reason}")]
    BadMetadata {
        /// The metadata key, as the component type spells it.
        key: &'static str,
        /// What the file said.
        value: String,
        /// What would be accepted.
        reason: &'static str,
    },
    /// A required metadata key is absent or empty.
    #[error("required metadata {key} is missing")]
    MissingMetadata {
        /// The metadata key.
        key: &'static str,
    },
    /// The broker named by the metadata is unreachable (daprd's component init fails the same way).
    #[error("cannot connect to redis at {address}")]
    Connect {
        /// `host:port`.
        address: String,
        /// Why.
        #[source]
        source: ::redis::RedisError,
    },
    /// The Kafka brokers named by the metadata are unreachable or refused the client settings.
    #[cfg(feature = "kafka")]
    #[error("cannot connect to kafka brokers {brokers}")]
    KafkaConnect {
        /// The `brokers` metadata value.
        brokers: String,
        /// Why.
        #[source]
        source: ::rdkafka::error::KafkaError,
    },
    /// A type this build leaves out.
    #[error(
        "component type {type_} needs refsidecar built with the `{feature}` cargo feature; this binary was built without the {feature} feature"
    )]
    FeatureMissing {
        /// What the file said.
        type_: String,
        /// The cargo feature.
        feature: &'static str,
    },
}

impl BrokerError {
    /// Where in the Component resource the problem is: `spec.type` or `spec.metadata.<key>`.
    pub fn key_path(&self) -> String {
        match self {
            BrokerError::UnknownType { .. } | BrokerError::FeatureMissing { .. } => {
                "spec.type".to_owned()
            }
            BrokerError::BadMetadata { key, .. } | BrokerError::MissingMetadata { key } => {
                format!("spec.metadata.{key}")
            }
            BrokerError::Connect { .. } => "spec.metadata.redisHost".to_owned(),
            #[cfg(feature = "kafka")]
            BrokerError::KafkaConnect { .. } => "spec.metadata.brokers".to_owned(),
        }
    }
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker is shutting down.
    #[error("the pubsub component is closed")]
    Closed,
    /// An in-memory subscription's queue stayed full for the whole wait: its subscriber is not
    /// keeping up (or hangs). The other subscriptions of the topic got the message.
    #[error(
        "in-memory: the queue of subscription {subscription} is full ({depth} messages or {bytes} bytes) and did not drain within {waited:?}; its subscriber is not keeping up"
    )]
    QueueFull {
        /// The subscribed topic.
        subscription: String,
        /// The queue's message bound.
        depth: usize,
        /// The queue's byte bound.
        bytes: usize,
        /// How long the publish waited.
        waited: std::time::Duration,
    },
    /// The publish metadata could not be encoded for the broker.
    #[error("cannot encode the publish metadata")]
    Encode(#[source] serde_json::Error),
    /// Redis refused the write or could not be reached; the message was not stored.
    #[error("redis streams: error from publish")]
    Redis(#[source] ::redis::RedisError),
    /// Kafka did not acknowledge the record (or the topic could not be created).
    #[cfg(feature = "kafka")]
    #[error("kafka: error from publish")]
    Kafka(#[source] ::rdkafka::error::KafkaError),
}

/// The component types this build supports.
#[cfg(feature = "kafka")]
pub const SUPPORTED_TYPES: &str = "pubsub.in-memory, pubsub.redis, pubsub.kafka";
/// The component types this build supports.
#[cfg(not(feature = "kafka"))]
pub const SUPPORTED_TYPES: &str = "pubsub.in-memory, pubsub.redis";

/// A running broker.
#[derive(Debug, Clone)]
pub enum Broker {
    /// `pubsub.in-memory`.
    InMemory(memory::InMemory),
    /// `pubsub.redis` (Redis Streams).
    Redis(redis::RedisStreams),
    /// `pubsub.kafka`.
    #[cfg(feature = "kafka")]
    Kafka(kafka::Kafka),
}

impl Broker {
    /// Builds the broker a component names and connects it. Unknown metadata keys are returned
    /// as warnings. `app_id` is the default consumer identity.
    pub async fn from_component(
        def: &ComponentDef,
        app_id: &str,
    ) -> Result<(Broker, Vec<String>), BrokerError> {
        match def.type_.as_str() {
            "pubsub.in-memory" => {
                let warnings = metadata::unsupported_keys(&def.metadata, &[])
                    .map(|k| format!("spec.metadata {k} is ignored by pubsub.in-memory"))
                    .collect();
                Ok((Broker::InMemory(memory::InMemory::new()), warnings))
            }
            "pubsub.redis" => {
                let (settings, warnings) = redis::Settings::parse(&def.metadata, app_id)?;
                let broker = redis::RedisStreams::connect(settings).await?;
                Ok((Broker::Redis(broker), warnings))
            }
            #[cfg(feature = "kafka")]
            "pubsub.kafka" => {
                let (settings, warnings) = kafka::Settings::parse(&def.metadata, app_id)?;
                let broker = kafka::Kafka::connect(settings).await?;
                Ok((Broker::Kafka(broker), warnings))
            }
            #[cfg(not(feature = "kafka"))]
            "pubsub.kafka" => Err(BrokerError::FeatureMissing {
                type_: def.type_.clone(),
                feature: "kafka",
            }),
            other => Err(BrokerError::UnknownType {
                type_: other.to_owned(),
                supported: SUPPORTED_TYPES,
            }),
        }
    }

    /// Appends a message to `topic`.
    pub async fn publish(&self, topic: &str, msg: Message) -> Result<(), PublishError> {
        match self {
            Broker::InMemory(b) => b.publish(topic, msg).await,
            Broker::Redis(b) => b.publish(topic, msg).await,
            #[cfg(feature = "kafka")]
            Broker::Kafka(b) => b.publish(topic, msg).await,
        }
    }

    /// Starts consuming `topic`; the returned task ends when the broker closes and the queue drains.
    pub fn subscribe<H: Handler>(
        &self,
        topic: &str,
        handler: Arc<H>,
    ) -> tokio::task::JoinHandle<()> {
        match self {
            Broker::InMemory(b) => b.subscribe(topic, handler),
            Broker::Redis(b) => b.subscribe(topic, handler),
            #[cfg(feature = "kafka")]
            Broker::Kafka(b) => b.subscribe(topic, handler),
        }
    }

    /// Stops accepting publishes and lets consumers drain.
    pub fn close(&self) {
        match self {
            Broker::InMemory(b) => b.close(),
            Broker::Redis(b) => b.close(),
            #[cfg(feature = "kafka")]
            Broker::Kafka(b) => b.close(),
        }
    }

    /// Whether the broker expires messages itself (then daprd adds no `expiration`).
    pub fn native_ttl(&self) -> bool {
        false
    }

    /// Feature names for the metadata API.
    pub fn capabilities(&self) -> &'static [&'static str] {
        match self {
            Broker::InMemory(_) => &["SUBSCRIBE_WILDCARDS"],
            // contrib's redis component lists no features.
            Broker::Redis(_) => &[],
            // Nor does contrib's kafka component.
            #[cfg(feature = "kafka")]
            Broker::Kafka(_) => &[],
        }
    }
}

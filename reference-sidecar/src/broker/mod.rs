//! Brokers: what a pub/sub component is underneath. Publish appends a message to a topic;
//! subscribe starts a consumer that hands each message to a [`Handler`] and acks or nacks it
//! by the handler's answer.
//!
//! The set of brokers is a closed enum (no dynamic dispatch on the hot path). Only
//! `pubsub.in-memory` is built in today.

pub mod memory;

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
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker is shutting down.
    #[error("the pubsub component is closed")]
    Closed,
}

/// The component types this build supports.
pub const SUPPORTED_TYPES: &str = "pubsub.in-memory";

/// A running broker.
#[derive(Debug, Clone)]
pub enum Broker {
    /// `pubsub.in-memory`.
    InMemory(memory::InMemory),
}

impl Broker {
    /// Builds the broker a component names. Unknown metadata keys are returned as warnings.
    pub fn from_component(def: &ComponentDef) -> Result<(Broker, Vec<String>), BrokerError> {
        match def.type_.as_str() {
            "pubsub.in-memory" => {
                let warnings = def
                    .metadata
                    .keys()
                    .filter(|k| !is_generic_key(k))
                    .map(|k| format!("spec.metadata {k} is ignored by pubsub.in-memory"))
                    .collect();
                Ok((Broker::InMemory(memory::InMemory::new()), warnings))
            }
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
        }
    }

    /// Stops accepting publishes and lets consumers drain.
    pub fn close(&self) {
        match self {
            Broker::InMemory(b) => b.close(),
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
        }
    }
}

/// Keys any component may carry: scoping and consumer identity.
fn is_generic_key(k: &str) -> bool {
    [
        "publishingScopes",
        "subscriptionScopes",
        "allowedTopics",
        "protectedTopics",
        "consumerID",
    ]
    .iter()
    .any(|g| g.eq_ignore_ascii_case(k))
}

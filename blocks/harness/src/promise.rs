//! Promises: behaviours a target makes on some brokers and not on others, declared in its
//! target file (`[promises]`, one list per broker) beside its capabilities. A check that needs
//! a promise the target does not make on a broker is skipped there, with the promise's
//! description as the reason.
//!
//! A target file without a list for a broker makes that broker's [`defaults`]: what daprd's
//! components make, configured as in `fixtures/components/`.

use crate::broker::Broker;

/// A behaviour some targets guarantee on some brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Promise {
    /// One subscription sees one publisher's messages in publish order.
    Fifo,
    /// At most one delivery per subscription is in flight.
    OneInFlight,
    /// Messages with the same `metadata.partitionKey` arrive in publish order.
    FifoPerPartitionKey,
    /// Messages accepted before shutdown are delivered before the sidecar exits (a broker
    /// without persistence has no other way to keep them).
    DrainOnShutdown,
    /// A message acknowledged by the broker but not yet handled when the sidecar crashes is
    /// delivered after the sidecar restarts.
    SurvivesSidecarCrash,
    /// An acknowledged publish survives a kill and restart of the broker.
    SurvivesBrokerRestart,
    /// A subscriber that starts after messages were published receives them.
    BacklogForNewSubscriber,
    /// A nack with no retry policy and no dead-letter topic ends the message's delivery (the
    /// component does not redeliver it on its own).
    NackEndsDelivery,
    /// A component with `concurrency: "1"` delivers one subscription's messages in order.
    FifoWithConcurrencyOne,
    /// A topic name may contain `/` (Kafka allows only letters, digits, `.`, `_` and `-`).
    SlashInTopicNames,
}

impl Promise {
    /// Every promise.
    pub const ALL: [Promise; 10] = [
        Promise::Fifo,
        Promise::OneInFlight,
        Promise::FifoPerPartitionKey,
        Promise::DrainOnShutdown,
        Promise::SurvivesSidecarCrash,
        Promise::SurvivesBrokerRestart,
        Promise::BacklogForNewSubscriber,
        Promise::NackEndsDelivery,
        Promise::FifoWithConcurrencyOne,
        Promise::SlashInTopicNames,
    ];

    /// The name a target file uses.
    pub fn name(self) -> &'static str {
        match self {
            Promise::Fifo => "fifo",
            Promise::OneInFlight => "one-in-flight",
            Promise::FifoPerPartitionKey => "fifo-per-partition-key",
            Promise::DrainOnShutdown => "drain-on-shutdown",
            Promise::SurvivesSidecarCrash => "survives-sidecar-crash",
            Promise::SurvivesBrokerRestart => "survives-broker-restart",
            Promise::BacklogForNewSubscriber => "backlog-for-new-subscriber",
            Promise::NackEndsDelivery => "nack-ends-delivery",
            Promise::FifoWithConcurrencyOne => "fifo-with-concurrency-one",
            Promise::SlashInTopicNames => "slash-in-topic-names",
        }
    }

    /// Parses a name of [`Promise::name`].
    pub fn parse(s: &str) -> Option<Promise> {
        Promise::ALL.into_iter().find(|p| p.name() == s.trim())
    }

    /// Why a target that lacks this promise on a broker skips the check there.
    pub fn describe(self) -> &'static str {
        match self {
            Promise::Fifo => "per-subscription FIFO",
            Promise::OneInFlight => "one delivery in flight per subscription",
            Promise::FifoPerPartitionKey => "FIFO per partition key",
            Promise::DrainOnShutdown => "delivery of accepted messages before shutdown",
            Promise::SurvivesSidecarCrash => {
                "redelivery of unhandled messages after a sidecar crash"
            }
            Promise::SurvivesBrokerRestart => {
                "durability of acknowledged publishes across a broker restart"
            }
            Promise::BacklogForNewSubscriber => {
                "delivery of messages published before the subscriber started"
            }
            Promise::NackEndsDelivery => {
                "a nack without retry policy ends delivery (pubsub.kafka retries a nack itself, every backOffDuration, forever by default: spec §5.6)"
            }
            Promise::FifoWithConcurrencyOne => "FIFO with concurrency 1",
            Promise::SlashInTopicNames => {
                "topic names with '/' (Kafka topic names allow only [a-zA-Z0-9._-])"
            }
        }
    }
}

impl std::fmt::Display for Promise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What daprd's component for `broker`, configured as in its template, guarantees: the
/// promises of a target file that names none for that broker.
pub fn defaults(broker: Broker) -> &'static [Promise] {
    match broker {
        Broker::InMemory => &[
            Promise::Fifo,
            Promise::OneInFlight,
            Promise::DrainOnShutdown,
            Promise::FifoWithConcurrencyOne,
            Promise::NackEndsDelivery,
            Promise::FifoPerPartitionKey,
            Promise::SlashInTopicNames,
        ],
        // The template keeps daprd's default `concurrency` (10): no order, several in flight.
        Broker::Redis => &[
            Promise::SurvivesSidecarCrash,
            Promise::SurvivesBrokerRestart,
            Promise::BacklogForNewSubscriber,
            Promise::FifoWithConcurrencyOne,
            Promise::NackEndsDelivery,
            Promise::SlashInTopicNames,
        ],
        // What Kafka promises any client: order within a partition, and a partition key picks
        // the partition. Topics get the broker's default of 4 partitions (daprd's component
        // creates none of its own), so unkeyed messages spread over partitions and may be
        // handled side by side: no FIFO and no "one in flight" beyond a key. The log is on
        // disk, committed offsets survive a consumer's crash, the template's
        // `initialOffset: oldest` gives a new group the backlog, and a nack is retried by the
        // component itself.
        Broker::Kafka => &[
            Promise::FifoPerPartitionKey,
            Promise::SurvivesSidecarCrash,
            Promise::SurvivesBrokerRestart,
            Promise::BacklogForNewSubscriber,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Promise::ALL {
            assert_eq!(Promise::parse(p.name()), Some(p));
        }
        assert_eq!(Promise::parse("fifo-ish"), None);
    }
}

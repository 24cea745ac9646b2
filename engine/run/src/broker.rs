//! The brokers a run can put behind the target's `pubsub` component, and the promises each
//! one makes. Swapping brokers changes only the component YAML (`fixtures/components/<name>.yaml`);
//! the checks and the test app stay the same. A check that relies on a promise a broker does not
//! make is skipped on that broker, with the reason.

use std::path::Path;

use harness::{BrokerError, KafkaServer, RedisServer};

/// A broker behind the `pubsub` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Broker {
    /// `pubsub.in-memory`: inside the sidecar process.
    InMemory,
    /// `pubsub.redis`: Redis Streams on a private `redis-server` per trial.
    Redis,
    /// `pubsub.kafka`: a private Apache Kafka broker (KRaft, log on disk) per trial.
    Kafka,
}

/// A behaviour some brokers guarantee and others do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Why a broker that lacks this promise skips the check.
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

impl Broker {
    /// Every broker, in report order.
    pub const ALL: [Broker; 3] = [Broker::InMemory, Broker::Redis, Broker::Kafka];

    /// The name used in test names, reports and `--broker`.
    pub fn name(self) -> &'static str {
        match self {
            Broker::InMemory => "in-memory",
            Broker::Redis => "redis",
            Broker::Kafka => "kafka",
        }
    }

    /// Parses a `--broker` / `PUBSUB_TCK_BROKERS` item.
    pub fn parse(s: &str) -> Option<Broker> {
        Broker::ALL.into_iter().find(|b| b.name() == s.trim())
    }

    /// The component type; a target runs checks on a broker other than in-memory only when
    /// its target file lists this type among its capabilities.
    pub fn component_type(self) -> &'static str {
        match self {
            Broker::InMemory => "pubsub.in-memory",
            Broker::Redis => "pubsub.redis",
            Broker::Kafka => "pubsub.kafka",
        }
    }

    /// The component template, relative to the workspace root.
    pub fn template(self) -> String {
        format!("fixtures/components/{}.yaml", self.name())
    }

    /// What this broker, configured as in its template, guarantees.
    pub fn promises(self) -> &'static [Promise] {
        match self {
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
            // `initialOffset: oldest` gives a new group the backlog, and a nack is retried by
            // the component itself.
            Broker::Kafka => &[
                Promise::FifoPerPartitionKey,
                Promise::SurvivesSidecarCrash,
                Promise::SurvivesBrokerRestart,
                Promise::BacklogForNewSubscriber,
            ],
        }
    }

    /// Whether this broker keeps `promise`.
    pub fn keeps(self, promise: Promise) -> bool {
        self.promises().contains(&promise)
    }
}

/// A trial's broker process (or an external broker), for faults.
#[derive(Debug)]
pub enum BrokerServer {
    /// A redis-server.
    Redis(RedisServer),
    /// A Kafka-protocol broker.
    Kafka(KafkaServer),
}

impl BrokerServer {
    /// `host:port`.
    pub fn addr(&self) -> &str {
        match self {
            BrokerServer::Redis(s) => s.addr(),
            BrokerServer::Kafka(s) => s.addr(),
        }
    }

    /// Whether the harness owns the process (so it can kill and restart it).
    pub fn is_private(&self) -> bool {
        match self {
            BrokerServer::Redis(s) => s.is_private(),
            BrokerServer::Kafka(s) => s.is_private(),
        }
    }

    /// SIGKILLs the broker.
    pub async fn kill(&mut self) {
        match self {
            BrokerServer::Redis(s) => s.kill().await,
            BrokerServer::Kafka(s) => s.kill().await,
        }
    }

    /// SIGSTOPs the broker.
    pub fn pause(&mut self) -> Result<(), harness::SignalError> {
        match self {
            BrokerServer::Redis(s) => s.pause(),
            BrokerServer::Kafka(s) => s.pause(),
        }
    }

    /// The broker's process.
    pub fn child(&self) -> Option<&harness::Child> {
        match self {
            BrokerServer::Redis(s) => s.child(),
            BrokerServer::Kafka(s) => s.child(),
        }
    }

    /// SIGCONTs the broker.
    pub fn resume(&mut self) -> Result<(), harness::SignalError> {
        match self {
            BrokerServer::Redis(s) => s.resume(),
            BrokerServer::Kafka(s) => s.resume(),
        }
    }

    /// Starts it again on the same port and waits until it answers.
    pub async fn restart(&mut self) -> Result<(), BrokerError> {
        match self {
            BrokerServer::Redis(s) => s.restart().await,
            BrokerServer::Kafka(s) => s.restart().await,
        }
    }

    /// How the broker exited, with the end of its log, if it exited although the harness
    /// never stopped it.
    pub fn unexpected_exit(&mut self) -> Option<(std::process::ExitStatus, String)> {
        match self {
            BrokerServer::Redis(s) => s.unexpected_exit(),
            BrokerServer::Kafka(s) => s.unexpected_exit(),
        }
    }

    /// The broker process's log name, or its address when external.
    pub fn child_name(&self) -> String {
        let child = match self {
            BrokerServer::Redis(s) => s.child(),
            BrokerServer::Kafka(s) => s.child(),
        };
        child.map_or_else(|| self.addr().to_owned(), |c| c.name().to_owned())
    }

    /// Starts a private Apache Kafka broker from the Kafka home `home`.
    pub async fn start_kafka(
        home: &Path,
        dir: &Path,
        log_dir: &Path,
        name: &str,
        advertised: Option<&str>,
    ) -> Result<BrokerServer, BrokerError> {
        KafkaServer::start_advertising(home, dir, log_dir, name, advertised)
            .await
            .map(BrokerServer::Kafka)
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a comma-separated broker list; `all` means every broker.
pub fn parse_list(s: &str) -> Result<Vec<Broker>, String> {
    if s.trim() == "all" {
        return Ok(Broker::ALL.to_vec());
    }
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            Broker::parse(p)
                .ok_or_else(|| format!("unknown broker {p:?} (in-memory, redis, kafka or all)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list("all").unwrap(), Broker::ALL.to_vec());
        assert_eq!(
            parse_list("redis, in-memory").unwrap(),
            vec![Broker::Redis, Broker::InMemory]
        );
        assert!(parse_list("kafkaesque").is_err());
    }
}

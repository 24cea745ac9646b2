//! The brokers a run can put behind the target's `pubsub` component, and what a trial does
//! with its broker's process. Swapping brokers changes only the component YAML
//! (`fixtures/components/<name>.yaml`); the checks and the test app stay the same. What a
//! target promises on each broker is its target file's (`harness::promise`): a check that
//! relies on a promise the target does not make on a broker is skipped there, with the reason.

use harness::{BrokerProcess, KafkaServer, RedisServer};

pub use harness::broker::parse_list;
pub use harness::{Broker, Promise};

/// A trial's broker process (or an external broker), for faults: a [`BrokerProcess`] of
/// either kind (it dereferences to one).
#[derive(Debug)]
pub enum BrokerServer {
    /// A redis-server.
    Redis(RedisServer),
    /// A Kafka-protocol broker.
    Kafka(KafkaServer),
}

impl std::ops::Deref for BrokerServer {
    type Target = BrokerProcess;

    fn deref(&self) -> &BrokerProcess {
        match self {
            BrokerServer::Redis(s) => s,
            BrokerServer::Kafka(s) => s,
        }
    }
}

impl std::ops::DerefMut for BrokerServer {
    fn deref_mut(&mut self) -> &mut BrokerProcess {
        match self {
            BrokerServer::Redis(s) => s,
            BrokerServer::Kafka(s) => s,
        }
    }
}

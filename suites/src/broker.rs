//! The brokers a run can put behind the target's `pubsub` component, and the promises each
//! one makes. Swapping brokers changes only the component YAML (`fixtures/components/<name>.yaml`);
//! the checks and the test app stay the same. A check that relies on a promise a broker does not
//! make is skipped on that broker, with the reason.

/// A broker behind the `pubsub` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Broker {
    /// `pubsub.in-memory`: inside the sidecar process.
    InMemory,
    /// `pubsub.redis`: Redis Streams on a private `redis-server` per trial.
    Redis,
}

/// A behaviour some brokers guarantee and others do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// One subscription sees one publisher's messages in publish order.
    Fifo,
    /// At most one delivery per subscription is in flight.
    OneInFlight,
    /// Messages accepted before shutdown are delivered before the sidecar exits (a broker
    /// without persistence has no other way to keep them).
    DrainOnShutdown,
    /// An acknowledged publish survives a crash of the sidecar or a restart of the broker.
    Durable,
    /// A component with `concurrency: "1"` delivers one subscription's messages in order.
    FifoWithConcurrencyOne,
}

impl Promise {
    /// Why a broker that lacks this promise skips the check.
    pub fn describe(self) -> &'static str {
        match self {
            Promise::Fifo => "per-subscription FIFO",
            Promise::OneInFlight => "one delivery in flight per subscription",
            Promise::DrainOnShutdown => "delivery of accepted messages before shutdown",
            Promise::Durable => "durability of acknowledged publishes across crashes and restarts",
            Promise::FifoWithConcurrencyOne => "FIFO with concurrency 1",
        }
    }
}

impl Broker {
    /// Every broker, in report order.
    pub const ALL: [Broker; 2] = [Broker::InMemory, Broker::Redis];

    /// The name used in test names, reports and `--broker`.
    pub fn name(self) -> &'static str {
        match self {
            Broker::InMemory => "in-memory",
            Broker::Redis => "redis",
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
            ],
            // The template keeps daprd's default `concurrency` (10): no order, several in flight.
            Broker::Redis => &[Promise::Durable, Promise::FifoWithConcurrencyOne],
        }
    }

    /// Whether this broker keeps `promise`.
    pub fn keeps(self, promise: Promise) -> bool {
        self.promises().contains(&promise)
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
                .ok_or_else(|| format!("unknown broker {p:?} (in-memory, redis or all)"))
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

//! The settings of one bench run, as the command line hands them over.
//!
//! The caller (the `pubsub-tck` command) reads flags and the environment once and passes a
//! complete [`BenchConfig`]; nothing in this crate reads the environment.

use std::path::PathBuf;
use std::time::Duration;

use harness::TargetFile;

/// The broker behind the sidecar's `pubsub` component (the kinds every engine shares).
pub use harness::Broker;

/// The API the load generator publishes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /v1.0/publish/{pubsub}/{topic}` on keep-alive HTTP/1.1 connections.
    Http,
    /// `PublishEvent` of the Dapr gRPC API.
    Grpc,
}

impl Protocol {
    /// The name used by `--protocol` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }

    /// Parses a `--protocol` value.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim() {
            "http" => Some(Protocol::Http),
            "grpc" => Some(Protocol::Grpc),
            _ => None,
        }
    }
}

/// The maximum-rate search (`--find-max`).
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// A rate passes when its publish and end-to-end p99 stay at or under this bound.
    pub p99_bound: Duration,
    /// Measured duration of each step.
    pub step_duration: Duration,
    /// Warm-up before each step.
    pub step_warmup: Duration,
    /// At most this many steps.
    pub max_steps: usize,
}

/// Everything a run needs.
#[derive(Debug)]
pub struct BenchConfig {
    /// The loaded target files, at least one: the first is the report's `target`, the others
    /// are measured in turn with it and compared to it.
    pub targets: Vec<TargetFile>,
    /// The workspace root (where `fixtures/` is).
    pub workspace_root: PathBuf,
    /// Where resources and process logs of this run go (`resources/`, `logs/`).
    pub work_dir: PathBuf,
    /// The broker behind the component.
    pub broker: Broker,
    /// The publish API.
    pub protocol: Protocol,
    /// Rates to measure, in messages per second, in order.
    pub rates: Vec<f64>,
    /// Measured duration of each rate.
    pub duration: Duration,
    /// Warm-up before each measured phase (same rate, results discarded).
    pub warmup: Duration,
    /// The measured duration is split into this many rounds, and the rounds of the sidecar and
    /// its baselines take turns, so that background load on a shared machine hits them alike.
    pub rounds: usize,
    /// Payload size in bytes (at least [`crate::payload::MIN_SIZE`]).
    pub payload_size: usize,
    /// Publishers; message `i` goes to one of them (round robin from a seeded offset).
    pub publishers: usize,
    /// Keep-alive connections (in-flight requests) per publisher.
    pub connections: usize,
    /// Worker threads of the runtime the load generator, the app and the baselines run on
    /// (the caller builds it; recorded in the report).
    pub threads: usize,
    /// Seed of every random choice (payload bytes, publisher offset).
    pub seed: u64,
    /// How long after the last publish answer deliveries may still arrive.
    pub drain: Duration,
    /// How long one publish may take before it counts as a timeout.
    pub request_timeout: Duration,
    /// A rate fails when more than this fraction of its publishes failed.
    pub max_error_rate: f64,
    /// Run the baselines (no-op HTTP, direct broker) at every rate.
    pub baselines: bool,
    /// Search the maximum sustainable rate instead of measuring `rates`.
    pub find_max: Option<SearchConfig>,
    /// Where the broker comes from.
    pub broker_sources: harness::BrokerSources,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in [Broker::InMemory, Broker::Redis, Broker::Kafka] {
            assert_eq!(Broker::parse(b.name()), Some(b));
        }
        assert_eq!(Broker::parse("nats"), None);
        assert_eq!(Protocol::parse("grpc"), Some(Protocol::Grpc));
        assert_eq!(Protocol::parse("quic"), None);
        assert_eq!(Broker::Redis.template(), "fixtures/components/redis.yaml");
    }
}

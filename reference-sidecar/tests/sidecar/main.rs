//! The sidecar's library run in-process against scripted apps and real brokers, one test binary
//! for every module (one link, one build of the shared helpers):
//!
//! - `in_process`: the reference sidecar's "done when" scenario and start-up errors;
//! - `apis`: the gRPC API, the state store and service invocation;
//! - `hardening`: the limits (timeouts, caps, the shutdown drain);
//! - `redis`: `pubsub.redis` against a private `redis-server`;
//! - `kafka`: `pubsub.kafka` against a private Apache Kafka (the `kafka` feature only);
//! - `common`: the helpers they share.

// clippy's allow-unwrap-in-tests does not cover integration-test directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apis;
mod common;
mod hardening;
mod in_process;
#[cfg(feature = "kafka")]
mod kafka;
mod redis;

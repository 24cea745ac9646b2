//! `pubsub-tck bench`: a latency benchmark of a daprd-compatible sidecar's publish path and of
//! its deliveries, with baselines, a maximum-rate search, reports and a comparison of two runs.
//!
//! # What is measured
//!
//! - **Publish latency**: from a message's *intended* send time to the sidecar's `204` (HTTP)
//!   or `OK` (gRPC).
//! - **End-to-end latency**: from the same intended send time to the moment the subscribed app
//!   (in this process) has read the delivery. One monotonic clock ([`std::time::Instant`]) in
//!   one process times both ends, so there is no clock skew.
//! - Achieved throughput, errors (non-204 answers, timeouts, transport failures), messages
//!   accepted but not received by the end of a drain window (*lost*, never latency samples),
//!   duplicates, and the sidecar's CPU (mCPU) and RSS (MB) read from `/proc` during the
//!   measured window.
//!
//! # Open loop, and why latency starts at the intended time
//!
//! Message `i` of a phase at rate `R` has the intended send time `t0 + i/R`
//! ([`schedule::Schedule`]). One pacing thread hands each message to its publisher at that time
//! whatever happened to earlier messages: the load does not slow down when the sidecar does.
//! Each publisher has a bounded number of keep-alive connections (workers); when all of them are
//! busy, the message waits in the publisher's queue, and its latency still counts from the
//! intended time. A benchmark that measured from the actual send would hide exactly the waits a
//! slow sidecar causes (coordinated omission: the load generator "coordinates" with the system
//! and omits the samples that would have been slow). The gap between intended and actual send is
//! reported separately as *send delay*, so a generator that cannot keep up is visible instead of
//! silently lowering the load.
//!
//! # Baselines
//!
//! At each rate, with the same open-loop client, payloads and duration:
//! a no-op HTTP server on loopback that answers `204` (the cost of an HTTP round trip,
//! subtracted from the sidecar's publish latency), and the same broker without a sidecar
//! (in-memory: a tokio channel; Redis: `XADD` then `XREADGROUP`; Kafka: produce then consume,
//! with the `kafka` feature), whose end-to-end latency is compared with the sidecar's.
//!
//! # Boundaries
//!
//! Nothing here depends on the reference sidecar: a target is its wire API and its target file.
//! The run directory and report formats are `harness_report::bench`; everything that renders (Markdown,
//! SVG, HTML) and every decision (statistics, rate search, comparison) is synchronous and pure.
//! This crate never prints: progress goes out as [`RunEvent`]s, the stream every engine shares.

#![warn(missing_docs)]

pub mod compare;
pub mod config;
mod direct;
mod load;
pub mod payload;
pub mod procstat;
mod receiver;
pub mod record;
mod run;
pub mod schedule;
pub mod search;
pub mod stats;

pub use config::{BenchConfig, Broker, Protocol, SearchConfig};
pub use harness_report::bench::model::BenchReport;
pub use harness_report::event::{RunEvent, RunEvents};
pub use run::{BenchError, RunInfo, one_line, run};

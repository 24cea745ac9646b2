//! The pubsub-tck checks and the machinery to run them against a target.
//!
//! A [`catalog::Check`] is one promise of the Dapr pub/sub contract: an id
//! (`profile::area::name`), a title, the clause it enforces, a level (MUST/SHOULD) and a
//! profile. Its body drives a [`trial::Trial`]: it starts a scenario (resources, a scripted
//! test app, the target sidecar), publishes, waits for observable conditions and returns
//! `Ok(())` or a [`problem::Problem`] with evidence. [`runner`] turns checks into report
//! results for both `cargo test` (libtest-mimic) and the `pubsub-tck` command.
//!
//! Nothing here knows the reference sidecar: a target is its wire API and its target file.

pub mod app_rates;
pub mod apps;
pub mod broker;
pub mod catalog;
pub mod chaos;
mod checks;
pub mod conformance;
pub mod containers;
pub mod cross_broker;
pub mod env;
pub mod kit;
pub mod problem;
mod robustness;
pub mod runner;
pub mod schema;
pub mod selfcheck;
pub mod trial;

pub use broker::Broker;
pub use catalog::{AppProtocol, Check, Need, all};
pub use env::RunEnv;
pub use problem::Problem;

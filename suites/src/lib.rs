//! The pubsub-tck checks: the catalog, the check bodies, and the front-ends over them.
//!
//! A [`Check`] is one promise of the Dapr pub/sub contract: an id (`profile::area::name`), a
//! title, the clause it enforces, a level (MUST/SHOULD) and a profile. Its body, one async fn
//! in `checks/<area>.rs`, drives a [`harness_engine::trial::Trial`]. [`catalog::all`] lists
//! every check; [`conformance`] runs them as libtest-mimic trials for `cargo test`;
//! [`selfcheck`] runs them against deliberately broken sidecars; [`cross_broker`] is the
//! matrix of one check's verdicts over several brokers; [`run_report`] turns a run's outcomes
//! into its report directory for both front-ends. Running a check is the engine's
//! (`harness-engine`); this crate only says what each check does and asserts.
//!
//! Nothing here knows the reference sidecar: a target is its wire API and its target file.

pub mod catalog;
mod checks;
pub mod conformance;
pub mod cross_broker;
mod robustness;
pub mod run_report;
pub mod selfcheck;

pub use catalog::{AppProtocol, Check, Need, all};

//! The machinery that runs checks against a target: the engine under the catalog.
//!
//! A [`check::Check`] is one promise of the Dapr pub/sub contract: an id
//! (`profile::area::name`), a title, the clause it enforces, a level (MUST/SHOULD) and a
//! profile. Its body drives a [`trial::Trial`]: it starts a scenario (resources, a scripted
//! test app, the target sidecar), publishes, waits for observable conditions and returns
//! `Ok(())` or a [`problem::Problem`] with evidence. [`runner`] turns checks into report
//! results and streams `harness_report::event::RunEvent`s to whatever draws them. The checks themselves, and
//! the catalog that lists them, are the `suites` crate's; this crate knows none of them.
//!
//! Nothing here knows the reference sidecar: a target is its wire API and its target file.

pub mod app_rates;
pub mod apps;
pub mod broker;
pub mod chaos;
pub mod check;
pub mod containers;
pub mod env;
pub mod kit;
pub mod problem;
pub mod runner;
pub mod schema;
pub mod trial;

pub use broker::Broker;
pub use check::{AppProtocol, Check, Need};
pub use env::RunEnv;
pub use problem::Problem;

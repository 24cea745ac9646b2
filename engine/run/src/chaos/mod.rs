//! Chaos: steady load, a seeded nemesis and fault-window reports.
//!
//! Used by the `chaos` profile's checks (short, one fault each) and by `pubsub-tck chaos`
//! (a long run with a seeded schedule). The fault vocabulary is [`harness::fault`]; applying a
//! fault is [`crate::trial::Trial::inject`]; the judgement is the usual checkers over the
//! trial's history plus [`harness_checkers::faults`] for per-window metrics.

pub mod experiment;
pub mod load;
pub mod nemesis;
pub mod nightly;
pub mod proxies;

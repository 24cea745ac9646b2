//! Pure checkers that judge a sidecar from a recorded [`History`].
//!
//! Each checker takes a history (or observations taken from one) and returns
//! a report with counts plus a `verdict()`. Verdicts are three-valued, after
//! Jepsen: [`Verdict::Valid`], [`Verdict::Invalid`] with [`Evidence`] naming
//! message ids and times, and [`Verdict::Unknown`] when the history cannot
//! decide (for example nothing was acknowledged, so nothing can be lost).
//!
//! This crate owns judging only. It does not record, run, print or
//! serialize: mapping a verdict to a report entry is the caller's job, and
//! checkers never panic (wrap foreign code in [`Verdict::catch`]).
//!
//! Modules:
//! - [`delivery`]: at-least-once delivery (lost, unexpected, duplicated,
//!   recovered), after Jepsen's `total-queue`.
//! - [`ordering`]: per-key order and concurrency on a route.
//! - [`redelivery`]: retry counts and backoff spacing.
//! - [`dlq`]: dead-letter expectations.
//! - [`faults`]: fault windows, what each did to delivery, and a timeline for plots.
//! - [`foreign`]: deliveries the trial did not cause (another trial's, re-wrapped ones).
//!
//! [`History`]: harness_history::History

#![warn(missing_docs)]

pub mod delivery;
pub mod dlq;
pub mod faults;
pub mod foreign;
pub mod ordering;
pub mod redelivery;
mod verdict;

pub use verdict::{Evidence, MAX_EVIDENCE_ITEMS, Verdict};

//! The delivery history of one trial: pure data, no IO.
//!
//! A [`History`] is the single interface between the runner and everything
//! that consumes a trial: the driver appends publishes, the test app's
//! recorded deliveries and fault start/stop events, and checkers and report
//! writers read them back.
//! This crate owns the event types and their JSONL encoding.
//! It does not own judging (that is `harness-checkers`), files (the caller
//! writes the string returned by [`History::to_jsonl`]), or clocks (callers
//! stamp every event with `at_micros` since trial start).
//!
//! Publishes follow Jepsen's two-entry model: an [`Phase::Invoke`] entry when
//! the harness sends the request, then one completion entry.
//! [`Phase::Info`] means the outcome is unknown (the request timed out), so
//! checkers must accept the message either way.

#![warn(missing_docs)]

mod event;
mod log;
mod message;

pub use event::{Delivery, Event, EventKind, FaultEvent, FaultPhase, Phase, Publish};
pub use log::{History, HistoryError};
pub use message::MessageId;

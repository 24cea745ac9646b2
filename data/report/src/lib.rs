//! Run reports: the only serialized report types, and their writers.
//!
//! This crate owns [`RunReport`] (with [`FORMAT_VERSION`]) and four pure
//! renderings of it: [`json`] (`results.json`, for machines), [`junit`]
//! (`junit.xml`, for CI), [`markdown`] (`summary.md`, for people) and
//! [`html`] (`report.html`, one self-contained file). [`store`] is the only
//! module that touches the filesystem: it lays out a run directory and
//! refreshes `latest`. [`matrix`] renders the check × target section of a
//! run over several targets; [`repeat`] tallies a selection run several times
//! (`--repeat`): pass rates, flaky checks and the seeds that replay them.
//! [`event`] is the stream every engine sends its progress on, and [`text::xml`] the one
//! HTML and SVG escaper of the workspace.
//!
//! It does not own judging (`harness-checkers`), running trials, or clocks:
//! writers never read the time, so the same report always renders to the
//! same bytes.

#![warn(missing_docs)]

pub mod event;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod matrix;
mod model;
pub mod repeat;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod text;

pub use model::{
    CheckResult, FORMAT_VERSION, Headline, Level, RunReport, Section, Totals, VerdictKind,
};

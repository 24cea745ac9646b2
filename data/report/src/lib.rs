//! The one report stack: every serialized report type of the kit and its writers, and the
//! event stream engines report progress on.
//!
//! This crate owns [`RunReport`] (with [`FORMAT_VERSION`]) and four pure
//! renderings of it: [`json`] (`results.json`, for machines), [`junit`]
//! (`junit.xml`, for CI), [`markdown`] (`summary.md`, for people) and
//! [`html`] (`report.html`, one self-contained file). [`store`] lays out a
//! run directory and refreshes `latest`. [`matrix`] renders the check ×
//! target section of a run over several targets; [`repeat`] tallies a
//! selection run several times (`--repeat`): pass rates, flaky checks and the
//! seeds that replay them. [`timeline`] draws a chaos run's fault windows over
//! its rates and latency (SVG); both it and the benchmark's charts write their SVG
//! through one private module, `svg`. [`bench`] is the report of `pubsub-tck bench`
//! (its model, Markdown, HTML with SVG plots, run directory). [`event`] is the
//! stream every engine sends its progress on, and [`text::xml`] the one HTML
//! and SVG escaper of the workspace. Only `store` and `bench::store` write
//! files.
//!
//! It does not own judging (`harness-checkers`; it draws a checker's
//! timeline), running trials, or clocks: writers never read the time, so the
//! same report always renders to the same bytes.

#![warn(missing_docs)]

pub mod bench;
pub mod event;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod matrix;
mod model;
pub mod repeat;
pub mod store;
mod svg;
#[cfg(test)]
mod test_support;
pub mod text;
pub mod timeline;

pub use model::{
    CheckResult, FORMAT_VERSION, Headline, Level, RunReport, Section, Totals, VerdictKind,
};

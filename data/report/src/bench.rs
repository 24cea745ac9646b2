//! The report of `pubsub-tck bench`: its serialized form (`results.json`), the people-facing
//! renderings (`summary.md`, `report.html` with inline SVG plots) and the run directory. The
//! benchmark itself is `harness-bench`; it hands a finished [`model::BenchReport`] over.
//!
//! [`model`] holds the benchmark's serialized types, with a `format_version`; the
//! renderers are pure functions of a [`model::BenchReport`]; [`store`] is the only module
//! that writes files.

pub mod html;
pub mod markdown;
pub mod model;
pub mod store;
pub mod svg;

/// Sample reports for the tests of this module and of `harness-bench` (feature
/// `test-support`).
#[cfg(any(test, feature = "test-support"))]
#[allow(clippy::unwrap_used, missing_docs)]
pub mod test_support;

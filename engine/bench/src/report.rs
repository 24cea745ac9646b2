//! The bench report: its serialized form (`results.json`), the people-facing renderings
//! (`summary.md`, `report.html` with inline SVG plots) and the run directory.
//!
//! [`model`] holds the only serialized types of this crate, with a `format_version`; the
//! renderers are pure functions of a [`model::BenchReport`]; [`store`] is the only module
//! that writes files.

pub mod html;
pub mod markdown;
pub mod model;
pub mod store;
pub mod svg;

#[cfg(test)]
pub(crate) mod test_support;

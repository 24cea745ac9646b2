//! Resource files: every `*.yaml`/`*.yml` in the resources paths, multi-document files included.
//!
//! `raw` mirrors the YAML; `load` validates it into domain types (components, declarative
//! subscriptions, resiliency) and reports every problem with its file and key path.

mod load;
mod raw;

pub use load::{ComponentDef, LoadError, Resources, load, load_configuration, load_text};

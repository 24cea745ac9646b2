//! refsidecar: a daprd-compatible pub/sub sidecar that implements the contract exactly.
//!
//! [`run`] takes the HTTP and gRPC [`Listeners`], a [`Config`] and a shutdown future, so tests run the whole
//! sidecar in-process; `main.rs` only parses flags and binds sockets. See ARCHITECTURE.md for the
//! map of modules.

#![warn(missing_docs)]

pub mod api;
pub mod app_channel;
pub mod broker;
pub mod cli;
pub mod cloudevent;
pub mod delivery;
pub mod duration;
pub mod limits;
pub mod panic;
pub mod publish;
pub mod resiliency;
pub mod resources;
pub mod routing;
pub mod runtime;
pub mod scopes;
pub mod secret;
pub mod state;
#[cfg(feature = "grpc")]
pub mod streaming;
pub mod subscription;

pub use limits::Limits;
pub use runtime::{Config, Listeners, RunError, run};
pub use secret::Secret;

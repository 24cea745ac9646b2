//! The sidecar's APIs: HTTP (publish, bulk publish, health, metadata, state, invocation) and,
//! with the `grpc` feature, the gRPC `Dapr` service; API-token auth on both.

pub(crate) mod error;
#[cfg(feature = "grpc")]
pub(crate) mod grpc;
mod http;
pub(crate) mod serve;

pub use self::error::ApiError;

/// The metadata APIs' actor placement: refsidecar has no actor runtime, which daprd without a
/// placement service reports as disabled and disconnected.
const ACTORS_PLACEMENT: &str = "placement: disconnected";
pub use self::http::router;

//! The sidecar's APIs: HTTP (publish, bulk publish, health, metadata, state, invocation) and,
//! with the `grpc` feature, the gRPC `Dapr` service; API-token auth on both.

mod error;
#[cfg(feature = "grpc")]
pub(crate) mod grpc;
mod http;

pub use self::error::ApiError;
pub use self::http::router;

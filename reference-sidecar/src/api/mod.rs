//! The sidecar's HTTP API: publish, bulk publish, health, metadata, API-token auth.

mod error;
mod http;

pub use self::error::ApiError;
pub use self::http::router;

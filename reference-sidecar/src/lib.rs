//! refsidecar: a daprd-compatible pub/sub sidecar that implements the contract exactly.
//!
//! [`run`] takes the HTTP and gRPC [`Listeners`], a [`Config`] and a shutdown future, so tests run the whole
//! sidecar in-process; `main.rs` only parses flags and binds sockets. See ARCHITECTURE.md for the
//! map of modules.

#![warn(missing_docs)]

/// Implements `tokio::io::AsyncWrite` for `$ty`, a wrapper of a `TcpStream`, by forwarding every
/// method to its field `$field`.
macro_rules! forward_async_write {
    ($ty:ty, $field:tt) => {
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                tokio::io::AsyncWrite::poll_write(std::pin::Pin::new(&mut self.$field), cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                tokio::io::AsyncWrite::poll_write_vectored(
                    std::pin::Pin::new(&mut self.$field),
                    cx,
                    bufs,
                )
            }

            fn is_write_vectored(&self) -> bool {
                tokio::io::AsyncWrite::is_write_vectored(&self.$field)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                tokio::io::AsyncWrite::poll_flush(std::pin::Pin::new(&mut self.$field), cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut self.$field), cx)
            }
        }
    };
}

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

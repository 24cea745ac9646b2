//! The harness's building blocks driven for real, one test binary for every module (one link):
//!
//! - `app`: the scriptable test app over HTTP;
//! - `broker`: the private redis-server;
//! - `proc`: child-process supervision;
//! - `sidecar`: target files, launch failures, attach mode and the API client.

// `allow-unwrap-in-tests` does not reach helper functions in `tests/` (rust-clippy #13981).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod broker;
mod proc;
mod sidecar;

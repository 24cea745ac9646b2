//! The scriptable test app: an in-process HTTP or gRPC server that plays the application a
//! sidecar delivers to.
//!
//! It answers `GET /dapr/subscribe` with whatever subscriptions a test sets, answers every
//! other request according to a per-route [`Script`], and records every request it sees,
//! in arrival order, with headers, body and attempt number.
//! It is built on hyper directly so that it can also misbehave at the transport level
//! (close a connection without answering, never answer).
//! It does not judge what it records; checkers do.

mod grpc;
mod recorder;
mod script;
mod server;
mod stream;

pub use recorder::{RecordedDelivery, RecordedRequest, WaitError};
pub use script::Script;
pub use server::{AppProtocol, TestApp, TestAppConfig, TestAppError};
pub use stream::{StreamError, StreamRequest, StreamSubscriber};

//! Every default timeout and resource cap of the sidecar's servers and app channel, in one
//! place, each with the daprd 1.18 behaviour it follows (or the reason it departs from it).
//!
//! Owns the values only; the API servers (`api::serve`) and the app channel apply them. The
//! in-memory broker's queue bounds live in `broker::memory`, the bulk publish concurrency in
//! `publish`.
//!
//! **Invariant:** delivery to the app has no default timeout. daprd has none (a delivery waits
//! as long as the app takes unless a Resiliency timeout policy applies), and the conformance
//! check `core::resiliency::no_default_timeout` asserts it; none of these values applies to a
//! delivery's answer.

use std::time::Duration;

/// Limits on the API servers and the app channel. [`Limits::default`] holds the values the
/// binary runs with; tests shorten them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a client may take to send a complete request head on the HTTP API, and to send
    /// its first byte on either API. daprd: `ReadHeaderTimeout: 10 * time.Second` on its HTTP
    /// API servers (pkg/api/http/server.go). As in hyper, it also closes an HTTP/1.1
    /// keep-alive connection that stays idle that long.
    pub header_read_timeout: Duration,
    /// Open connections on the HTTP API (all listen addresses together); further clients wait
    /// in the kernel's accept backlog until one closes. daprd sets no limit.
    pub max_http_connections: usize,
    /// Open connections on the gRPC API (all listen addresses together).
    pub max_grpc_connections: usize,
    /// Concurrent HTTP/2 streams per gRPC connection (announced in SETTINGS; a client queues
    /// beyond it). Streaming subscriptions hold one each.
    pub grpc_max_concurrent_streams: u32,
    /// TCP connect to the app. daprd's app channel is Go's `http.DefaultTransport`, whose
    /// dialer times out after 30 s (pkg/runtime/channels/channels.go, `appHTTPClient`).
    pub app_connect_timeout: Duration,
    /// `GET /dapr/config` and `GET /dapr/subscribe`, request and whole answer. daprd sets no
    /// timeout on these (only its built-in initialization retries), so a hanging app keeps it
    /// unready forever; here the call fails after this long and the same retries apply.
    pub app_init_timeout: Duration,
    /// Service invocation: until the app's answer head arrives. daprd sets none without a
    /// Resiliency policy; a generous bound keeps a hung app from holding the caller forever.
    pub invoke_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_http_connections: 4096,
            max_grpc_connections: 1024,
            grpc_max_concurrent_streams: 1000,
            app_connect_timeout: Duration::from_secs(30),
            app_init_timeout: Duration::from_secs(60),
            invoke_timeout: Duration::from_secs(60),
        }
    }
}

/// gRPC API keep-alive: a PING after this much idleness. daprd's API server uses
/// `keepalive.ServerParameters{Time: 10 * time.Second}` (pkg/api/grpc/server.go).
#[cfg(feature = "grpc")]
pub(crate) const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// gRPC API keep-alive: the PING's answer must come within this. daprd: `Timeout: 5 *
/// time.Second`.
#[cfg(feature = "grpc")]
pub(crate) const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

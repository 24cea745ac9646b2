//! A Toxiproxy-compatible fault proxy for the chaos harness: a server speaking the
//! Toxiproxy v2 HTTP API with a TCP engine that implements every toxic ([`server`]), and a
//! thin async client for that API ([`client`]), which works against a real Toxiproxy too.
//!
//! The harness runs the server in-process with [`spawn`] on `127.0.0.1:0`; the
//! `tck-toxiproxy` binary runs it standalone, as a drop-in for `toxiproxy-server` on
//! loopback. No registry ships a Toxiproxy server, hence this crate.
//!
//! This crate owns the wire API, the proxies and the toxics. It does not decide when to
//! inject faults, or whether to use a real Toxiproxy instead (`harness::fault_proxy`).
//!
//! # Toxics
//!
//! `latency` (`latency`, `jitter` in ms; pipelined: each chunk is delayed from its arrival),
//! `bandwidth` (`rate` in KB/s, 1 KB = 1000 bytes, pieces of `rate * 100` bytes every
//! 100 ms, 0 = no limit), `slow_close` (`delay` ms before the EOF), `timeout` (drops data;
//! closes after `timeout` ms when above 0; removing it closes the connections it affected),
//! `reset_peer` (TCP RST `timeout` ms after the first data or EOF), `slicer`
//! (`average_size`, `size_variation` bytes, `delay` µs), `limit_data` (`bytes` per link,
//! then close; the count survives updates) and `noop`. Toxics act on existing and new
//! connections; the EOF travels through the toxics behind the data, so held data is still
//! delivered before a close.
//!
//! # Deliberate differences from the Go server
//!
//! - Proxies and the API listen on loopback addresses only: any other listen address is a
//!   400 (`listen address ... is not a loopback address`), and an empty one means
//!   `127.0.0.1:0` (Go: every interface).
//! - `reset_peer` resets connections that were open before the toxic was added too (Go sets
//!   `SO_LINGER` 0 only on connections opened while the toxic exists, so older ones get a
//!   FIN).
//! - A half-close is forwarded as a half-close: when one side shuts down its writes, the
//!   other direction keeps flowing until it closes too (Go closes both directions).
//! - Toxicity is drawn per link when a toxic starts on it and again when that toxic is
//!   updated, from a seeded generator per link (Go redraws whenever a link's chain is
//!   rewired, from a global generator). Removing a `timeout` toxic closes only the
//!   connections it acted on (Go closes every connection of its stream, toxicity or not).
//! - A chunk waiting in a toxic that is updated keeps its deadline; one waiting in a toxic
//!   that is removed goes on at once (Go also flushes on update, and when a toxic is added
//!   behind it).
//! - A PATCH with a bad attribute changes nothing (Go may apply the valid part).
//! - A slicer with attributes that would make Go recurse forever or slice out of range
//!   (average size 0, variation above half the chunk) cuts pieces of at least one byte;
//!   a negative bandwidth rate means no limit (Go panics on both).
//! - Non-integer attributes and bad bodies get this server's own wording after
//!   `bad request body: `; there is no 25 s handler timeout and no `/metrics`.
//! - A proxy's JSON has the five documented keys only (Go also writes its logger, a
//!   struct field without a JSON tag, as `"Logger": {}`).
//! - `GET /version` reports [`API_VERSION`], the Toxiproxy version whose API this follows.

#![warn(missing_docs)]

pub mod client;
pub mod server;

pub use client::{
    Client, NewProxy, NewToxic, Proxy, ProxyUpdate, Stream, Toxic, ToxicKind, ToxicUpdate,
    ToxiproxyError,
};
pub use server::{API_VERSION, SERVER_VERSION, ServerHandle, SpawnError, spawn};

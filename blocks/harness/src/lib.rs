//! The harness core: everything that touches processes, sockets and target files.
//!
//! It launches any daprd-compatible sidecar as a black box from a TOML target file
//! ([`target`], [`sidecar`]), supervises child processes ([`proc`], [`ports`]), runs the
//! in-process scriptable test app that records every delivery ([`app`]) and talks to the
//! sidecar's HTTP API ([`client`]).
//! It also finds or starts the Toxiproxy that TCP faults go through ([`fault_proxy`]). The
//! deliberately broken `tck-mutant` sidecar wrapper is a crate of its own (`harness-mutant`),
//! built on this one.
//!
//! Invariant: nothing here depends on the `reference-sidecar` crate; a sidecar is known
//! only through its wire API and its target file.
//! This crate does not decide verdicts or write reports.

#![warn(missing_docs)]

pub mod app;
pub mod broker;
pub mod client;
pub mod expect;
pub mod fault;
pub mod fault_proxy;
pub mod grpc_client;
pub mod kafka_wire;
pub mod ports;
pub mod proc;
pub mod promise;
pub mod raw_http;
pub mod resp;
pub mod serve;
pub mod sidecar;
pub mod target;

#[cfg(unix)]
pub mod unix;

pub use app::{
    AppProtocol, RecordedDelivery, RecordedRequest, Script, StreamError, StreamRequest,
    StreamSubscriber, TestApp, TestAppConfig, TestAppError, WaitError,
};
pub use broker::{
    Broker, BrokerError, BrokerProcess, BrokerSources, Durability, KafkaServer, RedisServer,
};
pub use client::{ApiResponse, ClientError, SidecarClient};
pub use expect::{ExpectError, Expectation, Expectations};
pub use fault_proxy::{FaultProxy, FaultProxyError};
pub use grpc_client::{GrpcApiClient, GrpcClientError};
pub use ports::{PortError, PortLease, PortReservation};
pub use proc::{Child, ProcessSpec, ReadyError, ShutdownStep, SignalError, SpawnError, StateError};
pub use promise::Promise;
pub use sidecar::{LaunchError, Sidecar, SidecarOptions};
pub use target::{CommandLine, LaunchVars, TargetError, TargetFile};

//! The wrapper's command line, shared by `tck-mutant` and `pubsub-tck mutant`:
//! `--mode MODE --app-port P [--api-port A --sidecar-http-port S] [--app-protocol grpc] --
//! <sidecar command and args...>`.

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use super::{ApiPorts, ForwardSignal, Mode, MutantConfig, run};

/// The wrapper's flags and the sidecar's command line after `--`.
#[derive(Debug, Parser)]
#[command(about = "A deliberately broken sidecar wrapper for self-checks")]
pub struct MutantArgs {
    /// strip-specversion, retry-to-success, deliver-twice, drop-every-3rd, content-type-json,
    /// ack-before-deliver, ttl-ignored, token-bypass-bulk, token-bypass-grpc,
    /// reset-on-huge-ttl, scopes-ignored, never-ack or none.
    #[arg(long)]
    pub mode: Mode,
    /// The real app's port; the sidecar is pointed at the wrapper's proxy instead.
    #[arg(long)]
    pub app_port: u16,
    /// API modes: the port clients call; the wrapper listens there.
    #[arg(long, requires = "sidecar_http_port")]
    pub api_port: Option<u16>,
    /// API modes: the port of the sidecar's API behind the wrapper (the sidecar's command line
    /// must use it): its HTTP API, or with token-bypass-grpc its gRPC API
    /// (`--sidecar-grpc-port`).
    #[arg(long, requires = "api_port", alias = "sidecar-grpc-port")]
    pub sidecar_http_port: Option<u16>,
    /// The protocol between the sidecar and the app: http or grpc (the same value the
    /// sidecar's command line gets).
    #[arg(long, default_value = "http", value_parser = ["http", "grpc"])]
    pub app_protocol: String,
    /// The real sidecar's command line.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs the wrapper until the sidecar exits; returns the sidecar's exit code. Signals
/// (SIGTERM, SIGINT) are forwarded to the sidecar.
pub async fn main_with(args: MutantArgs) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot bind the proxy port")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut term = signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                Some(()) = term.recv() => ForwardSignal::Term,
                Some(()) = int.recv() => ForwardSignal::Int,
                else => break,
            };
            if tx.send(sig).is_err() {
                break;
            }
        }
    });
    let config = MutantConfig {
        mode: args.mode,
        app_port: args.app_port,
        command: args.command,
        cwd,
        api: args
            .api_port
            .zip(args.sidecar_http_port)
            .map(|(listen, sidecar)| ApiPorts { listen, sidecar }),
        app_protocol: if args.app_protocol == "grpc" {
            harness::AppProtocol::Grpc
        } else {
            harness::AppProtocol::Http
        },
    };
    Ok(run(listener, config, rx).await?)
}

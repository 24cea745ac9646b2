//! `tck-mutant`: wraps a real sidecar and breaks its contract with the app on purpose.
//!
//! Usage: `tck-mutant --mode MODE --app-port P [--api-port A --sidecar-http-port S] -- <sidecar
//! command and args...>`.
//! See `harness::mutant` for the modes; this binary only parses flags, installs signal
//! forwarding and calls `harness::mutant::run`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use harness::mutant::{ApiPorts, ForwardSignal, Mode, MutantConfig, run};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(about = "A deliberately broken sidecar wrapper for harness self-checks")]
struct Args {
    /// strip-specversion, retry-to-success, deliver-twice, drop-every-3rd, content-type-json,
    /// ack-before-deliver, ttl-ignored, token-bypass-bulk, token-bypass-grpc, never-ack or none.
    #[arg(long)]
    mode: Mode,
    /// The real app's port; the sidecar is pointed at the wrapper's proxy instead.
    #[arg(long)]
    app_port: u16,
    /// API modes: the port clients call; the wrapper listens there.
    #[arg(long, requires = "sidecar_http_port")]
    api_port: Option<u16>,
    /// API modes: the port of the sidecar's API behind the wrapper (the sidecar's command line
    /// must use it): its HTTP API, or with token-bypass-grpc its gRPC API
    /// (`--sidecar-grpc-port`).
    #[arg(long, requires = "api_port", alias = "sidecar-grpc-port")]
    sidecar_http_port: Option<u16>,
    /// The protocol between the sidecar and the app: http or grpc (the same value the
    /// sidecar's command line gets).
    #[arg(long, default_value = "http", value_parser = ["http", "grpc"])]
    app_protocol: String,
    /// The real sidecar's command line.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match real_main().await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("tck-mutant: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn real_main() -> anyhow::Result<i32> {
    let args = Args::parse();
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

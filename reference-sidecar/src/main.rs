//! The `refsidecar` binary: flags → config → listeners → [`reference_sidecar::run`].

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use reference_sidecar::cli::Flags;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("REFSIDECAR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(flags.log_filter()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    match start(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("refsidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(flags: Flags) -> anyhow::Result<()> {
    let config = flags.into_config(
        std::env::var("DAPR_API_TOKEN").ok(),
        std::env::var("APP_API_TOKEN").ok(),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listeners = reference_sidecar::Listeners {
            http: bind_all(&config, config.http_port, "--dapr-http-port").await?,
            grpc: if cfg!(feature = "grpc") {
                bind_all(&config, config.grpc_port, "--dapr-grpc-port").await?
            } else {
                Vec::new()
            },
        };
        reference_sidecar::run(config, listeners, shutdown_signal()).await?;
        Ok(())
    })
}

/// One listener per `--dapr-listen-addresses` entry; IPv6 may be missing when IPv4 is there.
async fn bind_all(
    config: &reference_sidecar::Config,
    port: u16,
    flag: &str,
) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    let mut listeners = Vec::new();
    for ip in &config.listen_addresses {
        let addr = SocketAddr::new(*ip, port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            Err(e) if ip.is_ipv6() && config.listen_addresses.len() > 1 => {
                tracing::warn!(%addr, "not listening on {addr}: {e}");
            }
            Err(e) => {
                return Err(e).with_context(|| format!("listening on {addr} ({flag})"));
            }
        }
    }
    Ok(listeners)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

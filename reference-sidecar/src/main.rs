//! The `refsidecar` binary: flags → config → listeners → [`reference_sidecar::run`].

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use reference_sidecar::cli::Flags;

// Per message the sidecar allocates and frees many small buffers (headers, envelope, queue
// entries) on one thread; mimalloc serves those from thread-local pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("REFSIDECAR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(flags.log_filter()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    // A panic in any task is logged with its location and ends the process (see `panic.rs`).
    reference_sidecar::panic::install_abort_on_panic();
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
    let runtime = match worker_threads(std::env::var("GOMAXPROCS").ok().as_deref()) {
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
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
    });
    // `run` returns within the grace period; a blocking task still running then (a Kafka
    // consumer leaving its group) must not keep the process alive much longer.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// Worker threads for the async runtime, from `GOMAXPROCS` (the knob daprd, a Go program,
/// honours): `None`, meaning one thread running everything, unless it asks for more than one.
///
/// One thread is the default because a sidecar's work is I/O between two sockets per message:
/// on a second worker every hand-off between the publish handler and the delivery loop becomes
/// a cross-thread wake-up, which costs more CPU than it buys at the loads a sidecar sees
/// (see the `load` bench). Blocking calls (Kafka metadata, consumer drop) already go through
/// `spawn_blocking`.
fn worker_threads(gomaxprocs: Option<&str>) -> Option<usize> {
    gomaxprocs
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 1)
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

#[cfg(test)]
mod tests {
    use super::worker_threads;

    #[test]
    fn gomaxprocs_picks_the_runtime() {
        assert_eq!(worker_threads(None), None);
        assert_eq!(worker_threads(Some("1")), None);
        assert_eq!(worker_threads(Some("0")), None);
        assert_eq!(worker_threads(Some("x")), None);
        assert_eq!(worker_threads(Some("4")), Some(4));
    }
}

//! `tck-mutant`: wraps a real sidecar and breaks its contract with the app on purpose.
//!
//! Usage: `tck-mutant --mode MODE --app-port P [--api-port A --sidecar-http-port S] -- <sidecar
//! command and args...>`.
//! See the `harness_mutant` crate for the modes; the installed `pubsub-tck mutant` is the same wrapper.

use std::process::ExitCode;

use clap::Parser as _;
use harness_mutant::cli::{MutantArgs, main_with};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match main_with(MutantArgs::parse()).await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("tck-mutant: {e:#}");
            ExitCode::from(2)
        }
    }
}

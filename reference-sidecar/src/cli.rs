//! Command-line flags, spelled as daprd spells them, and their validation into a [`Config`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::limits::Limits;
use crate::runtime::Config;
use crate::secret::Secret;

/// `--version`: the version and the brokers compiled in (`scripts/build-refsidecar.sh` reads
/// it to keep a build with Kafka one).
#[cfg(feature = "kafka")]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (brokers: in-memory, redis, kafka)"
);
#[cfg(not(feature = "kafka"))]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (brokers: in-memory, redis)");

/// refsidecar: a daprd-compatible pub/sub sidecar.
///
/// Reads Component, Subscription and Resiliency YAML from the resources paths, serves the Dapr
/// HTTP and gRPC APIs, discovers the app's subscriptions (GET /dapr/subscribe, or
/// ListTopicSubscriptions for a gRPC app) and delivers CloudEvents to the app. Environment: DAPR_API_TOKEN (API auth), APP_API_TOKEN (sent to the app).
#[derive(Debug, Parser)]
#[command(name = "refsidecar", version = VERSION, about, long_about)]
pub struct Flags {
    /// The app's id: CloudEvent source, scopes, consumer identity.
    #[arg(long, default_value = "")]
    pub app_id: String,
    /// The port the app listens on; without it no app subscriptions start.
    #[arg(long)]
    pub app_port: Option<u16>,
    /// The app's protocol: `http`, or `grpc` (the AppCallback service).
    #[arg(long, default_value = "http")]
    pub app_protocol: String,
    /// The address the app listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub app_channel_address: String,
    /// HTTP API port.
    #[arg(long, default_value_t = 3500)]
    pub dapr_http_port: u16,
    /// gRPC API port.
    #[arg(long, default_value_t = 50001)]
    pub dapr_grpc_port: u16,
    /// A directory (or file) of resource YAML; repeatable.
    #[arg(long = "resources-path", visible_alias = "components-path")]
    pub resources_path: Vec<PathBuf>,
    /// A Configuration YAML file (parsed; its settings are not applied yet).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// debug, info, warn, error or fatal.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Comma-separated addresses the API listens on.
    #[arg(long, default_value = "127.0.0.1,::1")]
    pub dapr_listen_addresses: String,
    /// Most concurrent requests to the app; -1 = unlimited.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub app_max_concurrency: i64,
    /// Largest request body the API accepts (e.g. 4Mi, 512Ki, 1000000).
    #[arg(long, default_value = "4Mi")]
    pub max_body_size: String,
    /// Seconds in-flight deliveries may take to finish after SIGTERM.
    #[arg(long, default_value_t = 5)]
    pub dapr_graceful_shutdown_seconds: u64,
    /// Metrics port (accepted for compatibility; no metrics are served).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Enable metrics (accepted for compatibility; no metrics are served).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub enable_metrics: Option<bool>,
    /// Run mode; only `standalone`.
    #[arg(long, default_value = "standalone")]
    pub mode: String,
}

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for --{flag}: {message}")]
pub struct FlagError {
    flag: &'static str,
    message: String,
}

impl Flags {
    /// Validates the flags into a runtime config; tokens come from the environment.
    pub fn into_config(
        self,
        api_token: Option<String>,
        app_api_token: Option<String>,
    ) -> Result<Config, FlagError> {
        match self.app_protocol.as_str() {
            "http" => {}
            "grpc" if cfg!(feature = "grpc") => {}
            "grpc" => {
                return Err(FlagError {
                    flag: "app-protocol",
                    message: "\"grpc\" needs a refsidecar built with the `grpc` feature".into(),
                });
            }
            other => {
                return Err(FlagError {
                    flag: "app-protocol",
                    message: format!("{other:?} is not supported (only http and grpc)"),
                });
            }
        }
        if self.mode != "standalone" {
            return Err(FlagError {
                flag: "mode",
                message: format!("{:?} is not supported (only standalone)", self.mode),
            });
        }
        if !["debug", "info", "warn", "error", "fatal"].contains(&self.log_level.as_str()) {
            return Err(FlagError {
                flag: "log-level",
                message: format!(
                    "{:?} is not one of debug, info, warn, error, fatal",
                    self.log_level
                ),
            });
        }
        let listen_addresses = self
            .dapr_listen_addresses
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let s = if s == "localhost" { "127.0.0.1" } else { s };
                s.parse::<IpAddr>().map_err(|_| FlagError {
                    flag: "dapr-listen-addresses",
                    message: format!("{s:?} is not an IP address"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if listen_addresses.is_empty() {
            return Err(FlagError {
                flag: "dapr-listen-addresses",
                message: "no address given".into(),
            });
        }
        let max_body_size = parse_quantity(&self.max_body_size).ok_or_else(|| FlagError {
            flag: "max-body-size",
            message: format!("{:?} is not a size like 4Mi", self.max_body_size),
        })?;
        Ok(Config {
            app_id: self.app_id,
            app_port: self.app_port,
            app_channel_address: self.app_channel_address,
            app_protocol: self.app_protocol,
            resources_paths: self.resources_path,
            config_file: self.config,
            app_max_concurrency: self.app_max_concurrency,
            max_body_size,
            graceful_shutdown: Duration::from_secs(self.dapr_graceful_shutdown_seconds),
            api_token: api_token.filter(|t| !t.is_empty()).map(Secret::from),
            app_api_token: app_api_token.filter(|t| !t.is_empty()).map(Secret::from),
            listen_addresses,
            http_port: self.dapr_http_port,
            grpc_port: self.dapr_grpc_port,
            limits: Limits::default(),
        })
    }

    /// The `tracing` filter for `--log-level`.
    pub fn log_filter(&self) -> &'static str {
        match self.log_level.as_str() {
            "debug" => "debug",
            "warn" => "warn",
            "error" | "fatal" => "error",
            _ => "info",
        }
    }
}

/// Kubernetes-style quantities as daprd reads `--max-body-size`: `4Mi`, `512Ki`, `1G`, `1000`.
pub fn parse_quantity(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let flags =
            Flags::try_parse_from(std::iter::once("refsidecar").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        flags.into_config(None, None).map_err(|e| e.to_string())
    }

    #[test]
    fn daprd_flags() {
        let c = parse(&[
            "--app-id",
            "a",
            "--app-port",
            "3000",
            "--dapr-http-port=3501",
            "--components-path",
            "x",
            "--resources-path",
            "y",
        ])
        .unwrap();
        assert_eq!(c.app_id, "a");
        assert_eq!(c.app_port, Some(3000));
        assert_eq!(c.http_port, 3501);
        assert_eq!(c.resources_paths, [PathBuf::from("x"), PathBuf::from("y")]);
        assert_eq!(c.max_body_size, 4 << 20);
        assert_eq!(c.listen_addresses.len(), 2);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--app-port", "x"]).is_err());
        assert!(
            parse(&["--app-protocol", "h2c"])
                .unwrap_err()
                .contains("--app-protocol")
        );
        assert_eq!(
            parse(&["--app-protocol", "grpc"]).is_ok(),
            cfg!(feature = "grpc")
        );
        assert!(
            parse(&["--max-body-size", "4 lots"])
                .unwrap_err()
                .contains("--max-body-size")
        );
        assert!(parse(&["--dapr-listen-addresses", "nowhere"]).is_err());
        assert!(parse(&["--log-level", "loud"]).is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("4Mi"), Some(4 << 20));
        assert_eq!(parse_quantity("1000"), Some(1000));
        assert_eq!(parse_quantity("2k"), Some(2000));
        assert_eq!(parse_quantity("x"), None);
    }
}

//! `tck-toxiproxy`: the bundled Toxiproxy-compatible server, standalone.
//!
//! Flags follow `toxiproxy-server` (Go flag syntax: `-port 0`, `--port=0`): `-host`
//! (default 127.0.0.1, loopback only), `-port` (default 8474; with 0 the picked address is
//! printed on stdout as one line), `-config FILE` (a JSON array of proxies, as for
//! `POST /populate`, applied at start; unlike Go, a bad file stops the server) and
//! `-seed N`. It runs until SIGINT or SIGTERM.

// Printing on stdout is this binary's interface: the picked address, usage, version.
#![expect(clippy::print_stdout, reason = "stdout is the binary's interface")]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use harness_toxiproxy::{Client, NewProxy};

const USAGE: &str = "usage: tck-toxiproxy [-host 127.0.0.1] [-port 8474] [-config FILE] [-seed N]";

#[derive(Debug, PartialEq)]
struct Flags {
    host: IpAddr,
    port: u16,
    config: Option<PathBuf>,
    seed: Option<u64>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Run(Flags),
    Help,
    Version,
}

fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Command> {
    let mut flags = Flags {
        host: IpAddr::from([127, 0, 0, 1]),
        port: 8474,
        config: None,
        seed: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            bail!("unexpected argument {arg:?}\n{USAGE}");
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        match name {
            "h" | "help" => return Ok(Command::Help),
            "version" => return Ok(Command::Version),
            "host" | "port" | "config" | "seed" => {}
            _ => bail!("unknown flag -{name}\n{USAGE}"),
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .with_context(|| format!("flag -{name} needs a value"))?,
        };
        match name {
            "host" => {
                let host = if value == "localhost" {
                    IpAddr::from([127, 0, 0, 1])
                } else {
                    value
                        .parse()
                        .with_context(|| format!("-host {value:?} is not an ip address"))?
                };
                if !host.is_loopback() {
                    bail!(
                        "-host {value} is not a loopback address; this server listens on loopback only"
                    );
                }
                flags.host = host;
            }
            "port" => {
                flags.port = value
                    .parse()
                    .with_context(|| format!("-port {value:?} is not a port"))?;
            }
            "config" => flags.config = Some(PathBuf::from(value)),
            _ => {
                flags.seed = Some(
                    value
                        .parse()
                        .with_context(|| format!("-seed {value:?} is not an unsigned integer"))?,
                );
            }
        }
    }
    Ok(Command::Run(flags))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = match parse(std::env::args().skip(1))? {
        Command::Run(flags) => flags,
        Command::Help => {
            println!("{USAGE}");
            return Ok(());
        }
        Command::Version => {
            println!("{}", harness_toxiproxy::API_VERSION);
            return Ok(());
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let server = harness_toxiproxy::spawn(SocketAddr::new(flags.host, flags.port), flags.seed)
        .await
        .context("cannot start the server")?;
    if let Some(path) = &flags.config {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let proxies: Vec<NewProxy> = serde_json::from_slice::<Vec<ConfigProxy>>(&text)
            .with_context(|| format!("{} is not a JSON array of proxies", path.display()))?
            .into_iter()
            .map(ConfigProxy::into_new)
            .collect();
        let client = Client::new(server.base_url())?;
        let created = client
            .populate(&proxies)
            .await
            .with_context(|| format!("cannot create the proxies of {}", path.display()))?;
        tracing::info!(config = %path.display(), proxies = created.len(), "populated proxies");
    }
    if flags.port == 0 {
        println!("{}", server.addr());
    }
    wait_for_signal().await?;
    server.shutdown().await;
    Ok(())
}

/// One proxy of a `-config` file: `enabled` defaults to true, as in `POST /populate`.
#[derive(serde::Deserialize)]
struct ConfigProxy {
    name: String,
    #[serde(default)]
    listen: String,
    upstream: String,
    #[serde(default)]
    enabled: Option<bool>,
}

impl ConfigProxy {
    fn into_new(self) -> NewProxy {
        NewProxy::new(self.name, self.upstream)
            .listen(self.listen)
            .enabled(self.enabled.unwrap_or(true))
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str], expect: &str) {
        let got = match parse(args.iter().map(|a| (*a).to_owned())) {
            Ok(command) => format!("{command:?}"),
            Err(e) => format!("error: {e}"),
        };
        assert!(got.contains(expect), "{args:?}: {got}");
    }

    #[test]
    fn flags_parse_the_go_way() {
        check(&[], "host: 127.0.0.1, port: 8474, config: None, seed: None");
        check(
            &["-port", "0", "--seed=7"],
            "port: 0, config: None, seed: Some(7)",
        );
        check(
            &["-host=::1", "-config", "p.json"],
            "host: ::1, port: 8474, config: Some(\"p.json\")",
        );
        check(&["-host", "localhost"], "host: 127.0.0.1");
        check(
            &["-host", "0.0.0.0"],
            "error: -host 0.0.0.0 is not a loopback address",
        );
        check(&["-port", "x"], "error: -port \"x\" is not a port");
        check(&["-port"], "error: flag -port needs a value");
        check(&["-proxy-metrics"], "error: unknown flag -proxy-metrics");
        check(&["-help"], "Help");
        check(&["-version"], "Version");
    }
}

//! The Toxiproxy a trial injects TCP faults through: an external one the caller names (the
//! `TOXIPROXY_URL` of the README, read by the caller, never here), or else the bundled
//! server of `harness-toxiproxy` running in-process on `127.0.0.1:0`.
//!
//! An external Toxiproxy that does not answer `GET /version` is an error, never a silent
//! fallback to the bundled server: the run would otherwise test something else than asked.
//! Owns only finding or starting the server; which proxies and toxics a trial uses is the
//! suites' business, through [`FaultProxy::client`].

use std::net::SocketAddr;

use harness_toxiproxy::{Client, ServerHandle, SpawnError, ToxiproxyError};

/// No Toxiproxy to use.
#[derive(Debug, thiserror::Error)]
pub enum FaultProxyError {
    /// The client for the given URL could not be built.
    #[error("cannot build a toxiproxy client for {url}")]
    Client {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: ToxiproxyError,
    },
    /// The external Toxiproxy did not answer `GET /version`.
    #[error(
        "the toxiproxy at {url} does not answer GET /version (is it running? is TOXIPROXY_URL right?)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: ToxiproxyError,
    },
    /// The bundled server could not start.
    #[error("cannot start the bundled toxiproxy server")]
    Spawn(#[source] SpawnError),
}

/// A Toxiproxy API to drive, kept alive while this is held.
#[derive(Debug)]
pub struct FaultProxy {
    client: Client,
    version: String,
    /// The bundled server, when no external one was named; dropping it stops it.
    server: Option<ServerHandle>,
}

impl FaultProxy {
    /// Connects to the Toxiproxy at `url` when given (failing if `GET /version` does not
    /// answer), else starts the bundled server in-process on `127.0.0.1:0` with `seed`
    /// (which seeds its toxicity draws; `None` picks one, see [`FaultProxy::seed`]).
    pub async fn connect_or_spawn(
        url: Option<&str>,
        seed: Option<u64>,
    ) -> Result<FaultProxy, FaultProxyError> {
        let (client, server) = match url {
            Some(url) => {
                let client = Client::new(url).map_err(|source| FaultProxyError::Client {
                    url: url.to_owned(),
                    source,
                })?;
                (client, None)
            }
            None => {
                let addr = SocketAddr::from(([127, 0, 0, 1], 0));
                let server = harness_toxiproxy::spawn(addr, seed)
                    .await
                    .map_err(FaultProxyError::Spawn)?;
                let client =
                    Client::new(server.base_url()).map_err(|source| FaultProxyError::Client {
                        url: server.base_url(),
                        source,
                    })?;
                (client, Some(server))
            }
        };
        let version = client
            .version()
            .await
            .map_err(|source| FaultProxyError::Unreachable {
                url: client.base_url().to_owned(),
                source,
            })?;
        Ok(FaultProxy {
            client,
            version,
            server,
        })
    }

    /// The client of the API.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// What `GET /version` answered.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Which Toxiproxy this is, for reports: `bundled tck-toxiproxy <crate version>`, or
    /// `Toxiproxy <version>` with what an external server's `GET /version` answered.
    pub fn identity(&self) -> String {
        if self.is_bundled() {
            format!(
                "bundled tck-toxiproxy {}",
                harness_toxiproxy::SERVER_VERSION
            )
        } else {
            format!("Toxiproxy {}", self.version)
        }
    }

    /// Whether this is the bundled in-process server.
    pub fn is_bundled(&self) -> bool {
        self.server.is_some()
    }

    /// The seed of the bundled server's random choices; `None` for an external Toxiproxy.
    pub fn seed(&self) -> Option<u64> {
        self.server.as_ref().map(ServerHandle::seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_the_bundled_server_without_a_url() {
        let proxy = FaultProxy::connect_or_spawn(None, Some(5)).await.unwrap();
        assert!(proxy.is_bundled());
        assert_eq!(proxy.seed(), Some(5));
        assert_eq!(proxy.version(), harness_toxiproxy::API_VERSION);
        assert!(proxy.base_url().starts_with("http://127.0.0.1:"));
        assert!(proxy.client().proxies().await.unwrap().is_empty());
        assert_eq!(
            proxy.identity(),
            format!(
                "bundled tck-toxiproxy {}",
                harness_toxiproxy::SERVER_VERSION
            )
        );

        // Another FaultProxy can use this one as an external Toxiproxy.
        let external = FaultProxy::connect_or_spawn(Some(proxy.base_url()), None)
            .await
            .unwrap();
        assert!(!external.is_bundled());
        assert_eq!(external.seed(), None);
        assert_eq!(
            external.identity(),
            format!("Toxiproxy {}", harness_toxiproxy::API_VERSION)
        );
    }

    #[tokio::test]
    async fn an_external_toxiproxy_that_does_not_answer_is_an_error() {
        // A port that was free a moment ago: nothing answers there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let error = FaultProxy::connect_or_spawn(Some(&url), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, FaultProxyError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&url), "{error}");
    }
}

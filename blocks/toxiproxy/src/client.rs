//! A thin async client for the Toxiproxy v2 HTTP API, for the bundled server and for a
//! real Toxiproxy alike.
//!
//! The wire format stays here: names are snake_case and times are integers of milliseconds
//! (microseconds for the slicer's delay) on the wire, [`Duration`]s in these types. Every
//! call checks the status code; an error reply `{"error","status"}` becomes
//! [`ToxiproxyError::Api`]. Updates use PATCH.
//!
//! Not here: deciding which server to talk to (`harness::fault_proxy` does that).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// How long one API call may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    /// The HTTP client could not be built.
    #[error("cannot build the http client")]
    Build(#[source] reqwest::Error),
    /// No reply: the server is unreachable, the connection broke, or the call timed out.
    #[error("{method} {url} failed")]
    Request {
        /// The HTTP method.
        method: Method,
        /// The URL.
        url: String,
        /// The transport cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error body `{"error","status"}`.
    #[error("{method} {url} answered {status}: {message}")]
    Api {
        /// The HTTP method.
        method: Method,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's `error`.
        message: String,
    },
    /// The server answered an unexpected status without an error body.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// The HTTP method.
        method: Method,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// The server answered success with a body that does not decode.
    #[error("{method} {url} answered a body that does not decode")]
    Decode {
        /// The HTTP method.
        method: Method,
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl ToxiproxyError {
    /// The HTTP status the server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ToxiproxyError::Api { status, .. } | ToxiproxyError::Status { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// The direction a toxic acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to upstream server.
    Upstream,
    /// Upstream server to client (the server's default).
    #[default]
    Downstream,
}

impl<'de> Deserialize<'de> for Stream {
    /// Case-insensitive, as servers echo the `stream` a client sent.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Stream, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.eq_ignore_ascii_case("upstream") {
            Ok(Stream::Upstream)
        } else if text.eq_ignore_ascii_case("downstream") {
            Ok(Stream::Downstream)
        } else {
            Err(serde::de::Error::custom(format!(
                "stream must be upstream or downstream, got {text:?}"
            )))
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        })
    }
}

/// A toxic type and its attributes; on the wire `{"type": ..., "attributes": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    /// Delays data by `latency ± jitter`, measured from when each chunk arrived.
    Latency {
        /// The delay.
        #[serde(with = "millis", default)]
        latency: Duration,
        /// Uniform variation of the delay, either way.
        #[serde(with = "millis", default)]
        jitter: Duration,
    },
    /// Limits the rate to `rate` KB/s (1 KB = 1000 bytes); 0 means no limit.
    Bandwidth {
        /// KB/s.
        #[serde(default)]
        rate: u64,
    },
    /// Delays the close (EOF) by `delay`; data passes unchanged.
    SlowClose {
        /// The delay.
        #[serde(with = "millis", default)]
        delay: Duration,
    },
    /// Drops all data; closes the connection after `timeout` unless it is zero. Removing
    /// the toxic closes the connections it affected.
    Timeout {
        /// When to close; zero means never.
        #[serde(with = "millis", default)]
        timeout: Duration,
    },
    /// Resets the connection (TCP RST) `timeout` after the first data or close.
    ResetPeer {
        /// The delay before the reset.
        #[serde(with = "millis", default)]
        timeout: Duration,
    },
    /// Splits data into pieces of about `average_size ± size_variation` bytes, `delay`
    /// apart.
    Slicer {
        /// Bytes.
        #[serde(default)]
        average_size: u64,
        /// Bytes.
        #[serde(default)]
        size_variation: u64,
        /// Pause between pieces (microseconds on the wire).
        #[serde(with = "micros", default)]
        delay: Duration,
    },
    /// Passes `bytes` bytes per link, then closes the connection.
    LimitData {
        /// Bytes.
        #[serde(default)]
        bytes: u64,
    },
    /// Passes data through (`attributes` is `{}` on the wire).
    Noop {},
}

impl ToxicKind {
    /// The wire name of the type, such as `slow_close`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Noop {} => "noop",
        }
    }

    /// The `attributes` object of this kind, as sent on the wire.
    pub fn attributes(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut object)) => {
                object.remove("attributes").unwrap_or_else(|| json!({}))
            }
            _ => json!({}),
        }
    }
}

/// A toxic as a server reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    /// Unique per proxy, across both streams.
    pub name: String,
    /// The direction it acts on.
    pub stream: Stream,
    /// The probability, per connection, that it acts (drawn per link).
    pub toxicity: f32,
    /// Type and attributes.
    #[serde(flatten)]
    pub kind: ToxicKind,
}

/// A toxic to add. The server names it `<type>_<stream>` when `name` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct NewToxic {
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The direction it acts on.
    pub stream: Stream,
    /// The probability, per connection, that it acts.
    pub toxicity: f32,
    /// Type and attributes.
    #[serde(flatten)]
    pub kind: ToxicKind,
}

impl NewToxic {
    /// A downstream toxic with toxicity 1 and the server's default name.
    pub fn new(kind: ToxicKind) -> NewToxic {
        NewToxic {
            name: None,
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind,
        }
    }

    /// Names it.
    pub fn named(mut self, name: impl Into<String>) -> NewToxic {
        self.name = Some(name.into());
        self
    }

    /// Sets the stream it acts on.
    pub fn stream(mut self, stream: Stream) -> NewToxic {
        self.stream = stream;
        self
    }

    /// Makes it act on the upstream (client → server).
    pub fn upstream(self) -> NewToxic {
        self.stream(Stream::Upstream)
    }

    /// Sets its toxicity.
    pub fn toxicity(mut self, toxicity: f32) -> NewToxic {
        self.toxicity = toxicity;
        self
    }
}

/// A change to a toxic: new attributes (merged into the current ones by the server; the
/// type must stay the same) and/or a new toxicity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToxicUpdate {
    /// New attributes.
    pub kind: Option<ToxicKind>,
    /// New toxicity.
    pub toxicity: Option<f32>,
}

impl ToxicUpdate {
    fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        if let Some(kind) = &self.kind {
            body.insert("attributes".to_owned(), kind.attributes());
        }
        if let Some(toxicity) = self.toxicity {
            body.insert("toxicity".to_owned(), json!(toxicity));
        }
        Value::Object(body)
    }
}

/// A proxy as a server reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    /// Its name.
    pub name: String,
    /// `host:port` it listens on (with the real port once it has been enabled).
    pub listen: String,
    /// `host:port` it connects to.
    pub upstream: String,
    /// Whether it listens.
    pub enabled: bool,
    /// Its toxics, upstream ones first.
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

impl Proxy {
    /// The listen address as a socket address, when it is numeric.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// A proxy to create or populate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct NewProxy {
    /// Its name.
    pub name: String,
    /// `host:port` to listen on; port 0 lets the server pick.
    pub listen: String,
    /// `host:port` to connect to.
    pub upstream: String,
    /// Whether it starts listening at once.
    pub enabled: bool,
}

impl NewProxy {
    /// An enabled proxy listening on `127.0.0.1:0`.
    pub fn new(name: impl Into<String>, upstream: impl Into<String>) -> NewProxy {
        NewProxy {
            name: name.into(),
            listen: "127.0.0.1:0".to_owned(),
            upstream: upstream.into(),
            enabled: true,
        }
    }

    /// Sets the listen address.
    pub fn listen(mut self, listen: impl Into<String>) -> NewProxy {
        self.listen = listen.into();
        self
    }

    /// Sets whether it starts enabled.
    pub fn enabled(mut self, enabled: bool) -> NewProxy {
        self.enabled = enabled;
        self
    }
}

/// A change to a proxy; fields left `None` keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProxyUpdate {
    /// New listen address (restarts the proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// New upstream (restarts the proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Enable (listen) or disable (close the listener and every connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct PopulateReply {
    #[serde(default)]
    proxies: Option<Vec<Proxy>>,
}

/// A client for one Toxiproxy API.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the API at `base_url`, such as `http://127.0.0.1:8474`.
    pub fn new(base_url: impl Into<String>) -> Result<Client, ToxiproxyError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(ToxiproxyError::Build)?;
        Ok(Client {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /version`: the server's version (JSON since Toxiproxy 2.7, plain text before).
    pub async fn version(&self) -> Result<String, ToxiproxyError> {
        let body = self
            .call(Method::GET, &["version"], None, StatusCode::OK)
            .await?;
        #[derive(Deserialize)]
        struct Version {
            version: String,
        }
        Ok(match serde_json::from_slice::<Version>(&body) {
            Ok(v) => v.version,
            Err(_) => String::from_utf8_lossy(&body).trim().to_owned(),
        })
    }

    /// `GET /proxies`: every proxy by name.
    pub async fn proxies(&self) -> Result<BTreeMap<String, Proxy>, ToxiproxyError> {
        self.json(Method::GET, &["proxies"], None, StatusCode::OK)
            .await
    }

    /// `POST /proxies`.
    pub async fn create_proxy(&self, proxy: &NewProxy) -> Result<Proxy, ToxiproxyError> {
        let body = to_value(proxy);
        self.json(Method::POST, &["proxies"], Some(body), StatusCode::CREATED)
            .await
    }

    /// `POST /populate`: creates or replaces these proxies; one with the same listen
    /// address and upstream as an existing proxy leaves it untouched.
    pub async fn populate(&self, proxies: &[NewProxy]) -> Result<Vec<Proxy>, ToxiproxyError> {
        let reply: PopulateReply = self
            .json(
                Method::POST,
                &["populate"],
                Some(to_value(proxies)),
                StatusCode::CREATED,
            )
            .await?;
        Ok(reply.proxies.unwrap_or_default())
    }

    /// `GET /proxies/{name}`.
    pub async fn proxy(&self, name: &str) -> Result<Proxy, ToxiproxyError> {
        self.json(Method::GET, &proxy_path(name), None, StatusCode::OK)
            .await
    }

    /// `PATCH /proxies/{name}`.
    pub async fn update_proxy(
        &self,
        name: &str,
        update: &ProxyUpdate,
    ) -> Result<Proxy, ToxiproxyError> {
        self.json(
            Method::PATCH,
            &proxy_path(name),
            Some(to_value(update)),
            StatusCode::OK,
        )
        .await
    }

    /// Enables a proxy: it listens again on its address.
    pub async fn enable_proxy(&self, name: &str) -> Result<Proxy, ToxiproxyError> {
        let update = ProxyUpdate {
            enabled: Some(true),
            ..ProxyUpdate::default()
        };
        self.update_proxy(name, &update).await
    }

    /// Disables a proxy: its listener and every connection close.
    pub async fn disable_proxy(&self, name: &str) -> Result<Proxy, ToxiproxyError> {
        let update = ProxyUpdate {
            enabled: Some(false),
            ..ProxyUpdate::default()
        };
        self.update_proxy(name, &update).await
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete_proxy(&self, name: &str) -> Result<(), ToxiproxyError> {
        self.call(
            Method::DELETE,
            &proxy_path(name),
            None,
            StatusCode::NO_CONTENT,
        )
        .await
        .map(drop)
    }

    /// `POST /reset`: enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ToxiproxyError> {
        self.call(Method::POST, &["reset"], None, StatusCode::NO_CONTENT)
            .await
            .map(drop)
    }

    /// `GET /proxies/{proxy}/toxics`: upstream toxics first, each stream in insertion order.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ToxiproxyError> {
        self.json(Method::GET, &toxics_path(proxy), None, StatusCode::OK)
            .await
    }

    /// `POST /proxies/{proxy}/toxics`. It acts on existing and new connections.
    pub async fn add_toxic(&self, proxy: &str, toxic: &NewToxic) -> Result<Toxic, ToxiproxyError> {
        self.json(
            Method::POST,
            &toxics_path(proxy),
            Some(to_value(toxic)),
            StatusCode::OK,
        )
        .await
    }

    /// `GET /proxies/{proxy}/toxics/{name}`.
    pub async fn toxic(&self, proxy: &str, name: &str) -> Result<Toxic, ToxiproxyError> {
        self.json(Method::GET, &toxic_path(proxy, name), None, StatusCode::OK)
            .await
    }

    /// `PATCH /proxies/{proxy}/toxics/{name}`.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        name: &str,
        update: &ToxicUpdate,
    ) -> Result<Toxic, ToxiproxyError> {
        self.json(
            Method::PATCH,
            &toxic_path(proxy, name),
            Some(update.body()),
            StatusCode::OK,
        )
        .await
    }

    /// `DELETE /proxies/{proxy}/toxics/{name}`.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ToxiproxyError> {
        self.call(
            Method::DELETE,
            &toxic_path(proxy, name),
            None,
            StatusCode::NO_CONTENT,
        )
        .await
        .map(drop)
    }

    /// The URL of the API path made of `segments` (names as given), each percent-encoded as
    /// one path segment by the `url` crate: `/`, `%` and `?` in a name stay inside it.
    fn url(&self, segments: &[&str]) -> String {
        let Ok(mut url) = Url::parse(&self.base_url) else {
            // Sending to it fails, with an error naming this URL.
            return format!("{}/{}", self.base_url, segments.join("/"));
        };
        // Only a URL without a host has no path segments, and sending to one fails anyway.
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url.into()
    }

    /// Like [`Client::call`], and decodes the reply.
    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<Value>,
        expect: StatusCode,
    ) -> Result<T, ToxiproxyError> {
        let bytes = self.call(method.clone(), path, body, expect).await?;
        let url = self.url(path);
        serde_json::from_slice(&bytes).map_err(|source| ToxiproxyError::Decode {
            method,
            url,
            source,
        })
    }

    /// Sends a request to the API path made of the segments `path` and returns the body of a
    /// reply with status `expect`.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        body: Option<Value>,
        expect: StatusCode,
    ) -> Result<bytes::Bytes, ToxiproxyError> {
        let url = self.url(path);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let transport = |source| ToxiproxyError::Request {
            method: method.clone(),
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status == expect {
            return Ok(bytes);
        }
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(error) => ToxiproxyError::Api {
                method,
                url,
                status: status.as_u16(),
                message: error.error,
            },
            Err(_) => ToxiproxyError::Status {
                method,
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_owned(),
            },
        })
    }
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> Value {
    // These request types are plain structs of strings, numbers and maps: they always
    // serialize.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The path segments of proxy `name`.
fn proxy_path(name: &str) -> [&str; 2] {
    ["proxies", name]
}

/// The path segments of the toxics of proxy `proxy`.
fn toxics_path(proxy: &str) -> [&str; 3] {
    ["proxies", proxy, "toxics"]
}

/// The path segments of toxic `name` of proxy `proxy`.
fn toxic_path<'a>(proxy: &'a str, name: &'a str) -> [&'a str; 4] {
    ["proxies", proxy, "toxics", name]
}

/// Durations as integer milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Durations as integer microseconds.
mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toxic: &NewToxic, expect: Value) {
        assert_eq!(serde_json::to_value(toxic).unwrap(), expect);
    }

    #[test]
    fn new_toxics_serialize_to_the_wire_format() {
        let latency = ToxicKind::Latency {
            latency: Duration::from_millis(250),
            jitter: Duration::from_millis(10),
        };
        check(
            &NewToxic::new(latency)
                .upstream()
                .named("slow")
                .toxicity(0.5),
            json!({"name": "slow", "stream": "upstream", "toxicity": 0.5, "type": "latency",
                   "attributes": {"latency": 250, "jitter": 10}}),
        );
        check(
            &NewToxic::new(ToxicKind::Slicer {
                average_size: 10,
                size_variation: 2,
                delay: Duration::from_micros(1500),
            }),
            json!({"stream": "downstream", "toxicity": 1.0, "type": "slicer",
                   "attributes": {"average_size": 10, "size_variation": 2, "delay": 1500}}),
        );
        check(
            &NewToxic::new(ToxicKind::Noop {}),
            json!({"stream": "downstream", "toxicity": 1.0, "type": "noop", "attributes": {}}),
        );
    }

    #[test]
    fn toxics_decode_from_what_servers_send() {
        let go = r#"[
          {"attributes":{"latency":100,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1},
          {"attributes":{"rate":5},"name":"b","type":"bandwidth","stream":"UpStream","toxicity":0.5},
          {"attributes":{"delay":7},"name":"c","type":"slow_close","stream":"downstream","toxicity":1},
          {"attributes":{"timeout":8},"name":"d","type":"timeout","stream":"downstream","toxicity":1},
          {"attributes":{"timeout":9},"name":"e","type":"reset_peer","stream":"downstream","toxicity":1},
          {"attributes":{"average_size":1,"size_variation":2,"delay":3},"name":"f","type":"slicer","stream":"downstream","toxicity":1},
          {"attributes":{"bytes":10},"name":"g","type":"limit_data","stream":"downstream","toxicity":1},
          {"attributes":{},"name":"h","type":"noop","stream":"downstream","toxicity":1}
        ]"#;
        let toxics: Vec<Toxic> = serde_json::from_str(go).unwrap();
        assert_eq!(toxics.len(), 8);
        assert_eq!(
            toxics[0].kind,
            ToxicKind::Latency {
                latency: Duration::from_millis(100),
                jitter: Duration::ZERO
            }
        );
        assert_eq!(toxics[1].stream, Stream::Upstream);
        assert_eq!(toxics[1].toxicity, 0.5);
        assert_eq!(
            toxics[5].kind,
            ToxicKind::Slicer {
                average_size: 1,
                size_variation: 2,
                delay: Duration::from_micros(3)
            }
        );
        assert_eq!(toxics[7].kind, ToxicKind::Noop {});
        let names: Vec<&str> = toxics.iter().map(|t| t.kind.type_name()).collect();
        assert_eq!(
            names,
            [
                "latency",
                "bandwidth",
                "slow_close",
                "timeout",
                "reset_peer",
                "slicer",
                "limit_data",
                "noop"
            ]
        );
    }

    #[test]
    fn updates_send_attributes_and_toxicity_only() {
        let update = ToxicUpdate {
            kind: Some(ToxicKind::Timeout {
                timeout: Duration::from_secs(1),
            }),
            toxicity: Some(0.25),
        };
        assert_eq!(
            update.body(),
            json!({"attributes": {"timeout": 1000}, "toxicity": 0.25})
        );
        assert_eq!(ToxicUpdate::default().body(), json!({}));
        let proxy = ProxyUpdate {
            enabled: Some(false),
            ..ProxyUpdate::default()
        };
        assert_eq!(
            serde_json::to_value(proxy).unwrap(),
            json!({"enabled": false})
        );
    }

    #[test]
    fn names_are_escaped_in_paths() {
        let client = Client::new("http://127.0.0.1:8474/").unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:8474");
        assert_eq!(
            client.url(&proxy_path("a b/c")),
            "http://127.0.0.1:8474/proxies/a%20b%2Fc"
        );
        assert_eq!(
            client.url(&toxic_path("p", "t?x%25#")),
            "http://127.0.0.1:8474/proxies/p/toxics/t%3Fx%2525%23"
        );
        assert_eq!(
            client.url(&toxics_path("a\\b")),
            "http://127.0.0.1:8474/proxies/a%5Cb/toxics"
        );
        assert_eq!(client.url(&["version"]), "http://127.0.0.1:8474/version");
        let under = Client::new("http://127.0.0.1:8474/api").unwrap();
        assert_eq!(
            under.url(&proxy_path("x")),
            "http://127.0.0.1:8474/api/proxies/x"
        );
    }
}

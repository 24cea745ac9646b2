//! A small HTTP client for a sidecar's Dapr API (publish, bulk publish, metadata, health).
//!
//! It returns whatever the sidecar answered, whatever the status, as an [`ApiResponse`];
//! only transport problems are errors.
//! A request that times out is [`ClientError::Timeout`], because an indeterminate publish
//! is an outcome checkers must handle, not a harness failure.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;

/// How long one API request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Characters that cannot appear literally in a URL path. `/` and `%` are kept as given so
/// tests can send topics with slashes or their own escapes.
const PATH_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No response within the request timeout: the operation's outcome is unknown.
    #[error("{method} {url} timed out after {after:?}")]
    Timeout {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection could not be established.
    #[error("cannot connect for {method} {url}")]
    Connect {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The transport cause.
        #[source]
        source: reqwest::Error,
    },
    /// Any other transport or protocol failure (reset connection, malformed response...).
    #[error("{method} {url} failed")]
    Request {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The transport cause.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// What the sidecar answered.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Headers with lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl ApiResponse {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The Dapr `errorCode` of an error body, if any.
    pub fn error_code(&self) -> Option<String> {
        self.json()?.get("errorCode")?.as_str().map(str::to_owned)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A client for one sidecar's HTTP API.
#[derive(Debug, Clone)]
pub struct SidecarClient {
    base_url: String,
    api_token: Option<String>,
    http: reqwest::Client,
}

impl SidecarClient {
    /// A client for the sidecar at `base_url` (such as `http://127.0.0.1:3500`), sending
    /// `dapr-api-token` on every request when `api_token` is set.
    pub fn new(
        base_url: impl Into<String>,
        api_token: Option<String>,
    ) -> Result<SidecarClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(ClientError::Build)?;
        Ok(SidecarClient {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_token,
            http,
        })
    }

    /// The API token it sends, if any.
    pub fn api_token(&self) -> Option<&str> {
        self.api_token.as_deref()
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /v1.0/publish/{pubsub}/{topic}`; the topic goes into the path as given, with
    /// only characters that cannot appear in a path percent-encoded.
    pub async fn publish(
        &self,
        pubsub: &str,
        topic: &str,
        body: Bytes,
        content_type: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let path = topic_path("/v1.0/publish", pubsub, topic);
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        self.send(reqwest::Method::POST, &path, query, &headers, Some(body))
            .await
    }

    /// `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}` with a JSON body.
    pub async fn bulk_publish(
        &self,
        pubsub: &str,
        topic: &str,
        body: &Value,
        query: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let path = topic_path("/v1.0-alpha1/publish/bulk", pubsub, topic);
        let body = Bytes::from(body.to_string());
        self.send(
            reqwest::Method::POST,
            &path,
            query,
            &[("content-type", "application/json")],
            Some(body),
        )
        .await
    }

    /// `GET {path}`; `path` may carry a query string.
    pub async fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.send(reqwest::Method::GET, path, &[], &[], None).await
    }

    /// `POST {path}` with this body and these extra headers.
    pub async fn post(
        &self,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        self.send(reqwest::Method::POST, path, &[], headers, Some(body))
            .await
    }

    /// Any method, for odd requests (`PUT` publishes, `GET` on a publish URL...).
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        self.send(method, path, &[], headers, body).await
    }

    /// `GET /v1.0/metadata`.
    pub async fn metadata(&self) -> Result<ApiResponse, ClientError> {
        self.get("/v1.0/metadata").await
    }

    /// `GET /v1.0/healthz`.
    pub async fn healthz(&self) -> Result<ApiResponse, ClientError> {
        self.get("/v1.0/healthz").await
    }

    /// `GET /v1.0/healthz/outbound`.
    pub async fn healthz_outbound(&self) -> Result<ApiResponse, ClientError> {
        self.get("/v1.0/healthz/outbound").await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<ApiResponse, ClientError> {
        let url = format!("{}{}", self.base_url, path);
        let mut req = self.http.request(method.clone(), &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(token) = &self.api_token {
            req = req.header("dapr-api-token", token);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let classify = |source: reqwest::Error| {
            let (method, url) = (method.to_string(), url.clone());
            if source.is_timeout() {
                ClientError::Timeout {
                    method,
                    url,
                    after: REQUEST_TIMEOUT,
                }
            } else if source.is_connect() {
                ClientError::Connect {
                    method,
                    url,
                    source,
                }
            } else {
                ClientError::Request {
                    method,
                    url,
                    source,
                }
            }
        };
        let resp = req.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp.bytes().await.map_err(classify)?;
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }
}

fn encode_path(segment: &str) -> String {
    utf8_percent_encode(segment, PATH_UNSAFE).to_string()
}

/// `{prefix}/{pubsub}/{topic}`, both names percent-encoded as [`encode_path`] does.
fn topic_path(prefix: &str, pubsub: &str, topic: &str) -> String {
    format!("{prefix}/{}/{}", encode_path(pubsub), encode_path(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_only_what_must_be() {
        for (segment, encoded) in [
            ("orders", "orders"),
            ("a/b/c", "a/b/c"),
            ("a b?#", "a%20b%3F%23"),
            ("%2F", "%2F"),
            ("caf\u{e9}", "caf%C3%A9"),
        ] {
            assert_eq!(encode_path(segment), encoded, "{segment:?}");
        }
    }

    #[test]
    fn error_code_reads_dapr_error_bodies() {
        let r = ApiResponse {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(br#"{"errorCode":"ERR_PUBSUB_NOT_FOUND","message":"x"}"#),
        };
        assert_eq!(r.error_code().as_deref(), Some("ERR_PUBSUB_NOT_FOUND"));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert!(!r.is_success());
    }
}

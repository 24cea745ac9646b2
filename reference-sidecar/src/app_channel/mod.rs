//! The app channel: calls from the sidecar to its app. Over HTTP ([`AppChannel`]): delivery
//! POSTs with the response classified exactly as daprd does (spec §4.3), the one-time
//! `GET /dapr/subscribe`, requests forwarded by service invocation, and the wait for the app
//! port. Over gRPC (`grpc`, feature `grpc`): the `AppCallback` service.
//!
//! Owns the wire and the classification; what to do with an outcome is `delivery`'s business.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::Limits;

mod conns;
#[cfg(feature = "grpc")]
pub mod grpc;

/// How one delivery attempt ended, in daprd's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledge.
    Success,
    /// `DROP` or HTTP 404: never retried.
    Drop {
        /// 404 when the drop came from the status code.
        status: Option<u16>,
    },
    /// The streaming subscription closed with the message in flight: no retry, no
    /// dead-letter; the message is left to the broker.
    Closed,
    /// Acknowledged without delivery or dead-lettering: a gRPC app's UNIMPLEMENTED.
    Discard {
        /// What the app answered, for logs.
        reason: String,
    },
    /// A retriable error; `code` is the HTTP status or gRPC code when the app answered one
    /// (for `matching`).
    Retry {
        /// HTTP status of a non-2xx answer, or the gRPC status code of an error.
        code: Option<u16>,
        /// What happened, for logs.
        reason: String,
    },
}

/// The channel deliveries go over, in the app's protocol.
// One per subscription, cloned only when a subscription starts: its size does not matter, and
// boxing the HTTP channel would add an indirection to every delivery.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum App {
    /// `--app-protocol http`.
    Http(AppChannel),
    /// `--app-protocol grpc`.
    #[cfg(feature = "grpc")]
    Grpc(grpc::GrpcAppChannel),
    /// A streaming subscription's client.
    #[cfg(feature = "grpc")]
    Stream(std::sync::Arc<crate::streaming::StreamConn>),
}

impl App {
    /// `host:port` of the app.
    pub fn addr(&self) -> &str {
        match self {
            App::Http(a) => a.addr(),
            #[cfg(feature = "grpc")]
            App::Grpc(a) => a.addr(),
            #[cfg(feature = "grpc")]
            App::Stream(_) => "streaming subscription",
        }
    }

    /// Blocks until a TCP connect to the app succeeds, logging while it waits.
    pub async fn wait_for_port(&self) {
        wait_for_port(self.addr()).await;
    }
}

/// The app's address and the shared HTTP client.
#[derive(Clone)]
pub struct AppChannel {
    /// The app's id, for error messages.
    app_name: Arc<str>,
    /// `GET /dapr/config` and `/dapr/subscribe`, request and answer.
    init_timeout: Duration,
    /// Service invocation, until the answer's head.
    invoke_timeout: Duration,
    /// Largest answer body read from the app (`--max-body-size`, as daprd's app channel).
    max_response_bytes: usize,
    /// Service invocation and the init endpoints.
    client: Client<HttpConnector, Full<Bytes>>,
    /// Deliveries.
    conns: conns::Conns,
    base: Arc<str>,
    addr: Arc<str>,
    app_id: HeaderValue,
    token: Option<HeaderValue>,
    /// The `Host` header hyper-util would format on every request (`host:port`, or `host` alone
    /// on port 80), formatted once; `None` leaves it to hyper-util.
    host: Option<HeaderValue>,
    limiter: Limiter,
}

/// `--app-max-concurrency` as a bound on the calls in flight to the app (none below 1); shared
/// by the HTTP and gRPC channels.
#[derive(Clone)]
struct Limiter(Option<Arc<Semaphore>>);

impl Limiter {
    fn new(max_concurrency: i64) -> Limiter {
        Limiter(
            usize::try_from(max_concurrency)
                .ok()
                .filter(|n| *n > 0)
                .map(|n| Arc::new(Semaphore::new(n))),
        )
    }

    /// Waits for a free slot, when bounded; the slot is freed when the permit is dropped.
    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        match &self.0 {
            Some(l) => l.clone().acquire_owned().await.ok(),
            None => None,
        }
    }
}

/// `address` as the host of `host:port`: an IPv6 address goes in brackets.
fn host_part(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

/// The app address or token cannot be used in HTTP.
#[derive(Debug, thiserror::Error)]
#[error("invalid app channel setting: {0}")]
pub struct ChannelError(pub(crate) String);

/// What a channel needs besides the app's address: identity, token, concurrency and limits.
#[derive(Debug, Clone)]
pub struct ChannelSettings<'a> {
    /// `--app-id`.
    pub app_id: &'a str,
    /// `APP_API_TOKEN`, sent to the app.
    pub token: Option<&'a str>,
    /// `--app-max-concurrency`; < 1 means unlimited.
    pub max_concurrency: i64,
    /// Timeouts of the connect, init and invocation calls.
    pub limits: &'a Limits,
    /// Largest answer body read from the app.
    pub max_response_bytes: usize,
}

impl AppChannel {
    /// A channel to `http://address:port`.
    pub fn new(
        address: &str,
        port: u16,
        settings: &ChannelSettings<'_>,
    ) -> Result<AppChannel, ChannelError> {
        let ChannelSettings {
            app_id,
            token,
            max_concurrency,
            limits,
            max_response_bytes,
        } = *settings;
        let app_name: Arc<str> = app_id.into();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(limits.app_connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        let host = host_part(address);
        let token = token
            .map(|t| {
                let mut v = HeaderValue::from_str(t).map_err(|_| {
                    ChannelError("APP_API_TOKEN is not a valid header value".into())
                })?;
                // Kept out of `Debug` output and of HTTP/2 header compression tables.
                v.set_sensitive(true);
                Ok(v)
            })
            .transpose()?;
        let app_id = HeaderValue::from_str(app_id)
            .map_err(|_| ChannelError(format!("app id {app_id:?} is not a valid header value")))?;
        let limiter = Limiter::new(max_concurrency);
        let host_header = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let host_header = HeaderValue::from_str(&host_header).ok();
        let addr: Arc<str> = format!("{host}:{port}").into();
        Ok(AppChannel {
            app_name,
            init_timeout: limits.app_init_timeout,
            invoke_timeout: limits.invoke_timeout,
            max_response_bytes,
            client,
            conns: conns::Conns::new(addr.clone(), limits.app_connect_timeout),
            host: host_header,
            base: format!("http://{host}:{port}").into(),
            addr,
            app_id,
            token,
            limiter,
        })
    }

    /// `host:port` of the app.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Blocks until a TCP connect to the app succeeds, logging while it waits.
    pub async fn wait_for_port(&self) {
        wait_for_port(&self.addr).await;
    }

    /// `GET /dapr/<endpoint>` as daprd sends it: status and body, or why there is none. The
    /// request and the whole answer must fit in the init timeout, the body in the response cap.
    pub async fn get_init_endpoint(&self, endpoint: &str) -> Result<(u16, Bytes), InitError> {
        let path = format!("/dapr/{endpoint}");
        let call = async {
            let mut req = Request::builder()
                .method(Method::GET)
                .uri(format!("{}{path}", self.base))
                .header(header::CONTENT_TYPE, "application/json")
                .header("dapr-app-id", self.app_id.clone());
            if let Some(t) = &self.token {
                req = req.header("dapr-api-token", t.clone());
            }
            let req = req
                .body(Full::new(Bytes::new()))
                .map_err(InitError::Build)?;
            let resp = self.client.request(req).await.map_err(InitError::Send)?;
            let status = resp.status().as_u16();
            let body = read_capped(resp.into_body(), self.max_response_bytes)
                .await
                .map_err(|e| match e {
                    ReadError::TooLarge => InitError::TooLarge {
                        app: self.app_name.to_string(),
                        path: path.clone(),
                        cap: self.max_response_bytes,
                    },
                    ReadError::Body(source) => InitError::Read(source),
                })?;
            Ok((status, body))
        };
        match tokio::time::timeout(self.init_timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(InitError::Timeout {
                app: self.app_name.to_string(),
                path,
                after: self.init_timeout,
            }),
        }
    }

    /// One delivery attempt: POST `body` to `path`, classify the answer.
    pub async fn deliver(
        &self,
        path: &str,
        body: Bytes,
        headers: &HeaderMap,
        timeout: Option<Duration>,
    ) -> Outcome {
        let _permit = self.limiter.acquire().await;
        let call = self.post(path, body, headers);
        match timeout {
            Some(t) => match tokio::time::timeout(t, call).await {
                Ok(o) => o,
                Err(_) => Outcome::Retry {
                    code: None,
                    reason: format!("context deadline exceeded after {t:?}"),
                },
            },
            None => call.await,
        }
    }

    async fn post(&self, path: &str, body: Bytes, headers: &HeaderMap) -> Outcome {
        // Origin form: the connection is to the app already.
        let mut req = match Request::builder()
            .method(Method::POST)
            .uri(path)
            .body(Full::new(body))
        {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    code: None,
                    reason: format!("cannot build request: {e}"),
                };
            }
        };
        *req.headers_mut() = headers.clone();
        if let Some(t) = &self.token {
            req.headers_mut()
                .insert(HeaderName::from_static("dapr-api-token"), t.clone());
        }
        if let Some(host) = &self.host {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        let (resp, lease) = match self.conns.send(req).await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    code: None,
                    reason: format!("error sending to the app: {e}"),
                };
            }
        };
        let status = resp.status();
        let body = match read_capped(resp.into_body(), self.max_response_bytes).await {
            Ok(b) => {
                lease.release();
                b
            }
            // A connection whose answer was not read to its end is dropped, never reused.
            Err(e) => {
                if status.is_success() {
                    let reason = match e {
                        ReadError::TooLarge => format!(
                            "the answer of app {} to the delivery is larger than the {} byte cap (--max-body-size)",
                            self.app_name, self.max_response_bytes
                        ),
                        ReadError::Body(e) => format!("error reading the app's response: {e}"),
                    };
                    return Outcome::Retry { code: None, reason };
                }
                Bytes::new()
            }
        };
        classify(status, &body)
    }
}

/// Why an answer body could not be read whole.
enum ReadError {
    /// It is longer than the cap.
    TooLarge,
    /// The connection failed while reading it.
    Body(hyper::Error),
}

/// Reads a body to its end, failing as soon as it passes `cap` bytes (a `Content-Length` above
/// the cap fails before anything is read).
async fn read_capped(body: hyper::body::Incoming, cap: usize) -> Result<Bytes, ReadError> {
    use hyper::body::Body as _;
    if body
        .size_hint()
        .exact()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > cap))
    {
        return Err(ReadError::TooLarge);
    }
    match Limited::new(body, cap).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => match e.downcast::<hyper::Error>() {
            Ok(e) => Err(ReadError::Body(*e)),
            // The only other error `Limited` produces is its `LengthLimitError`.
            Err(_) => Err(ReadError::TooLarge),
        },
    }
}

/// `GET /dapr/config` or `/dapr/subscribe` got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The request cannot be formed.
    #[error("cannot build the request to the app")]
    Build(#[source] http::Error),
    /// Connecting or sending failed, or the answer's head did not arrive.
    #[error("error sending the request to the app")]
    Send(#[source] hyper_util::client::legacy::Error),
    /// The answer's body broke off.
    #[error("error reading the app's answer")]
    Read(#[source] hyper::Error),
    /// The body is longer than the cap.
    #[error(
        "the answer of app {app} to GET {path} is larger than the {cap} byte cap (--max-body-size)"
    )]
    TooLarge {
        /// The app id.
        app: String,
        /// The endpoint.
        path: String,
        /// The cap in bytes.
        cap: usize,
    },
    /// Request and answer took longer than the init timeout.
    #[error("app {app} did not answer GET {path} within {after:?}")]
    Timeout {
        /// The app id.
        app: String,
        /// The endpoint.
        path: String,
        /// The timeout.
        after: Duration,
    },
}

/// Blocks until a TCP connect to `addr` succeeds, logging while it waits.
async fn wait_for_port(addr: &str) {
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            tracing::info!(app = %addr, waited_ms = started.elapsed().as_millis() as u64, "app channel is reachable");
            return;
        }
        if last_log.elapsed() >= Duration::from_secs(5)
            || started.elapsed() < Duration::from_millis(150)
        {
            tracing::info!(app = %addr, "waiting for the app to listen");
            last_log = Instant::now();
        }
    }
}

/// A forwarded request did not get an answer from the app.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The method, path or a header cannot form a request.
    #[error("cannot build the request to the app")]
    Build(#[source] http::Error),
    /// Connecting, sending or receiving the head failed.
    #[error("error sending the request to the app")]
    Send(#[source] hyper_util::client::legacy::Error),
    /// The answer's head did not arrive in time.
    #[error("app {app} did not answer within {after:?}")]
    Timeout {
        /// The app id.
        app: String,
        /// The invocation timeout.
        after: Duration,
    },
    /// The answer's `Content-Length` is above the cap.
    #[error("the answer of app {app} is larger than the {cap} byte cap (--max-body-size)")]
    TooLarge {
        /// The app id.
        app: String,
        /// The cap in bytes.
        cap: usize,
    },
}

/// The body of a forwarded answer: streamed to the caller and cut off past the cap.
pub type ForwardBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl AppChannel {
    /// Sends one request to the app as service invocation does: `path_and_query` starts with
    /// `/`; hop-by-hop headers and the caller's `dapr-api-token` are removed and the app token,
    /// if any, added. The answer's body streams back to the caller.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<ForwardBody>, ForwardError> {
        let _permit = self.limiter.acquire().await;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .body(Full::new(body))
            .map_err(ForwardError::Build)?;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        headers.remove("dapr-api-token");
        if let Some(t) = &self.token {
            headers.insert(HeaderName::from_static("dapr-api-token"), t.clone());
        }
        *req.headers_mut() = headers;
        let resp = match tokio::time::timeout(self.invoke_timeout, self.client.request(req)).await {
            Ok(r) => r.map_err(ForwardError::Send)?,
            Err(_) => {
                return Err(ForwardError::Timeout {
                    app: self.app_name.to_string(),
                    after: self.invoke_timeout,
                });
            }
        };
        let cap = self.max_response_bytes;
        let declared = resp.headers().get(header::CONTENT_LENGTH);
        if declared
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > cap))
        {
            return Err(ForwardError::TooLarge {
                app: self.app_name.to_string(),
                cap,
            });
        }
        let app = self.app_name.clone();
        Ok(resp.map(move |body| {
            Limited::new(body, cap)
                .map_err(move |e| {
                    // Headers are sent already: the caller sees the answer cut off.
                    tracing::warn!(app = %app, "invocation answer cut off: {e} (the cap is {cap} bytes, --max-body-size)");
                    e
                })
                .boxed()
        }))
    }
}

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1, including those named by `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(n);
    }
}

/// daprd's classification of an app answer (spec §4.3).
pub fn classify(status: StatusCode, body: &[u8]) -> Outcome {
    if status == StatusCode::NOT_FOUND {
        return Outcome::Drop { status: Some(404) };
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
        return Outcome::Retry {
            code: Some(status.as_u16()),
            reason: format!(
                "retriable error returned from app, body: {text}. status code returned: {}",
                status.as_u16()
            ),
        };
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Outcome::Success;
    }
    // Only the first JSON value counts; anything unparsable is a success.
    let first = serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .next();
    let Some(Ok(serde_json::Value::Object(obj))) = first else {
        return Outcome::Success;
    };
    // Go's decoder prefers an exact key match, then a case-insensitive one.
    let status_value = obj.get("status").or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("status"))
            .map(|(_, v)| v)
    });
    match status_value {
        Some(serde_json::Value::String(s)) => match s.as_str() {
            "" | "SUCCESS" => Outcome::Success,
            "RETRY" => Outcome::Retry {
                code: None,
                reason: "RETRY status returned from app".into(),
            },
            "DROP" => Outcome::Drop { status: None },
            other => Outcome::Retry {
                code: None,
                reason: format!("unknown status returned from app: {other:?}"),
            },
        },
        _ => Outcome::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: u16, body: &str, expect: &str) {
        let got = match classify(StatusCode::from_u16(code).unwrap(), body.as_bytes()) {
            Outcome::Success => "success".to_owned(),
            Outcome::Drop { .. } => "drop".to_owned(),
            Outcome::Discard { .. } => "discard".to_owned(),
            Outcome::Closed => "closed".to_owned(),
            Outcome::Retry { code: Some(c), .. } => format!("retry {c}"),
            Outcome::Retry { code: None, .. } => "retry".to_owned(),
        };
        assert_eq!(got, expect, "{code} {body:?}");
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
            ("x-kept", "yes"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-kept"]);
    }

    #[test]
    fn response_table() {
        check(200, "", "success");
        check(204, "", "success");
        check(200, "not json", "success");
        check(200, r#""ok""#, "success");
        check(200, "[]", "success");
        check(200, r#"{"status":1}"#, "success");
        check(200, "{}", "success");
        check(200, r#"{"status":""}"#, "success");
        check(200, r#"{"status":null}"#, "success");
        check(200, "null", "success");
        check(200, r#"{"status":"SUCCESS"}"#, "success");
        check(200, r#"{"status":"RETRY"}"#, "retry");
        check(200, r#"{"status":"DROP"}"#, "drop");
        check(200, r#"{"STATUS":"DROP"}"#, "drop");
        check(200, r#"{"status":"success"}"#, "retry");
        check(200, r#"{"status":"drop"}"#, "retry");
        check(200, r#"{"status":"WHATEVER"}"#, "retry");
        check(200, r#"{"status":"DROP"} trailing"#, "drop");
        check(404, r#"{"status":"SUCCESS"}"#, "drop");
        check(500, r#"{"status":"DROP"}"#, "retry 500");
        check(400, "", "retry 400");
        check(302, "", "retry 302");
        check(429, "", "retry 429");
    }
}

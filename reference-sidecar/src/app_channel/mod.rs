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
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

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
    limiter: Option<Arc<Semaphore>>,
}

/// The app address or token cannot be used in HTTP.
#[derive(Debug, thiserror::Error)]
#[error("invalid app channel setting: {0}")]
pub struct ChannelError(pub(crate) String);

impl AppChannel {
    /// A channel to `http://address:port`; `max_concurrency` < 1 means unlimited.
    pub fn new(
        address: &str,
        port: u16,
        app_id: &str,
        token: Option<&str>,
        max_concurrency: i64,
    ) -> Result<AppChannel, ChannelError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        let host = if address.contains(':') {
            format!("[{address}]")
        } else {
            address.to_owned()
        };
        let token = token
            .map(|t| {
                HeaderValue::from_str(t)
                    .map_err(|_| ChannelError("APP_API_TOKEN is not a valid header value".into()))
            })
            .transpose()?;
        let app_id = HeaderValue::from_str(app_id)
            .map_err(|_| ChannelError(format!("app id {app_id:?} is not a valid header value")))?;
        let limiter = usize::try_from(max_concurrency)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| Arc::new(Semaphore::new(n)));
        let host_header = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let host_header = HeaderValue::from_str(&host_header).ok();
        let addr: Arc<str> = format!("{host}:{port}").into();
        Ok(AppChannel {
            client,
            conns: conns::Conns::new(addr.clone()),
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

    /// `GET /dapr/<endpoint>` as daprd sends it: status and body, or a transport error.
    pub async fn get_init_endpoint(&self, endpoint: &str) -> Result<(u16, Bytes), String> {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}/dapr/{endpoint}", self.base))
            .header(header::CONTENT_TYPE, "application/json")
            .header("dapr-app-id", self.app_id.clone());
        if let Some(t) = &self.token {
            req = req.header("dapr-api-token", t.clone());
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    /// One delivery attempt: POST `body` to `path`, classify the answer.
    pub async fn deliver(
        &self,
        path: &str,
        body: Bytes,
        headers: &HeaderMap,
        timeout: Option<Duration>,
    ) -> Outcome {
        let _permit = match &self.limiter {
            Some(l) => l.clone().acquire_owned().await.ok(),
            None => None,
        };
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
        let body = match resp.into_body().collect().await {
            Ok(b) => {
                lease.release();
                b.to_bytes()
            }
            Err(e) => {
                if status.is_success() {
                    return Outcome::Retry {
                        code: None,
                        reason: format!("error reading the app's response: {e}"),
                    };
                }
                Bytes::new()
            }
        };
        classify(status, &body)
    }
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
}

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
    ) -> Result<http::Response<hyper::body::Incoming>, ForwardError> {
        let _permit = match &self.limiter {
            Some(l) => l.clone().acquire_owned().await.ok(),
            None => None,
        };
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
        self.client.request(req).await.map_err(ForwardError::Send)
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

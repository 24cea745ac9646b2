//! The `tck-mutant` wrapper: a deliberately broken sidecar used to check the suites.
//!
//! `tck-mutant --mode MODE --app-port P -- <sidecar command...>` binds a free loopback
//! port M, starts the real sidecar with its `--app-port` value replaced by M, and proxies
//! every request the sidecar makes to the real app on P, breaking one rule per [`Mode`].
//! `GET /dapr/subscribe` and other non-delivery requests pass through untouched.
//! SIGTERM and SIGINT are forwarded to the sidecar, and the wrapper exits with its code.
//!
//! Because M always listens, the wrapped sidecar sees the app as reachable even while the
//! real app is down; requests then fail at the transport level (the proxy closes the
//! connection), like a refused connection would.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::unix::{Sig, signal_process};

/// How the wrapper breaks the sidecar's contract with the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Removes `specversion` from the CloudEvent body of deliveries.
    StripSpecversion,
    /// Turns the app's `{"status":"RETRY"}` into `{"status":"SUCCESS"}` for the sidecar.
    RetryToSuccess,
    /// Forwards each delivery to the app twice and answers with the second reply.
    DeliverTwice,
    /// Answers every third delivery with 200 SUCCESS without forwarding it.
    DropEvery3rd,
    /// Forwards deliveries with `Content-Type: application/json`.
    ContentTypeJson,
    /// Answers every delivery with 200 SUCCESS at once and forwards it to the app in the
    /// background after a short, varying delay: acknowledges before delivering, which also
    /// lets later messages overtake earlier ones and loses them when the app fails.
    AckBeforeDeliver,
    /// Pure pass-through.
    None,
}

impl Mode {
    /// Every mode, in documentation order.
    pub const ALL: [Mode; 7] = [
        Mode::StripSpecversion,
        Mode::RetryToSuccess,
        Mode::DeliverTwice,
        Mode::DropEvery3rd,
        Mode::ContentTypeJson,
        Mode::AckBeforeDeliver,
        Mode::None,
    ];

    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::StripSpecversion => "strip-specversion",
            Mode::RetryToSuccess => "retry-to-success",
            Mode::DeliverTwice => "deliver-twice",
            Mode::DropEvery3rd => "drop-every-3rd",
            Mode::ContentTypeJson => "content-type-json",
            Mode::AckBeforeDeliver => "ack-before-deliver",
            Mode::None => "none",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown mode name.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown mutant mode `{0}` (expected one of strip-specversion, retry-to-success, deliver-twice, drop-every-3rd, content-type-json, ack-before-deliver, none)"
)]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Mode, UnknownMode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// Why the wrapper could not run the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum MutantError {
    /// Nothing follows `--`.
    #[error("no sidecar command given after `--`")]
    NoCommand,
    /// The sidecar's arguments have no `--app-port` to redirect.
    #[error("the sidecar command has no `--app-port` argument to redirect")]
    NoAppPort,
    /// The proxy's port could not be read.
    #[error("cannot read the proxy's listening address")]
    Listener(#[source] std::io::Error),
    /// The sidecar could not be started.
    #[error("cannot spawn the sidecar `{}`", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the sidecar failed.
    #[error("cannot wait for the sidecar")]
    Wait(#[source] std::io::Error),
}

/// A signal the wrapper forwards to the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardSignal {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
}

/// What to wrap and how.
#[derive(Debug, Clone)]
pub struct MutantConfig {
    /// How to break the contract.
    pub mode: Mode,
    /// The real app's port.
    pub app_port: u16,
    /// The sidecar's program and arguments.
    pub command: Vec<String>,
    /// The directory a relative program path resolves against.
    pub cwd: PathBuf,
}

/// Replaces the value of `--app-port` (also `-app-port`, and the `=` forms) with `port`.
pub fn rewrite_app_port(args: &[String], port: u16) -> Result<Vec<String>, MutantError> {
    let mut out = Vec::with_capacity(args.len());
    let mut found = false;
    let mut replace_next = false;
    for a in args {
        if replace_next {
            out.push(port.to_string());
            replace_next = false;
            continue;
        }
        match a.as_str() {
            "--app-port" | "-app-port" => {
                found = true;
                replace_next = true;
                out.push(a.clone());
            }
            _ => match a.split_once('=') {
                Some((flag @ ("--app-port" | "-app-port"), _)) => {
                    found = true;
                    out.push(format!("{flag}={port}"));
                }
                _ => out.push(a.clone()),
            },
        }
    }
    if !found || replace_next {
        return Err(MutantError::NoAppPort);
    }
    Ok(out)
}

/// Resolves a relative program path that contains a `/` against `cwd`; bare names are
/// left for the `PATH` lookup.
pub fn resolve_program(program: &str, cwd: &Path) -> PathBuf {
    let p = Path::new(program);
    if p.is_relative() && program.contains('/') {
        cwd.join(p)
    } else {
        p.to_owned()
    }
}

/// Starts the sidecar behind a proxy on `listener` and waits for it to exit, forwarding
/// `signals`; returns the exit code to exit with (128 + signal number if it was killed).
pub async fn run(
    listener: TcpListener,
    config: MutantConfig,
    mut signals: mpsc::UnboundedReceiver<ForwardSignal>,
) -> Result<i32, MutantError> {
    let (program, args) = config.command.split_first().ok_or(MutantError::NoCommand)?;
    let proxy_port = listener.local_addr().map_err(MutantError::Listener)?.port();
    let args = rewrite_app_port(args, proxy_port)?;
    let program = resolve_program(program, &config.cwd);
    tracing::info!(mode = %config.mode, proxy_port, app_port = config.app_port, "wrapping {}", program.display());

    let (stop_tx, stop_rx) = watch::channel(false);
    let proxy = tokio::spawn(serve_proxy(listener, config.mode, config.app_port, stop_rx));
    let mut child = tokio::process::Command::new(&program)
        .args(&args)
        .spawn()
        .map_err(|source| MutantError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(MutantError::Wait)?,
            Some(sig) = signals.recv() => {
                if let Some(pid) = pid {
                    let sig = match sig {
                        ForwardSignal::Term => Sig::Term,
                        ForwardSignal::Int => Sig::Int,
                    };
                    let _ = signal_process(pid, sig);
                }
            }
        }
    };
    let _ = stop_tx.send(true);
    let _ = proxy.await;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Shared state of one proxy.
struct Proxy {
    mode: Mode,
    app: String,
    deliveries: AtomicU64,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The proxy failed to reach the app; the sidecar's connection is closed, which it sees as
/// a transport error.
#[derive(Debug, thiserror::Error)]
#[error("app unreachable")]
struct AppUnreachable;

/// Serves the mutating proxy on `listener`, forwarding to `127.0.0.1:app_port`, until
/// `stop` turns true.
pub async fn serve_proxy(
    listener: TcpListener,
    mode: Mode,
    app_port: u16,
    stop: watch::Receiver<bool>,
) {
    let proxy = Arc::new(Proxy {
        mode,
        app: SocketAddr::from((Ipv4Addr::LOCALHOST, app_port)).to_string(),
        deliveries: AtomicU64::new(0),
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    let mut conns = tokio::task::JoinSet::new();
    let stopped = stopping(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let proxy = Arc::clone(&proxy);
                conns.spawn(async move {
                    let service = service_fn(move |req| forward(Arc::clone(&proxy), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true or its sender is gone.
async fn stopping(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Headers that describe one hop, not the message.
const HOP_HEADERS: [header::HeaderName; 5] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
    header::UPGRADE,
];

fn strip_hop_headers(headers: &mut HeaderMap) {
    for h in &HOP_HEADERS {
        headers.remove(h);
    }
    headers.remove("keep-alive");
}

/// Applies the request-side mutation to a delivery body.
pub fn mutate_delivery_body(mode: Mode, body: Bytes) -> Bytes {
    if mode != Mode::StripSpecversion {
        return body;
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut ce)) => {
            ce.remove("specversion");
            Bytes::from(Value::Object(ce).to_string())
        }
        _ => body,
    }
}

/// Applies the response-side mutation to the app's answer to a delivery.
pub fn mutate_app_answer(mode: Mode, status: u16, body: Bytes) -> Bytes {
    if mode != Mode::RetryToSuccess || !(200..300).contains(&status) {
        return body;
    }
    let is_retry = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("status")
                .and_then(Value::as_str)
                .map(|s| s == "RETRY")
        })
        .unwrap_or(false);
    if is_retry {
        Bytes::from_static(br#"{"status":"SUCCESS"}"#)
    } else {
        body
    }
}

async fn forward(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, AppUnreachable> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| AppUnreachable)?.to_bytes();
    let is_delivery = parts.method == http::Method::POST && parts.uri.path() != "/dapr/subscribe";
    strip_hop_headers(&mut parts.headers);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri: http::Uri = format!("http://{}{}", proxy.app, path_and_query)
        .parse()
        .map_err(|_| AppUnreachable)?;

    let mut body = body;
    let mut copies = 1;
    if is_delivery {
        let n = proxy.deliveries.fetch_add(1, Ordering::SeqCst) + 1;
        match proxy.mode {
            Mode::DropEvery3rd if n.is_multiple_of(3) => {
                tracing::info!(n, path = %path_and_query, "dropping delivery without forwarding");
                return Ok(json_response(
                    200,
                    Bytes::from_static(br#"{"status":"SUCCESS"}"#),
                ));
            }
            Mode::ContentTypeJson => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
            }
            Mode::DeliverTwice => copies = 2,
            Mode::AckBeforeDeliver => {
                // The delay varies with the delivery number so that deliveries overtake each other.
                let delay = std::time::Duration::from_millis(n * 7 % 23);
                let mut out = Request::new(Full::new(body.clone()));
                *out.method_mut() = parts.method.clone();
                *out.uri_mut() = uri.clone();
                *out.headers_mut() = parts.headers.clone();
                let client = proxy.client.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = client.request(out).await;
                });
                return Ok(json_response(
                    200,
                    Bytes::from_static(br#"{"status":"SUCCESS"}"#),
                ));
            }
            _ => {}
        }
        body = mutate_delivery_body(proxy.mode, body);
    }

    let mut last = None;
    for _ in 0..copies {
        let mut out = Request::new(Full::new(body.clone()));
        *out.method_mut() = parts.method.clone();
        *out.uri_mut() = uri.clone();
        *out.headers_mut() = parts.headers.clone();
        last = Some(proxy.client.request(out).await);
    }
    let resp = match last {
        Some(Ok(r)) => r,
        _ => return Err(AppUnreachable),
    };
    let (mut rparts, rbody) = resp.into_parts();
    let rbody = rbody
        .collect()
        .await
        .map_err(|_| AppUnreachable)?
        .to_bytes();
    let rbody = if is_delivery {
        mutate_app_answer(proxy.mode, rparts.status.as_u16(), rbody)
    } else {
        rbody
    };
    strip_hop_headers(&mut rparts.headers);
    Ok(Response::from_parts(rparts, Full::new(rbody)))
}

fn json_response(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn rewrites_app_port() {
        assert_eq!(
            rewrite_app_port(&s(&["--app-id", "a", "--app-port", "3000", "-x"]), 9).unwrap(),
            s(&["--app-id", "a", "--app-port", "9", "-x"])
        );
        assert_eq!(
            rewrite_app_port(&s(&["--app-port=3000"]), 9).unwrap(),
            s(&["--app-port=9"])
        );
        assert_eq!(
            rewrite_app_port(&s(&["-app-port", "1"]), 9).unwrap(),
            s(&["-app-port", "9"])
        );
        assert!(matches!(
            rewrite_app_port(&s(&["--app-id", "a"]), 9),
            Err(MutantError::NoAppPort)
        ));
        assert!(matches!(
            rewrite_app_port(&s(&["--app-port"]), 9),
            Err(MutantError::NoAppPort)
        ));
    }

    #[test]
    fn modes_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("nope".parse::<Mode>().is_err());
    }

    #[test]
    fn body_mutations() {
        let ce = Bytes::from_static(br#"{"id":"1","specversion":"1.0","data":{}}"#);
        let stripped: Value =
            serde_json::from_slice(&mutate_delivery_body(Mode::StripSpecversion, ce.clone()))
                .unwrap();
        assert_eq!(stripped, serde_json::json!({"id": "1", "data": {}}));
        let not_json = Bytes::from_static(b"raw");
        assert_eq!(
            mutate_delivery_body(Mode::StripSpecversion, not_json.clone()),
            not_json
        );
        assert_eq!(mutate_delivery_body(Mode::None, ce.clone()), ce);
        let retry = Bytes::from_static(br#"{"status":"RETRY"}"#);
        assert_eq!(
            mutate_app_answer(Mode::RetryToSuccess, 200, retry.clone()),
            Bytes::from_static(br#"{"status":"SUCCESS"}"#)
        );
        assert_eq!(
            mutate_app_answer(Mode::RetryToSuccess, 500, retry.clone()),
            retry
        );
        assert_eq!(mutate_app_answer(Mode::None, 200, retry.clone()), retry);
    }

    #[test]
    fn resolves_relative_programs() {
        let cwd = Path::new("/ws");
        assert_eq!(
            resolve_program("target/release/x", cwd),
            PathBuf::from("/ws/target/release/x")
        );
        assert_eq!(resolve_program("daprd", cwd), PathBuf::from("daprd"));
        assert_eq!(resolve_program("/bin/x", cwd), PathBuf::from("/bin/x"));
    }
}

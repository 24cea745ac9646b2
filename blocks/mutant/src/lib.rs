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
//!
//! API modes ([`Mode::is_api`]) break the sidecar's contract with its *clients* instead: with
//! `--api-port A --sidecar-http-port S` the wrapper listens on A (the port clients were
//! given) and forwards every request to the sidecar's HTTP API, which the command line runs on
//! S; the app side is then a pure pass-through.
//!
//! With `--app-protocol grpc` the app-side proxy is a gRPC one (the `AppCallback` service; see
//! `grpc.rs`), breaking the same rules in gRPC's terms.
//!
//! The broker mode [`Mode::NeverAck`] copies the `--resources-path` directory with every
//! `redisHost` pointed at a Redis-protocol proxy of the wrapper, which answers `XACK` itself
//! and forwards everything else: the sidecar believes it acknowledged, Redis still holds every
//! entry as pending. The rewrite is textual (a `value:` line after `name: redisHost`), which
//! the kit's component templates satisfy. The resources mode [`Mode::ScopesIgnored`] copies
//! the directory the same way, without the topic-scoping metadata entries.

#![warn(missing_docs)]

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

use harness::unix::{Sig, signal_process};

pub mod cli;
mod grpc;

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
    /// API mode: removes `metadata.ttlInSeconds` and `metadata.ttl` from publish requests, so
    /// the sidecar never learns a message's TTL (expired messages are delivered).
    TtlIgnored,
    /// API mode: adds the wrapper's own `DAPR_API_TOKEN` to bulk publish requests that lack
    /// it, so one route accepts unauthenticated clients.
    TokenBypassBulk,
    /// API mode on the gRPC API: `--api-port` is the gRPC port clients were given and
    /// `--sidecar-grpc-port` the sidecar's; adds the wrapper's own `DAPR_API_TOKEN` to
    /// `PublishEvent` calls that lack it, so one method accepts unauthenticated clients.
    TokenBypassGrpc,
    /// API mode: resets the connection, without an answer, on a publish whose
    /// `metadata.ttlInSeconds` (or `metadata.ttl`) is over 10^11 seconds: the panic of a
    /// connection task on a TTL past year 9999, the first bug a robustness campaign found.
    ResetOnHugeTtl,
    /// Resources mode: copies the `--resources-path` directory without the topic-scoping
    /// metadata (`publishingScopes`, `subscriptionScopes`, `allowedTopics`,
    /// `protectedTopics`), so every app may publish and subscribe to every topic.
    ScopesIgnored,
    /// Broker mode: Redis never sees an `XACK` (the wrapper answers it), so every entry stays
    /// pending and is claimed and delivered again after the component's processing timeout.
    NeverAck,
    /// Pure pass-through.
    None,
}

impl Mode {
    /// Every mode, in documentation order.
    pub const ALL: [Mode; 13] = [
        Mode::StripSpecversion,
        Mode::RetryToSuccess,
        Mode::DeliverTwice,
        Mode::DropEvery3rd,
        Mode::ContentTypeJson,
        Mode::AckBeforeDeliver,
        Mode::TtlIgnored,
        Mode::TokenBypassBulk,
        Mode::TokenBypassGrpc,
        Mode::ResetOnHugeTtl,
        Mode::ScopesIgnored,
        Mode::NeverAck,
        Mode::None,
    ];

    /// Whether the mode works on the client-to-sidecar API (it needs `--api-port` and
    /// `--sidecar-http-port`) rather than on deliveries to the app.
    pub fn is_api(self) -> bool {
        matches!(
            self,
            Mode::TtlIgnored | Mode::TokenBypassBulk | Mode::TokenBypassGrpc | Mode::ResetOnHugeTtl
        )
    }

    /// The API a mode sits on, for API modes: clients reach the wrapper on that API's port,
    /// and the sidecar's command line is moved to `{wrapper_port}`.
    pub fn api_side(self) -> Option<ApiSide> {
        match self {
            Mode::TtlIgnored | Mode::TokenBypassBulk | Mode::ResetOnHugeTtl => Some(ApiSide::Http),
            Mode::TokenBypassGrpc => Some(ApiSide::Grpc),
            _ => None,
        }
    }

    /// Whether the mode also breaks deliveries to a gRPC app (`--app-protocol grpc`); the
    /// others proxy an HTTP app only, so a target they wrap loses the `app.grpc` capability.
    pub fn proxies_grpc_app(self) -> bool {
        matches!(
            self,
            Mode::StripSpecversion
                | Mode::RetryToSuccess
                | Mode::DeliverTwice
                | Mode::DropEvery3rd
                | Mode::AckBeforeDeliver
                | Mode::None
        )
    }

    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::StripSpecversion => "strip-specversion",
            Mode::RetryToSuccess => "retry-to-success",
            Mode::DeliverTwice => "deliver-twice",
            Mode::DropEvery3rd => "drop-every-3rd",
            Mode::ContentTypeJson => "content-type-json",
            Mode::AckBeforeDeliver => "ack-before-deliver",
            Mode::TtlIgnored => "ttl-ignored",
            Mode::TokenBypassBulk => "token-bypass-bulk",
            Mode::TokenBypassGrpc => "token-bypass-grpc",
            Mode::ResetOnHugeTtl => "reset-on-huge-ttl",
            Mode::ScopesIgnored => "scopes-ignored",
            Mode::NeverAck => "never-ack",
            Mode::None => "none",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sidecar API an API mode sits in front of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiSide {
    /// The HTTP API (`{http_port}`).
    Http,
    /// The gRPC API (`{grpc_port}`).
    Grpc,
}

/// `target` behind the wrapper in `mode`: a target file that launches
/// `wrapper... --mode MODE --app-port {app_port} ... -- <target's command line>`, named
/// `mutant-<mode>-<target's name>`. `wrapper` is the wrapper's program and its leading
/// arguments: `tck-mutant`, or `pubsub-tck mutant`.
///
/// The target's command line must pass the app's port as `--app-port {app_port}` (daprd's
/// flag), and for API modes its API port as `{http_port}` (or `{grpc_port}`), which moves to
/// `{wrapper_port}`. The wrapped target claims no streaming subscriptions (they do not pass
/// through the app's port, so no mode breaks them) and, unless the mode proxies a gRPC app,
/// no `app.grpc`.
pub fn wrap(
    target: &harness::TargetFile,
    mode: Mode,
    wrapper: &[String],
) -> Result<harness::TargetFile, harness::target::TargetError> {
    let needs =
        |key: &'static str, reason: &'static str| harness::target::TargetError::InvalidValue {
            path: target.path().to_owned(),
            key,
            reason,
        };
    let args = target.launch_args().ok_or_else(|| needs(
        "url",
        "an attached sidecar cannot be wrapped: the self-check starts the sidecar behind a wrapper",
    ))?;
    let app_port = args.iter().any(|a| {
        ["--app-port", "-app-port"].contains(&a.as_str())
            || a.starts_with("--app-port=")
            || a.starts_with("-app-port=")
    });
    if !app_port {
        return Err(needs(
            "args",
            "the self-check's wrapper needs the app's port as `--app-port {app_port}` (daprd's flag)",
        ));
    }
    let mut leading: Vec<String> = wrapper.to_vec();
    leading.extend([
        "--mode".to_owned(),
        mode.as_str().to_owned(),
        "--app-port".to_owned(),
        "{app_port}".to_owned(),
    ]);
    if mode.proxies_grpc_app() {
        leading.extend(["--app-protocol".to_owned(), "{app_protocol}".to_owned()]);
    }
    let rename = match mode.api_side() {
        None => None,
        Some(side) => {
            let (port, flag) = match side {
                ApiSide::Http => ("http_port", "--sidecar-http-port"),
                ApiSide::Grpc => ("grpc_port", "--sidecar-grpc-port"),
            };
            if !args.iter().any(|a| a.contains(&format!("{{{port}}}"))) {
                return Err(needs(
                    "args",
                    "an API mode of the self-check's wrapper needs the sidecar's API ports as `{http_port}` and `{grpc_port}`",
                ));
            }
            if args.iter().any(|a| a.contains("{wrapper_port}")) {
                return Err(needs(
                    "args",
                    "an API mode of the self-check's wrapper needs `{wrapper_port}` for itself",
                ));
            }
            leading.extend([
                "--api-port".to_owned(),
                format!("{{{port}}}"),
                flag.to_owned(),
                "{wrapper_port}".to_owned(),
            ]);
            Some((port, "wrapper_port"))
        }
    };
    let capabilities = target
        .capabilities()
        .iter()
        .filter(|c| *c != "streaming" && (mode.proxies_grpc_app() || *c != "app.grpc"))
        .cloned()
        .collect();
    target.wrapped(
        &format!("mutant-{mode}-{}", target.name()),
        &leading,
        rename,
        capabilities,
    )
}

/// An unknown mode name.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown mutant mode `{0}` (expected one of strip-specversion, retry-to-success, deliver-twice, drop-every-3rd, content-type-json, ack-before-deliver, ttl-ignored, token-bypass-bulk, token-bypass-grpc, reset-on-huge-ttl, scopes-ignored, never-ack, none)"
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
    /// An API mode was asked for without the two API ports.
    #[error("mode `{0}` works on the sidecar's API: give --api-port and --sidecar-http-port")]
    NeedsApiPorts(Mode),
    /// `never-ack` and `scopes-ignored` need the sidecar's `--resources-path` to rewrite.
    #[error(
        "modes `never-ack` and `scopes-ignored` need a `--resources-path` argument in the sidecar command"
    )]
    NoResourcesPath,
    /// The resources directory could not be copied with its Redis hosts rewritten.
    #[error("cannot rewrite the resources in {}", dir.display())]
    Resources {
        /// The directory.
        dir: PathBuf,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
    /// The API port (the one clients were given) could not be bound.
    #[error("cannot listen on the API port 127.0.0.1:{port}")]
    ApiListener {
        /// The port.
        port: u16,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
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
    /// For API modes: the port clients call, and the port the sidecar's HTTP API runs on.
    pub api: Option<ApiPorts>,
    /// The protocol between the sidecar and the app, and so of the app-side proxy.
    pub app_protocol: harness::AppProtocol,
}

/// The two ports of an API mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiPorts {
    /// Where the wrapper listens: the port clients were given (`{http_port}`).
    pub listen: u16,
    /// Where the sidecar's HTTP API listens (`{wrapper_port}`, passed in its command line).
    pub sidecar: u16,
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
    let mut args = rewrite_app_port(args, proxy_port)?;
    let program = resolve_program(program, &config.cwd);
    tracing::info!(mode = %config.mode, proxy_port, app_port = config.app_port, "wrapping {}", program.display());

    let (stop_tx, stop_rx) = watch::channel(false);
    let api_proxy = match (config.mode.is_api(), config.api) {
        (true, None) => return Err(MutantError::NeedsApiPorts(config.mode)),
        (true, Some(api)) => {
            let api_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, api.listen))
                .await
                .map_err(|source| MutantError::ApiListener {
                    port: api.listen,
                    source,
                })?;
            let token = std::env::var("DAPR_API_TOKEN").ok();
            if config.mode == Mode::TokenBypassGrpc {
                Some(tokio::spawn(grpc::serve_api_proxy(
                    api_listener,
                    api.sidecar,
                    token,
                    stop_rx.clone(),
                )))
            } else {
                Some(tokio::spawn(serve_api_proxy(
                    api_listener,
                    config.mode,
                    api.sidecar,
                    token,
                    stop_rx.clone(),
                )))
            }
        }
        (false, _) => None,
    };
    let mut resp_proxies = Vec::new();
    if config.mode == Mode::NeverAck {
        let (rewritten, upstreams) = redirect_redis_hosts(&mut args, &config.cwd)?;
        for (listener, upstream) in upstreams {
            tracing::info!(%upstream, dir = %rewritten.display(), "answering XACK for Redis");
            resp_proxies.push(tokio::spawn(serve_never_ack(
                listener,
                upstream,
                stop_rx.clone(),
            )));
        }
    }
    if config.mode == Mode::ScopesIgnored {
        let rewritten = drop_topic_scopes(&mut args, &config.cwd)?;
        tracing::info!(dir = %rewritten.display(), "resources without topic scopes");
    }
    let app_mode = if config.mode.is_api()
        || config.mode == Mode::NeverAck
        || config.mode == Mode::ScopesIgnored
    {
        Mode::None
    } else {
        config.mode
    };
    let proxy = match config.app_protocol {
        harness::AppProtocol::Http => {
            tokio::spawn(serve_proxy(listener, app_mode, config.app_port, stop_rx))
        }
        harness::AppProtocol::Grpc => tokio::spawn(grpc::serve_proxy(
            listener,
            app_mode,
            config.app_port,
            stop_rx,
        )),
    };
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
    if let Some(api_proxy) = api_proxy {
        let _ = api_proxy.await;
    }
    for p in resp_proxies {
        let _ = p.await;
    }
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
    serve_http(listener, stop, move |req| forward(Arc::clone(&proxy), req)).await;
}

/// Serves HTTP/1 on `listener` with `handle` for every request until `stop` turns true, then
/// drops every open connection.
async fn serve_http<H, F, E>(listener: TcpListener, stop: watch::Receiver<bool>, handle: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    harness::serve::until_stopped(listener, stop, move |stream| {
        let handle = handle.clone();
        async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        }
    })
    .await;
}

/// Resolves once `stop` turns true or its sender is gone.
use harness::serve::stopping;

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

/// How long `ack-before-deliver` holds delivery number `n` (from 1) after answering SUCCESS.
///
/// The base leaves the sidecar time to pass the early acknowledgement on to its broker before
/// the app sees the message, even on a loaded machine, so a check that kills the sidecar once
/// the app has the message sees the loss the mutant stands for. The varying part lets
/// deliveries overtake each other.
pub fn ack_before_deliver_delay(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(250 + n * 7 % 23)
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
                let delay = ack_before_deliver_delay(n);
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
    let (rparts, rbody) = read_answer(resp).await?;
    let rbody = if is_delivery {
        mutate_app_answer(proxy.mode, rparts.status.as_u16(), rbody)
    } else {
        rbody
    };
    Ok(Response::from_parts(rparts, Full::new(rbody)))
}

/// Copies the directory after `--resources-path` in `args` to a sibling `<dir>.never-ack`, with
/// every `redisHost` value replaced by the address of a new loopback listener, and points
/// `args` at the copy. Returns the copy and each listener with the Redis address it stands for.
fn redirect_redis_hosts(
    args: &mut [String],
    cwd: &Path,
) -> Result<(PathBuf, Vec<(TcpListener, String)>), MutantError> {
    let mut proxies: Vec<(std::net::TcpListener, String)> = Vec::new();
    let copy = rewrite_resources(args, cwd, "never-ack", |text| {
        let mut out = String::with_capacity(text.len());
        let mut after_redis_host = false;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim();
            if after_redis_host && let Some(value) = trimmed.strip_prefix("value:") {
                let upstream = value.trim().trim_matches('"').to_owned();
                let existing = proxies.iter().position(|(_, u)| *u == upstream);
                let i = match existing {
                    Some(i) => i,
                    None => {
                        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
                        l.set_nonblocking(true)?;
                        proxies.push((l, upstream));
                        proxies.len() - 1
                    }
                };
                let addr = proxies[i].0.local_addr()?;
                let indent = &line[..line.len() - line.trim_start().len()];
                out.push_str(&format!("{indent}value: \"{addr}\"\n"));
                after_redis_host = false;
                continue;
            }
            after_redis_host = trimmed.ends_with("name: redisHost");
            out.push_str(line);
        }
        Ok(out)
    })?;
    let proxies = proxies
        .into_iter()
        .map(|(l, upstream)| Ok((TcpListener::from_std(l)?, upstream)))
        .collect::<std::io::Result<_>>()
        .map_err(|source| MutantError::Resources {
            dir: copy.clone(),
            source,
        })?;
    Ok((copy, proxies))
}

/// Copies the directory after `--resources-path` in `args` to a sibling `<dir>.<suffix>`, each
/// file's text through `rewrite`, points `args` at the copy and returns it.
fn rewrite_resources(
    args: &mut [String],
    cwd: &Path,
    suffix: &str,
    mut rewrite: impl FnMut(&str) -> std::io::Result<String>,
) -> Result<PathBuf, MutantError> {
    let at = resources_path_value(args)?;
    let dir = cwd.join(&args[at]);
    let copy = PathBuf::from(format!("{}.{suffix}", dir.display()));
    let io = |source| MutantError::Resources {
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&copy).map_err(io)?;
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let name = path.file_name().map(PathBuf::from).unwrap_or_default();
        std::fs::write(copy.join(name), rewrite(&text).map_err(io)?).map_err(io)?;
    }
    args[at] = copy.display().to_string();
    Ok(copy)
}

/// Where the value of the sidecar's `--resources-path` argument is, for the modes that start it
/// on a rewritten copy of its resources.
fn resources_path_value(args: &[String]) -> Result<usize, MutantError> {
    args.iter()
        .position(|a| a == "--resources-path" || a == "-resources-path")
        .and_then(|i| (i + 1 < args.len()).then_some(i + 1))
        .ok_or(MutantError::NoResourcesPath)
}

/// The component metadata names that scope topics.
const SCOPE_KEYS: [&str; 4] = [
    "publishingScopes",
    "subscriptionScopes",
    "allowedTopics",
    "protectedTopics",
];

/// Copies the `--resources-path` directory next to itself without the topic-scoping metadata
/// entries (each a `name:` line and the `value:` line after it), points the argument at the
/// copy and returns it.
fn drop_topic_scopes(args: &mut [String], cwd: &Path) -> Result<PathBuf, MutantError> {
    rewrite_resources(args, cwd, "scopes-ignored", |text| {
        Ok(without_topic_scopes(text))
    })
}

/// `text` without its topic-scoping metadata entries.
pub fn without_topic_scopes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skip_value = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if skip_value && trimmed.starts_with("value:") {
            skip_value = false;
            continue;
        }
        let key = trimmed
            .trim_start_matches("- ")
            .trim_start_matches("name:")
            .trim();
        if trimmed.trim_start_matches("- ").starts_with("name:")
            && SCOPE_KEYS
                .iter()
                .any(|k| key.trim_matches('"').eq_ignore_ascii_case(k))
        {
            skip_value = true;
            continue;
        }
        skip_value = false;
        out.push_str(line);
    }
    out
}

/// One reply owed to the client of the Redis proxy, in command order.
enum Owed {
    /// The server's next reply.
    Server,
    /// A reply the proxy makes up (`XACK`).
    Local(Vec<u8>),
}

/// Accepts Redis clients on `listener` and connects each to `upstream`, answering `XACK`
/// itself, until `stop` turns true.
async fn serve_never_ack(listener: TcpListener, upstream: String, stop: watch::Receiver<bool>) {
    harness::serve::until_stopped(listener, stop, move |client| {
        let upstream = upstream.clone();
        async move {
            if let Ok(server) = tokio::net::TcpStream::connect(&upstream).await {
                never_ack_connection(client, server).await;
            }
        }
    })
    .await;
}

/// Relays one client connection: commands go to the server unless they are `XACK`; replies
/// come back in command order, the made-up ones in their place.
async fn never_ack_connection(client: tokio::net::TcpStream, server: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let (owed_tx, mut owed_rx) = mpsc::unbounded_channel::<Owed>();
    let commands = async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = client_rx.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Ok(Some((value, end))) = harness::resp::decode(&buf, start) {
                let owed = match harness::resp::command_name(&value) {
                    Some((name, args)) if name == "XACK" => {
                        // XACK key group id...: the number of ids it would acknowledge.
                        Owed::Local(format!(":{}\r\n", args.saturating_sub(2)).into_bytes())
                    }
                    _ => {
                        if server_tx.write_all(&buf[start..end]).await.is_err() {
                            return;
                        }
                        Owed::Server
                    }
                };
                if owed_tx.send(owed).is_err() {
                    return;
                }
                start = end;
            }
            if harness::resp::decode(&buf, start).is_err() {
                return; // not RESP: drop the connection
            }
            buf.drain(..start);
        }
    };
    let replies = async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        while let Some(owed) = owed_rx.recv().await {
            let bytes = match owed {
                Owed::Local(bytes) => bytes,
                Owed::Server => loop {
                    match harness::resp::decode(&buf, 0) {
                        Ok(Some((_, end))) => break buf.drain(..end).collect::<Vec<u8>>(),
                        Ok(None) => {}
                        Err(_) => return,
                    }
                    let n = server_rx.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                },
            };
            if client_tx.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends the relay (the sidecar reconnects as it would to a lost server).
    tokio::select! {
        () = commands => {}
        () = replies => {}
    }
}

/// Shared state of the API proxy.
struct ApiProxy {
    mode: Mode,
    sidecar: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Serves the API proxy on `listener`, forwarding to the sidecar's HTTP API on
/// `127.0.0.1:sidecar_port`, until `stop` turns true. While the sidecar is not listening yet,
/// requests answer 502, so readiness probes keep waiting.
async fn serve_api_proxy(
    listener: TcpListener,
    mode: Mode,
    sidecar_port: u16,
    token: Option<String>,
    stop: watch::Receiver<bool>,
) {
    let proxy = Arc::new(ApiProxy {
        mode,
        sidecar: SocketAddr::from((Ipv4Addr::LOCALHOST, sidecar_port)).to_string(),
        token,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    serve_http(listener, stop, move |req| {
        forward_api(Arc::clone(&proxy), req)
    })
    .await;
}

async fn forward_api(
    proxy: Arc<ApiProxy>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, AppUnreachable> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if proxy.mode == Mode::ResetOnHugeTtl && has_huge_ttl(&path_and_query) {
        // A service error makes hyper close the connection without an answer. The head names
        // the TTL, so the body is never read: a client that waits for an early answer before
        // sending it sees the close at once.
        return Err(AppUnreachable);
    }
    let body = body.collect().await.map_err(|_| AppUnreachable)?.to_bytes();
    strip_hop_headers(&mut parts.headers);
    let path_and_query = mutate_api_request(
        proxy.mode,
        &path_and_query,
        &mut parts.headers,
        proxy.token.as_deref(),
    );
    let Ok(uri) = format!("http://{}{}", proxy.sidecar, path_and_query).parse::<http::Uri>() else {
        return Ok(json_response(502, Bytes::new()));
    };
    let mut out = Request::new(Full::new(body));
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = parts.headers;
    let Ok(resp) = proxy.client.request(out).await else {
        return Ok(json_response(502, Bytes::new()));
    };
    let (rparts, rbody) = read_answer(resp).await?;
    Ok(Response::from_parts(rparts, Full::new(rbody)))
}

/// An answer read whole, without the headers of its hop.
async fn read_answer(
    resp: Response<Incoming>,
) -> Result<(http::response::Parts, Bytes), AppUnreachable> {
    let (mut parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|_| AppUnreachable)?.to_bytes();
    strip_hop_headers(&mut parts.headers);
    Ok((parts, body))
}

/// Applies an API mode to one client request: returns the path and query to forward, and may
/// add headers. Other modes return it unchanged.
pub fn mutate_api_request(
    mode: Mode,
    path_and_query: &str,
    headers: &mut HeaderMap,
    token: Option<&str>,
) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let is_publish = path.starts_with("/v1.0/publish/") || path.contains("/publish/bulk/");
    match mode {
        Mode::TtlIgnored if is_publish => {
            let Some(query) = query else {
                return path_and_query.to_owned();
            };
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                    !(key.eq_ignore_ascii_case("metadata.ttlInSeconds")
                        || key.eq_ignore_ascii_case("metadata.ttl"))
                })
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        Mode::TokenBypassBulk if path.contains("/publish/bulk/") => {
            if let Some(token) = token
                && !headers.contains_key("dapr-api-token")
                && let Ok(value) = http::HeaderValue::from_str(token)
            {
                headers.insert("dapr-api-token", value);
            }
            path_and_query.to_owned()
        }
        _ => path_and_query.to_owned(),
    }
}

/// Whether `path_and_query` is a publish with a TTL over 10^11 seconds.
pub fn has_huge_ttl(path_and_query: &str) -> bool {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return false;
    };
    if !(path.starts_with("/v1.0/publish/") || path.contains("/publish/bulk/")) {
        return false;
    }
    query.split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key.eq_ignore_ascii_case("metadata.ttlInSeconds")
            || key.eq_ignore_ascii_case("metadata.ttl"))
            && value.parse::<u128>().is_ok_and(|n| n > 100_000_000_000)
    })
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

    /// `wrap` of a daprd-style target in `mode`: the launched command line, expanded, and the
    /// capabilities.
    fn wrapped(mode: Mode) -> Result<(Vec<String>, Vec<String>), String> {
        let text = r#"
name = "mine"
command = "/opt/sidecar"
args = ["--app-port", "{app_port}", "--app-protocol", "{app_protocol}",
        "--dapr-http-port", "{http_port}", "--dapr-grpc-port", "{grpc_port}",
        "--resources-path", "{resources_dir}"]
capabilities = ["bulk", "app.grpc", "streaming", "pubsub.redis"]
"#;
        let target = harness::TargetFile::parse(text, Path::new("/work/mine.toml"))
            .map_err(|e| e.to_string())?;
        let t =
            wrap(&target, mode, &s(&["/bin/pubsub-tck", "mutant"])).map_err(|e| e.to_string())?;
        let vars = harness::target::LaunchVars {
            app_id: "a".to_owned(),
            app_port: 1,
            http_port: 2,
            grpc_port: 3,
            metrics_port: 4,
            internal_grpc_port: 5,
            wrapper_port: 6,
            app_protocol: "grpc",
            resources_dir: PathBuf::from("/r"),
            config_file: None,
        };
        let (program, args, _) = t.command_line(&vars).map_err(|e| e.to_string())?;
        let mut line = vec![program.display().to_string()];
        line.extend(args);
        Ok((line, t.capabilities().to_vec()))
    }

    #[test]
    fn an_app_mode_wraps_the_command_line_and_keeps_grpc_apps() {
        let (line, caps) = wrapped(Mode::DropEvery3rd).unwrap();
        assert_eq!(
            line.join(" "),
            "/bin/pubsub-tck mutant --mode drop-every-3rd --app-port 1 --app-protocol grpc -- \
             /opt/sidecar --app-port 1 --app-protocol grpc --dapr-http-port 2 --dapr-grpc-port 3 --resources-path /r"
        );
        assert_eq!(caps, s(&["bulk", "app.grpc", "pubsub.redis"]));
    }

    #[test]
    fn an_api_mode_takes_the_api_port_and_moves_the_sidecar_to_the_wrapper_port() {
        let (line, caps) = wrapped(Mode::TtlIgnored).unwrap();
        assert_eq!(
            line.join(" "),
            "/bin/pubsub-tck mutant --mode ttl-ignored --app-port 1 --api-port 2 --sidecar-http-port 6 -- \
             /opt/sidecar --app-port 1 --app-protocol grpc --dapr-http-port 6 --dapr-grpc-port 3 --resources-path /r"
        );
        assert_eq!(caps, s(&["bulk", "pubsub.redis"]));
        let (line, _) = wrapped(Mode::TokenBypassGrpc).unwrap();
        assert!(
            line.join(" ").contains(
                "--api-port 3 --sidecar-grpc-port 6 -- /opt/sidecar --app-port 1 --app-protocol grpc --dapr-http-port 2 --dapr-grpc-port 6"
            ),
            "{line:?}"
        );
    }

    #[test]
    fn a_target_without_app_port_or_attached_cannot_be_wrapped() {
        let bad = harness::TargetFile::parse(
            "name = \"x\"\ncommand = \"/opt/s\"\nargs = [\"--port\", \"{app_port}\"]\n",
            Path::new("/w/x.toml"),
        )
        .unwrap();
        let e = wrap(&bad, Mode::None, &s(&["w"])).unwrap_err().to_string();
        assert!(e.contains("x.toml"), "{e}");
        let attached = harness::TargetFile::parse(
            "name = \"y\"\nurl = \"http://127.0.0.1:3500\"\n",
            Path::new("/w/y.toml"),
        )
        .unwrap();
        assert!(wrap(&attached, Mode::None, &s(&["w"])).is_err());
    }

    #[test]
    fn topic_scopes_are_dropped_and_nothing_else() {
        let text = "spec:\n  metadata:\n  - name: protectedTopics\n    value: \"secret\"\n  - name: consumerID\n    value: \"x\"\n  - name: subscriptionScopes\n    value: \"a=b\"\n";
        assert_eq!(
            without_topic_scopes(text),
            "spec:\n  metadata:\n  - name: consumerID\n    value: \"x\"\n"
        );
    }

    #[test]
    fn huge_ttls_are_those_past_10_to_the_11_seconds_on_publishes() {
        assert!(has_huge_ttl(
            "/v1.0/publish/p/t?metadata.ttlInSeconds=400000000000"
        ));
        assert!(has_huge_ttl(
            "/v1.0-alpha1/publish/bulk/p/t?a=1&metadata.TTL=99999999999999999999"
        ));
        assert!(!has_huge_ttl(
            "/v1.0/publish/p/t?metadata.ttlInSeconds=100000000000"
        ));
        assert!(!has_huge_ttl(
            "/v1.0/publish/p/t?metadata.ttlInSeconds=-400000000000"
        ));
        assert!(!has_huge_ttl(
            "/v1.0/state/s?metadata.ttlInSeconds=400000000000"
        ));
        assert!(!has_huge_ttl("/v1.0/publish/p/t"));
    }

    #[test]
    fn ttl_ignored_strips_ttl_from_publishes_only() {
        let mut h = HeaderMap::new();
        let m = |pq: &str, h: &mut HeaderMap| mutate_api_request(Mode::TtlIgnored, pq, h, None);
        assert_eq!(
            m("/v1.0/publish/p/t?metadata.ttlInSeconds=1", &mut h),
            "/v1.0/publish/p/t"
        );
        assert_eq!(
            m(
                "/v1.0/publish/p/t?metadata.partitionKey=k&metadata.TTLINSECONDS=1&metadata.ttl=2",
                &mut h
            ),
            "/v1.0/publish/p/t?metadata.partitionKey=k"
        );
        assert_eq!(
            m("/v1.0/state/s?metadata.ttlInSeconds=1", &mut h),
            "/v1.0/state/s?metadata.ttlInSeconds=1"
        );
        assert_eq!(
            mutate_api_request(
                Mode::None,
                "/v1.0/publish/p/t?metadata.ttlInSeconds=1",
                &mut h,
                None
            ),
            "/v1.0/publish/p/t?metadata.ttlInSeconds=1"
        );
        assert!(h.is_empty());
    }

    #[test]
    fn token_bypass_adds_the_token_on_bulk_publishes_only() {
        let bypass = |pq: &str| {
            let mut h = HeaderMap::new();
            mutate_api_request(Mode::TokenBypassBulk, pq, &mut h, Some("s3cret"));
            h.get("dapr-api-token")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            bypass("/v1.0-alpha1/publish/bulk/p/t").as_deref(),
            Some("s3cret")
        );
        assert_eq!(bypass("/v1.0/publish/bulk/p/t").as_deref(), Some("s3cret"));
        assert_eq!(bypass("/v1.0/publish/p/t"), None);
        let mut h = HeaderMap::new();
        h.insert("dapr-api-token", http::HeaderValue::from_static("mine"));
        mutate_api_request(
            Mode::TokenBypassBulk,
            "/v1.0/publish/bulk/p/t",
            &mut h,
            Some("s3cret"),
        );
        assert_eq!(h.get("dapr-api-token").unwrap(), "mine");
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

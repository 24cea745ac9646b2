//! The Toxiproxy API contract: one suite, run against the bundled server always and against
//! a real Toxiproxy when `TOXIPROXY_URL` is set (listed as ignored otherwise).
//!
//! Every endpoint, status code and JSON shape, and the observable effect of every toxic on
//! real loopback traffic: each case starts its own echo, sender or sink upstream and goes
//! through a proxy it creates. Expectations come from the Toxiproxy documentation of the
//! behaviour, not from the bundled server. Timing bounds are firm below and loose above
//! ([`SLACK`]), for loaded machines; nothing sleeps to synchronise: every wait is on an
//! observable condition with a deadline, and "nothing arrives" uses the [`QUIET`] window.
//!
//! A real Toxiproxy must run on this machine (proxies listen on 127.0.0.1 and connect to
//! upstreams on 127.0.0.1); its cases run one at a time, since `/reset` is global.

// `allow-unwrap-in-tests` does not reach helper functions in `tests/` (rust-clippy #13981).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{DEADLINE, echo, listener, round_trip, within};
use harness_toxiproxy::{
    Client, NewProxy, NewToxic, Proxy, ProxyUpdate, ServerHandle, Stream, ToxicKind, ToxicUpdate,
};
use libtest_mimic::{Arguments, Failed, Trial};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How much later than configured a delayed thing may come on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);
/// How long to watch to conclude that nothing arrives.
const QUIET: Duration = Duration::from_millis(300);
/// A whole case.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

type Case = fn(Arc<Target>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((
            stringify!($name),
            (|t: Arc<Target>| -> Pin<Box<dyn Future<Output = ()> + Send>> {
                Box::pin(async move { $name(&t).await })
            }) as Case,
        )),*]
    };
}

fn main() {
    let args = Arguments::from_args();
    let real = std::env::var("TOXIPROXY_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if real.is_none() {
        eprintln!("contract: TOXIPROXY_URL is not set; the real:: cases are ignored");
    }
    let all = cases![
        version_answers,
        proxy_lifecycle_and_shapes,
        proxy_bad_requests,
        proxy_update_patch_and_post,
        populate_creates_keeps_and_replaces,
        toxic_lifecycle_and_shapes,
        toxic_bad_requests,
        every_toxic_type_round_trips,
        toxics_on_a_disabled_proxy,
        reset_enables_and_clears,
        browsers_are_rejected,
        latency_delays_existing_and_new_connections,
        latency_is_pipelined,
        latency_jitter_stays_within_bounds,
        bandwidth_throttles_without_loss,
        slow_close_delays_the_eof,
        timeout_drops_data_then_closes,
        timeout_removal_closes_the_connection,
        reset_peer_resets,
        slicer_splits_data,
        limit_data_downstream_passes_exactly_n_bytes,
        limit_data_upstream_passes_exactly_n_bytes,
        toxicity_zero_has_no_effect,
        disabled_proxy_refuses_and_closes,
        unreachable_upstream_accepts_then_closes,
        held_data_is_delivered_before_the_close,
    ];
    let mut trials = Vec::new();
    for (name, case) in &all {
        let case = *case;
        trials.push(Trial::test(format!("bundled::{name}"), move || {
            run(None, case)
        }));
    }
    for (name, case) in &all {
        let case = *case;
        let url = real.clone();
        let ignored = url.is_none();
        let trial =
            Trial::test(format!("real::{name}"), move || run(url, case)).with_ignored_flag(ignored);
        trials.push(if ignored {
            trial.with_kind("needs TOXIPROXY_URL")
        } else {
            trial
        });
    }
    libtest_mimic::run(&args, trials).exit();
}

/// One real server is shared, and `/reset` is global: its cases run one at a time.
static REAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(real: Option<String>, case: Case) -> Result<(), Failed> {
    let _serial = real
        .as_ref()
        .map(|_| REAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    runtime.block_on(async move {
        let target = Arc::new(Target::new(real).await?);
        let task = tokio::spawn(case(Arc::clone(&target)));
        let outcome = tokio::time::timeout(CASE_TIMEOUT, task).await;
        target.cleanup().await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Failed::from(match error.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "the case panicked".to_owned()),
                Err(error) => error.to_string(),
            })),
            Err(_) => Err(Failed::from(format!(
                "the case did not finish within {CASE_TIMEOUT:?}"
            ))),
        }
    })
}

/// The server under test and ways to talk to it.
struct Target {
    base: String,
    client: Client,
    http: reqwest::Client,
    /// Names of this case's proxies start with it, so cases never collide on a real server.
    prefix: String,
    _server: Option<ServerHandle>,
}

/// A reply as it came.
#[derive(Debug)]
struct Raw {
    status: u16,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(self.body.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts an error reply `{"error": message, "status": status}`.
    fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        let body = self.json();
        assert_eq!(body["error"], message, "{:?}", self.body);
        assert_eq!(body["status"], status, "{:?}", self.body);
    }

    /// Asserts an error reply whose message starts with `prefix`.
    fn assert_error_prefix(&self, status: u16, prefix: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        let body = self.json();
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.starts_with(prefix), "{:?}", self.body);
        assert_eq!(body["status"], status, "{:?}", self.body);
    }
}

impl Target {
    async fn new(real: Option<String>) -> Result<Target, Failed> {
        static CASES: AtomicU64 = AtomicU64::new(0);
        let (base, server) = match real {
            Some(url) => (url.trim_end_matches('/').to_owned(), None),
            None => {
                let server = harness_toxiproxy::spawn(([127, 0, 0, 1], 0).into(), Some(7))
                    .await
                    .map_err(|e| format!("cannot start the bundled server: {e}"))?;
                (server.base_url(), Some(server))
            }
        };
        let client = Client::new(&base).map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .build()
            .map_err(|e| e.to_string())?;
        let prefix = format!(
            "tck{}c{}_",
            std::process::id(),
            CASES.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Target {
            base,
            client,
            http,
            prefix,
            _server: server,
        })
    }

    fn name(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    async fn raw(&self, method: Method, path: &str, body: Option<&str>) -> Raw {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("the server answers");
        Raw {
            status: response.status().as_u16(),
            body: response.text().await.expect("a body"),
        }
    }

    async fn proxy(&self, short: &str, upstream: SocketAddr) -> Proxy {
        self.client
            .create_proxy(&NewProxy::new(self.name(short), upstream.to_string()))
            .await
            .expect("create the proxy")
    }

    async fn toxic(&self, proxy: &Proxy, toxic: NewToxic) {
        self.client
            .add_toxic(&proxy.name, &toxic)
            .await
            .expect("add the toxic");
    }

    /// Deletes this case's proxies (a real server outlives the case).
    async fn cleanup(&self) {
        if let Ok(proxies) = self.client.proxies().await {
            for name in proxies.keys().filter(|n| n.starts_with(&self.prefix)) {
                let _ = self.client.delete_proxy(name).await;
            }
        }
    }
}

// Upstreams and sockets.

/// Sends `payload` on every connection, then closes it.
async fn sender(payload: Vec<u8>) -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let payload = payload.clone();
            tokio::spawn(async move {
                let _ = stream.write_all(&payload).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// Reads every connection to its end and reports what it received.
async fn sink() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (listener, addr) = listener().await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got).await;
                let _ = tx.send(got);
            });
        }
    });
    (addr, rx)
}

/// A loopback port nothing listens on.
async fn closed_port() -> SocketAddr {
    listener().await.1
}

async fn connect(proxy: &Proxy) -> TcpStream {
    within("connect", TcpStream::connect(&proxy.listen))
        .await
        .expect("the proxy accepts")
}

/// How a read of a closing connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
}

/// Reads until the connection closes; returns the bytes, how it ended and when.
async fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, End, Instant) {
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match within("the close", stream.read(&mut buffer)).await {
            Ok(0) => return (got, End::Eof, Instant::now()),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return (got, End::Reset, Instant::now());
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Asserts that nothing arrives on `stream` for [`QUIET`].
async fn assert_quiet(stream: &mut TcpStream) {
    let mut buffer = [0u8; 64];
    if let Ok(read) = tokio::time::timeout(QUIET, stream.read(&mut buffer)).await {
        panic!("expected nothing within {QUIET:?}, read {read:?}");
    }
}

fn latency(ms: u64, jitter: u64) -> ToxicKind {
    ToxicKind::Latency {
        latency: Duration::from_millis(ms),
        jitter: Duration::from_millis(jitter),
    }
}

/// Asserts that `took` is at least `min` and at most `max` plus [`SLACK`].
#[track_caller]
fn assert_took(took: Duration, min: Duration, max: Duration) {
    assert!(took >= min && took <= max + SLACK, "{took:?}");
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

// The API.

async fn version_answers(t: &Target) {
    let version = t.client.version().await.unwrap();
    assert!(!version.is_empty());
    let raw = t.raw(Method::GET, "/version", None).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.json()["version"], version.as_str());
}

async fn proxy_lifecycle_and_shapes(t: &Target) {
    let upstream = echo().await;
    let name = t.name("life");
    let body = json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
    let created = t
        .raw(Method::POST, "/proxies", Some(&body.to_string()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.body.starts_with("{\"name\":"),
        "key order: {}",
        created.body
    );
    let proxy = created.json();
    // Go's server also writes its proxy's logger, a struct field without a JSON tag, as
    // `"Logger": {}`; it carries nothing, and the bundled server leaves it out.
    let mut keys = sorted_keys(&proxy);
    keys.retain(|key| key != "Logger");
    assert_eq!(keys, ["enabled", "listen", "name", "toxics", "upstream"]);
    assert_eq!(proxy["name"], name.as_str());
    assert_eq!(proxy["upstream"], upstream.to_string());
    assert_eq!(proxy["enabled"], true);
    assert_eq!(proxy["toxics"], json!([]));
    let listen: SocketAddr = proxy["listen"].as_str().unwrap().parse().unwrap();
    assert_ne!(listen.port(), 0, "port 0 is resolved in the reply");

    let all = t.raw(Method::GET, "/proxies", None).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.json()[&name], proxy);
    let typed = t.client.proxies().await.unwrap();
    assert_eq!(typed[&name].listen, listen.to_string());

    let shown = t.raw(Method::GET, &format!("/proxies/{name}"), None).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json(), proxy);
    let typed = t.client.proxy(&name).await.unwrap();
    assert_eq!(
        (typed.enabled, typed.listen_addr(), typed.toxics.len()),
        (true, Some(listen), 0)
    );

    // The proxy carries traffic.
    let mut stream = connect(&typed).await;
    round_trip(&mut stream, b"hello").await;

    t.raw(Method::POST, "/proxies", Some(&body.to_string()))
        .await
        .assert_error(409, "proxy already exists");
    let deleted = t
        .raw(Method::DELETE, &format!("/proxies/{name}"), None)
        .await;
    assert_eq!((deleted.status, deleted.body.as_str()), (204, ""));
    t.raw(Method::GET, &format!("/proxies/{name}"), None)
        .await
        .assert_error(404, "proxy not found");
    t.raw(Method::DELETE, &format!("/proxies/{name}"), None)
        .await
        .assert_error(404, "proxy not found");
    let error = t.client.proxy(&name).await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert!(error.to_string().contains("proxy not found"), "{error}");
}

async fn proxy_bad_requests(t: &Target) {
    let post = |body: &'static str| t.raw(Method::POST, "/proxies", Some(body));
    post(r#"{"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}"#)
        .await
        .assert_error(400, "missing required field: name");
    post(r#"{"name": "x", "listen": "127.0.0.1:0"}"#)
        .await
        .assert_error(400, "missing required field: upstream");
    post("{not json")
        .await
        .assert_error_prefix(400, "bad request body");
    post("").await.assert_error_prefix(400, "bad request body");
    post(r#"{"name": 5, "upstream": "127.0.0.1:1"}"#)
        .await
        .assert_error_prefix(400, "bad request body");

    let missing = t.name("missing");
    for (method, path) in [
        (Method::GET, format!("/proxies/{missing}")),
        (Method::PATCH, format!("/proxies/{missing}")),
        (Method::DELETE, format!("/proxies/{missing}")),
        (Method::GET, format!("/proxies/{missing}/toxics")),
        (Method::POST, format!("/proxies/{missing}/toxics")),
        (Method::GET, format!("/proxies/{missing}/toxics/t")),
        (Method::PATCH, format!("/proxies/{missing}/toxics/t")),
        (Method::DELETE, format!("/proxies/{missing}/toxics/t")),
    ] {
        t.raw(method, &path, Some(r#"{"type": "noop"}"#))
            .await
            .assert_error(404, "proxy not found");
    }
}

async fn proxy_update_patch_and_post(t: &Target) {
    let first = echo().await;
    let proxy = t.proxy("update", first).await;
    let name = &proxy.name;

    let disabled = t.client.disable_proxy(name).await.unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.listen, proxy.listen, "the address is kept");
    // POST is the deprecated spelling of PATCH.
    let enabled = t
        .raw(
            Method::POST,
            &format!("/proxies/{name}"),
            Some(r#"{"enabled": true}"#),
        )
        .await;
    assert_eq!(enabled.status, 200, "{}", enabled.body);
    assert_eq!(enabled.json()["enabled"], true);
    assert_eq!(enabled.json()["listen"], proxy.listen.as_str());

    // A new upstream restarts the proxy on the same address, towards the new upstream.
    let (second, mut accepted) = sink().await;
    let update = ProxyUpdate {
        upstream: Some(second.to_string()),
        ..ProxyUpdate::default()
    };
    let moved = t.client.update_proxy(name, &update).await.unwrap();
    assert_eq!(
        (
            moved.upstream.as_str(),
            moved.listen.as_str(),
            moved.enabled
        ),
        (second.to_string().as_str(), proxy.listen.as_str(), true)
    );
    let mut stream = connect(&moved).await;
    stream.write_all(b"to the sink").await.unwrap();
    drop(stream);
    let got = within("the sink", accepted.recv()).await.unwrap();
    assert_eq!(got, b"to the sink");

    t.raw(Method::PATCH, &format!("/proxies/{name}"), Some("{bad"))
        .await
        .assert_error_prefix(400, "bad request body");
}

async fn populate_creates_keeps_and_replaces(t: &Target) {
    let upstream = echo().await;
    let (a, b) = (t.name("pop_a"), t.name("pop_b"));
    let body = json!([
        {"name": a, "listen": "127.0.0.1:0", "upstream": upstream.to_string()},
        {"name": b, "listen": "127.0.0.1:0", "upstream": upstream.to_string(), "enabled": false},
    ]);
    let created = t
        .raw(Method::POST, "/populate", Some(&body.to_string()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let reply = created.json();
    assert_eq!(sorted_keys(&reply), ["proxies"]);
    let proxies = reply["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2);
    assert_eq!(
        (&proxies[0]["name"], &proxies[0]["enabled"]),
        (&json!(a), &json!(true))
    );
    assert_eq!(
        (&proxies[1]["name"], &proxies[1]["enabled"]),
        (&json!(b), &json!(false))
    );
    let listen = proxies[0]["listen"].as_str().unwrap().to_owned();

    // The same name, listen address and upstream leave the proxy alone, toxics included.
    t.client
        .add_toxic(&a, &NewToxic::new(latency(10, 0)))
        .await
        .unwrap();
    let same = NewProxy::new(&a, upstream.to_string()).listen(&listen);
    let kept = t
        .client
        .populate(std::slice::from_ref(&same))
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].listen.as_str(), kept[0].toxics.len()),
        (listen.as_str(), 1)
    );

    // A different upstream replaces it: a new proxy without toxics.
    let other = echo().await;
    let changed = NewProxy::new(&a, other.to_string()).listen(&listen);
    let replaced = t.client.populate(&[changed]).await.unwrap();
    assert_eq!(replaced[0].upstream, other.to_string());
    assert!(replaced[0].toxics.is_empty(), "{replaced:?}");
    let mut stream = connect(&replaced[0]).await;
    round_trip(&mut stream, b"replaced").await;

    let invalid = json!([
        {"name": t.name("pop_c"), "upstream": upstream.to_string()},
        {"listen": "127.0.0.1:0", "upstream": upstream.to_string()},
    ]);
    let rejected = t
        .raw(Method::POST, "/populate", Some(&invalid.to_string()))
        .await;
    rejected.assert_error(400, "missing required field: name at proxy 2");
    assert!(
        rejected.json().as_object().unwrap().contains_key("proxies"),
        "{}",
        rejected.body
    );
    assert!(
        t.client.proxy(&t.name("pop_c")).await.is_err(),
        "nothing is created when an entry is invalid"
    );
    t.raw(Method::POST, "/populate", Some("{\"name\": 1}"))
        .await
        .assert_error_prefix(400, "bad request body");
}

async fn toxic_lifecycle_and_shapes(t: &Target) {
    let proxy = t.proxy("toxics", echo().await).await;
    let path = format!("/proxies/{}/toxics", proxy.name);
    let add = |body: &'static str| t.raw(Method::POST, &path, Some(body));

    let created = add(r#"{"type": "latency", "attributes": {"latency": 100}}"#).await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(
        created.body.starts_with("{\"attributes\":"),
        "key order: {}",
        created.body
    );
    let toxic = created.json();
    assert_eq!(
        sorted_keys(&toxic),
        ["attributes", "name", "stream", "toxicity", "type"]
    );
    assert_eq!(toxic["attributes"], json!({"latency": 100, "jitter": 0}));
    assert_eq!(
        (&toxic["name"], &toxic["type"], &toxic["stream"]),
        (
            &json!("latency_downstream"),
            &json!("latency"),
            &json!("downstream")
        )
    );
    assert_eq!(toxic["toxicity"].as_f64(), Some(1.0));

    let up = add(r#"{"type": "latency", "stream": "upstream", "name": "up1"}"#).await;
    assert_eq!((up.status, &up.json()["stream"]), (200, &json!("upstream")));
    // `stream` is read case-insensitively; the default name uses it as sent.
    let mixed = add(r#"{"type": "slow_close", "stream": "UpStream"}"#).await;
    assert_eq!(mixed.status, 200, "{}", mixed.body);
    let mixed = mixed.json();
    assert!(
        mixed["stream"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("upstream")
    );
    let mixed_name = mixed["name"].as_str().unwrap().to_owned();
    assert!(mixed_name.eq_ignore_ascii_case("slow_close_upstream"));
    // `direction` is not a synonym of `stream`: this one is downstream.
    let direction = add(r#"{"type": "noop", "direction": "upstream", "name": "dir"}"#).await;
    assert_eq!(direction.json()["stream"], "downstream");
    assert_eq!(direction.json()["attributes"], json!({}));

    // Upstream toxics first, then downstream ones, each in insertion order.
    let listed = t.raw(Method::GET, &path, None).await;
    assert_eq!(listed.status, 200);
    let names: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["up1", mixed_name.as_str(), "latency_downstream", "dir"]
    );
    let typed = t.client.toxics(&proxy.name).await.unwrap();
    assert_eq!(typed.len(), 4);
    assert_eq!(typed[1].stream, Stream::Upstream);
    assert_eq!(t.client.proxy(&proxy.name).await.unwrap().toxics, typed);

    // PATCH merges attributes and sets toxicity; name, type and stream stay.
    let one = format!("{path}/latency_downstream");
    let patched = t
        .raw(
            Method::PATCH,
            &one,
            Some(r#"{"attributes": {"jitter": 5}, "toxicity": 0.5, "stream": "upstream", "type": "noop"}"#),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let patched = patched.json();
    assert_eq!(patched["attributes"], json!({"latency": 100, "jitter": 5}));
    assert_eq!(patched["toxicity"].as_f64(), Some(0.5));
    assert_eq!(
        (&patched["type"], &patched["stream"]),
        (&json!("latency"), &json!("downstream"))
    );
    // POST is the deprecated spelling of PATCH; toxicity is kept when not given.
    let posted = t
        .raw(
            Method::POST,
            &one,
            Some(r#"{"attributes": {"latency": 150}}"#),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(posted.json()["toxicity"].as_f64(), Some(0.5));
    let shown = t.raw(Method::GET, &one, None).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json(), posted.json());
    let typed = t
        .client
        .update_toxic(
            &proxy.name,
            "latency_downstream",
            &ToxicUpdate {
                kind: None,
                toxicity: Some(1.0),
            },
        )
        .await
        .unwrap();
    assert_eq!((typed.kind, typed.toxicity), (latency(150, 5), 1.0));

    let deleted = t.raw(Method::DELETE, &one, None).await;
    assert_eq!((deleted.status, deleted.body.as_str()), (204, ""));
    t.raw(Method::GET, &one, None)
        .await
        .assert_error(404, "toxic not found");
    t.raw(Method::DELETE, &one, None)
        .await
        .assert_error(404, "toxic not found");
    t.raw(Method::PATCH, &one, Some("{}"))
        .await
        .assert_error(404, "toxic not found");
    t.client
        .remove_toxic(&proxy.name, "up1")
        .await
        .expect("remove through the client");
    assert_eq!(t.client.toxics(&proxy.name).await.unwrap().len(), 2);
}

async fn toxic_bad_requests(t: &Target) {
    let proxy = t.proxy("toxic_errors", echo().await).await;
    let path = format!("/proxies/{}/toxics", proxy.name);
    let add = |body: &'static str| t.raw(Method::POST, &path, Some(body));
    assert_eq!(
        add(r#"{"type": "noop", "name": "taken"}"#).await.status,
        200
    );
    // Names are unique across both streams.
    add(r#"{"type": "latency", "name": "taken", "stream": "upstream"}"#)
        .await
        .assert_error(409, "toxic already exists");
    assert_eq!(add(r#"{"type": "timeout"}"#).await.status, 200);
    add(r#"{"type": "timeout"}"#)
        .await
        .assert_error(409, "toxic already exists");
    add(r#"{"type": "noop", "stream": "sideways"}"#)
        .await
        .assert_error(
            400,
            "stream was invalid, can be either upstream or downstream",
        );
    add(r#"{"type": "nope"}"#)
        .await
        .assert_error(400, "invalid toxic type");
    add(r#"{"name": "untyped"}"#)
        .await
        .assert_error(400, "invalid toxic type");
    add("{bad")
        .await
        .assert_error_prefix(400, "bad request body");
    add(r#"{"type": "latency", "name": "l", "attributes": {"latency": "slow"}}"#)
        .await
        .assert_error_prefix(400, "bad request body");
    t.raw(Method::PATCH, &format!("{path}/taken"), Some("{bad"))
        .await
        .assert_error_prefix(400, "bad request body");
    let error = t
        .client
        .add_toxic(
            &proxy.name,
            &NewToxic::new(ToxicKind::Noop {}).named("taken"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(409));
}

async fn every_toxic_type_round_trips(t: &Target) {
    let proxy = t.proxy("kinds", echo().await).await;
    let kinds = [
        latency(100, 10),
        ToxicKind::Bandwidth { rate: 1000 },
        ToxicKind::SlowClose { delay: ms(100) },
        ToxicKind::Timeout { timeout: ms(5000) },
        ToxicKind::ResetPeer { timeout: ms(5000) },
        ToxicKind::Slicer {
            average_size: 64,
            size_variation: 8,
            delay: Duration::from_micros(10),
        },
        ToxicKind::LimitData { bytes: 1 << 20 },
        ToxicKind::Noop {},
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let stream = if i % 2 == 0 {
            Stream::Upstream
        } else {
            Stream::Downstream
        };
        // Toxicity 0 keeps them inert on this proxy.
        let toxic = NewToxic::new(kind.clone())
            .named(format!("k{i}"))
            .stream(stream)
            .toxicity(0.0);
        let added = t.client.add_toxic(&proxy.name, &toxic).await.unwrap();
        assert_eq!(
            (&added.name, added.stream, added.toxicity, &added.kind),
            (&format!("k{i}"), stream, 0.0, kind)
        );
        assert_eq!(
            t.client.toxic(&proxy.name, &added.name).await.unwrap(),
            added
        );
    }
    let listed = t.client.toxics(&proxy.name).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["k0", "k2", "k4", "k6", "k1", "k3", "k5", "k7"]);
    // Defaults: a toxic created without attributes has every attribute 0.
    let defaults = [
        ("latency", json!({"latency": 0, "jitter": 0})),
        ("bandwidth", json!({"rate": 0})),
        ("slow_close", json!({"delay": 0})),
        ("timeout", json!({"timeout": 0})),
        ("reset_peer", json!({"timeout": 0})),
        (
            "slicer",
            json!({"average_size": 0, "size_variation": 0, "delay": 0}),
        ),
        ("limit_data", json!({"bytes": 0})),
        ("noop", json!({})),
    ];
    for (type_name, attributes) in defaults {
        let body = json!({"type": type_name, "name": format!("d_{type_name}"), "toxicity": 0});
        let created = t
            .raw(
                Method::POST,
                &format!("/proxies/{}/toxics", proxy.name),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        assert_eq!(created.json()["attributes"], attributes, "{type_name}");
    }
    // The proxy still carries traffic: every toxic has toxicity 0.
    let mut stream = connect(&proxy).await;
    round_trip(&mut stream, b"inert").await;
}

async fn toxics_on_a_disabled_proxy(t: &Target) {
    let upstream = echo().await;
    let proxy = t
        .client
        .create_proxy(&NewProxy::new(t.name("off"), upstream.to_string()).enabled(false))
        .await
        .unwrap();
    assert!(!proxy.enabled);
    t.toxic(&proxy, NewToxic::new(latency(300, 0))).await;
    let enabled = t.client.enable_proxy(&proxy.name).await.unwrap();
    assert_eq!(enabled.toxics.len(), 1);
    let mut stream = connect(&enabled).await;
    assert!(round_trip(&mut stream, b"x").await >= ms(300));
}

async fn reset_enables_and_clears(t: &Target) {
    let upstream = echo().await;
    let a = t.proxy("reset_a", upstream).await;
    let b = t.proxy("reset_b", upstream).await;
    t.toxic(&a, NewToxic::new(latency(1000, 0))).await;
    t.toxic(
        &b,
        NewToxic::new(ToxicKind::Timeout { timeout: ms(0) }).upstream(),
    )
    .await;
    t.client.disable_proxy(&a.name).await.unwrap();
    let reset = t.raw(Method::POST, "/reset", None).await;
    assert_eq!((reset.status, reset.body.as_str()), (204, ""));
    for name in [&a.name, &b.name] {
        let proxy = t.client.proxy(name).await.unwrap();
        assert!(proxy.enabled, "{name} is enabled again");
        assert!(proxy.toxics.is_empty(), "{name} has no toxics");
    }
    let mut stream = connect(&a).await;
    assert!(round_trip(&mut stream, b"after reset").await < ms(1000));
    t.client.reset().await.expect("reset through the client");
}

async fn browsers_are_rejected(t: &Target) {
    for path in ["/version", "/proxies"] {
        let response = t
            .http
            .get(format!("{}{path}", t.base))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "{path}");
    }
}

// Toxics on the wire.

async fn latency_delays_existing_and_new_connections(t: &Target) {
    let proxy = t.proxy("latency", echo().await).await;
    let mut existing = connect(&proxy).await;
    round_trip(&mut existing, b"warm up").await;
    t.toxic(&proxy, NewToxic::new(latency(300, 0))).await;
    let delayed = round_trip(&mut existing, b"existing").await;
    assert_took(delayed, ms(300), ms(300));
    let mut fresh = connect(&proxy).await;
    let delayed = round_trip(&mut fresh, b"new").await;
    assert_took(delayed, ms(300), ms(300));
    // Upstream and downstream latencies add up.
    t.toxic(&proxy, NewToxic::new(latency(200, 0)).upstream())
        .await;
    let both = round_trip(&mut fresh, b"both ways").await;
    assert_took(both, ms(500), ms(500));
}

async fn latency_is_pipelined(t: &Target) {
    const MESSAGES: usize = 10;
    const LEN: usize = 8;
    let proxy = t.proxy("pipelined", echo().await).await;
    t.toxic(&proxy, NewToxic::new(latency(300, 0))).await;
    let (mut reader, mut writer) = connect(&proxy).await.into_split();
    // Messages go out 30 ms apart: pacing the stimulus, not waiting for anything.
    let sending = tokio::spawn(async move {
        let mut tick = tokio::time::interval(ms(30));
        let mut sent = Vec::new();
        for i in 0..MESSAGES {
            tick.tick().await;
            sent.push(Instant::now());
            writer
                .write_all(format!("msg{i:04}!").as_bytes())
                .await
                .unwrap();
        }
        (sent, writer)
    });
    let mut got = Vec::new();
    let mut arrived = Vec::new();
    let mut buffer = [0u8; 256];
    while got.len() < MESSAGES * LEN {
        let n = within("an echo", reader.read(&mut buffer)).await.unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buffer[..n]);
        let now = Instant::now();
        while arrived.len() < got.len() / LEN {
            arrived.push(now);
        }
    }
    let (sent, _writer) = sending.await.unwrap();
    let expected: Vec<u8> = (0..MESSAGES)
        .flat_map(|i| format!("msg{i:04}!").into_bytes())
        .collect();
    assert_eq!(got, expected);
    for i in 0..MESSAGES {
        let delay = arrived[i] - sent[i];
        assert!(delay >= ms(300), "message {i} after {delay:?}");
    }
    // Serial latency would hold the last message about 10 × 300 ms after the first send.
    let last = arrived[MESSAGES - 1] - sent[MESSAGES - 1];
    assert!(last <= ms(300) + SLACK, "the last message took {last:?}");
}

async fn latency_jitter_stays_within_bounds(t: &Target) {
    let proxy = t.proxy("jitter", echo().await).await;
    t.toxic(&proxy, NewToxic::new(latency(200, 100))).await;
    let mut stream = connect(&proxy).await;
    for i in 0..5 {
        let took = round_trip(&mut stream, format!("j{i}").as_bytes()).await;
        assert_took(took, ms(100), ms(300));
    }
}

async fn bandwidth_throttles_without_loss(t: &Target) {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let proxy = t.proxy("bandwidth", sender(payload.clone()).await).await;
    // 100 KB/s: 100,000 bytes take one second.
    t.toxic(&proxy, NewToxic::new(ToxicKind::Bandwidth { rate: 100 }))
        .await;
    let start = Instant::now();
    let mut stream = connect(&proxy).await;
    let (got, end, at) = read_to_close(&mut stream).await;
    let took = at - start;
    assert_eq!(end, End::Eof);
    assert!(
        got == payload,
        "{} of {} bytes, altered or lost",
        got.len(),
        payload.len()
    );
    assert_took(took, ms(900), ms(1000));
}

async fn slow_close_delays_the_eof(t: &Target) {
    let proxy = t.proxy("slow_close", sender(b"bye".to_vec()).await).await;
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::SlowClose { delay: ms(400) }),
    )
    .await;
    let start = Instant::now();
    let mut stream = connect(&proxy).await;
    let mut bye = [0u8; 3];
    within("the data", stream.read_exact(&mut bye))
        .await
        .unwrap();
    assert_eq!(&bye, b"bye");
    let (rest, end, at) = read_to_close(&mut stream).await;
    assert_eq!((rest.len(), end), (0, End::Eof));
    let took = at - start;
    assert_took(took, ms(400), ms(400));
}

async fn timeout_drops_data_then_closes(t: &Target) {
    let proxy = t.proxy("timeout", echo().await).await;
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::Timeout { timeout: ms(300) }),
    )
    .await;
    let start = Instant::now();
    let mut stream = connect(&proxy).await;
    stream.write_all(b"into the void").await.unwrap();
    let (got, _end, at) = read_to_close(&mut stream).await;
    assert!(got.is_empty(), "data passed a timeout toxic: {got:?}");
    let took = at - start;
    assert_took(took, ms(300), ms(300));
}

async fn timeout_removal_closes_the_connection(t: &Target) {
    let proxy = t.proxy("timeout_zero", echo().await).await;
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::Timeout { timeout: ms(0) }).named("hold"),
    )
    .await;
    let mut stream = connect(&proxy).await;
    stream.write_all(b"dropped").await.unwrap();
    assert_quiet(&mut stream).await;
    t.client.remove_toxic(&proxy.name, "hold").await.unwrap();
    let (got, _end, _at) = read_to_close(&mut stream).await;
    assert!(got.is_empty(), "{got:?}");
    // New connections are unaffected.
    let mut fresh = connect(&proxy).await;
    round_trip(&mut fresh, b"after").await;
}

async fn reset_peer_resets(t: &Target) {
    let proxy = t.proxy("reset_peer", echo().await).await;
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::ResetPeer { timeout: ms(200) }),
    )
    .await;
    let mut stream = connect(&proxy).await;
    let start = Instant::now();
    stream.write_all(b"ping").await.unwrap();
    let (got, end, at) = read_to_close(&mut stream).await;
    assert_eq!(end, End::Reset, "a RST, not a FIN");
    assert!(got.is_empty(), "{got:?}");
    let took = at - start;
    assert_took(took, ms(200), ms(200));
}

async fn slicer_splits_data(t: &Target) {
    let payload: Vec<u8> = (0..200u8).collect();
    let proxy = t.proxy("slicer", sender(payload.clone()).await).await;
    // About 7-byte pieces, 20 ms apart.
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::Slicer {
            average_size: 10,
            size_variation: 0,
            delay: ms(20),
        }),
    )
    .await;
    let mut stream = connect(&proxy).await;
    let mut got = Vec::new();
    let mut reads = 0;
    let mut buffer = [0u8; 4096];
    loop {
        let n = within("a piece", stream.read(&mut buffer)).await.unwrap();
        if n == 0 {
            break;
        }
        reads += 1;
        got.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(got, payload, "pieces arrive whole and in order");
    assert!(reads >= 8, "200 bytes arrived in {reads} reads");
}

async fn limit_data_downstream_passes_exactly_n_bytes(t: &Target) {
    let payload: Vec<u8> = (0..100u8).collect();
    let proxy = t.proxy("limit_down", sender(payload.clone()).await).await;
    t.toxic(&proxy, NewToxic::new(ToxicKind::LimitData { bytes: 10 }))
        .await;
    let mut stream = connect(&proxy).await;
    let (got, end, _) = read_to_close(&mut stream).await;
    assert_eq!(got, &payload[..10]);
    assert_eq!(end, End::Eof);
}

async fn limit_data_upstream_passes_exactly_n_bytes(t: &Target) {
    let (upstream, mut received) = sink().await;
    let proxy = t.proxy("limit_up", upstream).await;
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::LimitData { bytes: 10 }).upstream(),
    )
    .await;
    let mut stream = connect(&proxy).await;
    let payload: Vec<u8> = (0..100u8).collect();
    stream.write_all(&payload).await.unwrap();
    let got = within("the sink", received.recv()).await.unwrap();
    assert_eq!(got, &payload[..10]);
    let (_, _, _) = read_to_close(&mut stream).await;
}

async fn toxicity_zero_has_no_effect(t: &Target) {
    let proxy = t.proxy("toxicity", echo().await).await;
    t.toxic(&proxy, NewToxic::new(latency(2000, 0)).toxicity(0.0))
        .await;
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::Timeout { timeout: ms(0) })
            .upstream()
            .toxicity(0.0),
    )
    .await;
    let mut stream = connect(&proxy).await;
    for i in 0..3 {
        let took = round_trip(&mut stream, format!("t{i}").as_bytes()).await;
        assert!(took < ms(1500), "{took:?}");
    }
}

async fn disabled_proxy_refuses_and_closes(t: &Target) {
    let proxy = t.proxy("disable", echo().await).await;
    let mut existing = connect(&proxy).await;
    round_trip(&mut existing, b"before").await;
    let disabled = t.client.disable_proxy(&proxy.name).await.unwrap();
    assert!(!disabled.enabled);
    let (got, _end, _) = read_to_close(&mut existing).await;
    assert!(got.is_empty());
    let refused = TcpStream::connect(&proxy.listen).await.map(drop);
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );
    let enabled = t.client.enable_proxy(&proxy.name).await.unwrap();
    assert_eq!(enabled.listen, proxy.listen, "the same address again");
    let mut fresh = connect(&enabled).await;
    round_trip(&mut fresh, b"after").await;
}

async fn unreachable_upstream_accepts_then_closes(t: &Target) {
    let proxy = t.proxy("unreachable", closed_port().await).await;
    let mut stream = connect(&proxy).await;
    let (got, _end, _) = read_to_close(&mut stream).await;
    assert!(got.is_empty());
}

async fn held_data_is_delivered_before_the_close(t: &Target) {
    // The upstream sends ten bytes and closes at once, while latency holds them.
    let proxy = t.proxy("held", sender(b"0123456789".to_vec()).await).await;
    t.toxic(&proxy, NewToxic::new(latency(300, 0))).await;
    t.toxic(
        &proxy,
        NewToxic::new(ToxicKind::Slicer {
            average_size: 3,
            size_variation: 1,
            delay: Duration::from_micros(1000),
        }),
    )
    .await;
    let start = Instant::now();
    let mut stream = connect(&proxy).await;
    let (got, end, at) = read_to_close(&mut stream).await;
    assert_eq!(got, b"0123456789");
    assert_eq!(end, End::Eof);
    assert!(at - start >= ms(300), "{:?}", at - start);
}

//! `robustness::*`: seeded campaigns of generated requests that any target must survive.
//!
//! A campaign sends `--budget` probes (default 20 000) to one API, interleaved with valid
//! publishes. Every probe must be answered (any status: refusing bad input is the point), the
//! target must stay alive and healthy, and every valid publish it accepted must be delivered.
//! A probe that gets no answer is shrunk to a minimal one and written into the report as a
//! command to paste. Campaigns run on the in-memory broker and Redis, not Kafka: a probe's
//! topic name is a topic the broker creates, and thousands of them would measure Kafka's
//! topic creation instead of the sidecar.

use std::time::Duration;

use serde_json::json;

use crate::catalog::{Check, Need};
use crate::check;
use crate::robustness::campaign::{self, Target};
use crate::robustness::grpc::{self, GrpcProbe};
use crate::robustness::http::{HttpContext, HttpProbe, probes};
use crate::robustness::startup;
use harness_engine::broker::Broker;
use harness_engine::problem::{Problem, error_chain};
use harness_engine::trial::{DEADLINE, PUBSUB, Scenario, Trial};

/// Valid publishes go here, and only they: waiting for them reads no junk.
const TOPIC: &str = "orders";
const ROUTE: &str = "/orders";
/// Probes publish here (and to other names): junk that reaches the delivery path.
const JUNK: &str = "junk";
/// Where junk is delivered. A campaign's app only counts what arrives there: a gRPC campaign
/// delivers about a hundred thousand, and kept with their bodies they held well over a
/// gigabyte until the trial ended, while the harness process, other trials' apps included,
/// stalled for hundreds of milliseconds at a time (enough to fail their retry-spacing checks).
const JUNK_ROUTE: &str = "/junk";

/// How long one probe may wait for its whole answer (bodies are at most twice the limit).
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// The request body limit assumed for a target: daprd's default `--max-body-size` (4 MiB).
const BODY_LIMIT: usize = 4 << 20;

const BROKERS: &[Broker] = &[Broker::InMemory, Broker::Redis];

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "robustness::http_api::campaign",
            Must,
            "Every generated HTTP request is answered; afterwards the target is healthy and has delivered every valid publish it accepted",
            "A sidecar refuses bad input with an error naming it and keeps serving: daprd's HTTP API answers every request with a status and an `errorCode` body, and a crash or a dropped connection is a bug whatever the input.",
            Some("https://docs.dapr.io/reference/api/pubsub_api/"),
            [Need::Launch, Need::OneOf(BROKERS)],
            http_campaign
        ),
        check!(
            "robustness::grpc_api::campaign",
            Must,
            "Every generated gRPC call is answered with a status; afterwards the target is healthy and has delivered every valid publish it accepted",
            "daprd's gRPC API answers every call with a status (InvalidArgument, NotFound, ...), never a broken stream.",
            Some("https://docs.dapr.io/reference/api/pubsub_api/"),
            [
                Need::Launch,
                Need::Capability("api.grpc"),
                Need::OneOf(BROKERS)
            ],
            grpc_campaign
        ),
        check!(
            "robustness::http_api::silent_connection_closed",
            Should,
            "A connection to the HTTP API that sends nothing is closed within 20 s, and the API still answers afterwards",
            "daprd pkg/api/http/server.go: ReadHeaderTimeout 10 s on every HTTP server (a client that sends no request head is cut off); a connection held open for ever by a silent client is a slot lost (slowloris)",
            Some("https://docs.dapr.io/reference/api/pubsub_api/"),
            [Need::Launch, Need::Broker(Broker::InMemory)],
            silent_connection_closed
        ),
        check!(
            "robustness::discovery::subscribe_replies",
            Must,
            "Whatever the app answers to /dapr/subscribe, the target becomes ready and answers publishes, or exits; it never hangs",
            "daprd reads the app's subscriptions at start-up; a reply it cannot use is an error in its log, not a sidecar that never serves.",
            Some(
                "https://docs.dapr.io/reference/api/pubsub_api/#provide-a-route-for-dapr-to-discover-topic-subscriptions"
            ),
            [Need::Launch, Need::Broker(Broker::InMemory)],
            subscribe_replies
        ),
        check!(
            "robustness::resources::yaml_mutations",
            Must,
            "With a mutated resource file beside its valid ones, the target starts and delivers through the valid component, or exits naming the file or the resource; it never hangs",
            "daprd skips a document it cannot parse and exits on a component it cannot initialise, naming the component; either way a bad file never leaves a sidecar hanging.",
            Some("https://docs.dapr.io/operations/components/component-schema/"),
            [Need::Launch, Need::Broker(Broker::InMemory)],
            yaml_mutations
        ),
    ]
}

/// Starts of the target per start-up check: one per 2 000 requests of the budget, at least 4
/// (10 in CI, 500 at the nightly size).
fn startup_cases(budget: u64) -> usize {
    usize::try_from(budget / 2000)
        .unwrap_or(usize::MAX)
        .clamp(4, 500)
}

/// How a restart of the target ended, for the start-up checks.
enum Start {
    Ready,
    Exited(String),
}

/// Starts the target again and waits until it is healthy (`/v1.0/healthz`: components and
/// subscriptions loaded, as `Trial::start` waits) or exits; anything else is a hang.
async fn start_again(t: &mut Trial, input: &str) -> Result<Start, Problem> {
    let hang = |e: &dyn std::error::Error| {
        Problem::fail(
            format!("with {input}, the target neither became healthy nor exited"),
            vec![error_chain(e)],
        )
    };
    match t.sidecar().restart().await {
        Ok(()) => {}
        Err(harness::LaunchError::Ready {
            source: harness::ReadyError::Exited { log_tail, .. },
            ..
        }) => return Ok(Start::Exited(log_tail)),
        Err(e @ harness::LaunchError::Ready { .. }) => return Err(hang(&e)),
        Err(e) => return Err(Problem::setup(&e)),
    }
    match t.sidecar().wait_healthz(DEADLINE).await {
        Ok(()) => Ok(Start::Ready),
        Err(harness::ReadyError::Exited { log_tail, .. }) => Ok(Start::Exited(log_tail)),
        Err(e) => Err(hang(&e)),
    }
}

/// Fails with `message(status)`, and the body as evidence, unless `r` answered `want`.
fn answered(
    r: &harness::ApiResponse,
    want: u16,
    message: impl FnOnce(u16) -> String,
) -> Result<(), Problem> {
    if r.status == want {
        return Ok(());
    }
    Err(Problem::fail(
        message(r.status),
        vec![String::from_utf8_lossy(&r.body).into_owned()],
    ))
}

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

async fn subscribe_replies(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscribe(TOPIC, ROUTE)).await?;
    let n = startup_cases(t.env().budget);
    let cases = startup::draw(startup::subscribe_replies(), n, t.seed()).map_err(Problem::Setup)?;
    let mut exits = 0;
    for (status, body) in cases {
        let input = format!("/dapr/subscribe answering {status} {}", shown(&body));
        t.app().set_subscribe_response(status, body);
        match start_again(t, &input).await? {
            Start::Ready => {
                let r = t
                    .publish_raw(TOPIC, r#"{"probe":true}"#, Some("application/json"), &[])
                    .await?;
                answered(&r, 204, |status| {
                    format!("after starting with {input}, a valid publish answered {status}")
                })?;
            }
            Start::Exited(_) => exits += 1,
        }
    }
    t.observe(format!("{n} starts, {exits} ended in an exit"));
    Ok(())
}

async fn yaml_mutations(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscribe(TOPIC, ROUTE)).await?;
    let n = startup_cases(t.env().budget);
    let cases = startup::draw(startup::yaml_mutations(), n, t.seed()).map_err(Problem::Setup)?;
    let name = "50-robustness.yaml";
    let file = t.resources_dir().join(name);
    let mut exits = 0;
    for (i, m) in cases.iter().enumerate() {
        std::fs::write(&file, &m.text)?;
        let input = format!("{name} holding {:?} (edits {:?})", shown(&m.text), m.edits);
        match start_again(t, &input).await? {
            Start::Ready => {
                let id = t.publish(TOPIC, json!({ "case": i })).await?;
                // A mutated Resiliency may legitimately hold deliveries back (a retry every
                // year); the other files leave the trial's pubsub as it was.
                if m.base != 1 {
                    t.wait_msg(ROUTE, &id, 1).await?;
                }
            }
            Start::Exited(log) => {
                exits += 1;
                if !(log.contains(name) || log.contains("extra")) {
                    return Err(Problem::fail(
                        format!(
                            "with {input}, the target exited without naming the file or the resource"
                        ),
                        vec![log],
                    ));
                }
            }
        }
    }
    std::fs::remove_file(&file)?;
    if let Start::Exited(log) = start_again(t, "its resources restored").await? {
        return Err(Problem::fail(
            "the target exited with its valid resources alone",
            vec![log],
        ));
    }
    let id = t.publish(TOPIC, json!({ "case": "restored" })).await?;
    t.wait_msg(ROUTE, &id, 1).await?;
    t.observe(format!(
        "{n} starts, {exits} ended in an exit naming the file or resource"
    ));
    Ok(())
}

/// Starts the trial a campaign runs in: a subscriber for its valid publishes, and one on the
/// junk topic the probes publish to, which is only counted.
async fn start_campaign(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .subscribe(TOPIC, ROUTE)
            .subscribe(JUNK, JUNK_ROUTE),
    )
    .await?;
    t.app().tally_only(JUNK_ROUTE);
    Ok(())
}

async fn http_campaign(t: &mut Trial) -> Result<(), Problem> {
    start_campaign(t).await?;
    let port = t
        .sidecar()
        .http_port()
        .ok_or_else(|| Problem::Setup("the target has no HTTP port".into()))?;
    let ctx = HttpContext {
        pubsub: PUBSUB.to_owned(),
        topic: JUNK.to_owned(),
        app_id: t.app_id(),
        body_limit: BODY_LIMIT,
    };
    let (budget, seed) = (t.env().budget, t.seed());
    let host = format!("127.0.0.1:{port}");
    let mut target = HttpTarget {
        raw: harness::raw_http::RawHttp::new(host.clone(), ANSWER_DEADLINE),
        host,
        accepted: Vec::new(),
        t,
    };
    let tally = campaign::run(&mut target, move || probes(&ctx), budget, seed).await?;
    observe_campaign(target.t, "probes", tally, seed);
    Ok(())
}

/// What a campaign did, as the trial's observation (`sent` names its probes).
fn observe_campaign(t: &mut Trial, sent: &str, tally: campaign::Tally, seed: u64) {
    let junk = t.app().tallied(JUNK_ROUTE);
    t.observe(format!(
        "{} {sent} answered, {} valid publishes delivered, {junk} junk deliveries (seed {seed})",
        tally.probes, tally.valid
    ));
}

async fn grpc_campaign(t: &mut Trial) -> Result<(), Problem> {
    start_campaign(t).await?;
    let (budget, seed) = (t.env().budget, t.seed());
    let mut target = GrpcTarget {
        client: t.grpc_api()?,
        accepted: Vec::new(),
        t,
    };
    let tally = campaign::run(&mut target, || grpc::probes(PUBSUB, JUNK), budget, seed).await?;
    observe_campaign(target.t, "calls", tally, seed);
    Ok(())
}

/// How long a silent connection may stay open: daprd's header-read timeout (10 s) with room.
const SILENT_DEADLINE: Duration = Duration::from_secs(20);

async fn silent_connection_closed(t: &mut Trial) -> Result<(), Problem> {
    use tokio::io::AsyncReadExt as _;
    t.start(Scenario::new().subscribe(TOPIC, ROUTE)).await?;
    let port = t
        .sidecar()
        .http_port()
        .ok_or_else(|| Problem::Setup("the target has no HTTP port".into()))?;
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let opened = std::time::Instant::now();
    let mut buf = [0u8; 512];
    // The end of the stream (or a reset) is the close; bytes before it (an error page) are fine.
    let closed = tokio::time::timeout(SILENT_DEADLINE, async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    if closed.is_err() {
        return Err(Problem::fail(
            format!(
                "a connection that sent nothing was still open after {} s",
                SILENT_DEADLINE.as_secs()
            ),
            vec![format!("connected to 127.0.0.1:{port}, sent no byte")],
        ));
    }
    t.observe(format!(
        "a silent connection was closed after {} ms",
        opened.elapsed().as_millis()
    ));
    let id = t.publish(TOPIC, json!({"after": "silence"})).await?;
    t.wait_msg(ROUTE, &id, 1).await.map(|_| ())
}

/// The HTTP API of the trial's sidecar, over one kept-alive raw connection.
struct HttpTarget<'a> {
    t: &'a mut Trial,
    raw: harness::raw_http::RawHttp,
    host: String,
    accepted: Vec<String>,
}

impl Target for HttpTarget<'_> {
    type Probe = HttpProbe;

    async fn send(&mut self, probe: &HttpProbe) -> Option<String> {
        let request = probe.request(&self.host, None);
        match self.raw.send(&request, probe.is_head()).await {
            Ok(_) => None,
            Err(e) => Some(error_chain(&e)),
        }
    }

    async fn valid(&mut self, n: u64) -> Result<(), Problem> {
        let id = self.t.publish(TOPIC, json!({ "valid": n })).await?;
        self.accepted.push(id);
        Ok(())
    }

    async fn revive(&mut self) -> Result<bool, Problem> {
        let exited = revive(self.t).await?;
        if exited {
            self.raw = harness::raw_http::RawHttp::new(self.host.clone(), ANSWER_DEADLINE);
        }
        Ok(exited)
    }

    async fn finish(&mut self) -> Result<(), Problem> {
        healthy_and_delivered(self.t, &self.accepted).await
    }
}

/// The gRPC API of the trial's sidecar, over one channel.
struct GrpcTarget<'a> {
    t: &'a mut Trial,
    client: harness::GrpcApiClient,
    accepted: Vec<String>,
}

impl Target for GrpcTarget<'_> {
    type Probe = GrpcProbe;

    async fn send(&mut self, probe: &GrpcProbe) -> Option<String> {
        match tokio::time::timeout(ANSWER_DEADLINE, grpc::call(&self.client, probe)).await {
            Ok(Ok(_code)) => None,
            Ok(Err(status)) => Some(format!(
                "{:?} without a status from the target: {}",
                status.code(),
                error_chain(&status)
            )),
            Err(_) => Some(format!("no status within {ANSWER_DEADLINE:?}")),
        }
    }

    async fn valid(&mut self, n: u64) -> Result<(), Problem> {
        let id = self
            .t
            .publish_grpc(TOPIC, json!({ "valid": n }), &[])
            .await?;
        self.accepted.push(id);
        Ok(())
    }

    async fn revive(&mut self) -> Result<bool, Problem> {
        let exited = revive(self.t).await?;
        if exited {
            self.client = self.t.grpc_api()?;
        }
        Ok(exited)
    }

    async fn finish(&mut self) -> Result<(), Problem> {
        healthy_and_delivered(self.t, &self.accepted).await
    }
}

/// After a probe got no answer: starts the sidecar again if it is exiting or exited; `true`
/// when it was. A process that crashed may not have been reaped yet when the probe fails, so
/// this waits until it is healthy (alive: `false`) or has exited, with a deadline; a target
/// that stays unhealthy without exiting is left as it is.
async fn revive(t: &mut Trial) -> Result<bool, Problem> {
    match t.sidecar().wait_healthz(DEADLINE).await {
        Err(harness::ReadyError::Exited { .. }) => {
            t.sidecar()
                .restart()
                .await
                .map_err(|e| Problem::setup(&e))?;
            t.sidecar().wait_healthz(DEADLINE).await?;
            Ok(true)
        }
        Ok(()) | Err(_) => Ok(false),
    }
}

/// The end of a campaign: alive, healthy, every accepted valid publish delivered.
async fn healthy_and_delivered(t: &mut Trial, accepted: &[String]) -> Result<(), Problem> {
    if let Some((status, tail)) = t.sidecar().unexpected_exit() {
        return Err(Problem::fail(
            format!("the target exited ({status}) during the campaign"),
            vec![tail],
        ));
    }
    let health = t.client().healthz().await?;
    answered(&health, 204, |status| {
        format!("after the campaign /v1.0/healthz answers {status} instead of 204")
    })?;
    for id in accepted {
        t.wait_msg(ROUTE, id, 1).await?;
    }
    Ok(())
}

//! The self-check: the suites must catch broken sidecars. Each trial runs one check against a
//! `tck-mutant` target (the reference sidecar behind a proxy that breaks one promise) and
//! requires that the check fails, naming the promise; the `none` mutant (a pure proxy) is the
//! control and must pass the same checks.
//!
//! Needs `target/release/refsidecar` and `target/release/tck-mutant` (the README's test
//! command builds both).

use std::sync::Arc;

use harness_report::VerdictKind;
use libtest_mimic::{Arguments, Failed, Trial};
use suites::Broker;
use suites::env::{EnvSettings, RunEnv, broker_unavailable, find_workspace};

/// (mutant mode, check id, whether the check must fail), on the in-memory broker.
const CASES: &[(&str, &str, bool)] = &[
    (
        "ack-before-deliver",
        "core::ordering::fifo_single_publisher",
        true,
    ),
    ("ack-before-deliver", "core::status::retry_retried", true),
    ("strip-specversion", "core::cloudevents::schema_valid", true),
    (
        "strip-specversion",
        "core::cloudevents::dapr_attributes",
        true,
    ),
    (
        "retry-to-success",
        "core::redelivery::retry_then_success",
        true,
    ),
    ("retry-to-success", "core::status::retry_retried", true),
    (
        "deliver-twice",
        "core::delivery::no_loss_no_duplicates",
        true,
    ),
    ("deliver-twice", "core::status::success_once", true),
    (
        "drop-every-3rd",
        "core::delivery::no_loss_no_duplicates",
        true,
    ),
    (
        "content-type-json",
        "core::cloudevents::delivery_content_type",
        true,
    ),
    ("ttl-ignored", "core::dlq::expired_never_delivered", true),
    (
        "token-bypass-bulk",
        "core::auth::every_route_needs_token",
        true,
    ),
    // The same proxies for a gRPC app (`tck-mutant --app-protocol grpc`).
    (
        "retry-to-success",
        "core::status::retry_retried::grpc",
        true,
    ),
    ("deliver-twice", "core::status::success_once::grpc", true),
    (
        "drop-every-3rd",
        "core::delivery::no_loss_no_duplicates::grpc",
        true,
    ),
    (
        "ack-before-deliver",
        "core::ordering::fifo_single_publisher::grpc",
        true,
    ),
    ("none", "core::status::retry_retried::grpc", false),
    ("none", "core::delivery::no_loss_no_duplicates::grpc", false),
    (
        "token-bypass-grpc",
        "core::auth::every_grpc_method_needs_token",
        true,
    ),
    ("none", "core::auth::every_grpc_method_needs_token", false),
    // A robustness campaign finds a connection reset on one kind of request and shrinks it to
    // a reproducer naming the TTL (see `reproducer_named`).
    ("reset-on-huge-ttl", "robustness::http_api::campaign", true),
    ("none", "robustness::http_api::campaign", false),
    (
        "scopes-ignored",
        "core::publish::protected_topics_forbidden",
        true,
    ),
    (
        "scopes-ignored",
        "core::publish::subscription_scopes_filter",
        true,
    ),
    ("none", "core::publish::protected_topics_forbidden", false),
    ("none", "core::publish::subscription_scopes_filter", false),
    ("none", "core::dlq::expired_never_delivered", false),
    ("none", "core::auth::every_route_needs_token", false),
    ("none", "core::cloudevents::schema_valid", false),
    ("none", "core::resiliency::max_retries_2", false),
    ("none", "core::delivery::no_loss_no_duplicates", false),
    ("none", "core::cloudevents::delivery_content_type", false),
];

/// The same, on the Redis broker (a private redis-server per trial).
const REDIS_CASES: &[(&str, &str, bool)] = &[
    (
        "ack-before-deliver",
        "core::durability::sidecar_kill_redelivers",
        true,
    ),
    (
        "ack-before-deliver",
        "core::ordering::fifo_with_concurrency_one",
        true,
    ),
    ("ttl-ignored", "core::dlq::expired_never_delivered", true),
    (
        "never-ack",
        "core::delivery::acknowledged_after_outcome",
        true,
    ),
    ("none", "core::delivery::acknowledged_after_outcome", false),
    ("none", "core::durability::sidecar_kill_redelivers", false),
    ("none", "core::ordering::fifo_with_concurrency_one", false),
    ("none", "core::dlq::expired_never_delivered", false),
];

/// The same, on the Kafka broker (a private Apache Kafka broker per trial). Kafka promises order
/// per partition key only, so the ordering case is the per-key check.
const KAFKA_CASES: &[(&str, &str, bool)] = &[
    (
        "ack-before-deliver",
        "core::durability::sidecar_kill_redelivers",
        true,
    ),
    (
        "ack-before-deliver",
        "core::ordering::per_partition_key",
        true,
    ),
    (
        "drop-every-3rd",
        "core::delivery::no_loss_no_duplicates",
        true,
    ),
    ("none", "core::durability::sidecar_kill_redelivers", false),
    ("none", "core::ordering::per_partition_key", false),
];

/// Chaos checks against broken sidecars: (broker, mutant, check, must fail). A caught mutant
/// must be reported with the fault window and the ids of the messages it lost.
const CHAOS_CASES: &[(Broker, &str, &str, bool)] = &[
    (
        Broker::InMemory,
        "drop-every-3rd",
        "chaos::sidecar_app::latency",
        true,
    ),
    (
        Broker::InMemory,
        "ack-before-deliver",
        "chaos::sidecar_app::down",
        true,
    ),
    (
        Broker::InMemory,
        "none",
        "chaos::sidecar_app::latency",
        false,
    ),
    (Broker::InMemory, "none", "chaos::sidecar_app::down", false),
    (Broker::Redis, "none", "chaos::process::kill_sidecar", false),
];

/// What a caught chaos failure must name: the fault window and message ids.
fn chaos_evidence_named(id: &str, evidence: &[String]) -> Result<(), String> {
    let window = match id {
        "chaos::sidecar_app::latency" => "latency on sidecar-app",
        "chaos::sidecar_app::down" => "down on sidecar-app",
        _ => return Ok(()),
    };
    let all = evidence.join("\n");
    if !all.contains(window) {
        return Err(format!(
            "the evidence does not name the fault window `{window}`:\n{all}"
        ));
    }
    if !evidence.iter().any(|e| e.starts_with("c-k")) {
        return Err(format!(
            "the evidence names no lost message id (c-k…):\n{all}"
        ));
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let settings = EnvSettings::from_env().unwrap_or_default();
    let cases = CASES
        .iter()
        .map(|&(mode, id, must_fail)| (Broker::InMemory, mode, id, must_fail))
        .chain(
            REDIS_CASES
                .iter()
                .map(|&(mode, id, must_fail)| (Broker::Redis, mode, id, must_fail)),
        )
        .chain(
            KAFKA_CASES
                .iter()
                .map(|&(mode, id, must_fail)| (Broker::Kafka, mode, id, must_fail)),
        )
        .chain(CHAOS_CASES.iter().copied());
    let isolation = [
        Trial::test(
            "selfcheck::isolation::port_taken_by_a_foreign_broker::redis",
            foreign_broker_on_trial_port,
        ),
        Trial::test(
            "selfcheck::isolation::delivery_from_another_trial::redis",
            delivery_from_another_trial,
        ),
    ]
    .into_iter()
    .map(|t| match broker_unavailable(Broker::Redis, &settings) {
        Some(reason) => t
            .with_ignored_flag(true)
            .with_kind(format!("skip: {reason}")),
        None => t,
    });
    // Every case runs around both sidecars: a mutant of daprd must be caught as one of refsidecar.
    let cases: Vec<_> = cases.collect();
    let trials = [Sidecar::Reference, Sidecar::Daprd]
        .into_iter()
        .flat_map(|sidecar| cases.iter().map(move |&c| (sidecar, c)))
        .map(|(sidecar, (broker, mode, id, must_fail))| {
            let name = format!(
                "selfcheck::{}{mode}::{}::{broker}",
                sidecar.prefix(),
                id.replace("::", ".")
            );
            let trial = Trial::test(name, move || run(sidecar, broker, mode, id, must_fail));
            let unavailable = broker_unavailable(broker, &settings)
                .or_else(|| not_observable(sidecar, broker, mode, id).map(str::to_owned));
            match unavailable {
                Some(reason) => trial
                    .with_ignored_flag(true)
                    .with_kind(format!("skip: {reason}")),
                None => trial,
            }
        })
        .chain(isolation)
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// A foreign redis-server (another trial's, say) holds the port a trial's broker was about to
/// use: the trial must end in a setup error naming the port and the foreign process, never in
/// a verdict.
fn foreign_broker_on_trial_port() -> Result<(), Failed> {
    let rt = runtime()?;
    rt.block_on(async {
        let dir = scratch("foreign-broker");
        let foreign = harness::RedisServer::start(&dir.join("data"), &dir, "redis-foreign")
            .await
            .map_err(|e| format!("cannot start the foreign redis-server: {e}"))?;
        let port: u16 = foreign
            .addr()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("the foreign redis-server has no port")?;
        let pid = foreign.child().map(harness::Child::pid).ok_or("no pid")?;
        let mut env = Arc::unwrap_or_clone(env_for(Broker::Redis, "none")?);
        env.target = reference_target(&env)?;
        env.broker_port = Some(port);
        let r = run_check(Arc::new(env), "core::status::success_once").await?;
        let summary = r.summary.unwrap_or_default();
        let named =
            summary.contains(&format!("port {port}")) && summary.contains(&format!("pid {pid}"));
        if r.verdict != VerdictKind::Error || !named {
            return Err(Failed::from(format!(
                "expected a setup error naming port {port} and pid {pid}, got {:?}: {summary}",
                r.verdict
            )));
        }
        Ok(())
    })
}

/// A message another trial published reaches this trial's app (two trials on one Redis): the
/// trial must end in a setup error naming the foreign delivery, never in a verdict.
fn delivery_from_another_trial() -> Result<(), Failed> {
    let rt = runtime()?;
    rt.block_on(async {
        let dir = scratch("shared-broker");
        let shared = harness::RedisServer::start(&dir.join("data"), &dir, "redis-shared")
            .await
            .map_err(|e| format!("cannot start the shared redis-server: {e}"))?;
        // What a neighbour trial left on the topic: its own m-1, under its own nonce, in the
        // envelope a sidecar writes to a Redis stream.
        let envelope = serde_json::json!({
            "specversion": "1.0", "id": "neighbour-ce", "source": "neighbour", "type": "com.dapr.event.sent",
            "topic": "orders", "pubsubname": "pubsub", "datacontenttype": "application/json",
            "data": {"tck_id": "m-1", "tck_trial": "neighbour-trial"}
        });
        redis_command(
            shared.addr(),
            &["XADD", "orders", "*", "data", &envelope.to_string(), "metadata", "{}"],
        )
        .await?;
        let mut env = Arc::unwrap_or_clone(env_for(Broker::Redis, "none")?);
        env.target = reference_target(&env)?;
        env.redis = Some(shared.addr().to_owned());
        let r = run_check(Arc::new(env), "core::status::success_once").await?;
        let summary = r.summary.unwrap_or_default();
        if r.verdict != VerdictKind::Error || !summary.contains("neighbour-trial") {
            return Err(Failed::from(format!(
                "expected a setup error naming the neighbour's delivery, got {:?}: {summary}",
                r.verdict
            )));
        }
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?)
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "pubsub-tck-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

fn reference_target(env: &RunEnv) -> Result<harness::TargetFile, Failed> {
    let path = env.workspace_root.join("fixtures/targets/reference.toml");
    harness::TargetFile::load(&path).map_err(|e| Failed::from(format!("{e:#}")))
}

async fn run_check(env: Arc<RunEnv>, id: &str) -> Result<harness_report::CheckResult, Failed> {
    let check = suites::all()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| Failed::from(format!("no check {id} in the catalog")))?;
    Ok(suites::runner::run_one(env, &check).await.result)
}

/// One Redis command in RESP, answered with anything but an error.
async fn redis_command(addr: &str, args: &[&str]) -> Result<(), Failed> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
    if buf.first() == Some(&b'-') || n == 0 {
        return Err(Failed::from(format!(
            "redis answered {:?}",
            String::from_utf8_lossy(&buf[..n])
        )));
    }
    Ok(())
}

/// Why a case cannot show its mutant around this sidecar, if it cannot.
fn not_observable(sidecar: Sidecar, broker: Broker, mode: &str, id: &str) -> Option<&'static str> {
    // daprd 1.18.3 itself leaves a request unanswered in every robustness campaign (a publish
    // of the CloudEvent `null` panics its handler; see daprd.expect.toml), so around daprd the
    // campaign fails with or without the mutant and cannot tell the two apart.
    if sidecar == Sidecar::Daprd && id.starts_with("robustness::") {
        return Some(
            "daprd 1.18.3 fails the robustness campaign on its own (an expected failure: see daprd.expect.toml), so a mutant of it is not observable there",
        );
    }
    match (sidecar, broker, mode, id) {
        // The mutant acknowledges m-1 to daprd before the app has it, and the check kills the
        // sidecar right after. daprd commits Kafka offsets in the background every second
        // (sarama's auto-commit), so the offset of m-1 is not committed yet and the restarted
        // daprd reads m-1 again: the harm is real but not visible here. The same mutant is
        // caught around daprd on Kafka by core::ordering::per_partition_key.
        (
            Sidecar::Daprd,
            Broker::Kafka,
            "ack-before-deliver",
            "core::durability::sidecar_kill_redelivers",
        ) => Some(
            "daprd commits Kafka offsets a second later, so a kill right after the early acknowledgement loses nothing (see not_observable)",
        ),
        // refsidecar commits each offset asynchronously right after the outcome (librdkafka's
        // async commit): whether the commit reaches the broker before the kill, a few
        // milliseconds later, is a race, so the case passed in some runs and failed in others.
        (
            Sidecar::Reference,
            Broker::Kafka,
            "ack-before-deliver",
            "core::durability::sidecar_kill_redelivers",
        ) => Some(
            "refsidecar's asynchronous offset commit may not reach Kafka before the kill that follows the early acknowledgement, so the loss is visible only in some runs (see not_observable)",
        ),
        _ => None,
    }
}

/// The sidecar a mutant wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sidecar {
    /// `fixtures/targets/mutants/<mode>.toml`: refsidecar.
    Reference,
    /// `fixtures/targets/mutants/daprd/<mode>.toml`: daprd 1.18.3.
    Daprd,
}

impl Sidecar {
    fn prefix(self) -> &'static str {
        match self {
            Sidecar::Reference => "",
            Sidecar::Daprd => "daprd::",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Sidecar::Reference => "fixtures/targets/mutants",
            Sidecar::Daprd => "fixtures/targets/mutants/daprd",
        }
    }
}

fn env_for(broker: Broker, mode: &str) -> Result<Arc<RunEnv>, Failed> {
    env_around(Sidecar::Reference, broker, mode)
}

fn env_around(sidecar: Sidecar, broker: Broker, mode: &str) -> Result<Arc<RunEnv>, Failed> {
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let root = find_workspace(&cwd).map_err(|e| e.to_string())?;
    // The broker settings come from the environment (the Kafka test broker's binary, a
    // Toxiproxy); the target is the mutant and the reports go under cargo-test/selfcheck.
    let from_env = EnvSettings::from_env().unwrap_or_default();
    let settings = EnvSettings {
        target: Some(root.join(sidecar.dir()).join(format!("{mode}.toml"))),
        report_dir: None,
        brokers: None,
        containers: None,
        ..from_env
    };
    let run_dir = root
        .join("reports/cargo-test/selfcheck")
        .join(format!("{}{mode}", sidecar.prefix().replace("::", "-")));
    RunEnv::new(&settings, root, run_dir, broker).map_err(|e| Failed::from(format!("{e:#}")))
}

/// A robustness campaign that caught a mutant names the request it shrank to (a publish with
/// a TTL, the only thing `reset-on-huge-ttl` breaks) and gives a command to reproduce it.
fn reproducer_named(id: &str, summary: &str, evidence: &[String]) -> Result<(), String> {
    if !id.starts_with("robustness::") {
        return Ok(());
    }
    let shrunk = summary.split("shrunk").nth(1).unwrap_or_default();
    if !(shrunk.contains("POST /v1.0") && shrunk.to_ascii_lowercase().contains("metadata.ttl")) {
        return Err(format!(
            "the shrunk probe does not name a publish with a TTL: {summary}"
        ));
    }
    if !evidence
        .iter()
        .any(|e| e.starts_with("reproduce with:\n{ printf"))
    {
        return Err(format!(
            "no command to reproduce it in the evidence: {evidence:?}"
        ));
    }
    Ok(())
}

fn run(
    sidecar: Sidecar,
    broker: Broker,
    mode: &str,
    id: &str,
    must_fail: bool,
) -> Result<(), Failed> {
    let env = env_around(sidecar, broker, mode)?;
    let check = suites::all()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| Failed::from(format!("no check {id} in the catalog")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(suites::runner::run_one(env, &check)).result;
    let caught = matches!(r.verdict, VerdictKind::Fail | VerdictKind::NonStrict);
    match (must_fail, r.verdict) {
        (_, VerdictKind::Error) => Err(Failed::from(format!(
            "setup error: {}",
            r.summary.unwrap_or_default()
        ))),
        (true, _) if caught && r.summary.as_deref().is_some_and(|s| !s.is_empty()) => {
            chaos_evidence_named(id, &r.evidence).map_err(Failed::from)?;
            reproducer_named(id, r.summary.as_deref().unwrap_or_default(), &r.evidence)
                .map_err(Failed::from)
        }
        (true, v) => Err(Failed::from(format!(
            "mutant `{mode}` was not caught by {id}: verdict {v:?}"
        ))),
        (false, VerdictKind::Pass) => Ok(()),
        (false, v) => Err(Failed::from(format!(
            "control mutant `{mode}` should pass {id}, got {v:?}: {}",
            r.summary.unwrap_or_default()
        ))),
    }
}

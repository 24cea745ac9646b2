//! The self-check: the suites must catch broken sidecars. Each trial runs one case of
//! `suites::selfcheck` (one check against refsidecar, or daprd, behind the `tck-mutant` proxy
//! that breaks one promise) and requires that the check fails, naming the promise; the `none`
//! mutant (a pure proxy) is the control and must pass the same checks. The mutant targets are
//! derived from `fixtures/targets/reference.toml` and `daprd.toml` by `harness_mutant::wrap`,
//! as `pubsub-tck selfcheck` derives them from an implementer's target file.
//!
//! Needs `target/release/refsidecar` and `target/release/tck-mutant` (the README's test
//! command builds both), and daprd for the daprd cases.

use std::sync::Arc;

use harness_engine::Broker;
use harness_engine::env::{EnvSettings, RunEnv, broker_unavailable, find_workspace};
use harness_mutant::Mode;
use harness_report::VerdictKind;
use libtest_mimic::{Failed, Trial};
use suites::selfcheck::{Case, Judgement};

fn main() -> std::process::ExitCode {
    // Twice the suites' default: a case mostly waits (for redeliveries, for windows in which
    // nothing may arrive), and at the default the CPU stays under half busy.
    let args = suites::conformance::arguments_with(2 * harness_engine::runner::default_jobs());
    let settings = EnvSettings::from_env().unwrap_or_default();
    let cases = suites::selfcheck::cases();
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
    let trials = [Sidecar::Reference, Sidecar::Daprd]
        .into_iter()
        .flat_map(|sidecar| cases.iter().map(move |&c| (sidecar, c)))
        .map(|(sidecar, case)| {
            let name = format!("selfcheck::{}{}", sidecar.prefix(), case.name());
            let unavailable = broker_unavailable(case.broker, &settings)
                .or_else(|| not_observable(sidecar, &case));
            let trial = Trial::test(name, move || run(sidecar, case));
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
        let foreign = own_redis("foreign").await?;
        let port: u16 = foreign
            .addr()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("the foreign redis-server has no port")?;
        let pid = foreign.child().map(harness::Child::pid).ok_or("no pid")?;
        let mut env = reference_on_redis()?;
        env.broker_port = Some(port);
        setup_error_naming(
            env,
            &format!("port {port} and pid {pid}"),
            &[&format!("port {port}"), &format!("pid {pid}")],
        )
        .await
    })
}

/// A message another trial published reaches this trial's app (two trials on one Redis): the
/// trial must end in a setup error naming the foreign delivery, never in a verdict.
fn delivery_from_another_trial() -> Result<(), Failed> {
    let rt = runtime()?;
    rt.block_on(async {
        let shared = own_redis("shared").await?;
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
        let mut env = reference_on_redis()?;
        env.broker_sources.redis = Some(shared.addr().to_owned());
        setup_error_naming(env, "the neighbour's delivery", &["neighbour-trial"]).await
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

/// A redis-server of the trial's own, playing `role` (`foreign`, `shared`), in a scratch
/// directory.
async fn own_redis(role: &str) -> Result<harness::RedisServer, Failed> {
    let dir = scratch(&format!("{role}-broker"));
    let server = harness::RedisServer::start(&dir.join("data"), &dir, &format!("redis-{role}"))
        .await
        .map_err(|e| format!("cannot start the {role} redis-server: {e}"))?;
    Ok(server)
}

/// The environment of `fixtures/targets/reference.toml` on Redis, without a mutant.
fn reference_on_redis() -> Result<RunEnv, Failed> {
    let mut env = Arc::unwrap_or_clone(env_for(Broker::Redis, Mode::None)?);
    let path = env.workspace_root.join("fixtures/targets/reference.toml");
    env.target = harness::TargetFile::load(&path).map_err(|e| Failed::from(format!("{e:#}")))?;
    Ok(env)
}

/// Runs `core::status::success_once` in `env`: it must end in a setup error whose summary
/// holds every one of `needles` (together, they name `what`), never in a verdict.
async fn setup_error_naming(env: RunEnv, what: &str, needles: &[&str]) -> Result<(), Failed> {
    let id = "core::status::success_once";
    let check = suites::all()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| Failed::from(format!("no check {id} in the catalog")))?;
    let r = harness_engine::runner::run_one(Arc::new(env), &check)
        .await
        .result;
    let summary = r.summary.unwrap_or_default();
    if r.verdict != VerdictKind::Error || !needles.iter().all(|n| summary.contains(n)) {
        return Err(Failed::from(format!(
            "expected a setup error naming {what}, got {:?}: {summary}",
            r.verdict
        )));
    }
    Ok(())
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

/// Why a case cannot show its mutant around this sidecar, if it cannot: the sidecar fails the
/// check on its own (its expectations file says so; daprd 1.18.3 and the robustness campaigns).
fn not_observable(sidecar: Sidecar, case: &Case) -> Option<String> {
    let root = find_workspace(&std::env::current_dir().ok()?).ok()?;
    let target = harness::TargetFile::load(&root.join(sidecar.target_file())).ok()?;
    suites::selfcheck::not_observable(&target, case)
}

/// The sidecar a mutant wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sidecar {
    /// `fixtures/targets/reference.toml`: refsidecar.
    Reference,
    /// `fixtures/targets/daprd.toml`: daprd 1.18.3.
    Daprd,
}

impl Sidecar {
    fn prefix(self) -> &'static str {
        match self {
            Sidecar::Reference => "",
            Sidecar::Daprd => "daprd::",
        }
    }

    fn target_file(self) -> &'static str {
        match self {
            Sidecar::Reference => "fixtures/targets/reference.toml",
            Sidecar::Daprd => "fixtures/targets/daprd.toml",
        }
    }
}

fn env_for(broker: Broker, mode: Mode) -> Result<Arc<RunEnv>, Failed> {
    env_around(Sidecar::Reference, broker, mode)
}

/// The run environment of one case: `sidecar`'s target behind `tck-mutant` in `mode`.
fn env_around(sidecar: Sidecar, broker: Broker, mode: Mode) -> Result<Arc<RunEnv>, Failed> {
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let root = find_workspace(&cwd).map_err(|e| e.to_string())?;
    // The broker settings come from the environment (the Kafka test broker's binary, a
    // Toxiproxy); the target is the sidecar's and the reports go under cargo-test/selfcheck.
    let from_env = EnvSettings::from_env().unwrap_or_default();
    let settings = EnvSettings {
        target: Some(root.join(sidecar.target_file())),
        report_dir: None,
        brokers: None,
        containers: None,
        ..from_env
    };
    let run_dir = root
        .join("reports/cargo-test/selfcheck")
        .join(format!("{}{mode}", sidecar.prefix().replace("::", "-")));
    let env = RunEnv::new(
        &settings,
        &suites::catalog::ids(),
        root.clone(),
        run_dir,
        broker,
    )
    .map_err(|e| Failed::from(format!("{e:#}")))?;
    let wrapper = [root.join("target/release/tck-mutant").display().to_string()];
    let mutant = harness_mutant::wrap(&env.target, mode, &wrapper)
        .map_err(|e| Failed::from(format!("{e:#}")))?;
    let mut env = Arc::unwrap_or_clone(env);
    env.target = mutant;
    Ok(Arc::new(env))
}

fn run(sidecar: Sidecar, case: Case) -> Result<(), Failed> {
    let env = env_around(sidecar, case.broker, case.mode)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match rt.block_on(suites::selfcheck::judge(env, &case)) {
        Judgement::Caught(_) | Judgement::ControlPassed => Ok(()),
        // Both sidecars claim every capability a case needs: a skip here is a broken case.
        Judgement::Skipped(why) => Err(Failed::from(format!("the check skipped: {why}"))),
        j => Err(Failed::from(format!(
            "{}: {}",
            j.label(),
            j.detail().unwrap_or_default()
        ))),
    }
}

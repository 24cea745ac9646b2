//! The conformance suite as a libtest-mimic test binary: every check on every broker as a
//! trial named `profile::area::check::broker`, run against `PUBSUB_TCK_TARGET` (default: the
//! reference target, or the file given to [`main_for`]) on `PUBSUB_TCK_BROKERS` (default:
//! every broker; one this machine lacks is listed as ignored with the reason).
//!
//! An implementer's crate runs it from a `[[test]]` with `harness = false`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     suites::conformance::main_for(concat!(env!("CARGO_MANIFEST_DIR"), "/my-sidecar.toml"))
//! }
//! ```
//!
//! Listing starts nothing. A MUST failure fails the trial; a SHOULD failure passes and prints
//! `non-strict:` with the evidence. A failure the target's expectations file names passes and
//! prints `expected failure:`; a pass of a check it names fails the trial (the file is stale).
//! Checks the target cannot run are listed as ignored, and their kind tag says why.
//!
//! Each trial's outcome also goes into the run's report ([`crate::run_report`]): at the end the
//! binary writes `reports/cargo-test/<run-id>/` (or below `PUBSUB_TCK_REPORT_DIR`) as
//! `pubsub-tck run` writes its run, with the trials that ran and the skips libtest listed, and
//! prints where. Under nextest, which runs each trial as a process of its own, nextest's JUnit
//! is the run's report and none is written.
//!
//! With `PUBSUB_TCK_STRICT=1` a SHOULD failure fails its trial too (for a target that holds
//! itself to every SHOULD, such as refsidecar under scripts/mutants.sh).
//!
//! With `PUBSUB_TCK_FAIL_FAST=1`, once a trial has failed the trials not yet started fail at
//! once with `not run (fail-fast after <id>)`: for runs that only ask whether anything fails,
//! such as a mutation test (scripts/mutants.sh).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use harness_engine::Broker;
use harness_engine::containers::ContainerGuard;
use harness_engine::env::{EnvSettings, RunEnv, broker_unavailable, find_workspace};
use harness_engine::problem::error_chain;
use harness_engine::runner::default_jobs;
use harness_report::VerdictKind;
use libtest_mimic::{Arguments, Failed, Trial};

use crate::run_report::RunRecord;

/// Runs the suite against `PUBSUB_TCK_TARGET` (default: the reference target), taking
/// libtest's arguments (`--list`, filters, `--test-threads`, ...) from the command line.
pub fn main() -> ExitCode {
    run_suite(None)
}

/// Like [`main`], against the target file `target` unless `PUBSUB_TCK_TARGET` names another.
pub fn main_for(target: impl AsRef<std::path::Path>) -> ExitCode {
    run_suite(Some(target.as_ref().to_owned()))
}

/// libtest's arguments from the command line. Without `--test-threads` (or
/// `RUST_TEST_THREADS`), trials run [`default_jobs`] at a time as `pubsub-tck run`'s checks do,
/// not one per core: most of a trial's time is spent waiting.
pub fn arguments() -> Arguments {
    arguments_with(default_jobs())
}

/// Like [`arguments`], with `jobs` trials at a time unless told otherwise.
pub fn arguments_with(jobs: usize) -> Arguments {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        let from_env = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0);
        args.test_threads = Some(from_env.unwrap_or(jobs));
    }
    args
}

fn run_suite(target: Option<std::path::PathBuf>) -> ExitCode {
    let args = arguments();
    let (settings, envs, base, _containers) = match setup(target) {
        Ok(v) => v,
        Err(e) => {
            // Still list a trial, so the failure shows up as a test with its reason.
            let trial = Trial::test("setup::target", move || Err(Failed::from(e.clone())));
            return libtest_mimic::run(&args, vec![trial]).exit_code();
        }
    };
    let seed = settings.seed.unwrap_or_default();
    if let (false, Some((_, env))) = (args.list, envs.first()) {
        eprintln!(
            "pubsub-tck: target `{}`, seed {seed} (replay with PUBSUB_TCK_SEED={seed})",
            env.target.name(),
        );
    }
    // One runtime for every trial, as in `pubsub-tck run`: libtest's threads each block on
    // their trial; a Kafka broker one trial hands back may serve the next (see
    // `RunEnv::reuse_kafka`), and is stopped at the end.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            let msg = format!("starting the async runtime: {e}");
            let trial = Trial::test("setup::runtime", move || Err(Failed::from(msg.clone())));
            return libtest_mimic::run(&args, vec![trial]).exit_code();
        }
    };
    let fail_fast = std::env::var("PUBSUB_TCK_FAIL_FAST").is_ok_and(|v| v == "1");
    let strict = std::env::var("PUBSUB_TCK_STRICT").is_ok_and(|v| v == "1");
    let first_failure: Arc<Mutex<Option<String>>> = Arc::default();
    // The run's report; taken out once libtest is done.
    let record = Arc::new(Mutex::new(Some(base.record)));
    // Longest first (`start_rank`), each check on every broker in turn, so that one broker's
    // heavy trials overlap the others' waits.
    let unavailable: Vec<_> = envs
        .iter()
        .map(|(broker, _)| broker_unavailable(*broker, &settings))
        .collect();
    let mut checks = crate::all();
    checks.sort_by_key(harness_engine::runner::start_rank);
    let mut trials = Vec::new();
    for check in checks {
        for ((broker, env), unavailable) in envs.iter().zip(&unavailable) {
            let name = format!("{}::{broker}", check.id);
            let skip = unavailable.clone().or_else(|| check.skip_reason(env));
            let trial = {
                let (env, check, rt) = (env.clone(), check.clone(), rt.clone());
                let (first_failure, record) = (first_failure.clone(), record.clone());
                let name = name.clone();
                Trial::test(name.clone(), move || {
                    if fail_fast
                        && let Some(first) = first_failure.lock().ok().and_then(|f| f.clone())
                    {
                        return Err(Failed::from(format!("not run (fail-fast after {first})")));
                    }
                    let outcome = rt.block_on(harness_engine::runner::run_one(env, &check));
                    let verdict = verdict(&outcome.result, strict);
                    if verdict.is_err()
                        && let Ok(mut f) = first_failure.lock()
                    {
                        f.get_or_insert(name);
                    }
                    if let Some(record) = lock(&record).as_mut() {
                        record.push(outcome);
                    }
                    verdict
                })
            };
            let Some(reason) = skip else {
                trials.push(trial);
                continue;
            };
            let trial = trial
                .with_ignored_flag(true)
                .with_kind(format!("skip: {reason}"));
            // libtest does not run an ignored trial, so its skip goes into the report here.
            if !args.is_filtered_out(&trial)
                && args.is_ignored(&trial)
                && let Some(record) = lock(&record).as_mut()
            {
                record.push_result(harness_engine::runner::skipped(env, &check, reason));
            }
            trials.push(trial);
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    rt.block_on(harness::KafkaServer::stop_idle());
    if base.write {
        // A run whose filter matched no trial (`cargo test` of something else) leaves the last
        // report where it is, and no run directory: nothing was written into it.
        let Some(record) = lock(&record).take().filter(|r| !r.is_empty()) else {
            let _ = std::fs::remove_dir_all(&base.run_dir);
            return conclusion.exit_code();
        };
        if let Err(e) = write_report(record, &base.dir, &envs) {
            eprintln!(
                "pubsub-tck: writing the run report under {}: {e}",
                base.dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    conclusion.exit_code()
}

/// The run's report. A trial cannot leave it half-updated (each update is one push), so a lock
/// a panicking trial poisoned is still usable.
fn lock(record: &Mutex<Option<RunRecord>>) -> std::sync::MutexGuard<'_, Option<RunRecord>> {
    record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the run's report goes and what it holds so far.
struct ReportBase {
    /// The report base (`reports/cargo-test` unless `PUBSUB_TCK_REPORT_DIR` says otherwise).
    dir: std::path::PathBuf,
    /// The run under way; its id names the run directory every trial logs into.
    record: RunRecord,
    /// Where the trials log: the run directory, or [`UNREPORTED`] below the base.
    run_dir: std::path::PathBuf,
    /// Whether to write it: not for a listing, nor under nextest, which runs every trial as a
    /// process of its own and writes the run's JUnit itself.
    write: bool,
}

/// Where trials log when no report is written, below the report base.
const UNREPORTED: &str = "unreported";

/// Writes the run directory of the trials that ran (and the skips libtest listed), in catalog
/// order, broker after broker, as `pubsub-tck run` orders its report.
fn write_report(mut record: RunRecord, base: &std::path::Path, envs: &Envs) -> std::io::Result<()> {
    let Some((_, env)) = envs.first() else {
        return Ok(());
    };
    let catalog = crate::catalog::ids();
    let brokers: Vec<String> = envs.iter().map(|(b, _)| b.name().to_owned()).collect();
    record.sort_by_key(|r| {
        (
            catalog.iter().position(|id| *id == r.id),
            brokers.iter().position(|b| Some(b) == r.broker.as_ref()),
        )
    });
    let (report, dir) = record.write(base, &env.target)?;
    let t = report.totals();
    eprintln!(
        "pubsub-tck: {} checks in the report ({} failed, {} skipped): {}",
        report.checks.len(),
        t.fail + t.error + t.unexpected_pass,
        t.skip,
        dir.display()
    );
    Ok(())
}

type Envs = Vec<(Broker, Arc<RunEnv>)>;

fn setup(
    target: Option<std::path::PathBuf>,
) -> Result<(EnvSettings, Envs, ReportBase, Option<ContainerGuard>), String> {
    let mut settings = EnvSettings::from_env().map_err(|e| format!("{e:#}"))?;
    settings.reuse_kafka = true;
    if settings.target.is_none() {
        settings.target = target;
    }
    // Listing starts nothing, containers included.
    let listing = Arguments::from_args().list;
    let containers = if listing {
        None
    } else {
        Some(
            harness_engine::containers::start_blocking(&mut settings)
                .map_err(|e| error_chain(&e))?,
        )
    };
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let root = find_workspace(&cwd).map_err(|e| e.to_string())?;
    let dir = settings
        .report_dir
        .clone()
        .unwrap_or_else(|| harness_engine::env::reports_base(&root, &cwd).join("cargo-test"));
    // One seed for every broker, so that a replay covers them all.
    let seed = settings
        .seed
        .unwrap_or_else(harness_engine::env::random_seed);
    settings.seed = Some(seed);
    let brokers = settings
        .brokers
        .clone()
        .unwrap_or_else(|| Broker::ALL.to_vec());
    let mut record = RunRecord::start(env!("CARGO_PKG_VERSION"), seed);
    // Trials log into the run directory of the report; when none will be written (a listing,
    // a trial under nextest), into one fixed directory, so that such runs leave no run
    // directories behind.
    let write = !listing && std::env::var_os("NEXTEST").is_none();
    let run_dir = if write {
        dir.join(record.run_id())
    } else {
        dir.join(UNREPORTED)
    };
    let mut envs = Vec::new();
    for broker in brokers.iter().copied() {
        let env = RunEnv::new(
            &settings,
            &crate::catalog::ids(),
            root.clone(),
            run_dir.clone(),
            broker,
        )
        .map_err(|e| error_chain(&e))?;
        envs.push((broker, env));
    }
    if let Some((_, env)) = envs.first() {
        let report = record.report_mut();
        report.target = env.target.name().to_owned();
        report.target_file = Some(env.target.path().display().to_string());
        report.broker = Some(
            brokers
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(","),
        );
        report.environment = harness_engine::env::environment(&brokers, &settings);
    }
    let base = ReportBase {
        dir,
        record,
        run_dir,
        write,
    };
    Ok((settings, envs, base, containers))
}

/// libtest's verdict on a result: MUST failures, errors and unexpected passes fail the trial;
/// SHOULD failures too under `strict`; the rest pass, non-strict and expected failures with a
/// line on stderr.
fn verdict(r: &harness_report::CheckResult, strict: bool) -> Result<(), Failed> {
    let details = || {
        let mut s = r.summary.clone().unwrap_or_default();
        for e in &r.evidence {
            s.push_str("\n    ");
            s.push_str(e);
        }
        s.push_str(&format!(
            "\n    clause: {}\n    seed: {}",
            r.clause,
            r.seed.unwrap_or_default()
        ));
        s
    };
    match r.verdict {
        VerdictKind::Pass | VerdictKind::Skip => Ok(()),
        VerdictKind::NonStrict if strict => Err(Failed::from(format!(
            "SHOULD failed (PUBSUB_TCK_STRICT=1): {}",
            details()
        ))),
        VerdictKind::NonStrict => {
            eprintln!("non-strict: {} (SHOULD): {}", r.id, details());
            Ok(())
        }
        VerdictKind::ExpectedFail => {
            eprintln!("expected failure: {}: {}", r.id, details());
            Ok(())
        }
        VerdictKind::Fail => Err(Failed::from(format!("MUST failed: {}", details()))),
        VerdictKind::UnexpectedPass => Err(Failed::from(format!("unexpected pass: {}", details()))),
        VerdictKind::Error => Err(Failed::from(format!(
            "setup error (not a verdict on the target): {}",
            details()
        ))),
    }
}

//! Running checks: one check → one report result (and its history), for both `cargo test`
//! and the `pubsub-tck` command. Nothing here prints; callers render results.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use harness_checkers::Verdict;
use harness_history::History;
use harness_report::event::{RunEvent, RunEvents, emit};
use harness_report::{CheckResult, Level, VerdictKind};

use crate::check::Check;
use crate::env::RunEnv;
use crate::problem::Problem;
use crate::trial::Trial;

/// A check that takes longer than this is stopped and fails: a hang is a broken promise.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(90);

/// The time one check may take: [`CHECK_TIMEOUT`], and for a `robustness` campaign also 10 ms
/// per request of its budget and two minutes of shrinking (20 000 requests: 5 min; the
/// nightly 1 000 000: 2 h 50 min).
pub fn check_timeout(check: &Check, env: &RunEnv) -> Duration {
    if check.profile() == "robustness" {
        CHECK_TIMEOUT
            + Duration::from_secs(120)
            + Duration::from_millis(10)
                .saturating_mul(u32::try_from(env.budget).unwrap_or(u32::MAX))
    } else {
        CHECK_TIMEOUT
    }
}

/// The result of running one check.
#[derive(Debug)]
pub struct Outcome {
    /// The report entry.
    pub result: CheckResult,
    /// `(file name, JSONL)` of the trial history, when the check ran.
    pub history: Option<(String, String)>,
}

/// The seed of one check: the run seed mixed with the check id, so that replaying one check
/// with `--seed` gives it the same seed it had in the full run.
pub fn check_seed(run_seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ run_seed
}

/// What a result says of its check before the trial runs.
pub(crate) struct Heading<'a> {
    pub id: &'a str,
    pub title: String,
    pub level: Level,
    pub clause: &'a str,
    pub clause_url: Option<&'a str>,
    pub profile: &'a str,
}

impl Heading<'_> {
    /// A passing result with nothing seen yet, on the run's target and broker.
    pub(crate) fn result(self, env: &RunEnv, seed: u64) -> CheckResult {
        CheckResult {
            id: self.id.to_owned(),
            title: self.title,
            level: self.level,
            clause: self.clause.to_owned(),
            clause_url: self.clause_url.map(str::to_owned),
            profile: self.profile.to_owned(),
            broker: Some(env.broker.name().to_owned()),
            target: Some(env.target.name().to_owned()),
            verdict: VerdictKind::Pass,
            summary: None,
            evidence: Vec::new(),
            duration_ms: 0,
            seed: Some(seed),
            history_file: None,
            observations: Vec::new(),
        }
    }
}

/// The result of `check` before it runs: passing, nothing seen yet.
fn heading(env: &RunEnv, check: &Check) -> CheckResult {
    Heading {
        id: check.id,
        title: check.title.to_owned(),
        level: check.level,
        clause: check.clause,
        clause_url: check.clause_url,
        profile: check.profile(),
    }
    .result(env, check_seed(env.seed, check.id))
}

/// The result of `check`, skipped on the run's target and broker for `reason` without
/// starting anything.
pub fn skipped(env: &RunEnv, check: &Check, reason: String) -> CheckResult {
    let mut result = heading(env, check);
    result.verdict = VerdictKind::Skip;
    result.summary = Some(reason);
    result
}

/// Runs one check against the run's target.
pub async fn run_one(env: Arc<RunEnv>, check: &Check) -> Outcome {
    let started = Instant::now();
    let seed = check_seed(env.seed, check.id);
    if let Some(reason) = check.skip_reason(&env) {
        return Outcome {
            result: skipped(&env, check, reason),
            history: None,
        };
    }
    let mut result = heading(&env, check);
    let mut trial = Trial::new(env.clone(), check.id, seed).with_app_protocol(check.app);
    let body = AssertUnwindSafe((check.run)(&mut trial)).catch_unwind();
    let timeout = check_timeout(check, &env);
    let outcome = tokio::time::timeout(timeout, body).await;
    let problem = match outcome {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(p))) => Some(p),
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".into());
            Some(Problem::Setup(format!("the check panicked: {msg}")))
        }
        // Every wait of a check has its own deadline, so running out of the whole check's time
        // judges nothing: an error at either level (a SHOULD check must not pass as
        // non-strict by hanging). The last deliveries go into the message.
        Err(_) => {
            let evidence = trial.evidence();
            let tail = &evidence[evidence.len().saturating_sub(5)..];
            Some(Problem::Setup(format!(
                "the check did not finish within {timeout:?}; last of {} deliveries: {}",
                evidence.len(),
                tail.join("; ")
            )))
        }
    };
    let history = trial.history();
    let problem = judge_integrity(problem, &history, &mut trial).await;
    result.observations = trial.observations().to_vec();
    trial.finish(problem.is_none()).await;
    if let Some(p) = problem {
        record_problem(&mut result, p);
    }
    apply_expectations(&mut result, &env);
    result.duration_ms = started.elapsed().as_millis() as u64;
    // The target is part of the name: a run over several targets keeps each one's history.
    let name = harness_report::store::history_file_name(&format!(
        "{}::{}::{}",
        env.target.name(),
        check.id,
        env.broker
    ));
    result.history_file = Some(format!("histories/{name}"));
    Outcome {
        result,
        history: Some((name, history.to_jsonl())),
    }
}

/// How long a check that ended in a setup error waits for its sidecar's exit status: a
/// crash resets the sidecar's connections a moment before the exit can be read.
const EXIT_SETTLE: Duration = Duration::from_millis(500);

/// What every check also requires of its trial, whatever the check's own verdict:
/// - no delivery from another trial reached the app (else the harness broke: setup error);
/// - the sidecar did not exit unless the trial stopped it (a crash is a failure of the target,
///   whatever the check saw: a request the crash broke off is not a setup error);
/// - no other process of the trial exited unless the trial stopped it (setup error; a failure
///   the check found stays a failure, with the exit as evidence);
/// - no message published once arrived under two CloudEvent ids (a failure).
async fn judge_integrity(
    problem: Option<Problem>,
    history: &History,
    trial: &mut Trial,
) -> Option<Problem> {
    let foreign = harness_checkers::foreign::check(history, trial.nonce());
    if let Verdict::Invalid { evidence } = foreign.strangers_verdict() {
        return Some(Problem::Setup(format!(
            "{}: {}",
            evidence.summary,
            evidence.items.join("; ")
        )));
    }
    if matches!(problem, Some(Problem::Setup(_))) {
        trial.settle_sidecar_exit(EXIT_SETTLE).await;
    }
    let crash = trial.sidecar_exit();
    let exits: Vec<String> = crash.iter().cloned().chain(trial.broker_exit()).collect();
    if !exits.is_empty() {
        return Some(match problem {
            Some(Problem::Fail {
                summary,
                mut evidence,
            }) => {
                evidence.extend(exits);
                Problem::Fail { summary, evidence }
            }
            _ if crash.is_some() => {
                let mut evidence = Vec::new();
                if let Some(Problem::Setup(seen)) = problem {
                    evidence.push(format!("what the check saw: {seen}"));
                }
                evidence.extend(exits);
                Problem::fail("the sidecar exited during the trial (a crash)", evidence)
            }
            _ => Problem::Setup(exits.join("\n")),
        });
    }
    if problem.is_none()
        && let Verdict::Invalid { evidence } = foreign.rewrapped_verdict()
    {
        return Some(Problem::Fail {
            summary: evidence.summary,
            evidence: evidence.items,
        });
    }
    problem
}

/// Applies the target's expectations file: a failure it names becomes an expected failure
/// (it does not fail the run), a pass of a check it names an unexpected pass (it does), unless
/// the entry is intermittent: then a pass stays a pass, with a note. Skips and errors stay what
/// they are.
fn apply_expectations(result: &mut CheckResult, env: &RunEnv) {
    let Some(file) = env.target.expectations() else {
        return;
    };
    let Some(e) = file.lookup(&result.id, env.broker.name()) else {
        return;
    };
    let name = file.path().file_name().map_or_else(
        || file.path().display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match result.verdict {
        VerdictKind::Fail | VerdictKind::NonStrict => {
            let seen = result.summary.take().unwrap_or_default();
            result.verdict = VerdictKind::ExpectedFail;
            result.summary = Some(format!("expected ({name}): {}; seen: {seen}", e.describe()));
        }
        VerdictKind::Pass if e.intermittent => {
            result.summary = Some(format!(
                "passed this time; {name} lists an intermittent failure: {}",
                e.describe()
            ));
        }
        VerdictKind::Pass => {
            result.verdict = VerdictKind::UnexpectedPass;
            result.summary = Some(format!(
                "passed, but {name} says it fails: {}; remove the entry if the target changed",
                e.describe()
            ));
        }
        _ => {}
    }
}

/// Turns a check's problem into its verdict: a broken promise fails a MUST check and is
/// non-strict for a SHOULD check; a harness problem is an error.
pub fn record_problem(result: &mut CheckResult, problem: Problem) {
    match problem {
        Problem::Fail { summary, evidence } => {
            result.verdict = match result.level {
                Level::Must => VerdictKind::Fail,
                Level::Should => VerdictKind::NonStrict,
            };
            result.summary = Some(summary);
            result.evidence = evidence;
        }
        Problem::Setup(msg) => {
            result.verdict = VerdictKind::Error;
            result.summary = Some(msg);
        }
    }
}

/// How many checks run at the same time unless told otherwise (`pubsub-tck run --jobs`, and
/// the `cargo test` front-ends' `--test-threads`): four per core, between 4 and 32. A check
/// spends most of its time waiting (for deliveries, redeliveries, windows in which nothing may
/// arrive); on two cores, 8 at a time keep them about two-thirds busy on every profile and
/// broker.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores * 4).clamp(4, 32)
}

/// Runs every `(environment, check)` pair of `work` with at most `jobs` at a time, as one
/// stage of `events` (progress at each start, each result as it finishes). A slow check holds
/// up only its own slot: the next pair starts as soon as any running one ends. Results come
/// back in the order of `work`.
pub async fn run_many(
    work: Vec<(Arc<RunEnv>, Check)>,
    jobs: usize,
    events: &RunEvents,
) -> Vec<Outcome> {
    use futures::StreamExt as _;
    let stage = "checks".to_owned();
    emit(
        events,
        RunEvent::Stage {
            label: stage.clone(),
            total: work.len() as u64,
            unit: "checks",
        },
    );
    let finished = std::sync::atomic::AtomicU64::new(0);
    let finished = &finished;
    let mut done: Vec<(usize, Outcome)> = futures::stream::iter(work.into_iter().enumerate())
        .map(|(i, (env, check))| async move {
            emit(
                events,
                RunEvent::Progress {
                    done: finished.load(std::sync::atomic::Ordering::Relaxed),
                    current: Some(check.id.to_owned()),
                },
            );
            let outcome = run_one(env, &check).await;
            let n = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            emit(events, RunEvent::Finished(Box::new(outcome.result.clone())));
            emit(
                events,
                RunEvent::Progress {
                    done: n,
                    current: None,
                },
            );
            (i, outcome)
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    emit(
        events,
        RunEvent::StageFinished {
            label: stage,
            summary: None,
        },
    );
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, outcome)| outcome).collect()
}

/// Where a check goes in the order a run starts its checks (sort by it, stably): the
/// `robustness` campaigns first, the rest in catalog order. The campaigns are the longest
/// trials by far (tens of seconds), and a run ends no sooner than its last long trial's start
/// plus its length.
pub fn start_rank(check: &Check) -> u8 {
    u8::from(check.profile() != "robustness")
}

/// The checks a run selects: `profile` must equal the first id segment, `filter` must be a
/// substring of the id; `None` selects everything.
pub fn select(checks: Vec<Check>, profile: Option<&str>, filter: Option<&str>) -> Vec<Check> {
    checks
        .into_iter()
        .filter(|c| profile.is_none_or(|p| c.profile() == p))
        .filter(|c| filter.is_none_or(|f| c.id.contains(f)))
        .collect()
}

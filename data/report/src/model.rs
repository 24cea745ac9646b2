//! The serialized report model: [`RunReport`], [`CheckResult`] and friends.
//!
//! Owns field names, their serde spelling and the derived numbers (totals,
//! headline, exit code). It does not own any rendering.

use serde::{Deserialize, Serialize};

/// Version of the `results.json` schema. Bump it when a field changes
/// meaning or is removed; adding an optional field does not need a bump.
pub const FORMAT_VERSION: u32 = 1;

/// Requirement level of a check, after RFC 2119.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// A failure fails the run.
    Must,
    /// A failure is reported as non-strict and does not fail the run.
    Should,
}

impl Level {
    /// `MUST` or `SHOULD`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
        }
    }
}

/// What happened to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// The sidecar kept the promise.
    Pass,
    /// The sidecar broke the promise.
    Fail,
    /// The sidecar broke a SHOULD-level promise.
    NonStrict,
    /// The check did not apply (capability missing, broker not configured).
    Skip,
    /// The harness or its setup broke, so the sidecar was not judged.
    Error,
    /// The check failed as the target's expectations file says it does (a divergence of the
    /// target written down with its reason); it does not fail the run.
    ExpectedFail,
    /// The check passed although the target's expectations file says it fails: the file is
    /// out of date. It fails the run, so the file stays true.
    UnexpectedPass,
}

impl VerdictKind {
    /// `pass`, `fail`, `non-strict`, `skip` or `error`, as serialized.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NonStrict => "non-strict",
            Self::Skip => "skip",
            Self::Error => "error",
            Self::ExpectedFail => "expected-fail",
            Self::UnexpectedPass => "unexpected-pass",
        }
    }

    /// Sort rank for "worst first" listings.
    pub(crate) fn severity(self) -> u8 {
        match self {
            Self::Fail => 0,
            Self::UnexpectedPass => 1,
            Self::Error => 2,
            Self::NonStrict => 3,
            Self::ExpectedFail => 4,
            Self::Skip => 5,
            Self::Pass => 6,
        }
    }
}

/// The result of one check (one trial) in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable check id, usable with `--filter`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// MUST or SHOULD.
    pub level: Level,
    /// The spec clause checked, such as `pubsub/retries#dead-letter`.
    pub clause: String,
    /// A link to the clause, if it has one.
    pub clause_url: Option<String>,
    /// The profile (support level) the check belongs to.
    pub profile: String,
    /// The broker it ran against, when that matters.
    pub broker: Option<String>,
    /// The target it ran against (a run may span several; see the matrix section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What happened.
    pub verdict: VerdictKind,
    /// One line: why it failed, errored or was skipped.
    pub summary: Option<String>,
    /// Concrete facts behind a failure: ids, times, expected against seen.
    pub evidence: Vec<String>,
    /// Wall time of the check.
    pub duration_ms: u64,
    /// The trial seed, when it differs from the run seed.
    pub seed: Option<u64>,
    /// The trial's history file, relative to the run directory.
    pub history_file: Option<String>,
    /// What the check measured beyond its verdict, one line each: how order broke where the
    /// broker does not promise it, a duplicate rate. Never a reason to pass or fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<String>,
}

/// An extra report section, such as a cross-broker comparison table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Section heading (plain text).
    pub title: String,
    /// Body for `summary.md`, inserted as is.
    pub markdown: String,
    /// Body for `report.html`, inserted as is: a trusted fragment built by
    /// the harness, which must escape anything it interpolates.
    pub html: String,
}

/// Everything one invocation of the tool found. Serialized as
/// `results.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Always [`FORMAT_VERSION`] when written by this crate.
    pub format_version: u32,
    /// Unique id of the run; also the run directory name.
    pub run_id: String,
    /// Version of the tool that produced the report.
    pub tool_version: String,
    /// What was tested, such as `reference-sidecar 0.1.0` or `daprd 1.15`.
    pub target: String,
    /// The target description file, if one was used.
    pub target_file: Option<String>,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// The run seed.
    pub seed: u64,
    /// The profile selected for the run, if one was.
    pub profile: Option<String>,
    /// The broker selected for the run, if one was.
    pub broker: Option<String>,
    /// What ran besides the target, by role: `broker redis` → `Redis 7.0.15`, `fault proxy` →
    /// `Toxiproxy 2.12.0`, and so on.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub environment: std::collections::BTreeMap<String, String>,
    /// One entry per check, in run order.
    pub checks: Vec<CheckResult>,
    /// Extra sections appended to the human reports.
    pub extra_sections: Vec<Section>,
}

/// Counts of checks by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// SHOULD checks that failed.
    pub non_strict: usize,
    /// Skipped.
    pub skip: usize,
    /// Setup or harness errors.
    pub error: usize,
    /// Failures the target's expectations file names.
    pub expected_fail: usize,
    /// Passes the target's expectations file says are failures.
    pub unexpected_pass: usize,
    /// All checks.
    pub total: usize,
}

/// The one-line outcome of a run, shown first in every human report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headline {
    /// `PASS`, `FAIL` or `ERROR`, matching [`RunReport::exit_code`].
    pub status: &'static str,
    /// Such as `3 of 64 MUST checks failed`.
    pub text: String,
}

impl RunReport {
    /// An empty report at the current [`FORMAT_VERSION`].
    #[must_use]
    pub fn new(
        run_id: impl Into<String>,
        tool_version: impl Into<String>,
        target: impl Into<String>,
        started_at: impl Into<String>,
        seed: u64,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            run_id: run_id.into(),
            tool_version: tool_version.into(),
            target: target.into(),
            target_file: None,
            started_at: started_at.into(),
            duration_ms: 0,
            seed,
            profile: None,
            broker: None,
            environment: std::collections::BTreeMap::new(),
            checks: Vec::new(),
            extra_sections: Vec::new(),
        }
    }

    /// Counts of checks by verdict.
    #[must_use]
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            total: self.checks.len(),
            ..Totals::default()
        };
        for c in &self.checks {
            match c.verdict {
                VerdictKind::Pass => t.pass += 1,
                VerdictKind::Fail => t.fail += 1,
                VerdictKind::NonStrict => t.non_strict += 1,
                VerdictKind::Skip => t.skip += 1,
                VerdictKind::Error => t.error += 1,
                VerdictKind::ExpectedFail => t.expected_fail += 1,
                VerdictKind::UnexpectedPass => t.unexpected_pass += 1,
            }
        }
        t
    }

    /// 0 when no MUST check failed and nothing errored; 1 when a MUST check
    /// failed or a check passed that the expectations file says fails
    /// (whether or not something also errored); 2 when something errored and
    /// neither of those happened. Expected failures never fail a run.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        if self.must_failures() > 0 {
            1
        } else if self.checks.iter().any(|c| c.verdict == VerdictKind::Error) {
            2
        } else {
            0
        }
    }

    fn must_failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| {
                (c.level == Level::Must && c.verdict == VerdictKind::Fail)
                    || c.verdict == VerdictKind::UnexpectedPass
            })
            .count()
    }

    /// The one-line outcome, consistent with [`exit_code`](Self::exit_code).
    #[must_use]
    pub fn headline(&self) -> Headline {
        let t = self.totals();
        // The denominator is MUST checks that were judged: skipped, errored
        // and expected-to-fail checks are counted separately.
        let musts = self
            .checks
            .iter()
            .filter(|c| {
                c.level == Level::Must
                    && matches!(
                        c.verdict,
                        VerdictKind::Pass
                            | VerdictKind::Fail
                            | VerdictKind::NonStrict
                            | VerdictKind::UnexpectedPass
                    )
            })
            .count();
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut extras = Vec::new();
        let (status, text) = match self.exit_code() {
            1 => {
                if t.error > 0 {
                    extras.push(plural(t.error, "error", "errors"));
                }
                (
                    "FAIL",
                    format!(
                        "{} of {} failed",
                        self.must_failures(),
                        plural(musts, "MUST check", "MUST checks")
                    ),
                )
            }
            2 => (
                "ERROR",
                format!(
                    "{} could not run (harness or setup error)",
                    plural(t.error, "check", "checks")
                ),
            ),
            _ if t.total == 0 => ("PASS", "no checks ran".to_owned()),
            _ if musts == 0 => ("PASS", "no MUST checks ran".to_owned()),
            _ if musts == 1 => ("PASS", "the MUST check passed".to_owned()),
            _ => ("PASS", format!("all {musts} MUST checks passed")),
        };
        if t.non_strict > 0 {
            extras.push(format!(
                "{} failed",
                plural(t.non_strict, "SHOULD check", "SHOULD checks")
            ));
        }
        if t.expected_fail > 0 {
            extras.push(plural(
                t.expected_fail,
                "expected failure",
                "expected failures",
            ));
        }
        if t.unexpected_pass > 0 {
            extras.push(format!(
                "{} unexpectedly passing (update the expectations file)",
                t.unexpected_pass
            ));
        }
        if t.skip > 0 {
            extras.push(format!("{} skipped", t.skip));
        }
        let text = if extras.is_empty() {
            text
        } else {
            format!("{text} ({})", extras.join(", "))
        };
        Headline { status, text }
    }

    /// The command that replays one check: its seed (or the run seed) and
    /// its id, quoted for a POSIX shell when needed.
    #[must_use]
    pub fn replay_command(&self, check: &CheckResult) -> String {
        format!(
            "pubsub-tck run --seed {} --filter {}",
            check.seed.unwrap_or(self.seed),
            shell_quote(&check.id)
        )
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/@+=,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

//! The flakiness gate: one selection of checks run N times with fresh seeds, tallied per
//! check (and broker), as `pubsub-tck run --repeat N` writes it.
//!
//! After nextest's flaky detection: a check is *flaky* when some runs passed it and others
//! did not, *failing* when no run passed it, *stable* otherwise. Every non-passing run is
//! named by its seed, which replays it with `--seed`. A failure the target's expectations file
//! names counts as a pass, and is listed on its own: an `intermittent` entry (a crash seen in
//! some runs) is tallied, not hidden.
//!
//! Pure: [`RepeatReport::from_runs`] folds finished [`RunReport`]s, [`RepeatReport::markdown`]
//! renders `repeat.md`; the CLI writes the files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{RunReport, VerdictKind};

/// Version of the serialized shape (`repeat.json`).
pub const REPEAT_FORMAT_VERSION: u32 = 1;

/// One run of the repeated selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatRun {
    /// The run's id (its report directory).
    pub run_id: String,
    /// Its seed.
    pub seed: u64,
    /// Its exit code (0 pass, 1 a MUST failure, 2 an error).
    pub exit_code: i32,
    /// Wall time.
    pub duration_ms: u64,
}

/// One check on one broker, over every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckTally {
    /// Check id.
    pub id: String,
    /// Broker, when the check ran on one.
    pub broker: Option<String>,
    /// Target, when the runs spanned several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Runs that passed it, or failed it as the expectations file says. A SHOULD check's
    /// non-strict failure does not count: a SHOULD check that flips is flaky too.
    pub passed: u32,
    /// Runs that skipped it.
    pub skipped: u32,
    /// Seeds of the runs that failed it as the expectations file says (counted in `passed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_failures: Vec<u64>,
    /// Runs in which it failed (non-strict included), errored or passed unexpectedly, each
    /// `(seed, verdict, summary)`.
    pub not_passed: Vec<(u64, VerdictKind, String)>,
}

impl CheckTally {
    /// Runs that decided something (not skipped).
    pub fn decided(&self) -> u32 {
        self.passed + self.not_passed.len() as u32
    }

    /// Passed in some runs and not in others.
    pub fn is_flaky(&self) -> bool {
        self.passed > 0 && !self.not_passed.is_empty()
    }

    /// Never passed, though it ran.
    pub fn is_failing(&self) -> bool {
        self.passed == 0 && !self.not_passed.is_empty()
    }
}

/// The tally of a repeated run. Serialized as `repeat.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatReport {
    /// Always [`REPEAT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The target's name.
    pub target: String,
    /// The runs, in order.
    pub runs: Vec<RepeatRun>,
    /// Every check × broker, in first-seen order.
    pub checks: Vec<CheckTally>,
}

impl RepeatReport {
    /// Folds the reports of the runs, in the order they ran.
    pub fn from_runs(target: &str, runs: &[RunReport]) -> RepeatReport {
        type Key = (String, Option<String>, Option<String>);
        let mut order: Vec<Key> = Vec::new();
        let mut tallies: BTreeMap<Key, CheckTally> = BTreeMap::new();
        for run in runs {
            for c in &run.checks {
                let key = (c.id.clone(), c.broker.clone(), c.target.clone());
                let tally = tallies.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    CheckTally {
                        id: c.id.clone(),
                        broker: c.broker.clone(),
                        target: c.target.clone(),
                        passed: 0,
                        skipped: 0,
                        expected_failures: Vec::new(),
                        not_passed: Vec::new(),
                    }
                });
                match c.verdict {
                    VerdictKind::Pass => tally.passed += 1,
                    VerdictKind::ExpectedFail => {
                        tally.passed += 1;
                        tally.expected_failures.push(run.seed);
                    }
                    VerdictKind::Skip => tally.skipped += 1,
                    VerdictKind::Fail
                    | VerdictKind::NonStrict
                    | VerdictKind::Error
                    | VerdictKind::UnexpectedPass => tally.not_passed.push((
                        run.seed,
                        c.verdict,
                        c.summary.clone().unwrap_or_default(),
                    )),
                }
            }
        }
        RepeatReport {
            format_version: REPEAT_FORMAT_VERSION,
            target: target.to_owned(),
            runs: runs
                .iter()
                .map(|r| RepeatRun {
                    run_id: r.run_id.clone(),
                    seed: r.seed,
                    exit_code: r.exit_code(),
                    duration_ms: r.duration_ms,
                })
                .collect(),
            checks: order
                .into_iter()
                .filter_map(|k| tallies.remove(&k))
                .collect(),
        }
    }

    /// Checks that passed in some runs and not in others.
    pub fn flaky(&self) -> impl Iterator<Item = &CheckTally> {
        self.checks.iter().filter(|c| c.is_flaky())
    }

    /// Checks that never passed.
    pub fn failing(&self) -> impl Iterator<Item = &CheckTally> {
        self.checks.iter().filter(|c| c.is_failing())
    }

    /// Checks that failed as the target's expectations file says in some runs.
    fn failed_as_expected(&self) -> impl Iterator<Item = &CheckTally> {
        self.checks
            .iter()
            .filter(|c| !c.expected_failures.is_empty())
    }

    /// 0 when every run passed, else the worst run's exit code (1 before 2, as for one run).
    pub fn exit_code(&self) -> i32 {
        let codes = self.runs.iter().map(|r| r.exit_code);
        if codes.clone().any(|c| c == 1) {
            1
        } else {
            codes.max().unwrap_or(0)
        }
    }

    /// One line: runs passed, flaky and failing checks, and checks that failed as expected in
    /// some runs (when any did).
    pub fn headline(&self) -> String {
        let passed = self.runs.iter().filter(|r| r.exit_code == 0).count();
        let expected = self.failed_as_expected().count();
        let expected = if expected > 0 {
            format!("; {expected} failed as expected in some runs")
        } else {
            String::new()
        };
        format!(
            "{passed} of {} runs passed; {} flaky, {} failing of {} checks{expected}",
            self.runs.len(),
            self.flaky().count(),
            self.failing().count(),
            self.checks.len()
        )
    }

    /// `repeat.md`: the headline, the runs with their seeds, then every check that did not
    /// pass in every run that decided it, with the seeds that replay each failure.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Repeated run against `{}`\n\n{}\n\n## Runs\n\n| run | seed | exit | seconds |\n|---|---|---|---|\n",
            self.target,
            self.headline()
        );
        for r in &self.runs {
            s.push_str(&format!(
                "| `{}` | {} | {} | {:.1} |\n",
                r.run_id,
                r.seed,
                r.exit_code,
                r.duration_ms as f64 / 1000.0
            ));
        }
        let expected: Vec<&CheckTally> = self.failed_as_expected().collect();
        if !expected.is_empty() {
            s.push_str("\n## Expected failures\n\nFailures the target's expectations file names, counted as passes above.\n\n| check | broker | target | runs | seeds |\n|---|---|---|---|---|\n");
            for c in expected {
                let seeds: Vec<String> = c.expected_failures.iter().map(u64::to_string).collect();
                s.push_str(&format!(
                    "| `{}` | {} | {} | {}/{} | {} |\n",
                    c.id,
                    c.broker.as_deref().unwrap_or("-"),
                    c.target.as_deref().unwrap_or("-"),
                    c.expected_failures.len(),
                    c.decided(),
                    seeds.join(", ")
                ));
            }
        }
        let bad: Vec<&CheckTally> = self
            .checks
            .iter()
            .filter(|c| !c.not_passed.is_empty())
            .collect();
        s.push_str("\n## Checks that did not always pass\n\n");
        if bad.is_empty() {
            s.push_str("None: every check passed (or was skipped) in every run.\n");
            return s;
        }
        s.push_str(
            "| check | broker | target | passed | kind | seeds of the other runs |\n|---|---|---|---|---|---|\n",
        );
        for c in bad {
            let seeds: Vec<String> = c
                .not_passed
                .iter()
                .map(|(seed, v, summary)| format!("{seed} ({}: {})", v.as_str(), one_line(summary)))
                .collect();
            s.push_str(&format!(
                "| `{}` | {} | {} | {}/{} | {} | {} |\n",
                c.id,
                c.broker.as_deref().unwrap_or("-"),
                c.target.as_deref().unwrap_or("-"),
                c.passed,
                c.decided(),
                if c.is_flaky() { "flaky" } else { "failing" },
                seeds.join("; ")
            ));
        }
        s
    }
}

/// The first line of a summary, without table-breaking pipes, at most 120 characters.
fn one_line(s: &str) -> String {
    let line: String = s.lines().next().unwrap_or_default().replace('|', "/");
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_contains_all, report_with};

    fn run(seed: u64, verdicts: &[(&str, VerdictKind)]) -> RunReport {
        let mut r = report_with(verdicts);
        r.seed = seed;
        r.run_id = format!("run-{seed}");
        r
    }

    #[test]
    fn tallies_flaky_failing_and_stable_checks() {
        use VerdictKind::*;
        let runs = [
            run(1, &[("a", Pass), ("b", Pass), ("c", Fail), ("d", Skip)]),
            run(2, &[("a", Pass), ("b", Error), ("c", Fail), ("d", Skip)]),
            run(
                3,
                &[
                    ("a", ExpectedFail),
                    ("b", Pass),
                    ("c", NonStrict),
                    ("d", Skip),
                ],
            ),
        ];
        let r = RepeatReport::from_runs("reference", &runs);
        assert_eq!(
            r.headline(),
            "1 of 3 runs passed; 1 flaky, 1 failing of 4 checks; 1 failed as expected in some runs"
        );
        let flaky: Vec<&str> = r.flaky().map(|c| c.id.as_str()).collect();
        assert_eq!(flaky, ["b"]);
        let failing: Vec<&str> = r.failing().map(|c| c.id.as_str()).collect();
        assert_eq!(failing, ["c"]);
        assert_eq!(r.exit_code(), 1);
        let md = r.markdown();
        assert_contains_all(
            &md,
            &[
                "| `b` | - | - | 2/3 | flaky | 2 (error: ",
                "| `c` | - | - | 0/3 | failing | 1 (fail: ",
                "| `a` | - | - | 1/3 | 3 |",
                "| check | broker | target | passed | kind |",
            ],
        );
        assert!(!md.contains("| `d` |"), "{md}");
    }

    #[test]
    fn all_green_says_so() {
        let runs = [run(5, &[("a", VerdictKind::Pass)])];
        let r = RepeatReport::from_runs("reference", &runs);
        assert_eq!(r.exit_code(), 0);
        assert!(r.markdown().contains("None: every check passed"));
    }
}

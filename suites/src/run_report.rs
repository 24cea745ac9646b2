//! A run's report, built from the outcomes its front-end collected. Both front-ends over the
//! catalog, `pubsub-tck run` and the libtest binary ([`crate::conformance`]), write their run
//! directory through [`RunRecord`], so `cargo test` leaves the same `results.json`,
//! `junit.xml`, `summary.md`, `report.html` and histories as a run, with the same sections.
//!
//! It also owns the run's stamps: the run id ([`run_id`]) and the start time as reports write
//! it ([`rfc3339_seconds`]). Rendering and the directory layout are `harness_report`'s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use harness_engine::runner::Outcome;
use harness_report::{CheckResult, RunReport};

/// A run under way: its report so far and the histories of the checks that ran.
pub struct RunRecord {
    report: RunReport,
    histories: Vec<(String, String)>,
    started: Instant,
}

impl RunRecord {
    /// A run of the kit at version `tool_version` with `seed`, starting now; its id sorts by
    /// time and names the seed (see [`run_id`]).
    pub fn start(tool_version: &str, seed: u64) -> Self {
        let now = time::OffsetDateTime::now_utc();
        Self {
            report: RunReport::new(
                run_id(now, seed),
                tool_version,
                String::new(),
                rfc3339_seconds(now),
                seed,
            ),
            histories: Vec::new(),
            started: Instant::now(),
        }
    }

    /// The run id: also the name of the run's directory under the report base.
    pub fn run_id(&self) -> &str {
        &self.report.run_id
    }

    /// The report's header, for what the front-end knows: the target names and file, the
    /// profile and broker selection, the environment.
    pub fn report_mut(&mut self) -> &mut RunReport {
        &mut self.report
    }

    /// Whether no result has been added yet.
    pub fn is_empty(&self) -> bool {
        self.report.checks.is_empty()
    }

    /// Adds one check's outcome; results keep the order they are added in.
    pub fn push(&mut self, outcome: Outcome) {
        if let Some(h) = outcome.history {
            self.histories.push(h);
        }
        self.report.checks.push(outcome.result);
    }

    /// Adds a result that has no history (a skip decided before the check ran).
    pub fn push_result(&mut self, result: CheckResult) {
        self.report.checks.push(result);
    }

    /// Orders the results with `key` (stable), such as the catalog's order.
    pub fn sort_by_key<K: Ord>(&mut self, key: impl FnMut(&CheckResult) -> K) {
        self.report.checks.sort_by_key(key);
    }

    /// Closes the run: its duration, the sections over its results (the check × target
    /// matrix over several targets, the cross-broker table for `target`), then writes the run
    /// directory under `base` and refreshes `latest`. Returns the report and the directory.
    pub fn write(
        mut self,
        base: &Path,
        target: &harness::TargetFile,
    ) -> std::io::Result<(RunReport, PathBuf)> {
        let report = &mut self.report;
        report.duration_ms = self.started.elapsed().as_millis() as u64;
        if let Some(section) = harness_report::matrix::section(&report.checks) {
            report.extra_sections.push(section);
        }
        if let Some(section) = crate::cross_broker::section(&report.checks, target) {
            report.extra_sections.push(section);
        }
        let dir = harness_report::store::write_run(base, &self.report, &self.histories)?;
        Ok((self.report, dir))
    }
}

/// `<UTC date>T<time>Z-<seed>`: sorts by time, names the seed.
pub fn run_id(now: time::OffsetDateTime, seed: u64) -> String {
    format!("{}-{seed}", compact_utc(now))
}

/// `<UTC date>T<time>Z` without separators (`20261207T163000Z`), as run directories are named.
pub fn compact_utc(now: time::OffsetDateTime) -> String {
    rfc3339_seconds(now).replace(['-', ':'], "")
}

/// `t` as RFC 3339 in UTC to the second (`2026-12-07T16:30:00Z`), as every report stamps its
/// start. A year RFC 3339 cannot write (before 0 or after 9999) comes out as Unix seconds.
pub fn rfc3339_seconds(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_by_time_and_name_the_seed() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_796_660_400).expect("a valid time");
        assert_eq!(rfc3339_seconds(t), "2026-12-07T16:20:00Z");
        let offset = time::UtcOffset::from_hms(2, 0, 0).expect("a valid offset");
        let fraction = time::Duration::milliseconds(250);
        assert_eq!(
            rfc3339_seconds((t + fraction).to_offset(offset)),
            "2026-12-07T16:20:00Z"
        );
        assert_eq!(run_id(t, 42), "20261207T162000Z-42");
        let later = t + time::Duration::seconds(1);
        assert!(run_id(t, 42) < run_id(later, 7));
    }
}

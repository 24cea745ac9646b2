//! The bench run directory: `<base>/<run-id>/` with `results.json`, `summary.md`,
//! `report.html`, and the `logs/` and `resources/` the run wrote, plus `<base>/latest`, a copy
//! refreshed the way `pubsub-tck run` refreshes its own (`harness_report::store`).

use std::io;
use std::path::{Path, PathBuf};

use super::model::{self, BenchReport};
use super::{html, markdown};

/// Writes the three reports into `run_dir` (which may already hold `logs/` and `resources/`),
/// then refreshes `base_dir/latest`. Returns `run_dir`.
pub fn write_run(base_dir: &Path, run_dir: &Path, report: &BenchReport) -> io::Result<PathBuf> {
    std::fs::create_dir_all(run_dir)?;
    std::fs::write(run_dir.join("results.json"), model::render(report))?;
    std::fs::write(run_dir.join("summary.md"), markdown::render(report))?;
    std::fs::write(run_dir.join("report.html"), html::render(report))?;
    crate::store::refresh_latest(base_dir, run_dir)?;
    Ok(run_dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::test_support::sample_report;

    #[test]
    fn writes_reports_and_latest() {
        let base = tempfile::tempdir().unwrap();
        let run = base.path().join("run-1");
        std::fs::create_dir_all(run.join("logs")).unwrap();
        let report = sample_report();
        write_run(base.path(), &run, &report).unwrap();
        let back =
            model::parse(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
        assert_eq!(back, report);
        let latest = base.path().join("latest");
        assert!(latest.join("summary.md").is_file());
        assert!(latest.join("report.html").is_file());
        assert!(latest.join("logs").is_dir());
    }
}

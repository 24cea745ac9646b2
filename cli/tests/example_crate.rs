//! The example of an implementer's crate (`examples/implementer/`) builds against the kit as a
//! dependency and runs the checks as its own `cargo test` trials against refsidecar (built by
//! the README's test command): the library entry point works outside this workspace, and
//! leaves the run's report as `pubsub-tck run` does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure

mod common;

use common::workspace;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_example_crate_runs_the_checks_as_its_own_trials() {
    let root = workspace();
    // A target directory of its own: the cargo running this test holds the workspace's.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("example-implementer");
    let reports = target_dir.join("reports");
    if reports.exists() {
        std::fs::remove_dir_all(&reports).unwrap();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root.join("examples/implementer"))
        .args([
            "test",
            "--locked",
            "--test",
            "conformance",
            "--",
            "core::publish::",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("PUBSUB_TCK_BROKERS", "in-memory")
        .env("PUBSUB_TCK_REPORT_DIR", &reports)
        .env_remove("PUBSUB_TCK_TARGET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("target `my-sidecar`"), "{stderr}");
    assert!(
        stdout.contains("core::publish::json_accepted::in-memory")
            && stdout.contains("test result: ok"),
        "{stdout}"
    );

    // The report holds exactly the trials libtest ran or listed as ignored (skips).
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("test result: ok. "))
        .expect("libtest's summary line");
    let count = |what: &str| -> usize {
        summary
            .split("; ")
            .find_map(|part| part.strip_suffix(what))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("`{what}` in {summary}"))
    };
    let listed = count(" passed") + count(" ignored");
    let results = std::fs::read_to_string(reports.join("latest/results.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&results).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), listed, "{results}");
    assert!(
        checks
            .iter()
            .any(|c| c["id"] == "core::publish::json_accepted"
                && c["broker"] == "in-memory"
                && c["verdict"] == "pass"),
        "{results}"
    );
    assert_eq!(report["target"], "my-sidecar", "{results}");
    for file in ["junit.xml", "summary.md", "report.html"] {
        assert!(
            reports.join("latest").join(file).is_file(),
            "{file} is missing"
        );
    }
}

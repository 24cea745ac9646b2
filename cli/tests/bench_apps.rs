//! `pubsub-tck bench apps` end to end against refsidecar: two real subscriber apps (Python's
//! `http.server` and the Go SDK's gRPC service) take every message, and the report says so.
//! It asserts what was delivered, never how fast: rates belong to benchmark reports.
//!
//! The apps come from the README's test command (`PUBSUB_TCK_PYTHON`, `PUBSUB_TCK_GO_APPS`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure

mod common;

use common::workspace;
use std::process::Command;

#[test]
fn every_message_reaches_each_app_and_the_report_has_a_rate() {
    for var in ["PUBSUB_TCK_PYTHON", "PUBSUB_TCK_GO_APPS"] {
        assert!(
            std::env::var_os(var).is_some(),
            "{var} is not set: run this test through the README's test command (bash scripts/test.sh), which installs the apps"
        );
    }
    let root = workspace();
    let reports =
        std::env::temp_dir().join(format!("pubsub-tck-bench-apps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&reports);
    let out = Command::new(env!("CARGO_BIN_EXE_pubsub-tck"))
        .current_dir(&root)
        .args([
            "bench",
            "apps",
            "--no-build",
            "--target",
            "fixtures/targets/reference.toml",
        ])
        .args([
            "--app",
            "plain,go-grpc",
            "--messages",
            "50",
            "--deadline",
            "60s",
        ])
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("2 measured, 0 could not be"), "{text}");

    let run = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("apps.json").exists())
        .expect("a run directory with apps.json");
    let cells: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("apps.json")).unwrap()).unwrap();
    let cells = cells.as_array().unwrap();
    let apps: Vec<&str> = cells.iter().filter_map(|c| c["app"].as_str()).collect();
    assert_eq!(apps, ["plain", "go-grpc"], "{text}");
    for c in cells {
        assert_eq!(c["target"], "reference", "{c}");
        assert_eq!(c["messages"], 50, "{c}");
        assert_eq!(c["taken"], 50, "every message must reach the app: {c}");
        assert!(c["rate"].as_f64().is_some_and(|r| r > 0.0), "{c}");
        assert!(c.get("error").is_none(), "{c}");
    }
    let md = std::fs::read_to_string(run.join("apps.md")).unwrap();
    assert!(md.contains("| plain | Python http.server"), "{md}");
    let _ = std::fs::remove_dir_all(&reports);
}

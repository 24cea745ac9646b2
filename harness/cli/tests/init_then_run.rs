//! A new user's first steps, from an empty directory: `pubsub-tck init` for their sidecar (here
//! refsidecar, as the README's test command builds it), then `pubsub-tck run` against the new
//! file, which must pass and write its reports there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure

mod common;

use common::workspace;
use std::process::Command;

#[test]
fn init_then_run_from_an_empty_directory() {
    let sidecar = workspace().join("target/release/refsidecar");
    assert!(
        sidecar.exists(),
        "{} is missing: build it first (cargo build --release -p reference-sidecar)",
        sidecar.display()
    );
    let dir = std::env::temp_dir().join(format!("pubsub-tck-first-steps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tck = env!("CARGO_BIN_EXE_pubsub-tck");

    let init = Command::new(tck)
        .current_dir(&dir)
        .args(["init", "--name", "mine", "--flags", "minimal", "--command"])
        .arg(&sidecar)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(dir.join("mine.toml").exists() && dir.join("mine.expect.toml").exists());

    let run = Command::new(tck)
        .current_dir(&dir)
        .args(["run", "--no-build", "--target"])
        .arg(dir.join("mine.toml"))
        .args(["--filter", "core::publish::", "--seed", "1", "--report-dir"])
        .arg(dir.join("reports"))
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(0), "{out}");
    assert!(out.contains("passed, 0 failed"), "{out}");
    assert!(dir.join("reports/latest/results.json").exists(), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

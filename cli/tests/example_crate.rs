//! The example of an implementer's crate (`examples/implementer/`) builds against the kit as a
//! dependency and runs the checks as its own `cargo test` trials against refsidecar (built by
//! the README's test command): the library entry point works outside this workspace.

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
}

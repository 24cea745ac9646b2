//! The panic hook of `reference_sidecar::panic`: a panic in a spawned task is logged at error
//! level with its location and aborts the process (instead of ending only that task).
//!
//! The test runs this test binary again as a child process with `PANIC_HOOK_CHILD` set; the
//! child installs the hook and panics inside a tokio task.

// clippy's allow-unwrap-in-tests does not cover integration-test directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt as _;
use std::process::Command;

const CHILD_ENV: &str = "PANIC_HOOK_CHILD";

#[test]
fn a_panicking_task_is_logged_and_aborts_the_process() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_panics_in_a_task",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "the child must die of SIGABRT; status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("ERROR") && stderr.contains("panic_hook.rs:"),
        "the panic is logged at error level with its location:\n{stderr}"
    );
    assert!(
        stderr.contains("boom in a task"),
        "the message is logged:\n{stderr}"
    );
    assert!(
        !stderr.contains("task survived"),
        "nothing runs after the panic:\n{stdout}"
    );
}

/// Does nothing unless run as the child of the test above.
#[test]
fn child_panics_in_a_task() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    reference_sidecar::panic::install_abort_on_panic();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let task = tokio::spawn(async { panic!("boom in a task") });
        // Without the hook the runtime would catch the panic and hand it back here.
        let _ = task.await;
        eprintln!("task survived");
    });
}

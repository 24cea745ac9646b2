//! What the CLI's integration tests share.

#![allow(clippy::expect_used)] // a test helper: a panic is the test's failure

use std::path::{Path, PathBuf};

/// The workspace root (two levels above `harness/cli`).
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("invariant: harness/cli sits two levels below the workspace root")
        .to_owned()
}

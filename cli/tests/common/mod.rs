//! What the CLI's integration tests share.

#![allow(clippy::expect_used)] // a test helper: a panic is the test's failure

use std::path::{Path, PathBuf};

/// The workspace root (the folder above `cli/`).
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("invariant: cli/ sits one level below the workspace root")
        .to_owned()
}

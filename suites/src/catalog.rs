//! The catalog: every check of pubsub-tck, in a fixed order.
//!
//! Listing the catalog starts nothing. Whether a check can run against a target is decided
//! from the target file, the broker, its addresses and the installed app runtimes alone
//! ([`Check::skip_reason`]), so a skip is known before the run and shows, with its reason, in
//! every report.

pub use harness_engine::check::{AppProtocol, Check, CheckFn, CheckFuture, Level, Need};

/// Every check, in catalog order (areas in a fixed order, checks as written, a check's run
/// over a gRPC app right after it).
pub fn all() -> Vec<Check> {
    static CATALOG: std::sync::OnceLock<Vec<Check>> = std::sync::OnceLock::new();
    CATALOG.get_or_init(crate::checks::all).clone()
}

/// The id of every check, for validating what names one (an expectations file).
pub fn ids() -> Vec<&'static str> {
    all().iter().map(|c| c.id).collect()
}

/// Builds a [`Check`] from an async fn taking `&mut Trial`.
#[macro_export]
macro_rules! check {
    ($id:literal, $level:ident, $title:literal, $clause:literal, $url:expr, [$($need:expr),*], $body:path) => {
        $crate::catalog::Check {
            id: $id,
            title: $title,
            clause: $clause,
            clause_url: $url,
            level: $crate::catalog::Level::$level,
            needs: &[$($need),*],
            app: $crate::catalog::AppProtocol::Http,
            run: |t| Box::pin($body(t)),
        }
    };
}

//! The process-wide panic policy: a panic anywhere (a request handler, a delivery loop, a
//! broker task) is logged at error level with its location and the process aborts.
//!
//! Without it a panic ends only the tokio task it happens in: a connection resets, or worse, a
//! subscription's consumer stops and the sidecar keeps running without delivering, which a
//! black-box check cannot tell from a slow app. Aborting makes every panic visible as a process
//! exit (SIGABRT), the way daprd's runtime exits on a Go panic.
//!
//! Owns the hook only; nothing here catches or recovers from a panic.

use std::io::Write as _;
use std::panic::PanicHookInfo;

/// Installs the hook: log the panic (message, location, thread), then abort. Call it once,
/// after the tracing subscriber is set up, so that the line goes where the other logs go.
pub fn install_abort_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let line = describe(info);
        if tracing::dispatcher::has_been_set() {
            tracing::error!("{line}; aborting");
        } else {
            // No subscriber yet (a panic during start-up): stderr is all there is.
            let _ = writeln!(std::io::stderr(), "refsidecar: {line}; aborting");
        }
        std::process::abort();
    }));
}

/// `panic at <file>:<line>:<column> on thread <name>: <message>`.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "an unknown location".to_owned());
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not a string)");
    format!("panic at {location} on thread {thread}: {message}")
}

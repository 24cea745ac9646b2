//! `subscription::parse_programmatic`: the app's `GET /dapr/subscribe` answer (JSON with routes,
//! CEL rules, metadata, bulk settings), then the precedence merge with itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_sidecar::subscription::{merge, parse_programmatic};

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_programmatic(data) {
        for s in &parsed.subscriptions {
            let _ = s.raw_payload();
            assert!(!s.rules.is_empty(), "an entry without routes is dropped");
        }
        let n = parsed.subscriptions.len();
        let merged = merge(parsed.subscriptions.clone(), parsed.subscriptions);
        assert!(merged.len() <= n);
    }
});

//! Publish metadata as `publish.rs` reads it: `ttlInSeconds`/`ttl`, `rawPayload`, the
//! `cloudevent.*` overrides. A TTL never exceeds Go's longest duration.

#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use reference_sidecar::cloudevent::Overrides;
use reference_sidecar::publish::{raw_payload, ttl};

fuzz_target!(|pairs: Vec<(String, String)>| {
    let md: BTreeMap<String, String> = pairs.into_iter().collect();
    if let Some(t) = ttl(&md) {
        assert!(t <= Duration::from_nanos(i64::MAX as u64), "{t:?}");
    }
    let _ = raw_payload("pubsub", &md);
    let _ = Overrides::from_metadata(&md);
});

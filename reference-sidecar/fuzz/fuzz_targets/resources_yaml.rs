//! `resources::load_text`: one resource file's text (Components, Subscriptions with CEL rules,
//! Resiliency policies with durations, multi-document files, anything else). Errors are fine;
//! panics, hangs and stack overflows are not.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use reference_sidecar::resiliency::Direction;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = reference_sidecar::resources::load_text(Path::new("fuzz.yaml"), text, "app") {
        let _ = format!("{r:?}");
        for c in &r.components {
            for d in [Direction::Inbound, Direction::Outbound] {
                let policy = r.resiliency.resolve(&c.name, d);
                if let Some(retry) = &policy.retry {
                    for attempt in [2, 3, 1000, u32::MAX] {
                        let _ = retry.next_wait(attempt, std::time::Duration::ZERO, 0.5);
                    }
                }
            }
        }
    }
});

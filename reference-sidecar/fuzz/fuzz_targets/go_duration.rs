//! `duration::parse_go_duration` (Resiliency policies, component metadata, TTLs) and
//! `format_go_duration`: whatever parses formats, and the formatted text parses again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_sidecar::duration::{format_go_duration, parse_go_duration};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_go_duration(text) {
        let formatted = format_go_duration(d);
        assert!(
            parse_go_duration(&formatted).is_ok(),
            "{text:?} parsed as {d:?}, formatted as {formatted:?}, which does not parse"
        );
    }
});

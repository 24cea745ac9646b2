//! `cloudevent::Head::parse` and its accessors on any broker bytes (what delivery reads from a
//! message), and the synthetic event of raw-payload subscriptions, which must be valid JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_sidecar::cloudevent::{Head, synthetic_raw};
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = Head::parse(data) {
        let _ = head.id();
        let _ = head.trace();
        for now in [
            OffsetDateTime::UNIX_EPOCH,
            OffsetDateTime::now_utc(),
            time::Date::MAX.midnight().assume_utc(),
            time::Date::MIN.midnight().assume_utc(),
        ] {
            let _ = head.expired_at(now);
        }
    }
    let text = String::from_utf8_lossy(data);
    let raw = synthetic_raw(&text, &text, data, (&text, &text, &text));
    let value: serde_json::Value =
        serde_json::from_slice(&raw).expect("the synthetic event is valid JSON");
    assert!(value.is_object());
});

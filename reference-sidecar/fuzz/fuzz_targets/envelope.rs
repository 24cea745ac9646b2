//! `cloudevent::envelope`: any publish body, content type, `cloudevent.*` overrides, TTL and
//! clock. The envelope must be a JSON object whose head delivery can read back, with the id
//! the publisher chose; a refused body must be a publisher CloudEvent.

#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reference_sidecar::cloudevent::{self, DataMode, Head, Overrides, PublishContext};
use time::OffsetDateTime;

#[derive(Arbitrary, Debug)]
struct Input {
    content_type: Option<String>,
    body: Vec<u8>,
    metadata: Vec<(String, String)>,
    ttl_nanos: Option<u64>,
    now_unix: i64,
    pubsub: String,
    topic: String,
    app_id: String,
    traceparent: String,
    tracestate: String,
}

fuzz_target!(|input: Input| {
    let Ok(now) = OffsetDateTime::from_unix_timestamp(input.now_unix) else {
        return;
    };
    let metadata: BTreeMap<String, String> = input.metadata.into_iter().collect();
    let overrides = Overrides::from_metadata(&metadata);
    let ctx = PublishContext {
        pubsub: &input.pubsub,
        topic: &input.topic,
        app_id: &input.app_id,
        traceparent: &input.traceparent,
        tracestate: &input.tracestate,
        ttl: input.ttl_nanos.map(Duration::from_nanos),
        overrides: overrides.clone(),
        now,
    };
    let content_type = input.content_type.as_deref();
    match cloudevent::envelope(&ctx, content_type, &input.body) {
        Ok(bytes) => {
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).expect("the envelope is valid JSON");
            assert!(value.is_object(), "the envelope is a JSON object");
            let head = Head::parse(&bytes).expect("delivery reads the envelope's head");
            if cloudevent::data_mode(content_type) != DataMode::Passthrough {
                assert_eq!(value["topic"], input.topic.as_str());
                if let Some(id) = &overrides.id {
                    assert_eq!(head.id(), id, "the id override is kept");
                }
            }
            let _ = head.expired_at(now);
        }
        Err(_) => assert_eq!(
            cloudevent::data_mode(content_type),
            DataMode::Passthrough,
            "only a publisher CloudEvent can be refused"
        ),
    }
});

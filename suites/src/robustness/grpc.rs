//! Calls to a target's gRPC API that a sidecar must survive: `PublishEvent` and
//! `BulkPublishEvent` with odd names, payloads, content types and metadata, `GetState`,
//! `GetMetadata` and `SetMetadata`, each with odd request metadata (trace context, tokens,
//! made-up keys). Written back as a `grpcurl` command.

use std::collections::HashMap;

use base64::Engine as _;
use dapr::dapr::proto::runtime::v1::{
    BulkPublishRequest, BulkPublishRequestEntry, GetMetadataRequest, GetStateRequest,
    PublishEventRequest, SetMetadataRequest,
};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;

use super::campaign::Probe;
use serde_json::{Value, json};

/// One call.
#[derive(Debug, Clone)]
pub(crate) struct GrpcProbe {
    /// The call.
    pub call: GrpcCall,
    /// Request metadata (gRPC headers), ASCII.
    pub headers: Vec<(String, String)>,
}

/// The method and its message.
#[derive(Debug, Clone)]
pub(crate) enum GrpcCall {
    Publish(PublishEventRequest),
    Bulk(BulkPublishRequest),
    GetState(GetStateRequest),
    GetMetadata,
    SetMetadata(SetMetadataRequest),
}

impl GrpcProbe {
    /// The method's full name.
    pub fn method(&self) -> &'static str {
        match self.call {
            GrpcCall::Publish(_) => "PublishEvent",
            GrpcCall::Bulk(_) => "BulkPublishEvent",
            GrpcCall::GetState(_) => "GetState",
            GrpcCall::GetMetadata => "GetMetadata",
            GrpcCall::SetMetadata(_) => "SetMetadata",
        }
    }

    /// The message in the JSON form of protobuf (bytes in base64).
    fn message_json(&self) -> Value {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match &self.call {
            GrpcCall::Publish(r) => json!({
                "pubsubName": r.pubsub_name, "topic": r.topic, "data": b64(&r.data),
                "dataContentType": r.data_content_type, "metadata": r.metadata,
            }),
            GrpcCall::Bulk(r) => json!({
                "pubsubName": r.pubsub_name, "topic": r.topic, "metadata": r.metadata,
                "entries": r.entries.iter().map(|e| json!({
                    "entryId": e.entry_id, "event": b64(&e.event),
                    "contentType": e.content_type, "metadata": e.metadata,
                })).collect::<Vec<_>>(),
            }),
            GrpcCall::GetState(r) => json!({
                "storeName": r.store_name, "key": r.key, "consistency": r.consistency,
                "metadata": r.metadata,
            }),
            GrpcCall::GetMetadata => json!({}),
            GrpcCall::SetMetadata(r) => json!({"key": r.key, "value": r.value}),
        }
    }
}

impl Probe for GrpcProbe {
    /// A command a person can paste that makes this call on a sidecar's gRPC port
    /// (`$DAPR_GRPC_PORT`, default 50001), given Dapr's `.proto` files under `$DAPR_PROTOS`.
    fn command(&self) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut cmd = String::from(
            "grpcurl -plaintext -import-path \"${DAPR_PROTOS:-.}\" -proto dapr/proto/runtime/v1/dapr.proto",
        );
        for (k, v) in &self.headers {
            cmd.push_str(&format!(" -H {}", quote(&format!("{k}: {v}"))));
        }
        cmd.push_str(&format!(
            " -d {} \"127.0.0.1:${{DAPR_GRPC_PORT:-50001}}\" dapr.proto.runtime.v1.Dapr/{}",
            quote(&self.message_json().to_string()),
            self.method()
        ));
        cmd
    }

    /// One line naming the call.
    fn summary(&self) -> String {
        let mut m = self.message_json().to_string();
        if m.len() > 300 {
            let mut cut = 300;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        format!("{} {m} headers {:?}", self.method(), self.headers)
    }
}

/// The generator of calls; `pubsub` and `topic` are the trial's valid names.
pub(crate) fn probes(pubsub: &str, topic: &str) -> BoxedStrategy<GrpcProbe> {
    let names = |valid: &str| {
        prop_oneof![
            3 => Just(valid.to_owned()),
            2 => text(),
        ]
    };
    let publish = (
        names(pubsub),
        names(topic),
        payload(),
        content_type(),
        metadata(),
    )
        .prop_map(|(pubsub_name, topic, data, data_content_type, metadata)| {
            GrpcCall::Publish(PublishEventRequest {
                pubsub_name,
                topic,
                data,
                data_content_type,
                metadata,
            })
        });
    let entry = (text(), payload(), content_type(), metadata()).prop_map(
        |(entry_id, event, content_type, metadata)| BulkPublishRequestEntry {
            entry_id,
            event,
            content_type,
            metadata,
        },
    );
    let entries = prop_oneof![
        4 => vec(entry, 0..8),
        1 => (1usize..600).prop_map(|n| (0..n)
            .map(|i| BulkPublishRequestEntry {
                entry_id: i.to_string(),
                event: b"{}".to_vec(),
                content_type: "application/json".into(),
                metadata: HashMap::new(),
            })
            .collect()),
    ];
    let bulk = (names(pubsub), names(topic), entries, metadata()).prop_map(
        |(pubsub_name, topic, entries, metadata)| {
            GrpcCall::Bulk(BulkPublishRequest {
                pubsub_name,
                topic,
                entries,
                metadata,
            })
        },
    );
    let get_state = (text(), text(), any::<i32>(), metadata()).prop_map(
        |(store_name, key, consistency, metadata)| {
            GrpcCall::GetState(GetStateRequest {
                store_name,
                key,
                consistency,
                metadata,
            })
        },
    );
    let set_metadata = (text(), text())
        .prop_map(|(key, value)| GrpcCall::SetMetadata(SetMetadataRequest { key, value }));
    let call = prop_oneof![
        6 => publish,
        3 => bulk,
        1 => get_state,
        1 => Just(GrpcCall::GetMetadata),
        1 => set_metadata,
    ];
    let topic = topic.to_owned();
    (call, vec(header(), 0..3))
        .prop_map(move |(mut call, headers)| {
            away_from_the_app(&mut call, &topic);
            GrpcProbe { call, headers }
        })
        .boxed()
}

/// Large payloads go to `<topic>-large`, which nobody subscribes (see
/// [`super::http::DELIVERED_BODY_MAX`]).
fn away_from_the_app(call: &mut GrpcCall, topic: &str) {
    let max = super::http::DELIVERED_BODY_MAX;
    let (t, size) = match call {
        GrpcCall::Publish(r) => (&mut r.topic, r.data.len()),
        GrpcCall::Bulk(r) => {
            let size = r.entries.iter().map(|e| e.event.len() + 16).sum();
            (&mut r.topic, size)
        }
        _ => return,
    };
    if size > max && t == topic {
        t.push_str("-large");
    }
}

/// A string field: empty, escapes, control characters, long, any Unicode.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9._-]{1,16}",
        2 => prop_oneof![
            Just(""), Just("/"), Just(".."), Just("a/b"), Just("%2F"), Just("\u{0}"),
            Just("orders*"), Just("日本"), Just("\u{202e}"), Just(" "), Just("\t"),
        ]
        .prop_map(str::to_owned),
        2 => ".{0,24}",
        1 => (1usize..70_000).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/json".to_owned()),
        Just("application/cloudevents+json".to_owned()),
        Just("text/plain".to_owned()),
        Just("application/octet-stream".to_owned()),
        Just(String::new()),
        text(),
    ]
}

/// `metadata` maps with the keys a sidecar reads (`ttlInSeconds`, `rawPayload`, ...) and
/// extreme values.
fn metadata() -> impl Strategy<Value = HashMap<String, String>> {
    let key = prop_oneof![
        3 => prop_oneof![
            Just("ttlInSeconds"), Just("ttl"), Just("rawPayload"), Just("partitionKey"),
            Just("contentType"), Just("cloudevent.id"), Just("cloudevent.source"),
            Just("cloudevent.type"), Just("cloudevent.time"), Just("traceparent"),
            Just("priority"), Just("maxLen"), Just(""),
        ]
        .prop_map(str::to_owned),
        1 => text(),
    ];
    let value = prop_oneof![
        3 => prop_oneof![
            Just(""), Just("-1"), Just("0"), Just("1"), Just("9223372036854775807"),
            Just("9223372036854775808"), Just("400000000000"), Just("1e400"), Just("NaN"),
            Just("true"), Just("TRUE"), Just("yes"), Just("9999-12-31T23:59:59Z"),
        ]
        .prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => text(),
    ];
    hash_map(key, value, 0..4)
}

/// A payload: empty, random bytes, odd JSON, a CloudEvent with odd attributes, deep JSON.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => prop_oneof![
            Just("null"), Just("5"), Just("\"x\""), Just("[]"), Just("true"), Just("{}"),
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
        4 => vec(any::<u8>(), 0..256),
        3 => any::<(i64, bool)>().prop_map(|(n, b)| json!({"n": n, "b": b}).to_string().into_bytes()),
        3 => (text(), text(), any::<i64>()).prop_map(|(id, ty, n)| {
            json!({"specversion": "1.0", "id": id, "type": ty, "source": n, "data": {"n": n}})
                .to_string()
                .into_bytes()
        }),
        1 => (1usize..100_000).prop_map(|depth| "[".repeat(depth).into_bytes()),
    ]
}

/// A request metadata entry: trace context, tokens and made-up keys, ASCII values.
fn header() -> impl Strategy<Value = (String, String)> {
    let value = "[ -~]{0,40}";
    (
        prop_oneof![
            Just("traceparent".to_owned()),
            Just("tracestate".to_owned()),
            Just("dapr-api-token".to_owned()),
            Just("grpc-trace-bin".to_owned()),
            Just("dapr-app-id".to_owned()),
            "[a-z][a-z0-9-]{0,16}",
        ],
        value,
    )
}

impl GrpcCall {
    /// Wraps a message in a request carrying `headers` (entries that are not valid gRPC
    /// metadata are left out: a client cannot send them).
    fn request<T>(message: T, headers: &[(String, String)]) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        for (k, v) in headers {
            // `-bin` keys take binary values; a made-up one would need base64.
            if k.ends_with("-bin") {
                continue;
            }
            if let (Ok(k), Ok(v)) = (
                tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes()),
                tonic::metadata::AsciiMetadataValue::try_from(v.as_str()),
            ) {
                req.metadata_mut().append(k, v);
            }
        }
        req
    }
}

/// Makes the call; `Ok` with the status the target answered (OK included), `Err` when no
/// answer came (a transport error: the connection broke or was refused).
pub(crate) async fn call(
    client: &harness::GrpcApiClient,
    probe: &GrpcProbe,
) -> Result<tonic::Code, tonic::Status> {
    let mut c = client.raw();
    let h = &probe.headers;
    let result = match probe.call.clone() {
        GrpcCall::Publish(m) => c.publish_event(GrpcCall::request(m, h)).await.map(|_| ()),
        GrpcCall::Bulk(m) => c
            .bulk_publish_event(GrpcCall::request(m, h))
            .await
            .map(|_| ()),
        GrpcCall::GetState(m) => c.get_state(GrpcCall::request(m, h)).await.map(|_| ()),
        GrpcCall::GetMetadata => c
            .get_metadata(GrpcCall::request(GetMetadataRequest::default(), h))
            .await
            .map(|_| ()),
        GrpcCall::SetMetadata(m) => c.set_metadata(GrpcCall::request(m, h)).await.map(|_| ()),
    };
    match result {
        Ok(()) => Ok(tonic::Code::Ok),
        // A status the server sent has no source; one the client made from a broken stream
        // or connection carries the transport error.
        Err(status) if std::error::Error::source(&status).is_some() => Err(status),
        Err(status) => Ok(status.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    #[test]
    fn commands_quote_every_value() {
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]),
        );
        let s = probes("pubsub", "orders");
        for _ in 0..200 {
            let p = s.new_tree(&mut runner).unwrap().current();
            let cmd = p.command();
            // The shell sees the JSON as one word: it parses back from between the quotes.
            let start = cmd.find(" -d '").unwrap() + 5;
            let end = cmd.rfind("' \"127.0.0.1").unwrap();
            let json = cmd[start..end].replace("'\\''", "'");
            assert!(serde_json::from_str::<Value>(&json).is_ok(), "{cmd}");
        }
    }
}

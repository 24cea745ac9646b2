//! The CloudEvents envelope a sidecar delivers: schema, attributes, how each publish
//! Content-Type becomes `data` or `data_base64`, overrides, passthrough of a publisher's own
//! CloudEvent, tracing, TTL and raw payloads (spec notes §1.3, §1.4, §2, §3.8).

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ROUTE, TOPIC, start_orders, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::schema::CloudEventSchema;
use harness_engine::trial::{PUBSUB, Scenario, Trial};

const CE_DOC: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-cloudevents/");
const CE_SPEC: Option<&str> =
    Some("https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md");
const API_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/pubsub_api/");
const RAW_DOC: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-raw/");
const TTL_DOC: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-message-ttl/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::cloudevents::schema_valid",
            Must,
            "Every delivered envelope (JSON, text, binary and custom bodies) is a valid CloudEvents 1.0.2 JSON event",
            "CloudEvents 1.0.2 §3 context attributes and the JSON event format; Dapr docs Publishing & subscribing with CloudEvents",
            CE_SPEC,
            [Need::Launch],
            schema_valid
        ),
        check!(
            "core::cloudevents::delivery_content_type",
            Must,
            "A delivery carries Content-Type application/cloudevents+json",
            "CloudEvents 1.0.2 HTTP protocol binding §3.2 structured content mode; daprd postman/http",
            Some(
                "https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md"
            ),
            [Need::Launch],
            delivery_content_type
        ),
        check!(
            "core::cloudevents::dapr_attributes",
            Must,
            "The envelope has type com.dapr.event.sent, source = publisher app-id, topic, pubsubname, specversion 1.0 and the publish Content-Type",
            "components-contrib pubsub/envelope.go NewCloudEventsEnvelope; Dapr docs CloudEvents",
            CE_DOC,
            [Need::Launch],
            dapr_attributes
        ),
        check!(
            "core::cloudevents::id_uuid_unique",
            Must,
            "Each publish gets its own envelope id, a UUID",
            "components-contrib pubsub/envelope.go: id = uuid.New(); CloudEvents 1.0.2 §3.1.1 id unique per source",
            CE_DOC,
            [Need::Launch],
            id_uuid_unique
        ),
        check!(
            "core::cloudevents::time_rfc3339",
            Must,
            "The envelope time is an RFC 3339 timestamp close to the publish",
            "CloudEvents 1.0.2 §3.1.2 time (RFC 3339); components-contrib envelope.go time.Now().Format(RFC3339)",
            CE_SPEC,
            [Need::Launch],
            time_rfc3339
        ),
        check!(
            "core::cloudevents::json_data_embedded",
            Must,
            "An application/json body is embedded as the JSON value of data",
            "components-contrib pubsub/envelope.go: JSON content types decode into data",
            CE_DOC,
            [Need::Launch],
            json_data_embedded
        ),
        check!(
            "core::cloudevents::no_content_type_text",
            Must,
            "A publish without Content-Type gets datacontenttype text/plain and data as a string, even for a JSON body",
            "daprd tests/integration/suite/daprd/subscriptions/programmatic/http basic: default text/plain",
            API_DOC,
            [Need::Launch],
            no_content_type_text
        ),
        check!(
            "core::cloudevents::octet_stream_base64",
            Must,
            "An application/octet-stream body arrives as data_base64 with the exact bytes and no data",
            "components-contrib pubsub/envelope.go: binary content types go to data_base64; CloudEvents JSON format §3.1",
            CE_DOC,
            [Need::Launch],
            octet_stream_base64
        ),
        check!(
            "core::cloudevents::custom_content_type",
            Must,
            "A custom Content-Type is kept verbatim as datacontenttype and the body arrives as a string",
            "daprd subscriptions/programmatic/http basic: foo/bar kept; components-contrib envelope.go",
            CE_DOC,
            [Need::Launch],
            custom_content_type
        ),
        check!(
            "core::cloudevents::json_with_charset",
            Must,
            "application/json; charset=utf-8 is JSON: data is the JSON value and datacontenttype keeps the parameter",
            "components-contrib pubsub/envelope.go: media type compared before ';'",
            CE_DOC,
            [Need::Launch],
            json_with_charset
        ),
        check!(
            "core::cloudevents::invalid_json_string_fallback",
            Should,
            "An application/json body that is not JSON is delivered with data as the raw string",
            "components-contrib pubsub/envelope.go: an undecodable JSON body falls back to a string",
            CE_DOC,
            [Need::Launch],
            invalid_json_string_fallback
        ),
        check!(
            "core::cloudevents::attribute_overrides",
            Must,
            "metadata.cloudevent.id, .source, .type and .subject override the envelope attributes",
            "Dapr pub/sub API: metadata.cloudevent.* overrides; daprd pkg/runtime/pubsub/cloudevents.go",
            CE_DOC,
            [Need::Launch],
            attribute_overrides
        ),
        check!(
            "core::cloudevents::trace_overrides",
            Must,
            "metadata.cloudevent.traceid sets the envelope's traceid and traceparent, .traceparent wins over it for both, and .tracestate sets tracestate",
            "Dapr pub/sub API: metadata.cloudevent.* overrides; daprd pkg/runtime/pubsub/cloudevents.go (NewCloudEvent)",
            CE_DOC,
            [Need::Launch],
            trace_overrides
        ),
        check!(
            "core::cloudevents::topic_override_ignored",
            Must,
            "metadata.cloudevent.topic and .pubsubname cannot redirect or relabel a message",
            "components-contrib pubsub/envelope.go: topic and pubsubname are not overridable",
            CE_DOC,
            [Need::Launch],
            topic_override_ignored
        ),
        check!(
            "core::cloudevents::passthrough_keeps_id",
            Must,
            "A published CloudEvent keeps its id, time, data and extensions; topic and pubsubname are overwritten",
            "components-contrib pubsub/envelope.go FromCloudEvent; Dapr docs Sending your own CloudEvent",
            CE_DOC,
            [Need::Launch],
            passthrough_keeps_id
        ),
        check!(
            "core::cloudevents::passthrough_defaults",
            Should,
            "A published CloudEvent without source, type, specversion or time gets Dapr, com.dapr.event.sent, 1.0 and the publish time (daprd quirk)",
            "components-contrib pubsub/envelope.go FromCloudEvent defaults; spec notes §2.4 [quirk]",
            CE_DOC,
            [Need::Launch],
            passthrough_defaults
        ),
        check!(
            "core::cloudevents::passthrough_trace",
            Must,
            "A published CloudEvent keeps its own traceid, traceparent and tracestate; one without a traceid gets the publish's trace as both; metadata.cloudevent.* overrides do not apply to it",
            "components-contrib pubsub/envelope.go FromCloudEvent (traceid and traceparent set only when traceid is absent, tracestate only when it is absent); dapr/dapr pkg/runtime/pubsub/cloudevents.go NewCloudEvent (a CloudEvent returns before the overrides are decoded)",
            CE_DOC,
            [Need::Launch],
            passthrough_trace
        ),
        check!(
            "core::cloudevents::no_double_wrap",
            Must,
            "A published CloudEvent is not wrapped again: its data arrives as data",
            "components-contrib#381 / dapr/dapr#1372: double envelope when publishing a CloudEvent",
            Some("https://github.com/dapr/components-contrib/issues/381"),
            [Need::Launch],
            no_double_wrap
        ),
        check!(
            "core::cloudevents::nonstring_trace_delivered",
            Must,
            "A published CloudEvent with non-string traceid/traceparent is still delivered",
            "daprd tests/integration/suite/daprd/pubsub/http/nonstringtrace.go",
            CE_DOC,
            [Need::Launch],
            nonstring_trace_delivered
        ),
        check!(
            "core::cloudevents::tracestate_in_envelope_only",
            Should,
            "The publish request's tracestate reaches the subscriber in the envelope's tracestate, not as a tracestate header (daprd quirk)",
            "daprd pkg/runtime/subscription/postman/http/http.go and grpc/grpc.go: the delivery's span context is rebuilt from the envelope's traceparent alone, so its trace headers carry no tracestate [quirk]",
            Some("https://docs.dapr.io/operations/observability/tracing/w3c-tracing-overview/"),
            [Need::Launch],
            tracestate_in_envelope_only
        ),
        check!(
            "core::cloudevents::traceparent_propagated",
            Should,
            "The publish request's traceparent reaches the subscriber as its traceparent header",
            "daprd tests/integration/suite/daprd/pubsub/http/traceparent; W3C Trace Context",
            Some("https://docs.dapr.io/operations/observability/tracing/w3c-tracing-overview/"),
            [Need::Launch],
            traceparent_propagated
        ),
        check!(
            "core::cloudevents::big_integers_exact",
            Should,
            "Integers beyond 2^53 in a JSON body are delivered digit for digit",
            "components-contrib pubsub/envelope.go: JSON decoded with UseNumber",
            CE_DOC,
            [Need::Launch],
            big_integers_exact
        ),
        check!(
            "core::cloudevents::ttl_expiration",
            Should,
            "metadata.ttlInSeconds on a component without native TTL adds an RFC 3339 expiration in the future",
            "components-contrib pubsub/envelope.go ApplyMetadata: expiration = now + ttl",
            TTL_DOC,
            [Need::Launch],
            ttl_expiration
        ),
        check!(
            "core::cloudevents::raw_payload_roundtrip",
            Must,
            "A rawPayload publish to a rawPayload subscription arrives as data_base64 with exactly the published bytes, an empty one as an empty data_base64",
            "Dapr docs Publish and subscribe to messages without CloudEvents; daprd subscriptions/programmatic/http/v1alpha1/rawpayload.go",
            RAW_DOC,
            [Need::Launch],
            raw_payload_roundtrip
        ),
        check!(
            "core::cloudevents::raw_subscription_of_envelope",
            Should,
            "A rawPayload subscription of a normal publish gets the publisher's whole CloudEvent as data_base64",
            "daprd subscriptions/programmatic/http/v1alpha1/rawpayload.go; spec notes §3.8",
            RAW_DOC,
            [Need::Launch],
            raw_subscription_of_envelope
        ),
        check!(
            "core::cloudevents::utf8_text_exact",
            Must,
            "A UTF-8 text body with non-ASCII characters arrives as exactly the same string",
            "CloudEvents 1.0.2 JSON format §3.1: string data; RFC 8259 §8.1 UTF-8",
            CE_SPEC,
            [Need::Launch],
            utf8_text_exact
        ),
    ]
}

fn body_line(d: &harness::RecordedDelivery) -> String {
    format!(
        "delivered body: {}",
        String::from_utf8_lossy(&d.request.body[..d.request.body.len().min(600)])
    )
}

fn body_of(d: &harness::RecordedDelivery) -> Value {
    d.body_json.clone().unwrap_or(Value::Null)
}

fn load_schema(t: &Trial) -> Result<CloudEventSchema, Problem> {
    CloudEventSchema::load(&t.env().workspace_root).map_err(Problem::Setup)
}

/// Starts the app subscribed to `orders`, publishes `body` there with this Content-Type,
/// requires 204 and returns the single delivery on `/orders` with its envelope (each check
/// publishes one raw body).
async fn publish_one(
    t: &mut Trial,
    body: impl Into<Bytes>,
    content_type: Option<&str>,
) -> Result<(Value, harness::RecordedDelivery), Problem> {
    start_orders(t).await?;
    let r = t.publish_raw(TOPIC, body, content_type, &[]).await?;
    status_is("publish status", 204, &r)?;
    let d = t.wait(ROUTE, 1).await?;
    Ok((body_of(&d[0]), d[0].clone()))
}

/// [`publish_one`] of the publisher's own CloudEvent `ce` (`application/cloudevents+json`).
async fn publish_structured(
    t: &mut Trial,
    ce: &Value,
) -> Result<(Value, harness::RecordedDelivery), Problem> {
    publish_one(t, ce.to_string(), Some("application/cloudevents+json")).await
}

/// [`attr_eq`] for each `(key, expected)`.
fn attrs_eq<const N: usize>(
    event: &Value,
    expected: [(&str, Value); N],
    d: &harness::RecordedDelivery,
) -> Result<(), Problem> {
    for (key, value) in expected {
        attr_eq(event, key, value, d)?;
    }
    Ok(())
}

/// Fails with the delivered body as evidence unless `event[key] == expected`.
fn attr_eq(
    event: &Value,
    key: &str,
    expected: Value,
    d: &harness::RecordedDelivery,
) -> Result<(), Problem> {
    ensure_eq(
        key,
        expected,
        event.get(key).cloned().unwrap_or(Value::Null),
        [body_line(d)],
    )
}

async fn schema_valid(t: &mut Trial) -> Result<(), Problem> {
    let schema = load_schema(t)?;
    start_orders(t).await?;
    let bodies: [(&[u8], Option<&str>); 4] = [
        (br#"{"orderId":1}"#, Some("application/json")),
        (b"plain text", None),
        (&[0, 1, 2, 254, 255], Some("application/octet-stream")),
        (b"<order id=\"1\"/>", Some("application/xml")),
    ];
    for (body, ct) in bodies {
        let r = t
            .publish_raw(TOPIC, Bytes::copy_from_slice(body), ct, &[])
            .await?;
        status_is("publish status", 204, &r)?;
    }
    let ds = t.wait(ROUTE, bodies.len()).await?;
    for d in &ds {
        let Some(event) = &d.body_json else {
            return Err(Problem::fail(
                "a delivered body is not JSON",
                vec![body_line(d)],
            ));
        };
        let v = schema.violations(event);
        let mut ev = vec![body_line(d)];
        ev.extend(v.iter().cloned());
        ensure(
            v.is_empty(),
            format!(
                "a delivered envelope breaks the CloudEvents schema: {}",
                v.join("; ")
            ),
            ev,
        )?;
    }
    Ok(())
}

async fn delivery_content_type(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t.publish(TOPIC, json!({"orderId": 1})).await?;
    let d = t.wait_msg(ROUTE, &id, 1).await?;
    let ct = d[0].content_type().unwrap_or("").to_owned();
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ensure_eq(
        "delivery Content-Type",
        "application/cloudevents+json".to_owned(),
        media,
        [format!("headers: {:?}", d[0].request.headers)],
    )
}

async fn dapr_attributes(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t.publish(TOPIC, json!({"orderId": 1})).await?;
    let d = t.wait_msg(ROUTE, &id, 1).await?;
    let d = &d[0];
    let e = body_of(d);
    attr_eq(&e, "type", json!("com.dapr.event.sent"), d)?;
    attr_eq(&e, "source", json!(t.app_id()), d)?;
    attr_eq(&e, "topic", json!(TOPIC), d)?;
    attr_eq(&e, "pubsubname", json!(PUBSUB), d)?;
    attr_eq(&e, "specversion", json!("1.0"), d)?;
    attr_eq(&e, "datacontenttype", json!("application/json"), d)
}

async fn id_uuid_unique(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let a = t.publish(TOPIC, json!({})).await?;
    let b = t.publish(TOPIC, json!({})).await?;
    let mut ids = Vec::new();
    for m in [&a, &b] {
        let d = t.wait_msg(ROUTE, m, 1).await?;
        let id = d[0].ce_id.clone().unwrap_or_default();
        ensure(
            uuid::Uuid::parse_str(&id).is_ok(),
            format!("envelope id {id:?} is not a UUID"),
            [body_line(&d[0])],
        )?;
        ids.push(id);
    }
    ensure(
        ids[0] != ids[1],
        format!("two publishes got the same envelope id {}", ids[0]),
        t.evidence(),
    )
}

async fn time_rfc3339(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let id = t.publish(TOPIC, json!({})).await?;
    let d = t.wait_msg(ROUTE, &id, 1).await?;
    let e = body_of(&d[0]);
    let raw = e["time"].as_str().unwrap_or("").to_owned();
    let at = OffsetDateTime::parse(&raw, &Rfc3339).map_err(|err| {
        Problem::fail(
            format!("time {raw:?} is not RFC 3339"),
            vec![err.to_string(), body_line(&d[0])],
        )
    })?;
    // The sidecar runs on this machine: its clock and ours agree well within a minute.
    let skew = (OffsetDateTime::now_utc() - at).abs();
    ensure(
        skew < time::Duration::minutes(1),
        format!("time {raw} is {skew} away from now"),
        [body_line(&d[0])],
    )
}

async fn json_data_embedded(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let payload =
        json!({"orderId": 42, "items": [{"sku": "a", "qty": 2}], "paid": true, "note": null});
    let id = t.publish(TOPIC, payload.clone()).await?;
    let d = t.wait_msg(ROUTE, &id, 1).await?;
    let mut expected = payload;
    expected["tck_id"] = json!(id);
    expected["tck_trial"] = json!(t.nonce());
    attr_eq(&body_of(&d[0]), "data", expected, &d[0])
}

async fn no_content_type_text(t: &mut Trial) -> Result<(), Problem> {
    let (e, d) = publish_one(t, r#"{"a":1}"#, None).await?;
    attrs_eq(
        &e,
        [
            ("datacontenttype", json!("text/plain")),
            ("data", json!(r#"{"a":1}"#)),
        ],
        &d,
    )
}

async fn octet_stream_base64(t: &mut Trial) -> Result<(), Problem> {
    let bytes: Vec<u8> = vec![0, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff, b'{', b'"'];
    let (e, d) = publish_one(t, bytes.clone(), Some("application/octet-stream")).await?;
    ensure(
        e.get("data").is_none(),
        "a binary body arrived with a data attribute",
        [body_line(&d)],
    )?;
    let b64 = e["data_base64"].as_str().unwrap_or("");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|err| {
            Problem::fail(
                format!("data_base64 {b64:?} is not standard base64"),
                vec![err.to_string(), body_line(&d)],
            )
        })?;
    ensure_eq("decoded data_base64", bytes, decoded, [body_line(&d)])
}

async fn custom_content_type(t: &mut Trial) -> Result<(), Problem> {
    let body = "<order id=\"7\">widget</order>";
    content_type_kept(t, "application/xml; charset=utf-8", body, json!(body)).await
}

async fn json_with_charset(t: &mut Trial) -> Result<(), Problem> {
    let ct = "application/json; charset=utf-8";
    content_type_kept(t, ct, r#"{"orderId":9}"#, json!({"orderId": 9})).await
}

/// Publishes `body` as `ct` and requires the envelope's `datacontenttype` to be `ct` and its
/// `data` to be `data`.
async fn content_type_kept(
    t: &mut Trial,
    ct: &str,
    body: &'static str,
    data: Value,
) -> Result<(), Problem> {
    let (e, d) = publish_one(t, body, Some(ct)).await?;
    attrs_eq(&e, [("datacontenttype", json!(ct)), ("data", data)], &d)
}

async fn invalid_json_string_fallback(t: &mut Trial) -> Result<(), Problem> {
    let body = "{not json";
    let (e, d) = publish_one(t, body, Some("application/json")).await?;
    attr_eq(&e, "data", json!(body), &d)
}

async fn attribute_overrides(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let overrides = [
        ("id", "tck-fixed-id"),
        ("source", "tck-source"),
        ("type", "tck.type.v1"),
        ("subject", "tck-subject"),
    ];
    let query: Vec<(String, &str)> = overrides
        .iter()
        .map(|(attr, v)| (format!("metadata.cloudevent.{attr}"), *v))
        .collect();
    let (e, d) = publish_overridden(t, &query).await?;
    for (attr, v) in overrides {
        attr_eq(&e, attr, json!(v), &d)?;
    }
    Ok(())
}

/// Publishes one JSON event to the orders topic with `query` (publish metadata) and returns
/// its delivered envelope.
async fn publish_overridden(
    t: &mut Trial,
    query: &[(String, &str)],
) -> Result<(Value, harness::RecordedDelivery), Problem> {
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let id = t.publish_query(TOPIC, json!({}), &query).await?;
    let mut d = t.wait_msg(ROUTE, &id, 1).await?;
    let d = d.swap_remove(0);
    Ok((body_of(&d), d))
}

async fn trace_overrides(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let traceid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let meta = |attr: &str| format!("metadata.cloudevent.{attr}");
    // traceid sets both trace fields; tracestate its own.
    let (e, d) = publish_overridden(
        t,
        &[(meta("traceid"), traceid), (meta("tracestate"), "tck=1")],
    )
    .await?;
    attr_eq(&e, "traceid", json!(traceid), &d)?;
    attr_eq(&e, "traceparent", json!(traceid), &d)?;
    attr_eq(&e, "tracestate", json!("tck=1"), &d)?;
    // traceparent wins over traceid for both.
    let (e, d) = publish_overridden(
        t,
        &[
            (meta("traceid"), traceid),
            (meta("traceparent"), traceparent),
        ],
    )
    .await?;
    attr_eq(&e, "traceid", json!(traceparent), &d)?;
    attr_eq(&e, "traceparent", json!(traceparent), &d)
}

async fn topic_override_ignored(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .subscribe(TOPIC, ROUTE)
            .subscribe("elsewhere", "/elsewhere"),
    )
    .await?;
    let id = t
        .publish_query(
            TOPIC,
            json!({}),
            &[
                ("metadata.cloudevent.topic", "elsewhere"),
                ("metadata.cloudevent.pubsubname", "other-pubsub"),
            ],
        )
        .await?;
    let d = t.wait_msg(ROUTE, &id, 1).await?;
    let e = body_of(&d[0]);
    attr_eq(&e, "topic", json!(TOPIC), &d[0])?;
    attr_eq(&e, "pubsubname", json!(PUBSUB), &d[0])?;
    t.nothing_on(
        "/elsewhere",
        "the cloudevent.topic override redirected the message",
    )
    .await
}

async fn passthrough_keeps_id(t: &mut Trial) -> Result<(), Problem> {
    let ce = json!({
        "specversion": "1.0", "id": "tck-ce-1", "source": "tck-publisher", "type": "tck.passthrough",
        "datacontenttype": "application/json", "topic": "wrong-topic", "pubsubname": "wrong-pubsub",
        "time": "2021-02-03T04:05:06Z", "tckext": "ext-value", "data": {"tck_id": "pt-1", "n": 1}
    });
    let (e, d) = publish_structured(t, &ce).await?;
    attrs_eq(
        &e,
        [
            ("id", json!("tck-ce-1")),
            ("source", json!("tck-publisher")),
            ("type", json!("tck.passthrough")),
            ("time", json!("2021-02-03T04:05:06Z")),
            ("tckext", json!("ext-value")),
            ("data", json!({"tck_id": "pt-1", "n": 1})),
            ("topic", json!(TOPIC)),
            ("pubsubname", json!(PUBSUB)),
        ],
        &d,
    )
}

async fn passthrough_defaults(t: &mut Trial) -> Result<(), Problem> {
    let ce = json!({"id": "tck-ce-2", "data": {"tck_id": "pt-2"}});
    let (e, d) = publish_structured(t, &ce).await?;
    attrs_eq(
        &e,
        [
            ("id", json!("tck-ce-2")),
            ("source", json!("Dapr")),
            ("type", json!("com.dapr.event.sent")),
            ("specversion", json!("1.0")),
        ],
        &d,
    )?;
    let raw = e["time"].as_str().unwrap_or_default();
    ensure(
        OffsetDateTime::parse(raw, &Rfc3339).is_ok(),
        format!(
            "the CloudEvent without a time was delivered with time {:?}, not an RFC 3339 time",
            e["time"]
        ),
        [body_line(&d)],
    )
}

async fn passthrough_trace(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let overridden = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let query = [("metadata.cloudevent.traceid", overridden)];
    let own = json!({
        "specversion": "1.0", "id": "tck-ce-5", "source": "tck", "type": "tck.order",
        "traceid": "tck-own-trace", "traceparent": "tck-own-parent", "tracestate": "tck=own",
        "data": {"tck_id": "ptt-1"}
    });
    let bare = json!({
        "specversion": "1.0", "id": "tck-ce-6", "source": "tck", "type": "tck.order",
        "data": {"tck_id": "ptt-2"}
    });
    for ce in [&own, &bare] {
        let r = t
            .publish_raw(
                TOPIC,
                ce.to_string(),
                Some("application/cloudevents+json"),
                &query,
            )
            .await?;
        status_is("publish status", 204, &r)?;
    }
    let d = t.wait_msg(ROUTE, "ptt-1", 1).await?;
    let e = body_of(&d[0]);
    attr_eq(&e, "traceid", json!("tck-own-trace"), &d[0])?;
    attr_eq(&e, "traceparent", json!("tck-own-parent"), &d[0])?;
    attr_eq(&e, "tracestate", json!("tck=own"), &d[0])?;
    let d = t.wait_msg(ROUTE, "ptt-2", 1).await?;
    let e = body_of(&d[0]);
    let traceid = e.get("traceid").cloned().unwrap_or(Value::Null);
    ensure(
        traceid.is_string(),
        format!(
            "the CloudEvent without a traceid was delivered with traceid {traceid}, not the publish's trace"
        ),
        [body_line(&d[0])],
    )?;
    attr_eq(&e, "traceparent", traceid.clone(), &d[0])?;
    ensure(
        traceid != json!(overridden),
        "metadata.cloudevent.traceid set the traceid of a published CloudEvent",
        [body_line(&d[0])],
    )
}

async fn no_double_wrap(t: &mut Trial) -> Result<(), Problem> {
    let inner = json!({"tck_id": "dw-1", "orderId": 5});
    let ce = json!({
        "specversion": "1.0", "id": "tck-ce-3", "source": "tck", "type": "tck.order",
        "datacontenttype": "application/json", "data": inner
    });
    let (e, d) = publish_structured(t, &ce).await?;
    ensure(
        e["data"].get("specversion").is_none() && e["data"].get("data").is_none(),
        "the published CloudEvent was wrapped in a second envelope",
        [body_line(&d)],
    )?;
    attr_eq(&e, "data", inner, &d)?;
    attr_eq(&e, "id", json!("tck-ce-3"), &d)
}

async fn nonstring_trace_delivered(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let ce = json!({
        "specversion": "1.0", "id": "tck-ce-4", "source": "tck", "type": "tck.order",
        "traceid": 12345, "traceparent": {"not": "a string"}, "tracestate": true,
        "data": {"tck_id": "nt-1"}
    });
    let r = t
        .publish_raw(
            TOPIC,
            ce.to_string(),
            Some("application/cloudevents+json"),
            &[],
        )
        .await?;
    status_is("publish status", 204, &r)?;
    t.wait_msg(ROUTE, "nt-1", 1).await?;
    // The sidecar must still work afterwards.
    let id = t.publish(TOPIC, json!({})).await?;
    t.wait_msg(ROUTE, &id, 1).await?;
    Ok(())
}

/// The W3C traceparent the trace checks publish with.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Starts the orders subscription, publishes `{"tck_id": id}` with [`TRACEPARENT`] and
/// `extra` headers, and waits for its delivery.
async fn publish_traced(
    t: &mut Trial,
    id: &str,
    extra: &[(&str, &str)],
) -> Result<Vec<harness::RecordedDelivery>, Problem> {
    start_orders(t).await?;
    let mut headers = vec![
        ("content-type", "application/json"),
        ("traceparent", TRACEPARENT),
    ];
    headers.extend_from_slice(extra);
    let r = t
        .client()
        .post(
            &format!("/v1.0/publish/{PUBSUB}/{TOPIC}"),
            Bytes::from(json!({ "tck_id": id }).to_string()),
            &headers,
        )
        .await?;
    status_is("publish status", 204, &r)?;
    t.wait_msg(ROUTE, id, 1).await
}

async fn traceparent_propagated(t: &mut Trial) -> Result<(), Problem> {
    let d = publish_traced(t, "tp-1", &[]).await?;
    ensure_eq(
        "delivery traceparent header",
        Some(TRACEPARENT.to_owned()),
        d[0].header("traceparent").map(str::to_owned),
        [
            format!("headers: {:?}", d[0].request.headers),
            body_line(&d[0]),
        ],
    )
}

async fn tracestate_in_envelope_only(t: &mut Trial) -> Result<(), Problem> {
    let d = publish_traced(t, "ts-1", &[("tracestate", "tck=1")]).await?;
    attr_eq(&body_of(&d[0]), "tracestate", json!("tck=1"), &d[0])?;
    ensure_eq(
        "delivery tracestate header",
        None,
        d[0].header("tracestate").map(str::to_owned),
        [
            format!("headers: {:?}", d[0].request.headers),
            body_line(&d[0]),
        ],
    )
}

/// Whether `digits` occurs in `body` as a whole JSON number that is a member value.
fn has_json_number(body: &[u8], digits: &str) -> bool {
    let d = digits.as_bytes();
    (0..body.len().saturating_sub(d.len() - 1)).any(|i| {
        if &body[i..i + d.len()] != d {
            return false;
        }
        let before = body[..i].iter().rev().find(|b| !b.is_ascii_whitespace());
        let after = body.get(i + d.len());
        before == Some(&b':')
            && !after.is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E'))
    })
}

async fn big_integers_exact(t: &mut Trial) -> Result<(), Problem> {
    let body = r#"{"tck_id":"big-1","big":123456789012345678901,"neg":-98765432109876543210,"max":18446744073709551617}"#;
    let (_, d) = publish_one(t, body, Some("application/json")).await?;
    for digits in [
        "123456789012345678901",
        "-98765432109876543210",
        "18446744073709551617",
    ] {
        ensure(
            has_json_number(&d.request.body, digits),
            format!("the delivered bytes do not carry the number {digits} exactly"),
            [body_line(&d)],
        )?;
    }
    Ok(())
}

async fn ttl_expiration(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let before = OffsetDateTime::now_utc();
    let id = t
        .publish_query(TOPIC, json!({}), &[("metadata.ttlInSeconds", "120")])
        .await?;
    let d = t.wait_msg(ROUTE, &id, 1).await?;
    expires_about_120_s_after(&d[0], before)
}

/// Fails unless the delivered envelope's `expiration` is an RFC 3339 time about 120 s after
/// `before` (the publish of a message with `ttlInSeconds` 120).
pub(super) fn expires_about_120_s_after(
    d: &harness::RecordedDelivery,
    before: OffsetDateTime,
) -> Result<(), Problem> {
    let e = body_of(d);
    let raw = e["expiration"].as_str().unwrap_or("").to_owned();
    let at = OffsetDateTime::parse(&raw, &Rfc3339).map_err(|err| {
        Problem::fail(
            format!("expiration {raw:?} is missing or not RFC 3339"),
            vec![err.to_string(), body_line(d)],
        )
    })?;
    // Second precision may cut up to a second; a minute of margin covers clock reading order.
    let low = before + time::Duration::seconds(60);
    let high = OffsetDateTime::now_utc() + time::Duration::seconds(180);
    ensure(
        at > low && at < high,
        format!("expiration {raw} is not about 120 s after the publish ({before})"),
        [body_line(d)],
    )
}

fn raw_sub(topic: &str, route: &str) -> Value {
    json!({"pubsubname": PUBSUB, "topic": topic, "route": route, "metadata": {"rawPayload": "true"}})
}

async fn raw_payload_roundtrip(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscription(raw_sub(TOPIC, ROUTE)))
        .await?;
    let bytes: Vec<u8> = vec![b't', b'c', b'k', 0, 0xff, 0xfe, b'\n', 0x80, b'"', b'}'];
    // The bytes, then no bytes at all: both arrive, in either order.
    for payload in [bytes.clone(), Vec::new()] {
        let r = t
            .publish_raw(
                TOPIC,
                payload,
                Some("application/octet-stream"),
                &[("metadata.rawPayload", "true")],
            )
            .await?;
        status_is("publish status", 204, &r)?;
    }
    let delivered = t.wait(ROUTE, 2).await?;
    let mut decoded = Vec::new();
    for d in &delivered {
        let e = body_of(d);
        attr_eq(&e, "topic", json!(TOPIC), d)?;
        let b64 = e["data_base64"].as_str().unwrap_or("");
        let data = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .filter(|_| e["data_base64"].is_string())
            .ok_or_else(|| {
                Problem::fail(
                    format!("data_base64 {b64:?} is missing or not base64"),
                    vec![body_line(d)],
                )
            })?;
        decoded.push(data);
    }
    decoded.sort();
    ensure_eq(
        "decoded data_base64 of the two deliveries",
        vec![Vec::new(), bytes],
        decoded,
        delivered.iter().map(body_line).collect::<Vec<_>>(),
    )
}

async fn raw_subscription_of_envelope(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscription(raw_sub(TOPIC, ROUTE)))
        .await?;
    let id = t.publish(TOPIC, json!({"orderId": 3})).await?;
    let d = t.wait(ROUTE, 1).await?;
    let d = &d[0];
    let b64 = body_of(d)["data_base64"].as_str().unwrap_or("").to_owned();
    let inner: Value = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| Problem::fail("data_base64 does not decode to JSON", vec![body_line(d)]))?;
    let ev = [format!("decoded data_base64: {inner}")];
    ensure_eq(
        "inner specversion",
        json!("1.0"),
        inner["specversion"].clone(),
        ev.clone(),
    )?;
    ensure_eq(
        "inner topic",
        json!(TOPIC),
        inner["topic"].clone(),
        ev.clone(),
    )?;
    ensure_eq(
        "inner data",
        json!({"orderId": 3, "tck_id": id, "tck_trial": t.nonce()}),
        inner["data"].clone(),
        ev,
    )
}

async fn utf8_text_exact(t: &mut Trial) -> Result<(), Problem> {
    let text = "Grüße aus Köln, 東京 ✓ 🎉 \"quoted\" back\\slash\ttab";
    let (e, d) = publish_one(t, text, Some("text/plain; charset=utf-8")).await?;
    attr_eq(&e, "data", json!(text), &d)
}

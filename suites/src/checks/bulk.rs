//! Bulk publish (`POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}`, spec notes §1.7). These
//! checks need the target capability `bulk`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{rejected, start_orders, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::trial::{PUBSUB, Scenario, Trial};

const BULK_DOC: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-bulk/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::bulk::all_entries_delivered",
            Must,
            "A bulk publish answers 204 and every entry is delivered once as its own CloudEvent",
            "daprd bulk publish: default_bulkpub.go publishes each entry",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            all_entries_delivered
        ),
        check!(
            "core::bulk::missing_entry_id",
            Must,
            "A bulk entry without entryId answers 400 ERR_PUBSUB_EVENTS_SER",
            "daprd tests/integration/suite/daprd/pubsub/http/errors.go: bulk entryId missing",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            missing_entry_id
        ),
        check!(
            "core::bulk::duplicate_entry_id",
            Must,
            "Duplicate bulk entryIds answer 400 ERR_PUBSUB_EVENTS_SER and nothing is delivered",
            "daprd errors.go: bulk entryId duplicated",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            duplicate_entry_id
        ),
        check!(
            "core::bulk::not_an_array",
            Must,
            "A bulk body that is not a JSON array answers 400 ERR_PUBSUB_EVENTS_SER",
            "daprd bulk publish: unmarshal error (DAPR_PUBSUB_UNMARSHAL_EVENTS)",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            not_an_array
        ),
        check!(
            "core::bulk::unknown_pubsub",
            Must,
            "A bulk publish to an unknown pubsub answers 404 ERR_PUBSUB_NOT_FOUND",
            "daprd bulk publish validation (the docs' 400 is wrong, spec notes §10.3)",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            unknown_pubsub
        ),
        check!(
            "core::bulk::entry_content_types",
            Should,
            "Bulk entries keep their content types: JSON data, text and XML data as strings, octet-stream data_base64",
            "daprd bulk publish: event conversion by contentType",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            entry_content_types
        ),
        check!(
            "core::bulk::entry_metadata_override",
            Should,
            "An entry's metadata.cloudevent.id overrides the envelope id of that entry",
            "daprd bulk publish: entry metadata overrides request metadata",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            entry_metadata_override
        ),
        check!(
            "core::bulk::entry_ttl_expiration",
            Should,
            "An entry's ttlInSeconds on a component without native TTL adds an expiration to that entry's envelope",
            "daprd pkg/api/http/http.go bulk publish: ApplyMetadata with each entry's metadata (components-contrib pubsub/envelope.go: expiration = now + ttl)",
            BULK_DOC,
            [Need::Launch, Need::Capability("bulk")],
            entry_ttl_expiration
        ),
    ]
}

async fn all_entries_delivered(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let entries: Vec<Value> = (0..10)
        .map(|i| json!({"entryId": format!("e{i}"), "event": {"tck_id": format!("b-{i}")}, "contentType": "application/json"}))
        .collect();
    let r = t
        .client()
        .bulk_publish(PUBSUB, "orders", &Value::Array(entries), &[])
        .await?;
    status_is("bulk status", 204, &r)?;
    t.wait("/orders", 10).await?;
    let seen = t.quiet("/orders").await;
    let ids: BTreeSet<String> = seen.iter().filter_map(|d| d.tck_id.clone()).collect();
    ensure_eq("deliveries", 10, seen.len(), t.evidence())?;
    ensure_eq("distinct messages", 10, ids.len(), t.evidence())?;
    let wrapped = seen.iter().all(|d| {
        d.body_json
            .as_ref()
            .is_some_and(|b| b["specversion"] == "1.0" && b["data"]["tck_id"].is_string())
    });
    ensure(
        wrapped,
        "bulk entries were not delivered as CloudEvents with the entry as data",
        t.evidence(),
    )
}

async fn expect_events_ser(t: &mut Trial, body: Value) -> Result<(), Problem> {
    let r = t
        .client()
        .bulk_publish(PUBSUB, "orders", &body, &[])
        .await?;
    rejected(&r, 400, "ERR_PUBSUB_EVENTS_SER")
}

async fn missing_entry_id(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    expect_events_ser(
        t,
        json!([{"event": {"a": 1}, "contentType": "application/json"}]),
    )
    .await
}

async fn duplicate_entry_id(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let e =
        json!({"entryId": "same", "event": {"tck_id": "dup"}, "contentType": "application/json"});
    expect_events_ser(t, json!([e, e])).await?;
    t.nothing_on(
        "/orders",
        "entries of a rejected bulk request were delivered",
    )
    .await
}

async fn not_an_array(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let r = t
        .client()
        .post(
            "/v1.0-alpha1/publish/bulk/pubsub/orders",
            bytes::Bytes::from_static(b"{\"a\":1}"),
            &[("content-type", "application/json")],
        )
        .await?;
    rejected(&r, 400, "ERR_PUBSUB_EVENTS_SER")
}

async fn unknown_pubsub(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let body = json!([{"entryId": "1", "event": {"a": 1}, "contentType": "application/json"}]);
    let r = t
        .client()
        .bulk_publish("no-such-pubsub", "orders", &body, &[])
        .await?;
    rejected(&r, 404, "ERR_PUBSUB_NOT_FOUND")
}

async fn entry_content_types(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let body = json!([
        {"entryId": "j", "event": {"tck_id": "json", "n": 1}, "contentType": "application/json"},
        {"entryId": "t", "event": "plain words", "contentType": "text/plain"},
        {"entryId": "b", "event": "AAEC/w==", "contentType": "application/octet-stream"},
        {"entryId": "x", "event": "<order n=\"1\"/>", "contentType": "application/xml"},
    ]);
    let r = t
        .client()
        .bulk_publish(PUBSUB, "orders", &body, &[])
        .await?;
    status_is("bulk status", 204, &r)?;
    let ds = t.wait("/orders", 4).await?;
    let events: Vec<Value> = ds.iter().filter_map(|d| d.body_json.clone()).collect();
    let has = |pred: &dyn Fn(&Value) -> bool| events.iter().any(pred);
    let mut ev: Vec<String> = events.iter().map(Value::to_string).collect();
    ev.truncate(4);
    ensure(
        has(&|e| e["data"]["n"] == 1 && e["datacontenttype"] == "application/json"),
        "the JSON entry lost its JSON data",
        ev.clone(),
    )?;
    ensure(
        has(&|e| e["data"] == "plain words"),
        "the text entry lost its string data",
        ev.clone(),
    )?;
    ensure(
        has(&|e| e["data"] == "<order n=\"1\"/>" && e["datacontenttype"] == "application/xml"),
        "the XML entry lost its string data",
        ev.clone(),
    )?;
    ensure(
        has(&|e| e["data_base64"] == "AAEC/w==" && e.get("data").is_none()),
        "the octet-stream entry is not data_base64 of the bytes",
        ev,
    )
}

/// Subscribes `/orders`, bulk-publishes one JSON entry with data `{"tck_id": tck_id}` and
/// entry metadata `metadata`, and returns its delivery.
async fn one_entry(
    t: &mut Trial,
    tck_id: &str,
    metadata: Value,
) -> Result<harness::RecordedDelivery, Problem> {
    start_orders(t).await?;
    let body = json!([
        {"entryId": "x", "event": {"tck_id": tck_id}, "contentType": "application/json", "metadata": metadata},
    ]);
    let r = t
        .client()
        .bulk_publish(PUBSUB, "orders", &body, &[])
        .await?;
    status_is("bulk status", 204, &r)?;
    let mut d = t.wait_msg("/orders", tck_id, 1).await?;
    Ok(d.swap_remove(0))
}

async fn entry_metadata_override(t: &mut Trial) -> Result<(), Problem> {
    let d = one_entry(t, "meta", json!({"cloudevent.id": "my-entry-id"})).await?;
    ensure_eq(
        "CloudEvent id",
        Some("my-entry-id".to_owned()),
        d.ce_id,
        t.evidence(),
    )
}

async fn entry_ttl_expiration(t: &mut Trial) -> Result<(), Problem> {
    let before = time::OffsetDateTime::now_utc();
    let d = one_entry(t, "ttl", json!({"ttlInSeconds": "120"})).await?;
    super::cloudevents::expires_about_120_s_after(&d, before)
}

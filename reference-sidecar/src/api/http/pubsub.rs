//! `POST /v1.0/publish/{pubsub}/{topic}` and the bulk routes: requests translated into
//! `crate::publish` (shared with gRPC), failures through `ApiError`.

#![expect(
    clippy::result_large_err,
    reason = "an ApiError is built once per failed request, off the hot path; boxing buys nothing"
)]

use super::*;

/// `metadata.*` query parameters, prefix stripped, first value of a repeated key.
pub(super) fn publish_metadata(q: Option<&str>) -> BTreeMap<String, String> {
    let mut md = BTreeMap::new();
    for (k, v) in query_pairs(q) {
        if let Some(key) = k.strip_prefix("metadata.") {
            md.entry(key.to_owned()).or_insert(v);
        }
    }
    md
}

pub(super) fn trace_headers(headers: &HeaderMap) -> Trace {
    Trace::from_headers(|k| headers.get(k).and_then(|v| v.to_str().ok()))
}

pub(super) async fn publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Result<StatusCode, ApiError> {
    let metadata = publish_metadata(q.as_deref());
    // The component is looked up before the body is read, as daprd does.
    let comp = publish::lookup(&rt, &pubsub, &topic, &metadata)?;
    // The headers are read in place (the `HeaderMap` extractor would clone them).
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let data = read_body(body, rt.config.max_body_size).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let req = PublishRequest {
        pubsub,
        topic,
        data,
        content_type,
        metadata,
        trace: trace_headers(headers),
        transport: Transport::Http,
    };
    publish::publish_one(&rt, comp, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn bulk_entries(
    pubsub: &str,
    topic: &str,
    body: &[u8],
    md: &BTreeMap<String, String>,
) -> Result<Vec<BulkEntry>, ApiError> {
    let unmarshal = |e: String| {
        err::events_ser(
            pubsub,
            "DAPR_PUBSUB_UNMARSHAL_EVENTS",
            format!("error when unmarshaling the request for topic {topic} pubsub {pubsub}: {e}"),
            md,
        )
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| unmarshal(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(unmarshal("the body is not a JSON array".into()));
    };
    let marshal = |m: String| err::events_ser(pubsub, "DAPR_PUBSUB_MARSHAL_EVENTS", m, md);
    let envelope_err = |m: String| err::events_ser(pubsub, "DAPR_PUBSUB_MARSHAL_ENVELOPE", m, md);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(unmarshal(format!("entry {i} is not an object")));
        };
        let get = |k: &str| json_field(&obj, k);
        let id = get("entryId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if id.is_empty() {
            return Err(marshal(format!(
                "entryId is duplicated or not present for entry {i}"
            )));
        }
        if !seen.insert(id.clone()) {
            return Err(marshal(format!(
                "entryId is duplicated or not present for entry {id}"
            )));
        }
        let content_type = get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let event = get("event").cloned().unwrap_or(Value::Null);
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let data = match media.as_str() {
            "application/octet-stream" => {
                let s = event.as_str().ok_or_else(|| {
                    envelope_err(format!(
                        "entry {id}: octet-stream event must be a base64 string"
                    ))
                })?;
                Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| envelope_err(format!("entry {id}: invalid base64: {e}")))?,
                )
            }
            "application/json" | "application/cloudevents+json" => Bytes::from(event.to_string()),
            m if m.starts_with("text/") || m == "application/xml" => {
                let s = event.as_str().ok_or_else(|| {
                    envelope_err(format!("entry {id}: {m} event must be a string"))
                })?;
                Bytes::copy_from_slice(s.as_bytes())
            }
            m => {
                return Err(envelope_err(format!(
                    "entry {id}: cannot convert an event with content type {m:?}"
                )));
            }
        };
        let metadata = match get("metadata") {
            Some(Value::Object(m)) => Some(
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect(),
            ),
            _ => None,
        };
        out.push(BulkEntry {
            id,
            data,
            content_type,
            metadata,
        });
    }
    Ok(out)
}

pub(super) async fn bulk_publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let metadata = publish_metadata(q.as_deref());
    let comp = publish::lookup(&rt, &pubsub, &topic, &metadata)?;
    let body = read_body(body, rt.config.max_body_size).await?;
    // daprd validates `rawPayload` before it parses the entries.
    publish::raw_payload(&pubsub, &metadata)?;
    let entries = bulk_entries(&pubsub, &topic, &body, &metadata)?;
    let req = BulkRequest {
        pubsub,
        topic,
        metadata,
        entries,
        trace: trace_headers(&headers),
    };
    let failed = publish::publish_bulk(&rt, comp, req).await?;
    if failed.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let failed: Vec<Value> = failed
        .into_iter()
        .map(|f| json!({"entryId": f.id, "error": f.error}))
        .collect();
    let body = json!({"failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"});
    let text = body.to_string();
    let mut resp = (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        text.clone(),
    )
        .into_response();
    if let Ok(v) = http::HeaderValue::from_str(&text) {
        resp.headers_mut().insert("metadata.responsedata", v);
    }
    Ok(resp)
}

//! The state subset: save, get and delete on `/v1.0/state/{store}`, with ETags.

#![expect(
    clippy::result_large_err,
    reason = "an ApiError is built once per failed request, off the hot path; boxing buys nothing"
)]

use super::*;

/// The state store named in the path, or daprd's error (no stores at all is a 500).
pub(super) fn state_store<'a>(
    rt: &'a Runtime,
    name: &str,
) -> Result<&'a crate::runtime::StateComponent, ApiError> {
    if rt.state_stores.is_empty() {
        return Err(state_err::not_configured());
    }
    rt.state_stores
        .get(name)
        .ok_or_else(|| state_err::not_found(name))
}

/// `key` as `store` keeps it: with the store's key prefix.
fn stored_key(
    rt: &Runtime,
    comp: &crate::runtime::StateComponent,
    store: &str,
    key: &str,
) -> Result<String, ApiError> {
    comp.key_prefix
        .apply(&rt.config.app_id, store, key)
        .map_err(state_err::malformed)
}

/// One item of a save request.
pub(super) struct SaveItem {
    key: String,
    value: Bytes,
    etag: Option<String>,
}

/// `[{key, value, etag?, metadata?, options?}]`, field names case-insensitive as Go decodes them.
/// daprd re-encodes the decoded `value`; we store its compact JSON text (Go would also sort
/// object keys and print numbers as float64; that difference is not modelled).
pub(super) fn save_items(body: &[u8]) -> Result<Vec<SaveItem>, ApiError> {
    let malformed =
        |e: String| state_err::malformed(format!("failed deserializing HTTP body: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(malformed("the body is not a JSON array".into()));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(malformed(format!("item {i} is not an object")));
        };
        let get = |k: &str| json_field(&obj, k);
        let key = match get("key") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            _ => return Err(malformed(format!("item {i} has no key"))),
        };
        let etag = match get("etag") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.clone()),
            Some(_) => return Err(malformed(format!("item {i}: etag must be a string"))),
        };
        let value = get("value").cloned().unwrap_or(Value::Null);
        out.push(SaveItem {
            key,
            value: Bytes::from(value.to_string()),
            etag,
        });
    }
    Ok(out)
}

/// `POST /v1.0/state/{store}`: 204 once every item is saved. Items are saved in order and the
/// first failure answers (daprd's bulk set is not atomic either).
pub(super) async fn save_state(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let comp = state_store(&rt, &store)?;
    let body = read_body(body, rt.config.max_body_size).await?;
    let items = save_items(&body)?;
    for item in items {
        let key = stored_key(&rt, comp, &store, &item.key)?;
        comp.store
            .set(&key, item.value, item.etag.as_deref())
            .await
            .map_err(|e| state_err::save(&store, &e))?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1.0/state/{store}/{key}`: 200 with the stored JSON and an `ETag`, or 204 when missing.
pub(super) async fn get_state(
    State(rt): State<Arc<Runtime>>,
    Path((store, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let comp = state_store(&rt, &store)?;
    let full_key = stored_key(&rt, comp, &store, &key)?;
    let item = comp
        .store
        .get(&full_key)
        .await
        .map_err(|e| state_err::get(&store, &key, &e))?;
    let Some(item) = item else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        item.value,
    )
        .into_response();
    if let Some(v) = item.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `DELETE /v1.0/state/{store}/{key}`: 204; the ETag comes in `If-Match`, as in daprd.
pub(super) async fn delete_state(
    State(rt): State<Arc<Runtime>>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let comp = state_store(&rt, &store)?;
    let full_key = stored_key(&rt, comp, &store, &key)?;
    // A malformed If-Match must not turn into an unconditional delete.
    let etag = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            state_err::malformed("the If-Match header is not a valid ETag string".to_owned())
        })?),
    };
    comp.store
        .delete(&full_key, etag)
        .await
        .map_err(|e| state_err::delete(&key, &e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_bodies() {
        let items = save_items(
            br#"[{"key":"a","value":{"x":1}},{"Key":"b","value":"s","etag":"3","options":{}}]"#,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].value, Bytes::from_static(br#"{"x":1}"#));
        assert_eq!(items[1].key, "b");
        assert_eq!(items[1].value, Bytes::from_static(br#""s""#));
        assert_eq!(items[1].etag.as_deref(), Some("3"));
        for bad in [
            &b"{"[..],
            b"{}",
            b"[1]",
            br#"[{"value":1}]"#,
            br#"[{"key":"a","etag":1}]"#,
        ] {
            let e = save_items(bad).err().unwrap();
            assert_eq!(
                e.code,
                "ERR_MALFORMED_REQUEST",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

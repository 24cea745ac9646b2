//! The state API (`/v1.0/state/{store}`), as far as the tutorial apps use it next to pub/sub:
//! saving items and reading one back (the orders flow keeps its stock this way), and the ETag
//! that guards a concurrent update.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{line, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness::ApiResponse;
use harness_engine::problem::{Problem, ensure_eq};
use harness_engine::trial::{Scenario, Trial};

const STATE_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/state_api/");

/// An in-memory state store next to the pubsub component.
const STORE: &str = "tck-store";

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::state::save_and_get",
            Should,
            "POST /v1.0/state/<store> saves items (204) that GET /v1.0/state/<store>/<key> reads back as saved; an item with an empty key answers 400 ERR_MALFORMED_REQUEST; DELETE /v1.0/state/<store>/<key> answers 204, and a get then answers 204 without a body",
            "daprd pkg/api/http/http.go onPostState (\"key\" is a required field: CommonMalformedRequest, 400), onGetState (no item: 204) and onDeleteState (204)",
            STATE_DOC,
            [Need::Launch],
            save_and_get
        ),
        check!(
            "core::state::etag_mismatch",
            Should,
            "The metadata API lists the store's ETAG capability; a read answers the item's ETag header; a save with another ETag answers 409 ERR_STATE_SAVE naming the mismatch and keeps the value; a save with the read ETag answers 204",
            "daprd pkg/api/http/http.go onGetState (ETag header), onPostState and stateErrorResponse (an ETag mismatch is 409 with the store's error); pkg/api/universal/metadata.go (a component's capabilities); components-contrib state/errors.go (\"possible etag mismatch\") and state/in-memory",
            STATE_DOC,
            [Need::Launch],
            etag_mismatch
        ),
    ]
}

fn store_yaml() -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {STORE}\nspec:\n  type: state.in-memory\n  version: v1\n  metadata: []\n"
    )
}

/// Saves `items` (a JSON array) into the store and answers the response.
async fn save(t: &Trial, items: Value) -> Result<ApiResponse, Problem> {
    let path = format!("/v1.0/state/{STORE}");
    let json_ct = [("content-type", "application/json")];
    Ok(t.client()
        .post(&path, Bytes::from(items.to_string()), &json_ct)
        .await?)
}

/// Reads `key` back: 200, and `expected` as its value. Answers the response (its headers).
async fn read_back(
    t: &Trial,
    key: &str,
    what: &str,
    expected: &Value,
) -> Result<ApiResponse, Problem> {
    let got = t
        .client()
        .get(&format!("/v1.0/state/{STORE}/{key}"))
        .await?;
    status_is(&format!("status of a get {what}"), 200, &got)?;
    ensure_eq(
        &format!("the value read {what}"),
        expected,
        &got.json().unwrap_or(Value::Null),
        [line(&got)],
    )?;
    Ok(got)
}

/// Requires `r` to be an error of `status` with `code` as its `errorCode`.
fn refused(r: &ApiResponse, what: &str, status: u16, code: &str) -> Result<Value, Problem> {
    status_is(&format!("status of {what}"), status, r)?;
    let body = r.json().unwrap_or(Value::Null);
    ensure_eq(
        &format!("errorCode of {what}"),
        json!(code),
        body["errorCode"].clone(),
        [line(r)],
    )?;
    Ok(body)
}

async fn save_and_get(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().resource(store_yaml())).await?;
    let value = json!({"stock": 90, "nonce": t.nonce()});
    let r = save(t, json!([{"key": "item-1", "value": value}])).await?;
    status_is("status of a save", 204, &r)?;
    read_back(t, "item-1", "back", &value).await?;
    let r = save(t, json!([{"key": "", "value": 1}])).await?;
    refused(&r, "a save with an empty key", 400, "ERR_MALFORMED_REQUEST")?;
    let path = format!("/v1.0/state/{STORE}/item-1");
    let r = t
        .client()
        .request(http::Method::DELETE, &path, None, &[])
        .await?;
    status_is("status of a delete", 204, &r)?;
    let r = t.client().get(&path).await?;
    ensure_eq(
        "status of a get after the delete",
        (204, String::new()),
        (r.status, String::from_utf8_lossy(&r.body).into_owned()),
        [line(&r)],
    )
}

async fn etag_mismatch(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().resource(store_yaml())).await?;
    let meta = t.client().get("/v1.0/metadata").await?;
    let components = meta.json().unwrap_or(Value::Null)["components"].clone();
    let store = components
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == STORE);
    let lists_etag = store
        .and_then(|c| c["capabilities"].as_array())
        .is_some_and(|caps| caps.iter().any(|c| c == "ETAG"));
    if !lists_etag {
        return Err(Problem::fail(
            format!("the metadata API does not list the ETAG capability of {STORE}"),
            vec![format!("components: {components}")],
        ));
    }
    let first = json!({"stock": 1, "nonce": t.nonce()});
    let r = save(t, json!([{"key": "item-1", "value": first}])).await?;
    status_is("status of the first save", 204, &r)?;
    let got = read_back(t, "item-1", "after the first save", &first).await?;
    let etag = got.header("etag").unwrap_or_default().to_owned();
    if etag.is_empty() {
        return Err(Problem::fail(
            "the read of a saved item has no ETag header",
            vec![line(&got)],
        ));
    }
    let stale = json!({"key": "item-1", "value": {"stock": 2}, "etag": format!("{etag}-not")});
    let r = save(t, json!([stale])).await?;
    let body = refused(&r, "a save with another ETag", 409, "ERR_STATE_SAVE")?;
    if !body["message"]
        .as_str()
        .unwrap_or("")
        .contains("etag mismatch")
    {
        return Err(Problem::fail(
            "the message of a save with another ETag does not name the ETag mismatch",
            vec![line(&r)],
        ));
    }
    read_back(t, "item-1", "after a refused save", &first).await?;
    let second = json!({"stock": 3, "nonce": t.nonce()});
    let r = save(t, json!([{"key": "item-1", "value": second, "etag": etag}])).await?;
    status_is("status of a save with the read ETag", 204, &r)?;
    read_back(t, "item-1", "after a save with the read ETag", &second).await?;
    Ok(())
}

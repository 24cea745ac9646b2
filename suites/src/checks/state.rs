//! The state API (`/v1.0/state/{store}`), as far as the tutorial apps use it next to pub/sub:
//! saving items and reading one back (the orders flow keeps its stock this way).

use bytes::Bytes;
use serde_json::{Value, json};

use crate::catalog::{Check, Need};
use crate::check;
use crate::checks::publish::response_line as line;
use crate::problem::{Problem, ensure_eq};
use crate::trial::{Scenario, Trial};

const STATE_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/state_api/");

/// An in-memory state store next to the pubsub component.
const STORE: &str = "tck-store";

pub(crate) fn checks() -> Vec<Check> {
    vec![check!(
        "core::state::save_and_get",
        Should,
        "POST /v1.0/state/<store> saves items (204) that GET /v1.0/state/<store>/<key> reads back as saved; an item with an empty key answers 400 ERR_MALFORMED_REQUEST",
        "daprd pkg/api/http/http.go onPostState (\"key\" is a required field: CommonMalformedRequest, 400) and onGetState",
        STATE_DOC,
        [Need::Launch],
        save_and_get
    )]
}

fn store_yaml() -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {STORE}\nspec:\n  type: state.in-memory\n  version: v1\n  metadata: []\n"
    )
}

async fn save_and_get(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().resource(store_yaml())).await?;
    let value = json!({"stock": 90, "nonce": t.nonce()});
    let items = json!([{"key": "item-1", "value": value}]).to_string();
    let json_ct = [("content-type", "application/json")];
    let path = format!("/v1.0/state/{STORE}");
    let r = t.client().post(&path, Bytes::from(items), &json_ct).await?;
    ensure_eq("status of a save", 204, r.status, [line(&r)])?;
    let got = t.client().get(&format!("{path}/item-1")).await?;
    ensure_eq("status of a get", 200, got.status, [line(&got)])?;
    ensure_eq(
        "the value read back",
        value,
        got.json().unwrap_or(Value::Null),
        [line(&got)],
    )?;
    let empty = json!([{"key": "", "value": 1}]).to_string();
    let r = t.client().post(&path, Bytes::from(empty), &json_ct).await?;
    ensure_eq(
        "status of a save with an empty key",
        400,
        r.status,
        [line(&r)],
    )?;
    ensure_eq(
        "errorCode of a save with an empty key",
        json!("ERR_MALFORMED_REQUEST"),
        r.json().unwrap_or(Value::Null)["errorCode"].clone(),
        [line(&r)],
    )
}

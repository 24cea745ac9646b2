//! The metadata API (spec notes §9).

use serde_json::{Value, json};

use super::{line, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::trial::{Scenario, Trial};

const METADATA_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/metadata_api/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::metadata::non_empty",
            Must,
            "GET /v1.0/metadata answers 200 with a JSON body naming the app id",
            "daprd pkg/api/http/metadata.go; JS SDK requires a non-empty body",
            METADATA_DOC,
            [],
            metadata_non_empty
        ),
        check!(
            "core::metadata::components_listed",
            Must,
            "The metadata API lists the pubsub component with its type",
            "daprd metadata API: components[{name, type, version}]",
            METADATA_DOC,
            [Need::Launch],
            components_listed
        ),
        check!(
            "core::metadata::app_connection",
            Should,
            "The metadata API reports the app connection the sidecar was started with: appConnectionProperties.port and .protocol",
            "daprd pkg/api/universal/metadata.go and pkg/api/http/metadata.go: appConnectionProperties from the app connection config (--app-port, --app-protocol)",
            METADATA_DOC,
            [Need::Launch],
            app_connection
        ),
        check!(
            "core::metadata::actor_runtime_disabled",
            Should,
            "Without a placement service, GET /v1.0/metadata reports actorRuntime as runtimeStatus DISABLED, hostReady false, placement \"placement: disconnected\"",
            "daprd pkg/actors/actors.go RuntimeStatus (no placement addresses) and pkg/api/http/metadata.go (actorRuntime)",
            METADATA_DOC,
            [Need::Launch],
            actor_runtime_disabled
        ),
    ]
}

/// Starts the sidecar with no subscriptions and reads `GET /v1.0/metadata`: 200, and its body
/// as JSON (`null` when it is not JSON) with the response for evidence.
async fn started_metadata(t: &mut Trial) -> Result<(Value, harness::ApiResponse), Problem> {
    t.start(Scenario::new()).await?;
    let r = t.client().metadata().await?;
    status_is("metadata status", 200, &r)?;
    Ok((r.json().unwrap_or(Value::Null), r))
}

async fn metadata_non_empty(t: &mut Trial) -> Result<(), Problem> {
    let (body, r) = started_metadata(t).await?;
    ensure(
        body["id"].is_string(),
        "the metadata body has no string id",
        [line(&r)],
    )?;
    if !t.env().target.is_attach() {
        ensure_eq(
            "metadata id",
            json!(t.app_id()),
            body["id"].clone(),
            [line(&r)],
        )?;
    }
    Ok(())
}

async fn components_listed(t: &mut Trial) -> Result<(), Problem> {
    let (body, r) = started_metadata(t).await?;
    let found = body["components"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c["name"] == "pubsub" && c["type"].as_str().is_some_and(|t| t.starts_with("pubsub."))
        })
    });
    ensure(
        found,
        "the pubsub component is not listed with a pubsub.* type",
        [line(&r)],
    )
}

async fn app_connection(t: &mut Trial) -> Result<(), Problem> {
    let (body, r) = started_metadata(t).await?;
    let port = t
        .app_port()
        .ok_or_else(|| Problem::Setup("the sidecar was started without an app port".into()))?;
    let props = &body["appConnectionProperties"];
    ensure_eq(
        "appConnectionProperties.port",
        json!(port),
        props["port"].clone(),
        [line(&r)],
    )?;
    ensure_eq(
        "appConnectionProperties.protocol",
        json!(t.app_protocol().as_str()),
        props["protocol"].clone(),
        [line(&r)],
    )
}

async fn actor_runtime_disabled(t: &mut Trial) -> Result<(), Problem> {
    let (body, r) = started_metadata(t).await?;
    ensure_eq(
        "actorRuntime",
        json!({"runtimeStatus": "DISABLED", "hostReady": false, "placement": "placement: disconnected"}),
        body["actorRuntime"].clone(),
        [line(&r)],
    )
}

//! The health endpoints (spec notes §8.8).

use serde_json::{Value, json};

use super::{line, start_orders, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure, ensure_eq};
use harness_engine::trial::{DEADLINE, Scenario, Trial};

const HEALTH_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/health_api/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::health::outbound_before_app",
            Must,
            "/v1.0/healthz/outbound answers 204 while the app is not listening, /v1.0/healthz does not",
            "daprd pkg/api/http/healthz.go: outbound readiness precedes app readiness",
            HEALTH_DOC,
            [Need::Launch],
            outbound_before_app
        ),
        check!(
            "core::health::healthz_after_app",
            Must,
            "/v1.0/healthz answers 204 once the app listens and subscriptions are discovered",
            "daprd healthz.go: ready after app channel and subscriptions",
            HEALTH_DOC,
            [Need::Launch],
            healthz_after_app
        ),
        check!(
            "core::health::appid_query",
            Should,
            "/v1.0/healthz?appid=<its own app id> answers 204; with another app id it answers 500 ERR_HEALTH_APPID_NOT_MATCH",
            "daprd pkg/api/http/healthz.go: an appid query parameter that is not this sidecar's app id is an error (ErrHealthAppIDNotMatch, 500)",
            HEALTH_DOC,
            [Need::Launch],
            healthz_appid_query
        ),
        check!(
            "core::health::publish_before_app",
            Must,
            "Publishing works before the app listens, and the message is delivered once it does",
            "daprd runtime.go: API servers start before waiting for the app port",
            HEALTH_DOC,
            [Need::Launch],
            publish_before_app
        ),
    ]
}

async fn outbound_before_app(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().app_later().subscribe("orders", "/orders"))
        .await?;
    let out = t.client().healthz_outbound().await?;
    status_is("/v1.0/healthz/outbound before the app listens", 204, &out)?;
    let full = t.client().healthz().await?;
    ensure(
        full.status != 204,
        "/v1.0/healthz answered 204 before the app listened",
        [line(&full)],
    )
}

async fn healthz_after_app(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().app_later().subscribe("orders", "/orders"))
        .await?;
    t.start_app().await?;
    t.sidecar()
        .wait_healthz(DEADLINE)
        .await
        .map_err(|e| Problem::fail(e.to_string(), vec![]))?;
    Ok(())
}

async fn healthz_appid_query(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    t.sidecar()
        .wait_healthz(DEADLINE)
        .await
        .map_err(|e| Problem::fail(e.to_string(), vec![]))?;
    let own = t
        .client()
        .get(&format!("/v1.0/healthz?appid={}", t.app_id()))
        .await?;
    status_is("status with its own app id", 204, &own)?;
    let other = t
        .client()
        .get(&format!("/v1.0/healthz?appid={}-other", t.app_id()))
        .await?;
    status_is("status with another app id", 500, &other)?;
    ensure_eq(
        "errorCode with another app id",
        json!("ERR_HEALTH_APPID_NOT_MATCH"),
        other.json().unwrap_or(Value::Null)["errorCode"].clone(),
        [line(&other)],
    )
}

async fn publish_before_app(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().app_later().subscribe("orders", "/orders"))
        .await?;
    super::publish_before_app(t, "orders", r#"{"tck_id":"early"}"#).await?;
    // The early message may or may not be kept by an in-memory broker with no subscriber yet;
    // what must hold is that publishing worked early and delivery works once the app is up.
    t.sidecar()
        .wait_healthz(DEADLINE)
        .await
        .map_err(|e| Problem::fail(e.to_string(), vec![]))?;
    let id = t.publish("orders", json!({"after": "app up"})).await?;
    t.wait_msg("/orders", &id, 1).await?;
    Ok(())
}

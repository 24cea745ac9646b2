//! `GET /v1.0/healthz` (with `appid`), `/v1.0/healthz/outbound` and `/v1.0/metadata`.

use super::*;

pub(super) async fn healthz(State(rt): State<Arc<Runtime>>, RawQuery(q): RawQuery) -> Response {
    let appid = query_pairs(q.as_deref())
        .find(|(k, _)| k == "appid")
        .map(|(_, v)| v);
    if let Some(appid) = appid
        && appid != rt.config.app_id
    {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_APPID_NOT_MATCH",
            "dapr app-id does not match",
        )
        .into_response();
    }
    if rt.app_ready.load(Ordering::Acquire) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_NOT_READY",
            "dapr is not ready: [app]",
        )
        .into_response()
    }
}

pub(super) async fn healthz_outbound() -> StatusCode {
    // Listening implies components are loaded: the API starts only after them.
    StatusCode::NO_CONTENT
}

pub(super) async fn metadata(State(rt): State<Arc<Runtime>>) -> Response {
    let components: Vec<Value> = rt
        .registered()
        .map(|(c, caps)| {
            let mut v = json!({"name": c.name, "type": c.type_, "version": c.version});
            if !caps.is_empty() {
                v["capabilities"] = json!(caps);
            }
            v
        })
        .collect();
    let subscriptions: Vec<Value> = rt
        .subscriptions()
        .iter()
        .map(|s| {
            let mut v = json!({
                "pubsubname": s.pubsub,
                "topic": s.topic,
                "deadLetterTopic": s.dead_letter_topic.clone().unwrap_or_default(),
                "type": s.kind.as_str(),
            });
            if !s.metadata.is_empty() {
                v["metadata"] = json!(s.metadata);
            }
            if !s.rules.is_empty() {
                let rules: Vec<Value> = s
                    .rules
                    .iter()
                    .map(|r| {
                        if r.expr.is_empty() {
                            json!({"path": r.path})
                        } else {
                            json!({"match": r.expr, "path": r.path})
                        }
                    })
                    .collect();
                v["rules"] = Value::Array(rules);
            }
            v
        })
        .collect();
    let mut body = json!({
        "id": rt.config.app_id,
        "runtimeVersion": concat!("refsidecar-", env!("CARGO_PKG_VERSION")),
        "enabledFeatures": [],
        "components": components,
        "subscriptions": subscriptions,
        "extended": {"daprRuntimeVersion": concat!("refsidecar-", env!("CARGO_PKG_VERSION"))},
        "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": false, "placement": crate::api::ACTORS_PLACEMENT},
    });
    if let Some(port) = rt.config.app_port {
        body["appConnectionProperties"] = json!({
            "port": port,
            "protocol": rt.config.app_protocol,
            "channelAddress": rt.config.app_channel_address,
        });
    }
    axum::Json(body).into_response()
}

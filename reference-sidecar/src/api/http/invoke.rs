//! Service invocation of the sidecar's own app: `/v1.0/invoke/{app-id}/method/{path}`, and the
//! `dapr-app-id` header form (see `not_found`).

use super::*;
// Go's `path.Clean` of `/` + the path, as daprd normalises an invoked method (and an app route).
use crate::routing::clean_path;

/// `ANY /v1.0/invoke/{app-id}/method/{path}`.
pub(super) async fn invoke(
    State(rt): State<Arc<Runtime>>,
    Path((app_id, _)): Path<(String, String)>,
    req: Request,
) -> Response {
    // The raw (still percent-encoded) path after `/method/`, not axum's decoded capture.
    let method_path = req
        .uri()
        .path()
        .splitn(6, '/')
        .nth(5)
        .unwrap_or("")
        .to_owned();
    forward_invocation(&rt, &app_id, &method_path, req).await
}

/// Forwards an invocation of `app_id` to this sidecar's own app and passes the answer through
/// (status, headers, body, non-2xx included). Other app ids need name resolution, which this
/// sidecar does not have.
pub(super) async fn forward_invocation(
    rt: &Runtime,
    app_id: &str,
    path: &str,
    req: Request,
) -> Response {
    if app_id != rt.config.app_id {
        return invoke_err::failed(
            app_id,
            &format!(
                "name resolution is not supported: only the sidecar's own app ({}) can be invoked",
                rt.config.app_id
            ),
        )
        .into_response();
    }
    let Some(app) = &rt.app else {
        return invoke_err::failed(app_id, "app channel is not initialized (no --app-port)")
            .into_response();
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(body, rt.config.max_body_size).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut target = clean_path(path);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut headers = parts.headers;
    if let Ok(v) = HeaderValue::from_str(&rt.config.app_id) {
        headers.insert("dapr-caller-app-id", v.clone());
        headers.insert("dapr-callee-app-id", v);
    }
    match app.forward(parts.method, &target, headers, body).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            crate::app_channel::strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => {
            tracing::warn!(app_id, path = %target, "invocation failed: {}", crate::api::error::chain(&e));
            invoke_err::failed(app_id, &crate::api::error::chain(&e)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_are_cleaned() {
        for (path, expect) in [
            ("orders/42", "/orders/42"),
            ("", "/"),
            ("a//b/./c/", "/a/b/c"),
            ("a/../../b", "/b"),
        ] {
            assert_eq!(clean_path(path), expect, "{path:?}");
        }
    }
}

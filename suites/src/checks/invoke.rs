//! Service invocation of the sidecar's own app (`/v1.0/invoke/{app-id}/method/{method}`): the
//! route the tutorial apps use next to pub/sub (the orders flow asks the inventory through it).

use bytes::Bytes;

use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::problem::{Problem, ensure_eq};
use harness_engine::trial::{Scenario, Trial};

const INVOKE_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/service_invocation_api/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::invoke::own_app",
            Should,
            "POST /v1.0/invoke/<own app id>/method/tck/invoke?x=1 reaches the app as POST /tck/invoke?x=1 with the body as sent, and the app's answer comes back",
            "daprd pkg/api/http/directmessaging.go onDirectMessage and pkg/messaging/direct_messaging.go: the sidecar's own app id is invoked on its own app channel, method path and query kept",
            INVOKE_DOC,
            [Need::Launch],
            own_app
        ),
        check!(
            "core::invoke::own_app_by_header",
            Should,
            "POST /tck/by-header?x=1 with a dapr-app-id header naming the sidecar's own app reaches the app as POST /tck/by-header?x=1 with the body as sent, and the app's answer comes back",
            "daprd pkg/api/http/http.go: a request to a path no API route matches, with a dapr-app-id header, is service invocation of that app (the header form of the invoke API)",
            INVOKE_DOC,
            [Need::Launch],
            own_app_by_header
        ),
    ]
}

async fn own_app(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let path = format!("/v1.0/invoke/{}/method/tck/invoke?x=1", t.app_id());
    invoke_own_app(t, &path, None, "/tck/invoke").await
}

async fn own_app_by_header(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new()).await?;
    let app_id = t.app_id();
    invoke_own_app(t, "/tck/by-header?x=1", Some(&app_id), "/tck/by-header").await
}

/// Invokes the started sidecar's own app at `path` (with `dapr-app-id: header_app_id`, if given), and
/// checks the app got the request at `app_path` with the query `x=1` and the body, and that its
/// answer came back.
async fn invoke_own_app(
    t: &mut Trial,
    path: &str,
    header_app_id: Option<&str>,
    app_path: &str,
) -> Result<(), Problem> {
    let body = format!(r#"{{"tck_invoke":"{}"}}"#, t.nonce());
    let mut headers = vec![("content-type", "application/json")];
    if let Some(id) = header_app_id {
        headers.push(("dapr-app-id", id));
    }
    let r = t
        .client()
        .post(path, Bytes::from(body.clone()), &headers)
        .await?;
    let answer = format!(
        "HTTP {} body {}",
        r.status,
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    );
    let d = t.wait(app_path, 1).await?;
    let seen = format!(
        "the app got {} {}?{} body {}",
        d[0].request.method,
        d[0].request.path,
        d[0].request.query.as_deref().unwrap_or(""),
        String::from_utf8_lossy(&d[0].request.body)
    );
    ensure_eq(
        "method, query and body the app got",
        ("POST".to_owned(), Some("x=1".to_owned()), body),
        (
            d[0].request.method.clone(),
            d[0].request.query.clone(),
            String::from_utf8_lossy(&d[0].request.body).into_owned(),
        ),
        [seen.clone(), answer.clone()],
    )?;
    // The app's answer, as the test app recorded it: "<status> <body>".
    let (status, app_body) = d[0]
        .answered
        .split_once(' ')
        .unwrap_or((d[0].answered.as_str(), ""));
    ensure_eq(
        "the invocation's answer (status, body)",
        (status.to_owned(), app_body.to_owned()),
        (
            r.status.to_string(),
            String::from_utf8_lossy(&r.body).into_owned(),
        ),
        [seen, answer],
    )
}

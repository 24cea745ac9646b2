//! Per-route behaviour of the test app and the pure logic that turns a script, an attempt
//! number and a message id into an answer.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

/// How the test app answers requests on one route.
///
/// "Attempt" is 1-based and counted per (route, message): the first delivery of a message
/// on a route is attempt 1, its first redelivery attempt 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// 200 `{"status":"SUCCESS"}`.
    Success,
    /// 200 with an empty body (the sidecar must treat it as success, §4.3).
    Empty2xx,
    /// 200 with the body `not json`.
    Garbage2xx,
    /// 200 `{"status":<s>}`, for example `RETRY`, `DROP` or a wrong-case `success`.
    Status(String),
    /// This HTTP status code with a small JSON body.
    Http(u16),
    /// This status code and exactly this body, sent as `application/json`.
    Respond(u16, Bytes),
    /// `RETRY` for the first `k` attempts of each message, then `SUCCESS`.
    RetryThenSuccess(u32),
    /// HTTP `code` for the first `k` attempts of each message, then `SUCCESS`.
    FailThenSuccess {
        /// The failing status code.
        code: u16,
        /// How many attempts fail.
        k: u32,
    },
    /// A gRPC error with this status code (12 is UNIMPLEMENTED). A gRPC app answers it as
    /// such; an HTTP app answers the HTTP status nearest to it (404 for NOT_FOUND, 501 for
    /// UNIMPLEMENTED, 503 for UNAVAILABLE, 500 for codes without a nearer one).
    Grpc(i32),
    /// Waits, then behaves like the inner script.
    Delay(Duration, Box<Script>),
    /// Never answers; the request is held until the app stops.
    Hang,
    /// Closes the TCP connection without sending a response.
    CloseConnection,
    /// The script at index `attempt - 1`; the last one repeats. Empty means `Success`.
    Sequence(Vec<Script>),
    /// A script per `tck_id`, and a default for everything else (including messages
    /// without a `tck_id`).
    PerMessage {
        /// Scripts keyed by the message's `tck_id`.
        by_tck_id: BTreeMap<String, Script>,
        /// The script for any other message.
        default: Box<Script>,
    },
}

/// What the app does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Action {
    pub(crate) delay: Duration,
    pub(crate) outcome: Outcome,
}

/// The final part of an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Respond {
        status: u16,
        content_type: Option<&'static str>,
        body: Bytes,
    },
    /// A gRPC error code (an HTTP app never sees this: [`Script::plan`] answers its HTTP form).
    Grpc(i32),
    Hang,
    Close,
}

const JSON: Option<&str> = Some("application/json");

fn status_body(s: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "status": s }).to_string())
}

impl Script {
    /// A script for each of some messages (by `tck_id`); every other message succeeds.
    pub fn for_messages<I, K>(scripts: I) -> Script
    where
        I: IntoIterator<Item = (K, Script)>,
        K: Into<String>,
    {
        Script::PerMessage {
            by_tck_id: scripts.into_iter().map(|(k, s)| (k.into(), s)).collect(),
            default: Box::new(Script::Success),
        }
    }

    /// Resolves the script for this attempt (1-based) of the message with `tck_id`.
    pub(crate) fn plan(&self, attempt: u32, tck_id: Option<&str>) -> Action {
        let respond = |status, content_type, body| Action {
            delay: Duration::ZERO,
            outcome: Outcome::Respond {
                status,
                content_type,
                body,
            },
        };
        match self {
            Script::Success => respond(200, JSON, status_body("SUCCESS")),
            Script::Empty2xx => respond(200, None, Bytes::new()),
            Script::Garbage2xx => respond(200, Some("text/plain"), Bytes::from_static(b"not json")),
            Script::Status(s) => respond(200, JSON, status_body(s)),
            Script::Http(code) => respond(
                *code,
                JSON,
                Bytes::from(format!(r#"{{"scripted":{code}}}"#)),
            ),
            Script::Respond(code, body) => respond(*code, JSON, body.clone()),
            Script::Grpc(code) => Action {
                delay: Duration::ZERO,
                outcome: Outcome::Grpc(*code),
            },
            Script::RetryThenSuccess(k) => {
                let s = if attempt <= *k { "RETRY" } else { "SUCCESS" };
                respond(200, JSON, status_body(s))
            }
            Script::FailThenSuccess { code, k } => {
                if attempt <= *k {
                    Script::Http(*code).plan(attempt, tck_id)
                } else {
                    Script::Success.plan(attempt, tck_id)
                }
            }
            Script::Delay(d, inner) => {
                let mut a = inner.plan(attempt, tck_id);
                a.delay += *d;
                a
            }
            Script::Hang => Action {
                delay: Duration::ZERO,
                outcome: Outcome::Hang,
            },
            Script::CloseConnection => Action {
                delay: Duration::ZERO,
                outcome: Outcome::Close,
            },
            Script::Sequence(steps) => {
                let i = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
                match steps.get(i).or(steps.last()) {
                    Some(s) => s.plan(attempt, tck_id),
                    None => Script::Success.plan(attempt, tck_id),
                }
            }
            Script::PerMessage { by_tck_id, default } => {
                match tck_id.and_then(|id| by_tck_id.get(id)) {
                    Some(s) => s.plan(attempt, tck_id),
                    None => default.plan(attempt, tck_id),
                }
            }
        }
    }
}

impl Action {
    /// The short answer label recorded in histories (see `RecordedDelivery::answer`).
    pub(crate) fn label(&self) -> String {
        match &self.outcome {
            Outcome::Respond { status, body, .. } => {
                let status_field = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("status").and_then(|s| s.as_str().map(str::to_owned)));
                match status_field {
                    Some(s) if (200..300).contains(status) => s,
                    _ => status.to_string(),
                }
            }
            Outcome::Grpc(code) => http_status_for_grpc(*code).to_string(),
            Outcome::Hang => "hang".to_owned(),
            Outcome::Close => "close-connection".to_owned(),
        }
    }

    /// A short description recorded as `RecordedDelivery::answered`.
    pub(crate) fn describe(&self) -> String {
        let what = match &self.outcome {
            Outcome::Respond { status, body, .. } if body.is_empty() => format!("{status} <empty>"),
            Outcome::Respond { status, body, .. } => {
                format!("{status} {}", String::from_utf8_lossy(body))
            }
            Outcome::Grpc(code) => {
                format!("{} (for gRPC code {code})", http_status_for_grpc(*code))
            }
            Outcome::Hang => "hang".to_owned(),
            Outcome::Close => "close-connection".to_owned(),
        };
        if self.delay.is_zero() {
            what
        } else {
            format!("after {:?}: {what}", self.delay)
        }
    }
}

/// The HTTP status an HTTP app answers for a scripted gRPC code.
pub(crate) fn http_status_for_grpc(code: i32) -> u16 {
    match code {
        3 => 400,
        4 => 504,
        5 => 404,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Describes the plan for attempts 1..=n, joined by ` | `.
    fn check(script: Script, tck_id: Option<&str>, n: u32, expect: &str) {
        let got: Vec<String> = (1..=n)
            .map(|a| {
                let plan = script.plan(a, tck_id);
                format!("{} [{}]", plan.describe(), plan.label())
            })
            .collect();
        assert_eq!(got.join(" | "), expect);
    }

    #[test]
    fn simple_answers() {
        check(
            Script::Success,
            None,
            1,
            r#"200 {"status":"SUCCESS"} [SUCCESS]"#,
        );
        check(Script::Empty2xx, None, 1, "200 <empty> [200]");
        check(Script::Garbage2xx, None, 1, "200 not json [200]");
        check(
            Script::Status("success".into()),
            None,
            1,
            r#"200 {"status":"success"} [success]"#,
        );
        check(Script::Http(404), None, 1, r#"404 {"scripted":404} [404]"#);
        check(
            Script::Respond(500, Bytes::from_static(br#"{"status":"DROP"}"#)),
            None,
            1,
            r#"500 {"status":"DROP"} [500]"#,
        );
        check(
            Script::Respond(200, Bytes::from_static(b"{}")),
            None,
            1,
            "200 {} [200]",
        );
        check(Script::Hang, None, 1, "hang [hang]");
        check(
            Script::CloseConnection,
            None,
            1,
            "close-connection [close-connection]",
        );
    }

    #[test]
    fn attempt_dependent_scripts() {
        check(
            Script::RetryThenSuccess(2),
            None,
            3,
            r#"200 {"status":"RETRY"} [RETRY] | 200 {"status":"RETRY"} [RETRY] | 200 {"status":"SUCCESS"} [SUCCESS]"#,
        );
        check(
            Script::FailThenSuccess { code: 500, k: 1 },
            None,
            2,
            r#"500 {"scripted":500} [500] | 200 {"status":"SUCCESS"} [SUCCESS]"#,
        );
        check(
            Script::Sequence(vec![
                Script::CloseConnection,
                Script::Http(503),
                Script::Empty2xx,
            ]),
            None,
            4,
            r#"close-connection [close-connection] | 503 {"scripted":503} [503] | 200 <empty> [200] | 200 <empty> [200]"#,
        );
        check(
            Script::Sequence(vec![]),
            None,
            1,
            r#"200 {"status":"SUCCESS"} [SUCCESS]"#,
        );
    }

    #[test]
    fn delays_and_per_message() {
        let ms = Duration::from_millis(5);
        check(
            Script::Delay(ms, Box::new(Script::Delay(ms, Box::new(Script::Hang)))),
            None,
            1,
            "after 10ms: hang [hang]",
        );
        let per = Script::PerMessage {
            by_tck_id: BTreeMap::from([("m1".to_owned(), Script::Status("DROP".into()))]),
            default: Box::new(Script::Empty2xx),
        };
        check(
            per.clone(),
            Some("m1"),
            1,
            r#"200 {"status":"DROP"} [DROP]"#,
        );
        check(per.clone(), Some("m2"), 1, "200 <empty> [200]");
        check(per, None, 1, "200 <empty> [200]");
    }
}

//! Recordings of the requests the test app receives, and waiting on them.
//!
//! Recordings are appended under a short-lived lock; a `watch` channel carrying the number
//! of recordings wakes waiters, so waiting never polls.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;

/// A request the app received: a `GET /dapr/subscribe` (or `/dapr/config`) call, or the
/// request of a [`RecordedDelivery`].
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order among all recordings of the app (deliveries included), from 0.
    pub seq: u64,
    /// Arrival time.
    pub at: Instant,
    /// Microseconds since the app first started.
    pub at_micros: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query: for a delivery, the route.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Headers with lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The request body, byte for byte.
    pub body: Bytes,
}

impl RecordedRequest {
    /// `req` as recording number `seq`, arrived at `at`, `at_micros` after the app started.
    fn new(seq: u64, at: Instant, at_micros: u64, req: Incoming) -> RecordedRequest {
        RecordedRequest {
            seq,
            at,
            at_micros,
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: req.body,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request the app received on a route other than `/dapr/subscribe` and `/dapr/config`:
/// normally a delivery.
#[derive(Debug, Clone)]
pub struct RecordedDelivery {
    /// The request as it arrived: order, time, route, headers and body.
    pub request: RecordedRequest,
    /// The body parsed as JSON, if it is JSON.
    pub body_json: Option<Value>,
    /// The CloudEvent `id`, if the body is a JSON object with a string `id`.
    pub ce_id: Option<String>,
    /// The harness's message id: `data.tck_id`, or for raw-payload deliveries the
    /// `tck_id` (or `data.tck_id`) inside the decoded `data_base64`.
    pub tck_id: Option<String>,
    /// The CloudEvent `topic`, if present.
    pub topic: Option<String>,
    /// The ordering key `tck_key`, read next to `tck_id`.
    pub tck_key: Option<String>,
    /// The per-key sequence number `tck_seq`, read next to `tck_id`.
    pub tck_seq: Option<u64>,
    /// The publishing trial's nonce `tck_trial`, read next to `tck_id`.
    pub tck_trial: Option<String>,
    /// Whether the harness fields were found inside a decoded `data_base64` (a raw-payload
    /// delivery, whose CloudEvent is synthetic).
    pub raw_payload: bool,
    /// 1-based: how many times this route has seen this message, keyed by `tck_id`, else
    /// `ce_id`, else the whole body. `tck_id` comes first because raw-payload deliveries
    /// get a fresh CloudEvent id on every attempt.
    pub attempt: u32,
    /// What the app answered, such as `200 {"status":"RETRY"}`, `hang` or
    /// `close-connection`; decided when the request arrived.
    pub answered: String,
    /// The short form of `answered` used in histories: the JSON `status` string of a 2xx
    /// answer that has one (`SUCCESS`, `RETRY`, `DROP`, `success`...), otherwise the HTTP
    /// status code (`200`, `404`), or `hang` / `close-connection`.
    pub answer: String,
    /// Requests being handled by the app when this one arrived, this one included.
    pub in_flight: u32,
}

impl RecordedDelivery {
    /// This delivery as a history event, timed relative to `trial_start`.
    pub fn to_history(&self, trial_start: Instant) -> harness_history::Event {
        let mut d = harness_history::Delivery::new(
            String::new(),
            self.request.path.clone(),
            self.attempt,
            self.answer.clone(),
        )
        .with_in_flight(self.in_flight);
        d.msg = self.tck_id.clone().map(harness_history::MessageId::new);
        d.ce_id = self.ce_id.clone();
        d.topic = self.topic.clone();
        d.key = self.tck_key.clone();
        d.seq = self.tck_seq;
        d.trial = self.tck_trial.clone();
        d.raw = self.raw_payload;
        let since_start = self.request.at.saturating_duration_since(trial_start);
        let micros = u64::try_from(since_start.as_micros()).unwrap_or(u64::MAX);
        harness_history::Event::new(micros, d)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    /// The `content-type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The member `name` of a JSON object body (a CloudEvent's attribute, or `data`); null when
    /// the body is not JSON or has no such member.
    pub fn member(&self, name: &str) -> Value {
        self.body_json
            .as_ref()
            .map_or(Value::Null, |b| b[name].clone())
    }
}

/// A wait on the test app's recordings ran out of time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    /// Too few deliveries arrived.
    #[error("waited {waited:?} for {wanted} deliveries on {}, saw {saw}", route.as_deref().unwrap_or("any route"))]
    Deliveries {
        /// How long the wait lasted.
        waited: Duration,
        /// The route waited on; `None` for any route.
        route: Option<String>,
        /// How many deliveries were wanted.
        wanted: usize,
        /// How many had arrived when the wait gave up.
        saw: usize,
    },
    /// Too few deliveries of one message arrived.
    #[error("waited {waited:?} for {wanted} deliveries of {tck_id} on {route}, saw {saw}")]
    Message {
        /// How long the wait lasted.
        waited: Duration,
        /// The route waited on.
        route: String,
        /// The message waited for (its `tck_id`).
        tck_id: String,
        /// How many deliveries of it were wanted.
        wanted: usize,
        /// How many had arrived when the wait gave up.
        saw: usize,
    },
    /// Too few `/dapr/subscribe` calls arrived.
    #[error("waited {waited:?} for {wanted} /dapr/subscribe calls, saw {saw}")]
    SubscribeCalls {
        /// How long the wait lasted.
        waited: Duration,
        /// How many calls were wanted.
        wanted: usize,
        /// How many had arrived.
        saw: usize,
    },
}

/// The request fields common to every recording.
pub(crate) struct Incoming {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

/// Fields of a delivery derived from its body.
pub(crate) struct Identity {
    pub(crate) body_json: Option<Value>,
    pub(crate) ce_id: Option<String>,
    pub(crate) topic: Option<String>,
    pub(crate) tck_id: Option<String>,
    pub(crate) tck_key: Option<String>,
    pub(crate) tck_seq: Option<u64>,
    pub(crate) tck_trial: Option<String>,
    pub(crate) raw_payload: bool,
}

impl Identity {
    pub(crate) fn of(body: &[u8]) -> Identity {
        let body_json: Option<Value> = serde_json::from_slice(body).ok();
        let ce_id = body_json
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let topic = body_json
            .as_ref()
            .and_then(|v| v.get("topic"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (payload, raw_payload) = match body_json.as_ref().and_then(harness_payload) {
            Some((p, raw)) => (Some(p), raw),
            None => (None, false),
        };
        let field = |name: &str| payload.as_ref().and_then(|p| p.get(name)).cloned();
        Identity {
            tck_id: field("tck_id").and_then(|v| v.as_str().map(str::to_owned)),
            tck_key: field("tck_key").and_then(|v| v.as_str().map(str::to_owned)),
            tck_seq: field("tck_seq").and_then(|v| v.as_u64()),
            tck_trial: field("tck_trial").and_then(|v| v.as_str().map(str::to_owned)),
            raw_payload,
            body_json,
            ce_id,
            topic,
        }
    }

    /// The key attempts are counted by.
    fn key(&self, body: &Bytes) -> String {
        match (&self.tck_id, &self.ce_id) {
            (Some(t), _) => format!("tck:{t}"),
            (None, Some(c)) => format!("ce:{c}"),
            (None, None) => format!("body:{}", String::from_utf8_lossy(body)),
        }
    }
}

/// The JSON object holding the harness fields (`tck_id`, `tck_key`, `tck_seq`, `tck_trial`):
/// the CloudEvent's `data`, the body itself, or the same two places inside a decoded
/// `data_base64` (raw-payload deliveries; the flag says so).
fn harness_payload(v: &Value) -> Option<(Value, bool)> {
    let direct = |v: &Value| match v.get("data") {
        Some(d) if d.get("tck_id").is_some() => Some(d.clone()),
        _ if v.get("tck_id").is_some() => Some(v.clone()),
        _ => None,
    };
    direct(v).map(|p| (p, false)).or_else(|| {
        let b64 = v.get("data_base64")?.as_str()?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let inner: Value = serde_json::from_slice(&raw).ok()?;
        direct(&inner).map(|p| (p, true))
    })
}

#[derive(Default)]
struct State {
    next_seq: u64,
    deliveries: Vec<RecordedDelivery>,
    subscribe_calls: Vec<RecordedRequest>,
    config_calls: Vec<RecordedRequest>,
    attempts: HashMap<(String, String), u32>,
    /// Routes whose requests are only counted (see [`Recorder::tally_only`]), with their counts.
    tallied: HashMap<String, u64>,
}

/// All recordings of one test app, kept across restarts.
pub(crate) struct Recorder {
    started: Instant,
    state: Mutex<State>,
    /// The number of recordings so far; waiters watch it.
    count: watch::Sender<u64>,
}

/// Which list a non-delivery request goes to.
pub(crate) enum Control {
    Subscribe,
    Config,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            started: Instant::now(),
            state: Mutex::new(State::default()),
            count: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the lists half-updated (each update
        // is a single push), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stamp(&self) -> (Instant, u64) {
        let at = Instant::now();
        let micros = u64::try_from(at.duration_since(self.started).as_micros()).unwrap_or(u64::MAX);
        (at, micros)
    }

    fn bump(&self) {
        self.count.send_modify(|c| *c += 1);
    }

    pub(crate) fn record_control(&self, kind: Control, req: Incoming) {
        let (at, at_micros) = self.stamp();
        {
            let mut st = self.lock();
            let rec = RecordedRequest::new(st.next_seq, at, at_micros, req);
            st.next_seq += 1;
            match kind {
                Control::Subscribe => st.subscribe_calls.push(rec),
                Control::Config => st.config_calls.push(rec),
            }
        }
        self.bump();
    }

    /// Records a delivery; `decide` maps (attempt, tck_id) to the recorded answer and
    /// runs under the lock so that attempt numbers and answers stay consistent.
    pub(crate) fn record_delivery<T>(
        &self,
        req: Incoming,
        in_flight: u32,
        decide: impl FnOnce(u32, Option<&str>) -> (T, String, String),
    ) -> T {
        let id = Identity::of(&req.body);
        let (at, at_micros) = self.stamp();
        let out = {
            let mut st = self.lock();
            if let Some(count) = st.tallied.get_mut(&req.path) {
                *count += 1;
                let (out, _, _) = decide(1, id.tck_id.as_deref());
                return out;
            }
            let counter = st
                .attempts
                .entry((req.path.clone(), id.key(&req.body)))
                .or_insert(0);
            *counter += 1;
            let attempt = *counter;
            let (out, answered, answer) = decide(attempt, id.tck_id.as_deref());
            let rec = RecordedDelivery {
                request: RecordedRequest::new(st.next_seq, at, at_micros, req),
                body_json: id.body_json,
                ce_id: id.ce_id,
                tck_id: id.tck_id,
                topic: id.topic,
                tck_key: id.tck_key,
                tck_seq: id.tck_seq,
                tck_trial: id.tck_trial,
                raw_payload: id.raw_payload,
                attempt,
                answered,
                answer,
                in_flight,
            };
            st.next_seq += 1;
            st.deliveries.push(rec);
            out
        };
        self.bump();
        out
    }

    /// From now on requests to `route` are answered as first attempts and counted, not kept:
    /// for a route that takes a flood (a fuzz campaign's junk), each of whose requests would
    /// otherwise stay in memory with its body until the trial ends.
    pub(crate) fn tally_only(&self, route: &str) {
        self.lock().tallied.entry(route.to_owned()).or_insert(0);
    }

    /// How many requests a route [`Recorder::tally_only`] named has answered.
    pub(crate) fn tallied(&self, route: &str) -> u64 {
        self.lock().tallied.get(route).copied().unwrap_or(0)
    }

    pub(crate) fn deliveries(&self, route: Option<&str>) -> Vec<RecordedDelivery> {
        let st = self.lock();
        match route {
            None => st.deliveries.clone(),
            Some(r) => st
                .deliveries
                .iter()
                .filter(|d| d.request.path == r)
                .cloned()
                .collect(),
        }
    }

    /// The deliveries of message `tck_id` on `route`. Only those are copied: a wait for one
    /// message among thousands of recordings stays cheap.
    pub(crate) fn deliveries_of(&self, route: &str, tck_id: &str) -> Vec<RecordedDelivery> {
        self.lock()
            .deliveries
            .iter()
            .filter(|d| d.request.path == route && d.tck_id.as_deref() == Some(tck_id))
            .cloned()
            .collect()
    }

    /// Waits until message `tck_id` arrived at least `n` times on `route`.
    pub(crate) async fn wait_message(
        &self,
        route: &str,
        tck_id: &str,
        n: usize,
        deadline: Duration,
    ) -> Result<Vec<RecordedDelivery>, WaitError> {
        self.wait_for(n, deadline, |r| r.deliveries_of(route, tck_id))
            .await
            .map_err(|got| WaitError::Message {
                waited: deadline,
                route: route.to_owned(),
                tck_id: tck_id.to_owned(),
                wanted: n,
                saw: got.len(),
            })
    }

    pub(crate) fn subscribe_calls(&self) -> Vec<RecordedRequest> {
        self.lock().subscribe_calls.clone()
    }

    pub(crate) fn config_calls(&self) -> Vec<RecordedRequest> {
        self.lock().config_calls.clone()
    }

    /// Waits until `snapshot` returns at least `n` items or `deadline` passes; returns the
    /// last snapshot either way.
    pub(crate) async fn wait_for<T>(
        &self,
        n: usize,
        deadline: Duration,
        snapshot: impl Fn(&Recorder) -> Vec<T>,
    ) -> Result<Vec<T>, Vec<T>> {
        let until = tokio::time::Instant::now() + deadline;
        let mut rx = self.count.subscribe();
        loop {
            // Marking the value seen before taking the snapshot means a recording that
            // lands in between still wakes `changed()` below.
            rx.borrow_and_update();
            let got = snapshot(self);
            if got.len() >= n {
                return Ok(got);
            }
            match tokio::time::timeout_at(until, rx.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in `self`, so it cannot be gone; give up like a timeout.
                Ok(Err(_)) | Err(_) => return Err(got),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expect: &str) {
        let id = Identity::of(body.as_bytes());
        let got = format!("ce={:?} tck={:?}", id.ce_id, id.tck_id);
        assert_eq!(got, expect);
    }

    #[test]
    fn identities() {
        check(
            r#"{"id":"e1","data":{"tck_id":"m1"}}"#,
            r#"ce=Some("e1") tck=Some("m1")"#,
        );
        check(r#"{"id":"e1","data":"x"}"#, r#"ce=Some("e1") tck=None"#);
        check("not json", "ce=None tck=None");
        // Raw-payload delivery of a publisher's CloudEvent.
        let inner = base64::engine::general_purpose::STANDARD
            .encode(r#"{"id":"x","data":{"tck_id":"m2"}}"#);
        check(
            &format!(r#"{{"id":"r1","data_base64":"{inner}"}}"#),
            r#"ce=Some("r1") tck=Some("m2")"#,
        );
        // Raw-payload delivery of a raw JSON payload.
        let inner = base64::engine::general_purpose::STANDARD.encode(r#"{"tck_id":"m3"}"#);
        check(
            &format!(r#"{{"id":"r2","data_base64":"{inner}"}}"#),
            r#"ce=Some("r2") tck=Some("m3")"#,
        );
    }

    #[test]
    fn attempts_count_per_route_and_message() {
        let r = Recorder::new();
        let req = |path: &str, body: &str| Incoming {
            method: "POST".into(),
            path: path.into(),
            query: None,
            headers: vec![],
            body: Bytes::from(body.to_owned()),
        };
        let mut attempts = vec![];
        for (p, b) in [
            ("/a", r#"{"id":"1"}"#),
            ("/a", r#"{"id":"1"}"#),
            ("/b", r#"{"id":"1"}"#),
            ("/a", r#"{"id":"2"}"#),
            ("/a", r#"{"id":"1"}"#),
        ] {
            attempts
                .push(r.record_delivery(req(p, b), 1, |a, _| (a, String::new(), String::new())));
        }
        assert_eq!(attempts, vec![1, 2, 1, 1, 3]);
        let seqs: Vec<u64> = r
            .deliveries(Some("/a"))
            .iter()
            .map(|d| d.request.seq)
            .collect();
        assert_eq!(seqs, vec![0, 1, 3, 4]);
    }

    fn post(path: &str, body: &str) -> Incoming {
        Incoming {
            method: "POST".into(),
            path: path.into(),
            query: None,
            headers: vec![],
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn a_tallied_route_is_answered_and_counted_not_kept() {
        let r = Recorder::new();
        r.tally_only("/junk");
        let answer =
            |a: u32, id: Option<&str>| (format!("{a} {id:?}"), String::new(), String::new());
        let body = r#"{"data":{"tck_id":"m-1"}}"#;
        assert_eq!(
            r.record_delivery(post("/junk", body), 1, answer),
            "1 Some(\"m-1\")"
        );
        // Every request of a tallied route is a first attempt: no attempt map keeps its body.
        assert_eq!(
            r.record_delivery(post("/junk", body), 1, answer),
            "1 Some(\"m-1\")"
        );
        assert_eq!(
            r.record_delivery(post("/orders", body), 1, answer),
            "1 Some(\"m-1\")"
        );
        assert_eq!(r.tallied("/junk"), 2);
        assert_eq!(r.tallied("/orders"), 0);
        let kept: Vec<String> = r
            .deliveries(None)
            .iter()
            .map(|d| d.request.path.clone())
            .collect();
        assert_eq!(kept, vec!["/orders"]);
        assert_eq!(r.deliveries(None)[0].request.seq, 0);
    }
}

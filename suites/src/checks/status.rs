//! How a sidecar classifies the app's answer to a delivery (spec §4.3): success, retriable
//! error or drop, observed black-box through the retry count and the dead-letter topic.
//!
//! Every check here runs one subscription with a dead-letter topic and a constant inbound
//! retry policy of [`RETRIES`] retries 20 ms apart, so the three outcomes look different:
//! a success is delivered once and never dead-lettered, a retriable error is delivered
//! `1 + RETRIES` times and then dead-lettered once, a drop is delivered once and dead-lettered
//! once. The [`Lane`] and [`Fate`] helpers are shared with the redelivery, resiliency and
//! dead-letter areas.

use bytes::Bytes;
use harness::Script;
use harness_checkers::{Verdict, dlq, redelivery};
use harness_history::MessageId;
use serde_json::json;

use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::broker::Broker;
use harness_engine::problem::{Problem, verdict};
use harness_engine::trial::{Scenario, Trial};

const API_DOC: Option<&str> =
    Some("https://docs.dapr.io/reference/api/pubsub_api/#expected-http-response-from-the-app");

/// Retries of the inbound policy used by every status check.
pub(super) const RETRIES: u32 = 2;

/// One subscription `name` → `/name` with dead-letter topic `name-dlq` → `/name-dead`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lane(pub(super) &'static str);

impl Lane {
    /// The topic.
    pub(super) fn topic(self) -> String {
        self.0.to_owned()
    }

    /// The route the topic is delivered to.
    pub(super) fn route(self) -> String {
        format!("/{}", self.0)
    }

    /// The dead-letter topic.
    pub(super) fn dlq_topic(self) -> String {
        format!("{}-dlq", self.0)
    }

    /// The route the dead-letter topic is delivered to.
    pub(super) fn dlq_route(self) -> String {
        format!("/{}-dead", self.0)
    }

    /// Adds the subscription, its dead-letter subscription and the app's script on the route.
    pub(super) fn add(self, s: Scenario, script: Script) -> Scenario {
        s.subscribe_with_dlq(
            &self.topic(),
            &self.route(),
            &self.dlq_topic(),
            &self.dlq_route(),
        )
        .script(&self.route(), script)
    }

    /// Publishes one JSON message to the lane's topic; returns its id.
    pub(super) async fn publish(self, t: &mut Trial) -> Result<String, Problem> {
        t.publish(&self.topic(), json!({"lane": self.0})).await
    }
}

/// What must become of a message on a [`Lane`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Acknowledged: this many deliveries in all, never dead-lettered.
    Delivered(u32),
    /// Given up on after this many deliveries, then dead-lettered exactly once.
    DeadLettered(u32),
}

/// Waits until message `id` on `lane` has reached its fate, watches an observation window for
/// anything more, and judges the delivery count and the dead-letter route.
///
/// The barrier is the last observable event: the dead-letter copy when one is expected, else
/// the last expected delivery. A message that must not be dead-lettered is judged after the
/// window, which is far longer than the 20 ms retry spacing the checks use.
pub(super) async fn settle(t: &mut Trial, lane: Lane, id: &str, fate: Fate) -> Result<(), Problem> {
    let (deliveries, dead) = match fate {
        Fate::Delivered(n) => (n, false),
        Fate::DeadLettered(n) => (n, true),
    };
    if dead {
        t.wait_msg(&lane.dlq_route(), id, 1).await?;
    } else {
        t.wait_msg(&lane.route(), id, deliveries as usize).await?;
    }
    t.quiet(&lane.route()).await;
    let h = t.history();
    let msg = MessageId::new(id);
    let counted = redelivery::attempts(&h, &msg, &lane.route(), deliveries).verdict();
    let dlq = dlq::exactly_once(&h, &lane.dlq_route(), std::slice::from_ref(&msg));
    let dlq = if dead {
        dlq.verdict()
    } else if dlq.missing.is_empty() {
        Verdict::invalid(
            format!("{id} was dead-lettered although the app acknowledged it"),
            t.evidence(),
        )
    } else {
        Verdict::Valid
    };
    verdict(counted.and(dlq))
}

/// One message on a fresh lane answered by `script`, under the standard retry policy.
async fn one(t: &mut Trial, script: Script, fate: Fate) -> Result<(), Problem> {
    let lane = Lane("orders");
    t.start(
        lane.add(Scenario::new(), script)
            .retry_constant("20ms", RETRIES.into()),
    )
    .await?;
    let id = lane.publish(t).await?;
    settle(t, lane, &id, fate).await
}

const SUCCESS: Fate = Fate::Delivered(1);
const RETRIED: Fate = Fate::DeadLettered(1 + RETRIES);
const DROPPED: Fate = Fate::DeadLettered(1);

fn respond(code: u16, body: &'static str) -> Script {
    Script::Respond(code, Bytes::from_static(body.as_bytes()))
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::delivery::acknowledged_after_outcome",
            Must,
            "Once the app's answer is final (SUCCESS, DROP, 404), the message is acknowledged to the broker and never delivered again",
            "Dapr at-least-once delivery: the sidecar acknowledges a handled message (contrib pubsub/redis: XACK after the handler, an entry left pending is claimed and redelivered after processingTimeout; contrib pubsub/kafka: the record is marked and its offset committed); a steady-state duplicate is a broken acknowledgement",
            Some(
                "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-overview/#at-least-once-guarantee"
            ),
            [Need::Launch],
            acknowledged_after_outcome
        ),
        check!(
            "core::status::success_once",
            Must,
            "A 200 {\"status\":\"SUCCESS\"} answer is a success: one delivery, no retry, no dead letter",
            "daprd pkg/runtime/subscription/postman/http/http.go: status SUCCESS acks",
            API_DOC,
            [Need::Launch],
            success_once
        ),
        check!(
            "core::status::empty_2xx_success",
            Must,
            "A 2xx answer with an empty body is a success",
            "daprd pkg/runtime/subscription/postman/http/http.go: empty body skips the status check",
            API_DOC,
            [Need::Launch],
            empty_2xx_success
        ),
        check!(
            "core::status::garbage_2xx_success",
            Must,
            "A 2xx answer whose body is not JSON is a success",
            "daprd pkg/runtime/subscription/postman/http/http.go: an unparsable body skips the status check",
            API_DOC,
            [Need::Launch],
            garbage_2xx_success
        ),
        check!(
            "core::status::empty_object_success",
            Must,
            "A 2xx answer {} (no status field) is a success",
            "daprd pkg/runtime/subscription/postman/http/http.go: an empty status is SUCCESS",
            API_DOC,
            [Need::Launch],
            empty_object_success
        ),
        check!(
            "core::status::empty_status_success",
            Should,
            "A 2xx answer {\"status\":\"\"} is a success",
            "daprd pkg/runtime/subscription/postman/http/http.go: an empty status string is SUCCESS",
            API_DOC,
            [Need::Launch],
            empty_status_success
        ),
        check!(
            "core::status::null_status_success",
            Should,
            "A 2xx answer {\"status\":null} is a success",
            "daprd pkg/runtime/subscription/postman/http/http.go: a null status decodes as empty, SUCCESS",
            API_DOC,
            [Need::Launch],
            null_status_success
        ),
        check!(
            "core::status::non_string_status_success",
            Should,
            "A 2xx answer whose status is not a string ({\"status\":1}) is a success",
            "daprd pkg/runtime/subscription/postman/http/http.go: a decode error skips the status check",
            API_DOC,
            [Need::Launch],
            non_string_status_success
        ),
        check!(
            "core::status::retry_retried",
            Must,
            "A RETRY answer is retried under the policy, then dead-lettered once",
            "daprd pkg/runtime/subscription/postman/http/http.go: RETRY is a retriable error",
            API_DOC,
            [Need::Launch],
            retry_retried
        ),
        check!(
            "core::status::drop_not_retried",
            Must,
            "A DROP answer is never retried, even under a retry policy, and is dead-lettered once",
            "daprd pkg/runtime/subscription/postman/http/http.go: DROP is ErrMessageDropped (dapr/dapr#6282)",
            API_DOC,
            [Need::Launch],
            drop_not_retried
        ),
        check!(
            "core::status::http_404_dropped",
            Must,
            "A 404 answer is a drop: one delivery, no retry, dead-lettered once",
            "dapr/dapr#9400 (fixed by #9401): 404 is dropped and sent to the dead-letter topic like DROP",
            Some("https://github.com/dapr/dapr/issues/9400"),
            [Need::Launch],
            http_404_dropped
        ),
        check!(
            "core::status::http_404_body_ignored",
            Should,
            "A 404 answer is a drop whatever its body says ({\"status\":\"SUCCESS\"})",
            "daprd pkg/runtime/subscription/postman/http/http.go: the body of a non-2xx answer is never read",
            API_DOC,
            [Need::Launch],
            http_404_body_ignored
        ),
        check!(
            "core::status::http_500_retried",
            Must,
            "A 500 answer is retried under the policy, then dead-lettered once",
            "daprd pkg/runtime/subscription/postman/http/http.go: any non-404 status is a retriable error",
            API_DOC,
            [Need::Launch],
            http_500_retried
        ),
        check!(
            "core::status::http_4xx_retried",
            Must,
            "400, 409 and 429 answers are retried like any non-404 error status",
            "daprd pkg/runtime/subscription/postman/http/http.go: any non-404 status is a retriable error",
            API_DOC,
            [Need::Launch],
            http_4xx_retried
        ),
        check!(
            "core::status::lowercase_success_retried",
            Should,
            "A lower-case {\"status\":\"success\"} is an unknown status and is retried",
            "daprd pkg/runtime/subscription/postman/http/http.go: status values are case-sensitive (dapr/components-contrib#3407)",
            API_DOC,
            [Need::Launch],
            lowercase_success_retried
        ),
        check!(
            "core::status::unknown_status_retried",
            Should,
            "An unknown status string is retried",
            "daprd pkg/runtime/subscription/postman/http/http.go: unknown status is a retriable error",
            API_DOC,
            [Need::Launch],
            unknown_status_retried
        ),
        check!(
            "core::status::status_key_case_insensitive",
            Should,
            "{\"STATUS\":\"DROP\"} is a drop: the status key matches case-insensitively",
            "daprd pkg/runtime/subscription/postman/http/http.go: Go encoding/json matches field names case-insensitively",
            API_DOC,
            [Need::Launch],
            status_key_case_insensitive
        ),
        check!(
            "core::status::error_body_ignored",
            Should,
            "A 500 answer with body {\"status\":\"DROP\"} is retried: non-2xx bodies are not read",
            "daprd pkg/runtime/subscription/postman/http/http.go: the body of a non-2xx answer is never read",
            API_DOC,
            [Need::Launch],
            error_body_ignored
        ),
        check!(
            "core::status::connection_closed_retried",
            Must,
            "A connection closed without an answer is a transport error and is retried",
            "daprd pkg/runtime/subscription/postman/http/http.go: a failed app call is a retriable error",
            API_DOC,
            [Need::Launch],
            connection_closed_retried
        ),
        check!(
            "core::status::redirect_retried",
            Should,
            "A 3xx answer is not followed and is retried like any error status",
            "daprd pkg/channel/http/http_channel.go: the app client follows no redirects; 3xx is \"other status\"",
            API_DOC,
            [Need::Launch],
            redirect_retried
        ),
        check!(
            "core::status::grpc_error_retried",
            Must,
            "A gRPC app's error (INTERNAL) is retried under the policy, then dead-lettered once",
            "daprd pkg/runtime/subscription/postman/grpc/grpc.go: an error from OnTopicEvent other than UNIMPLEMENTED is retriable, carrying its code",
            GRPC_DOC,
            [Need::Launch],
            grpc_error_retried
        )
        .grpc_only(),
        check!(
            "core::status::grpc_not_found_retried",
            Must,
            "A gRPC app's NOT_FOUND is retried like any error: over gRPC only UNIMPLEMENTED ends a delivery without a status",
            "daprd pkg/runtime/subscription/postman/grpc/grpc.go: only codes.Unimplemented is non-retriable (HTTP's 404 rule has no gRPC counterpart)",
            GRPC_DOC,
            [Need::Launch],
            grpc_not_found_retried
        )
        .grpc_only(),
        check!(
            "core::status::grpc_unimplemented_acknowledged",
            Must,
            "A gRPC app's UNIMPLEMENTED ends the delivery: one attempt, no retry, not dead-lettered",
            "daprd pkg/runtime/subscription/postman/grpc/grpc.go: codes.Unimplemented is logged as a drop and returns nil, so the message is acknowledged and never reaches the dead-letter topic",
            GRPC_DOC,
            [Need::Launch],
            grpc_unimplemented_acknowledged
        )
        .grpc_only(),
    ]
}

const GRPC_DOC: Option<&str> =
    Some("https://docs.dapr.io/reference/api/pubsub_api/#expected-grpc-response-from-the-app");

async fn grpc_error_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Grpc(13), RETRIED).await
}

async fn grpc_not_found_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Grpc(5), RETRIED).await
}

async fn grpc_unimplemented_acknowledged(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Grpc(12), SUCCESS).await
}

/// How long after a message is handled a broker would hand it out again if the sidecar never
/// acknowledged it: Redis claims entries pending longer than the fixture's `processingTimeout`
/// (2 s) on its `redeliverInterval` tick (500 ms); the other brokers redeliver unacknowledged
/// messages only after a restart or rebalance, which a healthy trial does not have.
/// Waits until consumer group `group` has no entry of stream `orders` pending on the Redis at
/// `addr`; says so, or that there is no such group (then only redeliveries are checked).
async fn redis_acknowledged(addr: &str, group: &str) -> Result<String, Problem> {
    let what = format!(
        "consumer group `{group}` to acknowledge every entry of stream `orders` (none pending)"
    );
    harness_engine::apps::poll(&what, harness_engine::trial::DEADLINE, || async {
        let groups = harness::resp::pending_per_group(addr, "orders")
            .await
            .map_err(Problem::Setup)?;
        Ok(match groups.iter().find(|(name, _)| name == group) {
            None => Ok(format!(
                "stream `orders` has no consumer group named after the app id `{group}` (groups: {groups:?}); only redeliveries are checked"
            )),
            Some((_, 0)) => Ok(format!("consumer group `{group}` acknowledged every entry of stream `orders`")),
            Some((_, pending)) => Err(format!("{pending} entries pending")),
        })
    })
    .await
}

/// Waits until consumer group `group` has committed every partition of topic `orders` to its
/// end on the Kafka broker at `addr`, and says where each partition ends.
async fn kafka_committed(addr: &str, group: &str) -> Result<String, Problem> {
    let what =
        format!("consumer group `{group}` to commit past every handled record of topic `orders`");
    harness_engine::apps::poll(&what, harness_engine::trial::DEADLINE, || async {
        let lag = harness::kafka_wire::group_lag(addr, group, "orders")
            .await
            .map_err(Problem::Setup)?;
        let behind: Vec<String> = lag
            .iter()
            .filter(|p| p.uncommitted() > 0)
            .map(|p| {
                format!(
                    "partition {}: committed offset {}, end offset {}",
                    p.partition, p.committed, p.end
                )
            })
            .collect();
        if !behind.is_empty() {
            return Ok(Err(behind.join("; ")));
        }
        let ends: Vec<String> = lag
            .iter()
            .map(|p| format!("partition {} at {}", p.partition, p.end))
            .collect();
        Ok(Ok(format!(
            "Kafka consumer group `{group}` committed every partition of `orders` to its end: {}",
            ends.join(", ")
        )))
    })
    .await
}

fn redelivery_window(broker: Broker) -> std::time::Duration {
    match broker {
        Broker::Redis => std::time::Duration::from_millis(2_000 + 500 + 1_000),
        Broker::InMemory | Broker::Kafka => harness_engine::trial::QUIET,
    }
}

async fn acknowledged_after_outcome(t: &mut Trial) -> Result<(), Problem> {
    let outcomes = [
        ("SUCCESS", Script::Success),
        ("DROP", Script::Status("DROP".into())),
        ("404", Script::Http(404)),
    ];
    let script = Script::for_messages(
        outcomes
            .iter()
            .enumerate()
            .map(|(i, (_, s))| (format!("m-{}", i + 1), s.clone())),
    );
    t.start(super::orders(script)).await?;
    let mut ids = Vec::new();
    for _ in &outcomes {
        ids.push(t.publish("orders", json!({})).await?);
    }
    for id in &ids {
        t.wait_msg("/orders", id, 1).await?;
    }
    // Where the broker can be asked, what it holds must settle: Redis keeps a read entry
    // pending in the consumer group (the app id, daprd's default consumer id) until the sidecar
    // XACKs it; Kafka keeps the group's committed offset per partition, and every record
    // handled must be committed past.
    let group = t.app_id();
    let settled = match (t.env().broker, t.broker_addr()) {
        (Broker::Redis, Some(addr)) => Some(redis_acknowledged(&addr, &group).await?),
        (Broker::Kafka, Some(addr)) => Some(kafka_committed(&addr, &group).await?),
        _ => None,
    };
    if let Some(note) = settled {
        t.observe(note);
    }
    // Nothing more arrives within the broker's own redelivery window.
    t.app()
        .observe_quiet(Some("/orders"), redelivery_window(t.env().broker))
        .await;
    let again: Vec<String> = ids
        .iter()
        .zip(&outcomes)
        .filter_map(|(id, (outcome, _))| {
            let n = t.deliveries_of("/orders", id).len();
            (n != 1).then(|| format!("{id} (answered {outcome}) was delivered {n} times"))
        })
        .collect();
    if again.is_empty() {
        Ok(())
    } else {
        Err(Problem::Fail {
            summary: format!(
                "{} handled messages were delivered again: {}",
                again.len(),
                again.join("; ")
            ),
            evidence: t.evidence(),
        })
    }
}

async fn success_once(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Success, SUCCESS).await
}

async fn empty_2xx_success(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Empty2xx, SUCCESS).await
}

async fn garbage_2xx_success(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Garbage2xx, SUCCESS).await
}

async fn empty_object_success(t: &mut Trial) -> Result<(), Problem> {
    one(t, respond(200, "{}"), SUCCESS).await
}

async fn empty_status_success(t: &mut Trial) -> Result<(), Problem> {
    one(t, respond(200, r#"{"status":""}"#), SUCCESS).await
}

async fn null_status_success(t: &mut Trial) -> Result<(), Problem> {
    one(t, respond(200, r#"{"status":null}"#), SUCCESS).await
}

async fn non_string_status_success(t: &mut Trial) -> Result<(), Problem> {
    one(t, respond(200, r#"{"status":1}"#), SUCCESS).await
}

async fn retry_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Status("RETRY".into()), RETRIED).await
}

async fn drop_not_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Status("DROP".into()), DROPPED).await
}

async fn http_404_dropped(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Http(404), DROPPED).await
}

async fn http_404_body_ignored(t: &mut Trial) -> Result<(), Problem> {
    one(t, respond(404, r#"{"status":"SUCCESS"}"#), DROPPED).await
}

async fn http_500_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Http(500), RETRIED).await
}

async fn http_4xx_retried(t: &mut Trial) -> Result<(), Problem> {
    let lanes = [
        (Lane("c400"), 400),
        (Lane("c409"), 409),
        (Lane("c429"), 429),
    ];
    let mut s = Scenario::new().retry_constant("20ms", RETRIES.into());
    for (lane, code) in lanes {
        s = lane.add(s, Script::Http(code));
    }
    t.start(s).await?;
    let mut ids = Vec::new();
    for (lane, _) in lanes {
        ids.push(lane.publish(t).await?);
    }
    for ((lane, _), id) in lanes.iter().zip(&ids) {
        settle(t, *lane, id, RETRIED).await?;
    }
    Ok(())
}

async fn lowercase_success_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Status("success".into()), RETRIED).await
}

async fn unknown_status_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Status("PROCESSED".into()), RETRIED).await
}

async fn status_key_case_insensitive(t: &mut Trial) -> Result<(), Problem> {
    one(t, respond(200, r#"{"STATUS":"DROP"}"#), DROPPED).await
}

async fn error_body_ignored(t: &mut Trial) -> Result<(), Problem> {
    one(t, respond(500, r#"{"status":"DROP"}"#), RETRIED).await
}

async fn connection_closed_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::CloseConnection, RETRIED).await
}

async fn redirect_retried(t: &mut Trial) -> Result<(), Problem> {
    one(t, Script::Http(307), RETRIED).await
}

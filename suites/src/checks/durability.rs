//! Durability and ordering on brokers that persist: a SIGKILLed sidecar or a restarted broker
//! loses no acknowledged publish (at-least-once; duplicates are counted and reported), and
//! `concurrency: "1"` keeps per-subscription order. Regressions of the "duplicates and losses
//! after restarts" reports (dapr/dapr#7549, #7799; components-contrib#4174, #4208).

use harness::Script;
use harness_checkers::{delivery, ordering};
use serde_json::json;

use super::start_orders;
use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::broker::Promise;
use harness_engine::problem::{Problem, verdict};
use harness_engine::trial::{DEADLINE, Scenario, Trial};

const REDIS_DOC: Option<&str> = Some(
    "https://docs.dapr.io/reference/components-reference/supported-pubsub/setup-redis-pubsub/",
);

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::durability::sidecar_kill_redelivers",
            Must,
            "After a SIGKILL of the sidecar mid-delivery and a restart, every acknowledged publish is delivered at least once",
            "at-least-once delivery; Redis Streams pending entries are reclaimed after processingTimeout (spec notes §5.6; dapr/dapr#7549)",
            REDIS_DOC,
            [Need::Launch, Need::Promise(Promise::SurvivesSidecarCrash)],
            sidecar_kill_redelivers
        ),
        check!(
            "core::durability::broker_restart_keeps_acknowledged",
            Must,
            "After the broker is killed and restarted, acknowledged publishes are delivered and publishing works again",
            "at-least-once delivery across broker restarts (components-contrib#4174); the sidecar reconnects",
            REDIS_DOC,
            [
                Need::Launch,
                Need::PrivateBroker,
                Need::Promise(Promise::SurvivesBrokerRestart)
            ],
            broker_restart_keeps_acknowledged
        ),
        check!(
            "core::durability::backlog_before_subscriber",
            Should,
            "Messages published before the subscribing app starts are delivered once it subscribes",
            "Redis Streams: a new consumer group reads the retained stream from ID 0 (spec notes §7)",
            REDIS_DOC,
            [
                Need::Launch,
                Need::Promise(Promise::BacklogForNewSubscriber)
            ],
            backlog_before_subscriber
        ),
        check!(
            "core::ordering::fifo_with_concurrency_one",
            Must,
            "With concurrency \"1\" one publisher's messages arrive in publish order",
            "components-contrib pubsub/redis: concurrency workers; 1 = FIFO (spec notes §7)",
            REDIS_DOC,
            [Need::Launch, Need::Promise(Promise::FifoWithConcurrencyOne)],
            fifo_with_concurrency_one
        ),
    ]
}

async fn publish_n(t: &mut Trial, topic: &str, n: usize) -> Result<Vec<String>, Problem> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(t.publish(topic, json!({"n": i})).await?);
    }
    Ok(ids)
}

/// Waits until every id was delivered on `route` at least once; the history judges the rest.
async fn wait_all(t: &Trial, route: &str, ids: &[String]) -> Result<(), Problem> {
    for id in ids {
        t.wait_msg(route, id, 1).await?;
    }
    Ok(())
}

fn judge_at_least_once(t: &Trial, route: &str) -> Result<(), Problem> {
    let report = delivery::check(
        &t.history(),
        &delivery::DeliveryExpect {
            routes: vec![route.to_owned()],
        },
    );
    tracing::info!(
        duplicate_rate = report.duplicate_rate,
        "at-least-once after a fault"
    );
    verdict(report.verdict())
}

async fn sidecar_kill_redelivers(t: &mut Trial) -> Result<(), Problem> {
    // The first message hangs in the app, so it is read from the broker but never acknowledged.
    let script = Script::for_messages([("m-1", Script::Hang)]);
    t.start(super::orders(script).component_metadata("concurrency", "1"))
        .await?;
    let ids = publish_n(t, "orders", 5).await?;
    t.wait_msg("/orders", &ids[0], 1).await?;
    t.sidecar().kill().await;
    t.app().script("/orders", Script::Success);
    t.sidecar().restart().await?;
    t.sidecar()
        .wait_healthz(DEADLINE)
        .await
        .map_err(|e| Problem::fail(e.to_string(), t.evidence()))?;
    wait_all(t, "/orders", &ids).await?;
    judge_at_least_once(t, "/orders")
}

async fn broker_restart_keeps_acknowledged(t: &mut Trial) -> Result<(), Problem> {
    start_orders(t).await?;
    let mut ids = publish_n(t, "orders", 20).await?;
    let Some(redis) = t.broker_server() else {
        return Err(Problem::Setup(
            "the broker is external: it cannot be restarted (unset PUBSUB_TCK_REDIS / PUBSUB_TCK_KAFKA)".into(),
        ));
    };
    redis.kill().await;
    redis.restart().await.map_err(|e| Problem::setup(&e))?;
    // The sidecar must reconnect: poll publishing (the observable condition) until a deadline.
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(100));
    let after = loop {
        poll.tick().await;
        match t.publish("orders", json!({"after": "restart"})).await {
            Ok(id) => break id,
            Err(Problem::Fail { .. }) if std::time::Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
    };
    ids.push(after);
    wait_all(t, "/orders", &ids).await?;
    judge_at_least_once(t, "/orders")
}

async fn backlog_before_subscriber(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscribe("orders", "/orders").app_later())
        .await?;
    super::publish_before_app(t, "orders", r#"{"tck_id":"early"}"#).await?;
    t.wait_msg("/orders", "early", 1).await?;
    Ok(())
}

async fn fifo_with_concurrency_one(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .subscribe("orders", "/orders")
            .component_metadata("concurrency", "1"),
    )
    .await?;
    let mut n = 0;
    for seq in 0..50u64 {
        t.publish("orders", json!({"tck_key": "k", "tck_seq": seq}))
            .await?;
        n += 1;
    }
    t.wait("/orders", n).await?;
    verdict(ordering::per_key(&t.history(), "/orders").verdict())
}

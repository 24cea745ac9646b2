//! The `apps` profile: tutorial apps written with the real Dapr SDKs (`fixtures/apps/`) run
//! against the target, and their end states are asserted.
//!
//! The clauses come from the research note on real clients (Python `dapr` 1.19 with
//! `dapr-ext-fastapi`, JS `@dapr/dapr` 3.18, and the two tutorial flows of its §5):
//! - `apps::fastapi::*`: flow (a), a FastAPI publisher with `DaprClient().publish_event` (gRPC)
//!   and a `dapr-ext-fastapi` subscriber behind one sidecar (in-memory broker);
//! - `apps::orders::*`: flow (b), a Node express order service publishing over HTTP with axios
//!   and a Flask inventory keeping stock in the state API, each with its own sidecar, sharing
//!   a private Redis (the in-memory broker does not cross processes);
//! - `apps::daprserver::*`: a Node subscriber on `@dapr/dapr`'s `DaprServer` (in-memory broker);
//! - `apps::go::*`: Go services on the official Go SDK (`fixtures/apps/go`): a checkout publisher
//!   (`client.PublishEvent` with a `partitionKey`), a warehouse subscribing as a go-sdk gRPC
//!   service (sidecar `--app-protocol grpc`) whose handler fails, drops or loses its answer by
//!   order kind and applies each order once, its dead-letter handler, and a streaming consumer
//!   (`client.Subscribe`), all behind one sidecar (in-memory broker);
//! - `apps::pygrpc::*`: a Python subscriber on `dapr-ext-grpc`'s `App` (in-memory broker).
//!
//! Each check brings up its own [`AppsWorld`]; it is skipped with the reason when the Python
//! venv or the Node packages are not installed.

use serde_json::{Value, json};

use crate::catalog::{Check, Need};
use crate::check;
use harness_engine::apps::{AppSpec, AppsWorld, Ready, Runtime, poll};
use harness_engine::broker::Broker;
use harness_engine::problem::Problem;
use harness_engine::trial::{DEADLINE, QUIET, Trial};

const PY_SDK: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/sdks/python/python-client/");
const JS_SDK: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/sdks/js/js-client/");
const TUTORIAL: Option<&str> =
    Some("https://docs.dapr.io/getting-started/quickstarts/pubsub-quickstart/");

/// An app of the tutorials: its name, runtime, script (or Go binary) and readiness sign.
const fn app(name: &'static str, runtime: Runtime, script: &'static str, ready: Ready) -> AppSpec {
    AppSpec {
        name,
        runtime,
        script,
        ready,
    }
}

const PUBLISHER: AppSpec = app(
    "task-publisher",
    Runtime::Python,
    "python/publisher.py",
    Ready::Http("/docs"),
);
const FASTAPI_SUBSCRIBER: AppSpec = app(
    "task-subscriber",
    Runtime::Python,
    "python/subscriber.py",
    Ready::Http("/received"),
);
const INVENTORY: AppSpec = app(
    "inventory",
    Runtime::Python,
    "python/inventory.py",
    Ready::Http("/received"),
);
const ORDER_SERVICE: AppSpec = app(
    "order-service",
    Runtime::Node,
    "node/order-service.js",
    Ready::LogLine("order service listening"),
);
const NODE_SUBSCRIBER: AppSpec = app(
    "node-subscriber",
    Runtime::Node,
    "node/subscriber.js",
    Ready::Http("/received"),
);

const CHECKOUT: AppSpec = app("checkout", Runtime::Go, "checkout", Ready::Http("/state"));
const WAREHOUSE: AppSpec = app("warehouse", Runtime::Go, "warehouse", Ready::Http("/state"));
const GO_STREAM: AppSpec = app("go-stream", Runtime::Go, "stream", Ready::Http("/state"));
const PY_GRPC_SUBSCRIBER: AppSpec = app(
    "py-grpc-subscriber",
    Runtime::Python,
    "python/grpc_subscriber.py",
    Ready::Http("/received"),
);
const GO_SDK: Option<&str> = Some("https://docs.dapr.io/developing-applications/sdks/go/");

const PY: Need = Need::Runtime(Runtime::Python);
const GO: Need = Need::Runtime(Runtime::Go);
const NODE: Need = Need::Runtime(Runtime::Node);

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "apps::fastapi::health_probe_answered",
            Must,
            "The Python SDK's DaprClient() connects: its health probe is answered 2xx",
            "research note §1.1 and §5 flow (a) row 1: DaprClient() blocks until GET /v1.0/healthz/outbound answers 2xx, else TimeoutError after DAPR_HEALTH_TIMEOUT (5 s here)",
            PY_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), PY],
            fastapi_health_probe_answered
        ),
        check!(
            "apps::fastapi::json_event_received",
            Must,
            "publish_event with data_content_type application/json reaches a dapr-ext-fastapi subscriber as a CloudEvent with the object in data",
            "research note §1.2, §1.4 and §5 flow (a) rows 2-4: gRPC PublishEvent, delivery as application/cloudevents+json, JSON data embedded",
            PY_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), PY],
            fastapi_json_event_received
        ),
        check!(
            "apps::fastapi::no_content_type_is_text",
            Should,
            "publish_event without data_content_type arrives as text/plain: data is the JSON text as a string",
            "research note §1.2 and §6: an empty data_content_type is text/plain, so data is a string (daprd behaviour; README quirk 1)",
            PY_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), PY],
            fastapi_no_content_type_is_text
        ),
        check!(
            "apps::orders::order_reaches_inventory",
            Must,
            "An order the express service publishes with axios reaches the Flask inventory through two sidecars sharing Redis",
            "research note §5 flow (b) rows 1-3: HTTP publish answers 204; the Flask route `orders` gets the order in data as application/cloudevents+json",
            TUTORIAL,
            [Need::Launch, Need::Broker(Broker::Redis), PY, NODE],
            orders_order_reaches_inventory
        ),
        check!(
            "apps::orders::inventory_is_90",
            Must,
            "After one order of 10, the inventory read through service invocation is 90 (from 100) and stays 90",
            "research note §5 flow (b) rows 4-6: state save 204, state get 200 (204 when missing), invocation passes the app's answer through",
            TUTORIAL,
            [Need::Launch, Need::Broker(Broker::Redis), PY, NODE],
            orders_inventory_is_90
        ),
        check!(
            "apps::daprserver::metadata_probe_answered",
            Must,
            "The JS SDK's DaprServer.start() completes: GET /v1.0/metadata answers 2xx with a non-empty body",
            "research note §2.1 and §6: the JS SDK waits until /v1.0/metadata answers 200-399 with a truthy body, else fails after about 30 s",
            JS_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), NODE],
            daprserver_metadata_probe_answered
        ),
        check!(
            "apps::daprserver::event_received_unwrapped",
            Must,
            "An object published with the JS client reaches a DaprServer subscription callback as that object",
            "research note §2.2 and §2.3: publish sends application/json to /v1.0/publish/{pubsub}/{topic}?; the server unwraps data from the application/cloudevents+json delivery",
            JS_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), NODE],
            daprserver_event_received_unwrapped
        ),
        check!(
            "apps::go::flaky_handler_retried_then_applied",
            Must,
            "A go-sdk gRPC handler that returns retry=true twice gets the order a third time and applies it once",
            "go-sdk service/grpc/topic.go: err with retry=true answers RETRY; daprd retries under the inbound policy (postman/grpc)",
            GO_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), GO],
            go_flaky_handler_retried_then_applied
        ),
        check!(
            "apps::go::poison_to_dead_letter",
            Must,
            "A poison order (retry=false) is not retried and reaches the dead-letter handler of the same go-sdk service once",
            "go-sdk service/grpc/topic.go: err with retry=false answers DROP; daprd sends a dropped message to the subscription's DeadLetterTopic",
            GO_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), GO],
            go_poison_to_dead_letter
        ),
        check!(
            "apps::go::idempotent_under_redelivery",
            Must,
            "An order whose first answer is lost (applied, then retry=true) is delivered again and applied once by the idempotent handler",
            "Dapr pub/sub is at-least-once: a retried delivery repeats an event the app may have applied; keyed handlers apply it once",
            GO_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), GO],
            go_idempotent_under_redelivery
        ),
        check!(
            "apps::go::streaming_consumer",
            Must,
            "A go-sdk streaming consumer (client.Subscribe) gets every order, a Retry() brings it back once, Success() ends it",
            "go-sdk client/subscribe.go: SubscribeTopicEventsAlpha1 with an initial request, event_processed per event id (spec §3.7)",
            GO_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), GO],
            go_streaming_consumer
        ),
        check!(
            "apps::pygrpc::event_received",
            Must,
            "publish_event reaches a dapr-ext-grpc subscriber (App.subscribe) with its id, content type and JSON data",
            "dapr-ext-grpc _servicer.py OnTopicEvent: the TopicEventRequest becomes a CloudEvent v1.Event (spec §4.6)",
            PY_SDK,
            [Need::Launch, Need::Broker(Broker::InMemory), PY],
            pygrpc_event_received
        ),
    ]
}

// The Go services: one sidecar for the warehouse's gRPC service, which the checkout publisher
// and the streaming consumer use as well.

/// The warehouse behind its sidecar, and the checkout publisher on the same sidecar; with
/// `stream`, the streaming consumer too. Returns the world and the indexes of the apps.
async fn go_flow(
    t: &Trial,
    stream: bool,
) -> Result<(AppsWorld, usize, usize, Option<usize>), Problem> {
    let mut w = AppsWorld::new(t, false).await?;
    w.resource_file("fixtures/apps/resources/go/resiliency.yaml")?;
    let (sc, warehouse) = w.subscriber(WAREHOUSE, harness::AppProtocol::Grpc).await?;
    let checkout = w.caller(CHECKOUT, sc, &[]).await?;
    let consumer = if stream {
        Some(w.caller(GO_STREAM, sc, &[]).await?)
    } else {
        None
    };
    Ok((w, warehouse, checkout, consumer))
}

/// An order key of this trial.
fn order_key(t: &Trial, n: u32) -> String {
    format!("order-{}-{n}", t.nonce())
}

/// Publishes one order through the checkout service (`client.PublishEvent`).
async fn checkout_order(
    w: &AppsWorld,
    checkout: usize,
    t: &Trial,
    key: &str,
    kind: &str,
    topic: &str,
) -> Result<(), Problem> {
    let resp = w
        .app_ref(checkout)
        .post_json(
            "/publish",
            &json!({"key": key, "kind": kind, "topic": topic, "tck_trial": t.nonce()}),
        )
        .await?;
    if resp.status == 200 {
        return Ok(());
    }
    Err(app_failed(
        "client.PublishEvent of the Go SDK failed",
        "POST /publish on checkout",
        &resp,
    ))
}

/// A failure with the app's answer to `request` (status and body) as evidence.
fn app_failed(summary: &str, request: &str, resp: &harness::ApiResponse) -> Problem {
    Problem::fail(
        summary,
        vec![format!(
            "{request} answered {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )],
    )
}

/// Polls `GET /state` of app `app` until `done` holds for it.
async fn wait_state(
    w: &AppsWorld,
    app: usize,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, Problem> {
    let app = w.app_ref(app);
    let done = &done;
    poll(what, DEADLINE, || async move {
        let v = app.get_json("/state").await?;
        Ok(if done(&v) { Ok(v) } else { Err(v.to_string()) })
    })
    .await
}

fn count(state: &Value, map: &str, key: &str) -> i64 {
    state
        .pointer(&format!("/{map}/{key}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Observation window, then the warehouse's state must show `attempts` deliveries and
/// `applied` applications of `key`.
async fn settled(
    w: &AppsWorld,
    app: usize,
    key: &str,
    attempts: i64,
    applied: i64,
) -> Result<Value, Problem> {
    tokio::time::sleep(QUIET).await;
    let st = w.app_ref(app).get_json("/state").await?;
    let got = (count(&st, "attempts", key), count(&st, "applied", key));
    if got == (attempts, applied) {
        return Ok(st);
    }
    Err(Problem::fail(
        format!(
            "{key}: {} deliveries and {} applications, expected {attempts} and {applied}",
            got.0, got.1
        ),
        vec![format!("state: {st}")],
    ))
}

/// Publishes order `n` of `kind` through checkout, waits until the warehouse's `counter`
/// (`attempts` or `applied`) of it reaches `at_least` (`what` names the wait), then requires
/// `attempts` deliveries and one application after the observation window.
async fn go_applied_once(
    t: &Trial,
    n: u32,
    kind: &str,
    (counter, at_least, what): (&str, i64, &str),
    attempts: i64,
) -> Result<(), Problem> {
    let key = order_key(t, n);
    let (w, warehouse, checkout, _) = go_flow(t, false).await?;
    let r = async {
        checkout_order(&w, checkout, t, &key, kind, "orders").await?;
        wait_state(&w, warehouse, &format!("{key} {what}"), |s| {
            count(s, counter, &key) >= at_least
        })
        .await?;
        settled(&w, warehouse, &key, attempts, 1).await.map(|_| ())
    }
    .await;
    finish(w, r).await
}

async fn go_flaky_handler_retried_then_applied(t: &mut Trial) -> Result<(), Problem> {
    go_applied_once(t, 1, "flaky", ("applied", 1, "applied"), 3).await
}

async fn go_poison_to_dead_letter(t: &mut Trial) -> Result<(), Problem> {
    let key = order_key(t, 2);
    let (w, warehouse, checkout, _) = go_flow(t, false).await?;
    let r = async {
        checkout_order(&w, checkout, t, &key, "poison", "orders").await?;
        wait_state(&w, warehouse, &format!("{key} dead-lettered"), |s| {
            s["dead"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await?;
        let st = settled(&w, warehouse, &key, 1, 0).await?;
        let dead: Vec<&Value> = st["dead"]
            .as_array()
            .map(|d| d.iter().collect())
            .unwrap_or_default();
        if dead == [&json!(key)] {
            return Ok(());
        }
        Err(Problem::fail(
            format!("the dead-letter handler got {dead:?}, expected [{key:?}] once"),
            vec![format!("state: {st}")],
        ))
    }
    .await;
    finish(w, r).await
}

async fn go_idempotent_under_redelivery(t: &mut Trial) -> Result<(), Problem> {
    go_applied_once(t, 3, "ack-lost", ("attempts", 2, "delivered twice"), 2).await
}

async fn go_streaming_consumer(t: &mut Trial) -> Result<(), Problem> {
    let keys: Vec<String> = (10..13).map(|n| order_key(t, n)).collect();
    let (w, _, checkout, consumer) = go_flow(t, true).await?;
    let r = async {
        let consumer =
            consumer.ok_or_else(|| Problem::Setup("the flow has no streaming consumer".into()))?;
        for key in &keys {
            checkout_order(&w, checkout, t, key, "shipment", "shipments").await?;
        }
        wait_state(&w, consumer, "every shipment acknowledged", |s| {
            keys.iter().all(|k| count(s, "applied", k) >= 1)
        })
        .await?;
        for key in &keys {
            settled(&w, consumer, key, 2, 1).await?;
        }
        Ok(())
    }
    .await;
    finish(w, r).await
}

async fn pygrpc_event_received(t: &mut Trial) -> Result<(), Problem> {
    let task = task(t);
    let mut w = AppsWorld::new(t, false).await?;
    let r = async {
        let (sc, sub) = w
            .subscriber(PY_GRPC_SUBSCRIBER, harness::AppProtocol::Grpc)
            .await?;
        let publ = w.caller(PUBLISHER, sc, HEALTH_TIMEOUT_5S).await?;
        let got = publish_task(&w, publ, Some(sub), &task, Some("application/json")).await?;
        let mut problems = mismatches(
            &got,
            &[
                ("/content_type", json!("application/json")),
                ("/data", task.clone()),
            ],
        );
        if got
            .pointer("/id")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            problems.push("/id: the event has no id".to_owned());
        }
        require_all(
            "the dapr-ext-grpc subscriber did not get the task as JSON",
            problems,
            &got,
        )
    }
    .await;
    finish(w, r).await
}

/// Adds the world's evidence to a failure, then stops everything.
async fn finish(w: AppsWorld, r: Result<(), Problem>) -> Result<(), Problem> {
    let r = r.map_err(|p| match p {
        Problem::Fail {
            summary,
            mut evidence,
        } => {
            evidence.extend(w.evidence());
            Problem::Fail { summary, evidence }
        }
        setup => setup,
    });
    w.finish().await;
    r
}

/// Mismatches between `event` and the expected `(pointer, value)` pairs, one line each.
fn mismatches(event: &Value, expected: &[(&str, Value)]) -> Vec<String> {
    expected
        .iter()
        .filter_map(|(ptr, want)| {
            let got = event.pointer(ptr).cloned().unwrap_or(Value::Null);
            // A content type is compared without its parameters (`; charset=utf-8`).
            let media = |v: &Value| match (v, ptr.contains("content")) {
                (Value::String(s), true) => json!(s.split(';').next().unwrap_or_default().trim()),
                _ => v.clone(),
            };
            (media(&got) != *want).then(|| format!("{ptr}: expected {want}, got {got}"))
        })
        .collect()
}

/// Fails with every mismatch when there is one.
fn require_all(summary: &str, problems: Vec<String>, seen: &Value) -> Result<(), Problem> {
    if problems.is_empty() {
        return Ok(());
    }
    let mut evidence = problems;
    evidence.push(format!("received: {seen}"));
    Err(Problem::fail(summary, evidence))
}

/// Requires `received` (at least one event) to be one event, the one `expected` describes;
/// `what` names the publish in a count mismatch (`one order, 2 deliveries`).
fn only_event(
    summary: &str,
    received: Vec<Value>,
    what: &str,
    expected: &[(&str, Value)],
) -> Result<(), Problem> {
    let mut problems = mismatches(&received[0], expected);
    if received.len() != 1 {
        problems.push(format!("{what}, {} deliveries", received.len()));
    }
    require_all(summary, problems, &Value::Array(received))
}

/// Polls `GET /received` of app `app` until it lists at least `n` entries (at `pointer`, or the
/// whole answer when `pointer` is empty).
async fn wait_received(
    w: &AppsWorld,
    app: usize,
    pointer: &str,
    n: usize,
) -> Result<Vec<Value>, Problem> {
    let app = w.app_ref(app);
    poll(
        &format!("{n} event(s) in the app's GET /received"),
        DEADLINE,
        || async move {
            let v = app.get_json("/received").await?;
            let list = v.pointer(pointer).and_then(Value::as_array).cloned();
            Ok(match list {
                Some(l) if l.len() >= n => Ok(l),
                _ => Err(v.to_string()),
            })
        },
    )
    .await
}

// Flow (a): FastAPI publisher and subscriber.

/// One sidecar; with `subscriber`, the dapr-ext-fastapi app is its app and its subscriptions
/// are loaded. The publisher uses the same sidecar, with a 5 s health budget.
async fn fastapi_flow(
    t: &Trial,
    subscriber: bool,
) -> Result<(AppsWorld, usize, Option<usize>), Problem> {
    let mut w = AppsWorld::new(t, false).await?;
    let sub_port = w.app_port()?;
    let sc = w.sidecar("task-subscriber", sub_port).await?;
    let sub = if subscriber {
        let sub = w.app(FASTAPI_SUBSCRIBER, sub_port, sc, &[]).await?;
        w.wait_subscribed(sc).await?;
        Some(sub)
    } else {
        None
    };
    let publ = w.caller(PUBLISHER, sc, HEALTH_TIMEOUT_5S).await?;
    Ok((w, publ, sub))
}

/// The publisher's environment: `DaprClient()` gives up on the sidecar's health after 5 s.
const HEALTH_TIMEOUT_5S: &[(&str, &str)] = &[("DAPR_HEALTH_TIMEOUT", "5")];

/// A task of the seed.
fn task(t: &Trial) -> Value {
    json!({"id": format!("task-{}", t.seed() % 100_000), "title": "write the report", "priority": 2})
}

async fn fastapi_health_probe_answered(t: &mut Trial) -> Result<(), Problem> {
    let (w, publ, _) = fastapi_flow(t, false).await?;
    let r = async {
        let resp = w.app_ref(publ).post_json("/connect", &json!({})).await?;
        if resp.status == 200 {
            return Ok(());
        }
        Err(app_failed(
            "DaprClient() did not connect: the sidecar's health probe was not answered 2xx within DAPR_HEALTH_TIMEOUT=5",
            "POST /connect on the publisher",
            &resp,
        ))
    }
    .await;
    finish(w, r).await
}

/// Publishes one task through the FastAPI publisher and returns the subscriber's only event.
async fn publish_task(
    w: &AppsWorld,
    publ: usize,
    sub: Option<usize>,
    task: &Value,
    content_type: Option<&str>,
) -> Result<Value, Problem> {
    let sub = sub.ok_or_else(|| Problem::Setup("the flow has no subscriber".into()))?;
    let resp = w
        .app_ref(publ)
        .post_json(
            "/trigger",
            &json!({"task": task, "content_type": content_type}),
        )
        .await?;
    if resp.status != 200 {
        return Err(app_failed(
            "publish_event through the Python SDK failed",
            "POST /trigger on the publisher",
            &resp,
        ));
    }
    let received = wait_received(w, sub, "", 1).await?;
    if received.len() != 1 {
        return Err(Problem::fail(
            format!("one publish, {} deliveries", received.len()),
            received.iter().map(Value::to_string).collect(),
        ));
    }
    Ok(received[0].clone())
}

async fn fastapi_json_event_received(t: &mut Trial) -> Result<(), Problem> {
    let task = task(t);
    let (w, publ, sub) = fastapi_flow(t, true).await?;
    let r = async {
        let got = publish_task(&w, publ, sub, &task, Some("application/json")).await?;
        require_all(
            "the subscriber did not get the task as a JSON CloudEvent",
            mismatches(
                &got,
                &[
                    ("/content_type", json!("application/cloudevents+json")),
                    ("/event/specversion", json!("1.0")),
                    ("/event/type", json!("com.dapr.event.sent")),
                    ("/event/topic", json!("task-events")),
                    ("/event/pubsubname", json!("pubsub")),
                    ("/event/datacontenttype", json!("application/json")),
                    ("/event/data", task.clone()),
                ],
            ),
            &got,
        )
    }
    .await;
    finish(w, r).await
}

async fn fastapi_no_content_type_is_text(t: &mut Trial) -> Result<(), Problem> {
    let task = task(t);
    let (w, publ, sub) = fastapi_flow(t, true).await?;
    let r = async {
        let got = publish_task(&w, publ, sub, &task, None).await?;
        let mut problems = mismatches(
            &got,
            &[
                ("/content_type", json!("application/cloudevents+json")),
                ("/event/datacontenttype", json!("text/plain")),
            ],
        );
        // The SDK sent `json.dumps(task)`; as text/plain it stays that string.
        match got.pointer("/event/data") {
            Some(Value::String(s))
                if serde_json::from_str::<Value>(s).ok() == Some(task.clone()) => {}
            other => problems.push(format!(
                "/event/data: expected the JSON text of {task} as a string, got {}",
                other.cloned().unwrap_or(Value::Null)
            )),
        }
        require_all(
            "a publish without content type did not arrive as text/plain data",
            problems,
            &got,
        )
    }
    .await;
    finish(w, r).await
}

// Flow (b): express order service and Flask inventory, two sidecars, Redis.

struct Orders {
    order_service: usize,
    inventory: usize,
    inventory_sidecar: usize,
    order: Value,
}

async fn orders_flow(t: &Trial) -> Result<(AppsWorld, Orders), Problem> {
    let mut w = AppsWorld::new(t, true).await?;
    let (inventory_sidecar, inventory) =
        w.subscriber(INVENTORY, harness::AppProtocol::Http).await?;
    let (_, order_service) = w
        .subscriber(ORDER_SERVICE, harness::AppProtocol::Http)
        .await?;
    // The item is unique to this world, so a shared Redis (PUBSUB_TCK_REDIS) starts at 100 too.
    let order = json!({"orderId": t.seed() % 100_000, "item": w.app_id("widget"), "quantity": 10});
    Ok((
        w,
        Orders {
            order_service,
            inventory,
            inventory_sidecar,
            order,
        },
    ))
}

/// Places the flow's order and requires the sidecar's 204 (relayed by the order service).
async fn place_order(w: &AppsWorld, o: &Orders) -> Result<(), Problem> {
    let resp = w
        .app_ref(o.order_service)
        .post_json("/trigger", &o.order)
        .await?;
    let status = resp
        .json()
        .and_then(|v| v.get("status").and_then(Value::as_u64));
    if resp.status == 200 && status == Some(204) {
        return Ok(());
    }
    Err(app_failed(
        "the order service's HTTP publish was not answered 204",
        "POST /trigger on the order service",
        &resp,
    ))
}

async fn orders_order_reaches_inventory(t: &mut Trial) -> Result<(), Problem> {
    let (w, o) = orders_flow(t).await?;
    let r = async {
        place_order(&w, &o).await?;
        let received = wait_received(&w, o.inventory, "", 1).await?;
        only_event(
            "the inventory did not get the order as published",
            received,
            "one order",
            &[
                ("/content_type", json!("application/cloudevents+json")),
                ("/event/topic", json!("OrderPlaced")),
                ("/event/pubsubname", json!("pubsub")),
                ("/event/datacontenttype", json!("application/json")),
                ("/event/source", json!(w.app_id("order-service"))),
                ("/event/data", o.order.clone()),
            ],
        )
    }
    .await;
    finish(w, r).await
}

async fn orders_inventory_is_90(t: &mut Trial) -> Result<(), Problem> {
    let (w, o) = orders_flow(t).await?;
    let r = async {
        let item = o.order["item"].as_str().unwrap_or_default().to_owned();
        let client = w.sidecar_ref(o.inventory_sidecar).client();
        let path = format!(
            "/v1.0/invoke/{}/method/inventory/{item}",
            w.app_id("inventory")
        );
        let stock = || async {
            let r = client.get(&path).await?;
            let stock = r.json().and_then(|v| v.get("stock").and_then(Value::as_i64));
            Ok::<_, Problem>((r.status, stock, String::from_utf8_lossy(&r.body).into_owned()))
        };
        // Before the order: the inventory's own answer, passed through by invocation.
        let (status, before, body) = stock().await?;
        if status != 200 || before != Some(100) {
            return Err(Problem::fail(
                "before any order, GET inventory through service invocation did not answer 200 with stock 100",
                vec![format!("GET {path} answered {status} {body}")],
            ));
        }
        place_order(&w, &o).await?;
        poll("the stock read through invocation to be 90", DEADLINE, || async {
            let (status, s, body) = stock().await?;
            Ok(match s {
                Some(90) if status == 200 => Ok(()),
                _ => Err(format!("GET {path} answered {status} {body}")),
            })
        })
        .await?;
        // Observation window: a second delivery of the one order would lower the stock again.
        tokio::time::sleep(QUIET).await;
        let (status, after, body) = stock().await?;
        let received = w.app_ref(o.inventory).get_json("/received").await?;
        let deliveries = received.as_array().map_or(0, Vec::len);
        if after == Some(90) && deliveries == 1 {
            return Ok(());
        }
        Err(Problem::fail(
            format!("after one order of 10 and {QUIET:?} more, the stock is not 90 from one delivery"),
            vec![
                format!("GET {path} answered {status} {body}"),
                format!("the inventory received {deliveries} event(s): {received}"),
            ],
        ))
    }
    .await;
    finish(w, r).await
}

// Flow (c): a DaprServer subscriber.

async fn daprserver_flow(t: &Trial) -> Result<(AppsWorld, usize, usize), Problem> {
    let mut w = AppsWorld::new(t, false).await?;
    let port = w.app_port()?;
    let sc = w.sidecar("node-subscriber", port).await?;
    let app = w.app(NODE_SUBSCRIBER, port, sc, &[]).await?;
    Ok((w, sc, app))
}

/// Waits until the app reports that `DaprServer.start()` resolved.
async fn wait_started(w: &AppsWorld, app: usize) -> Result<(), Problem> {
    let app = w.app_ref(app);
    poll(
        "DaprServer.start() to resolve (it waits for a non-empty GET /v1.0/metadata)",
        DEADLINE,
        || async move {
            let v = app.get_json("/received").await?;
            Ok(match v.get("started") {
                Some(Value::Bool(true)) => Ok(()),
                _ => Err(v.to_string()),
            })
        },
    )
    .await
}

async fn daprserver_metadata_probe_answered(t: &mut Trial) -> Result<(), Problem> {
    let (w, _, app) = daprserver_flow(t).await?;
    let r = wait_started(&w, app).await;
    finish(w, r).await
}

async fn daprserver_event_received_unwrapped(t: &mut Trial) -> Result<(), Problem> {
    let (mut w, sc, app) = daprserver_flow(t).await?;
    let order = json!({"orderId": t.seed() % 100_000, "items": ["tea", "milk"], "paid": true});
    let r = async {
        w.wait_subscribed(sc).await?;
        wait_started(&w, app).await?;
        let resp = w
            .app_ref(app)
            .post_json("/trigger", &json!({"topic": "orders", "data": order}))
            .await?;
        if resp.status != 200 {
            return Err(app_failed(
                "the JS client's publish failed",
                "POST /trigger",
                &resp,
            ));
        }
        let received = wait_received(&w, app, "/received", 1).await?;
        only_event(
            "the DaprServer callback did not get the published object",
            received,
            "one publish",
            &[
                (
                    "/headers/content-type",
                    json!("application/cloudevents+json"),
                ),
                ("/data", order.clone()),
            ],
        )
    }
    .await;
    finish(w, r).await
}

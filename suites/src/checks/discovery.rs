//! Subscription discovery and routing: the `GET /dapr/subscribe` call, v1 and v2 entries,
//! declarative Subscription resources, precedence, scopes, CEL rules, the metadata API's
//! subscription list (spec notes §3.1-3.5, §8.8).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{TOPIC, line, status_is};
use crate::catalog::{Check, Need};
use crate::check;
use harness::TestApp;
use harness_engine::problem::{Problem, ensure_eq};
use harness_engine::trial::{DEADLINE, PUBSUB, QUIET, Scenario, Trial};

const API_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/pubsub_api/");
const METHODS_DOC: Option<&str> = Some(
    "https://docs.dapr.io/developing-applications/building-blocks/pubsub/subscription-methods/",
);
const ROUTING_DOC: Option<&str> = Some(
    "https://docs.dapr.io/developing-applications/building-blocks/pubsub/howto-route-messages/",
);
const SCHEMA_DOC: Option<&str> =
    Some("https://docs.dapr.io/reference/resource-specs/subscription-schema/");
const METADATA_DOC: Option<&str> = Some("https://docs.dapr.io/reference/api/metadata_api/");

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            "core::discovery::subscribe_called_once",
            Must,
            "GET /dapr/subscribe is called exactly once per sidecar process",
            "daprd pkg/runtime/processor/subscriber: programmatic subscriptions are read once (dapr/docs#3273)",
            API_DOC,
            [Need::Launch],
            subscribe_called_once
        ),
        check!(
            "core::discovery::subscribe_retried",
            Should,
            "A subscription discovery call the app fails is retried (GET /dapr/subscribe whose connection the app drops; over gRPC, ListTopicSubscriptions answering UNAVAILABLE): two failed calls, then the subscription works",
            "daprd pkg/runtime/pubsub/subscriptions.go GetSubscriptionsHTTP and GetSubscriptionsGRPC under the built-in DaprBuiltInInitializationRetries policy (3 retries, from 500 ms)",
            API_DOC,
            [Need::Launch],
            subscribe_retried
        ),
        check!(
            "core::discovery::subscribe_gives_up",
            Should,
            "A subscription discovery call the app always fails is tried in four rounds (the call and 3 retries; an HTTP client's immediate resend of a request on a dropped connection counts in its round) that back off (at least 1 s from the first to the last), then no more, and the publish API keeps working",
            "daprd pkg/runtime/pubsub/subscriptions.go GetSubscriptionsHTTP and GetSubscriptionsGRPC under the built-in DaprBuiltInInitializationRetries policy (pkg/resiliency/resiliency.go: MaxRetries 3, exponential from 500 ms, multiplier 1.5, at most 1 s, randomization 0.5)",
            API_DOC,
            [Need::Launch],
            subscribe_gives_up
        ),
        check!(
            "core::discovery::subscribe_app_id_header",
            Should,
            "GET /dapr/subscribe carries the dapr-app-id header with the sidecar's app-id",
            "daprd app channel: GET /dapr/subscribe is sent with the dapr-app-id header (spec notes §3.2)",
            API_DOC,
            [Need::Launch],
            subscribe_app_id_header
        ),
        check!(
            "core::discovery::v1_route",
            Must,
            "A v1 entry (pubsubname, topic, route) delivers the topic's messages to route",
            "Dapr pub/sub API: Provide routes for Dapr to deliver topic events",
            API_DOC,
            [Need::Launch],
            v1_route
        ),
        check!(
            "core::discovery::rules_first_match_wins",
            Must,
            "v2 routes.rules are evaluated in order and the first matching rule alone receives the message",
            "daprd pkg/runtime/subscription: first matching rule wins; Dapr docs How-To: Route messages",
            ROUTING_DOC,
            [Need::Launch],
            rules_first_match_wins
        ),
        check!(
            "core::discovery::rules_default",
            Must,
            "A message no rule matches goes to routes.default",
            "Dapr docs How-To: Route messages (default route)",
            ROUTING_DOC,
            [Need::Launch],
            rules_default
        ),
        check!(
            "core::discovery::default_wins_over_route",
            Must,
            "When an entry has both routes.default and route, routes.default is used",
            "daprd pkg/runtime/subscription: route is the default only when routes.default is empty",
            ROUTING_DOC,
            [Need::Launch],
            default_wins_over_route
        ),
        check!(
            "core::discovery::case_insensitive_keys",
            Should,
            "Entry keys match case-insensitively (pubsubName works like pubsubname)",
            "daprd /dapr/subscribe decoding: Go encoding/json field matching is case-insensitive",
            API_DOC,
            [Need::Launch],
            case_insensitive_keys
        ),
        check!(
            "core::discovery::route_path_cleaned",
            Should,
            "A route without a leading slash (orders) is delivered to /orders",
            "Dapr pub/sub API: route names the app endpoint for the topic; a route without a leading slash names the same endpoint",
            API_DOC,
            [Need::Launch],
            route_path_cleaned
        ),
        check!(
            "core::discovery::entry_without_route_dropped",
            Must,
            "An entry with no route and no rules is dropped without breaking the other entries",
            "daprd pkg/runtime/subscription: 'topic has an empty routes. removing from subscriptions list'",
            API_DOC,
            [Need::Launch],
            entry_without_route_dropped
        ),
        check!(
            "core::discovery::entry_without_pubsub_skipped",
            Must,
            "Entries naming no pubsub, no topic, or a pubsub that is not loaded, receive nothing and do not break the other entries of the reply",
            "daprd pkg/runtime/pubsub/subscriptions.go GetSubscriptionsHTTP (entries are not validated) and pkg/runtime/processor/subscriber StartAppSubscriptions (subscriptions start per loaded pubsub)",
            API_DOC,
            [Need::Launch],
            entry_without_pubsub_skipped
        ),
        check!(
            "core::discovery::idle_entries_listed",
            Should,
            "Entries of a /dapr/subscribe reply naming no pubsub or no topic are kept as given: the metadata API lists them, though they receive nothing",
            "daprd pkg/runtime/pubsub/subscriptions.go GetSubscriptionsHTTP (entries are not validated) and pkg/api/http/metadata.go (every subscription of the app is listed)",
            API_DOC,
            [Need::Launch],
            idle_entries_listed
        ),
        check!(
            "core::discovery::empty_match_catch_all",
            Must,
            "A rule with an empty match is a catch-all that wins when it comes first",
            "daprd tests/integration/suite/daprd/pubsub/http/emptymatch.go",
            ROUTING_DOC,
            [Need::Launch],
            empty_match_catch_all
        ),
        check!(
            "core::discovery::cel_numeric_double",
            Must,
            "A CEL rule comparing event.data.amount with a double routes by the JSON number",
            "Dapr docs How-To: Route messages (CEL); daprd pkg/expr: JSON numbers are doubles",
            ROUTING_DOC,
            [Need::Launch],
            cel_numeric_double
        ),
        check!(
            "core::discovery::cel_error_dead_lettered",
            Should,
            "A rule that fails to evaluate (missing field) is a processing error: the message goes to the dead-letter topic",
            "daprd pkg/runtime/subscription: 'error finding matching route' takes the DLQ-or-nack path",
            ROUTING_DOC,
            [Need::Launch],
            cel_error_dead_lettered
        ),
        check!(
            "core::discovery::no_match_not_delivered",
            Must,
            "A message no rule matches, with no default route, is delivered to no route",
            "Dapr docs How-To: Route messages; daprd 'no matching route for event'",
            ROUTING_DOC,
            [Need::Launch],
            no_match_not_delivered
        ),
        check!(
            "core::discovery::no_match_dead_lettered",
            Should,
            "A message no rule matches is also published to the dead-letter topic (daprd quirk)",
            "dapr/dapr#8297: unmatched events are dead-lettered when deadLetterTopic is set",
            Some("https://github.com/dapr/dapr/issues/8297"),
            [Need::Launch],
            no_match_dead_lettered
        ),
        check!(
            "core::discovery::declarative_v1alpha1",
            Must,
            "A dapr.io/v1alpha1 Subscription resource delivers its topic to spec.route",
            "Dapr docs Subscription spec v1alpha1; daprd pkg/runtime/subscription declarative loading",
            SCHEMA_DOC,
            [Need::Launch],
            declarative_v1alpha1
        ),
        check!(
            "core::discovery::declarative_v2alpha1",
            Must,
            "A dapr.io/v2alpha1 Subscription resource routes by its rules and default",
            "Dapr docs Subscription spec v2alpha1 (routes.rules, routes.default)",
            SCHEMA_DOC,
            [Need::Launch],
            declarative_v2alpha1
        ),
        check!(
            "core::discovery::declarative_scopes",
            Must,
            "A declarative Subscription whose scopes exclude this app-id delivers nothing to it",
            "Dapr docs Declarative subscriptions: scopes",
            METHODS_DOC,
            [Need::Launch],
            declarative_scopes
        ),
        check!(
            "core::discovery::declarative_first_wins",
            Should,
            "Of two declarative Subscriptions for one topic, the first loaded wins; one for another topic of the same pubsub is kept",
            "daprd pkg/runtime/compstore/subscriptions.go: first declarative per (pubsub, topic)",
            METHODS_DOC,
            [Need::Launch],
            declarative_first_wins
        ),
        check!(
            "core::discovery::programmatic_replaces_declarative",
            Must,
            "A programmatic subscription replaces a declarative one for the same topic, and no declarative one for another topic",
            "daprd tests/integration/suite/daprd/subscriptions/mixed/http/match.go",
            METHODS_DOC,
            [Need::Launch],
            programmatic_replaces_declarative
        ),
        check!(
            "core::discovery::slow_app_subscribes_once",
            Must,
            "With a slow app, publishing works before it listens; /dapr/subscribe is called once after, and later messages are delivered",
            "daprd subscriptions/programmatic/http slowappstartup; dapr/dapr#3839",
            Some("https://github.com/dapr/dapr/issues/3839"),
            [Need::Launch],
            slow_app_subscribes_once
        ),
        check!(
            "core::discovery::malformed_reply_publish_ok",
            Must,
            "A malformed /dapr/subscribe reply does not stop the publish API from answering 204",
            "daprd pkg/runtime/processor/subscriber: a bad reply is logged ('failed to subscribe to topics'); the API keeps serving",
            API_DOC,
            [Need::Launch],
            malformed_reply_publish_ok
        ),
        check!(
            "core::discovery::metadata_programmatic",
            Must,
            "/v1.0/metadata lists a programmatic subscription with topic, rules (match, path), deadLetterTopic and type PROGRAMMATIC",
            "daprd pkg/api/http/metadata.go: subscriptions",
            METADATA_DOC,
            [Need::Launch],
            metadata_programmatic
        ),
        check!(
            "core::discovery::metadata_lists_subscription_metadata",
            Should,
            "/v1.0/metadata lists a subscription's metadata as the app gave it",
            "daprd pkg/api/http/metadata.go: subscriptions (metadata)",
            METADATA_DOC,
            [Need::Launch],
            metadata_lists_subscription_metadata
        ),
        check!(
            "core::discovery::metadata_declarative",
            Must,
            "/v1.0/metadata lists a declarative subscription with type DECLARATIVE and its route as the rule path",
            "daprd pkg/api/http/metadata.go: subscriptions",
            METADATA_DOC,
            [Need::Launch],
            metadata_declarative
        ),
    ]
}

/// A second topic of the same pubsub.
const OTHER_TOPIC: &str = "invoices";
/// The CEL rule the routing checks match events of type `widget` with.
const WIDGET: &str = r#"event.type == "widget""#;

/// A v2 entry for `orders`: `rules` as (match, path), then an optional default.
fn v2_entry(rules: &[(&str, &str)], default: Option<&str>) -> Value {
    let rules: Vec<Value> = rules
        .iter()
        .map(|(m, p)| json!({"match": m, "path": p}))
        .collect();
    let mut routes = json!({ "rules": rules });
    if let Some(d) = default {
        routes["default"] = json!(d);
    }
    json!({"pubsubname": PUBSUB, "topic": TOPIC, "routes": routes})
}

/// Observation window over every route: what the app has seen once [`QUIET`] has passed.
async fn quiet_all(t: &Trial) -> Vec<harness::RecordedDelivery> {
    t.app().observe_quiet(None, QUIET).await
}

/// One row of a routing table: a message to publish and the one route it must reach, or
/// `None` for none.
struct Row {
    topic: &'static str,
    /// A CloudEvent `type` to publish the message with (`metadata.cloudevent.type`).
    ce_type: Option<&'static str>,
    data: Value,
    route: Option<&'static str>,
}

/// `{}` to `orders`, which must reach `route` alone.
fn to(route: &'static str) -> Row {
    on(TOPIC, Some(route))
}

/// `{}` to `topic`, which must reach `route` alone (or, with `None`, no route).
fn on(topic: &'static str, route: Option<&'static str>) -> Row {
    Row {
        topic,
        ce_type: None,
        data: json!({}),
        route,
    }
}

/// An event of CloudEvent type `ce_type` to `orders`, which must reach `route` alone.
fn typed(ce_type: &'static str, route: Option<&'static str>) -> Row {
    Row {
        ce_type: Some(ce_type),
        ..on(TOPIC, route)
    }
}

/// `data` to `orders`, which must reach `route` alone.
fn data(data: Value, route: &'static str) -> Row {
    Row { data, ..to(route) }
}

/// A routing promise as a table: with `scenario` up, every row is published in order; each
/// message with a route arrives there, and after one observation window every message was
/// seen exactly once, on its route, or nowhere.
async fn routed(t: &mut Trial, scenario: Scenario, rows: Vec<Row>) -> Result<(), Problem> {
    t.start(scenario).await?;
    let mut published = Vec::new();
    for row in rows {
        let id = match row.ce_type {
            Some(ce_type) => {
                t.publish_query(
                    row.topic,
                    row.data,
                    &[("metadata.cloudevent.type", ce_type)],
                )
                .await?
            }
            None => t.publish(row.topic, row.data).await?,
        };
        published.push((id, row.route));
    }
    for (id, route) in &published {
        if let Some(route) = route {
            t.wait_msg(route, id, 1).await?;
        }
    }
    let all = quiet_all(t).await;
    for (id, route) in &published {
        let paths: Vec<&str> = all
            .iter()
            .filter(|d| d.tck_id.as_deref() == Some(id.as_str()))
            .map(|d| d.request.path.as_str())
            .collect();
        ensure_eq(
            &format!("routes that received {id}"),
            route.iter().copied().collect::<Vec<_>>(),
            paths,
            t.evidence(),
        )?;
    }
    Ok(())
}

/// A v2 subscription entry on `orders` alone, as a scenario.
fn v2(rules: &[(&str, &str)], default: Option<&str>) -> Scenario {
    Scenario::new().subscription(v2_entry(rules, default))
}

/// The same, dead-lettering to `poison`, which `/dlq` subscribes to.
fn v2_dead_lettered(rules: &[(&str, &str)]) -> Scenario {
    let mut entry = v2_entry(rules, None);
    entry["deadLetterTopic"] = json!("poison");
    Scenario::new()
        .subscription(entry)
        .subscribe("poison", "/dlq")
}

fn declarative_v1(name: &str, topic: &str, route: &str, scopes: &[&str]) -> String {
    let mut y = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: {name}\nspec:\n  pubsubname: {PUBSUB}\n  topic: {topic}\n  route: {route}\n"
    );
    if !scopes.is_empty() {
        y.push_str("scopes:\n");
        for s in scopes {
            y.push_str(&format!("- {s}\n"));
        }
    }
    y
}

async fn subscribe_called_once(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscribe(TOPIC, "/orders")).await?;
    t.app().wait_subscribe_calls(1, DEADLINE).await?;
    let id = t.publish(TOPIC, json!({})).await?;
    t.wait_msg("/orders", &id, 1).await?;
    // Observation window: a sidecar that polls /dapr/subscribe would call it again here.
    quiet_all(t).await;
    let calls = t.app().subscribe_calls();
    ensure_eq(
        "GET /dapr/subscribe calls",
        1,
        calls.len(),
        calls
            .iter()
            .map(|c| format!("{} {} at {} us", c.method, c.path, c.at_micros)),
    )
}

async fn subscribe_retried(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .subscribe(TOPIC, "/orders")
            .drop_subscribe_calls(2),
    )
    .await?;
    // Two dropped calls, then the one the app answers.
    t.app()
        .wait_subscribe_calls(3, DEADLINE)
        .await
        .map_err(|_| {
            Problem::fail(
                "subscription discovery was not called again after the app failed the call",
                discovery_calls(t.app()),
            )
        })?;
    let id = t.publish(TOPIC, json!({})).await?;
    t.wait_msg("/orders", &id, 1).await.map(|_| ())
}

/// How long after the last allowed discovery round a fifth one would have come if the sidecar
/// kept retrying: the longest wait of either retry schedule (daprd's built-in policy waits at
/// most 1 s; a doubling schedule from 500 ms would wait 4 s) with room to spare.
const NO_FIFTH_ROUND: Duration = Duration::from_secs(6);

/// Calls this close to the one before belong to its round: an HTTP client may send a request
/// again at once when the connection it reused was closed before any answer (Go's net/http does
/// for a GET, so daprd's first dropped `GET /dapr/subscribe` comes twice, 2 ms apart). The
/// shortest wait of a retry policy is far longer.
const SAME_ROUND: u64 = 100_000;

/// Retry rounds among discovery calls made at `at` (microseconds, in arrival order).
fn rounds(at: &[u64]) -> usize {
    round_starts(at).len()
}

/// The shortest time, in microseconds, from the first discovery call to the first of the fourth
/// round that daprd's built-in initialization retries allow: three waits from 500 ms, growing by
/// half, each shortened by at most half (250 + 375 + 500 ms).
const MIN_BACKOFF_SPAN: u64 = 1_000_000;

/// When each round of discovery calls made at `at` began (microseconds, in arrival order).
fn round_starts(at: &[u64]) -> Vec<u64> {
    at.iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || t.saturating_sub(at[i - 1]) >= SAME_ROUND)
        .map(|(_, t)| *t)
        .collect()
}

/// When `app` received each discovery call, in microseconds.
fn call_times(app: &TestApp) -> Vec<u64> {
    app.subscribe_calls().iter().map(|c| c.at_micros).collect()
}

/// The discovery calls `app` received, one line each, as evidence.
fn discovery_calls(app: &TestApp) -> Vec<String> {
    app.subscribe_calls()
        .iter()
        .map(|c| format!("{} {} at {} us", c.method, c.path, c.at_micros))
        .collect()
}

async fn subscribe_gives_up(t: &mut Trial) -> Result<(), Problem> {
    let started = t
        .start(
            Scenario::new()
                .subscribe(TOPIC, "/orders")
                .drop_subscribe_calls(1000),
        )
        .await;
    if let Err(problem) = started {
        // A sidecar that retries discovery for ever may never report ready: that is what this
        // check looks for, so it fails the check rather than its set-up.
        if let Some(app) = t.unready_app() {
            let at = call_times(app);
            if rounds(&at) > 4 {
                let mut evidence = vec![match &problem {
                    Problem::Setup(why) | Problem::Fail { summary: why, .. } => why.clone(),
                }];
                evidence.extend(discovery_calls(app));
                return Err(Problem::fail(
                    format!(
                        "the sidecar never became ready and called discovery in {} rounds: the retries did not stop after 3",
                        rounds(&at)
                    ),
                    evidence,
                ));
            }
        }
        return Err(problem);
    }
    let times = |t: &Trial| call_times(t.app());
    let evidence = |t: &Trial| discovery_calls(t.app());
    // Four rounds: the call and 3 retries.
    let deadline = Instant::now() + DEADLINE;
    while rounds(&times(t)) < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = times(t).len() + 1;
        if left.is_zero() || t.app().wait_subscribe_calls(next, left).await.is_err() {
            return Err(Problem::fail(
                "fewer than four rounds of discovery calls (the call and 3 retries)",
                evidence(t),
            ));
        }
    }
    // Then none: any call, made already (a sidecar may finish discovery before it reports
    // ready) or in the window, either joins the fourth round or fails the check.
    let until = Instant::now() + NO_FIFTH_ROUND;
    loop {
        if rounds(&times(t)) > 4 {
            return Err(Problem::fail(
                "a fifth round of discovery calls came: the retries did not stop after 3",
                evidence(t),
            ));
        }
        let left = until.saturating_duration_since(Instant::now());
        let next = times(t).len() + 1;
        if left.is_zero() || t.app().wait_subscribe_calls(next, left).await.is_err() {
            break;
        }
    }
    // The retries back off: daprd waits from 500 ms, growing by half, at most 1 s, each wait
    // ±50 % (1.1 to 3.4 s over three waits).
    let at = times(t);
    let starts = round_starts(&at);
    let span = starts
        .last()
        .unwrap_or(&0)
        .saturating_sub(*starts.first().unwrap_or(&0));
    if span < MIN_BACKOFF_SPAN {
        return Err(Problem::fail(
            format!(
                "the four rounds of discovery calls came within {} ms: the retries did not back off (at least {} ms expected)",
                span / 1000,
                MIN_BACKOFF_SPAN / 1000
            ),
            evidence(t),
        ));
    }
    let r = t
        .publish_raw(
            TOPIC,
            r#"{"after":"discovery"}"#,
            Some("application/json"),
            &[],
        )
        .await?;
    status_is("status of a publish after discovery failed", 204, &r)
}

async fn subscribe_app_id_header(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().subscribe(TOPIC, "/orders")).await?;
    let calls = t.app().wait_subscribe_calls(1, DEADLINE).await?;
    ensure_eq(
        "dapr-app-id header of GET /dapr/subscribe",
        Some(t.app_id()),
        calls[0].header("dapr-app-id").map(str::to_owned),
        [format!("headers: {:?}", calls[0].headers)],
    )
}

async fn v1_route(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new().subscribe(TOPIC, "/v1-orders");
    routed(t, scenario, vec![to("/v1-orders")]).await
}

async fn rules_first_match_wins(t: &mut Trial) -> Result<(), Problem> {
    let widget_or_gadget = r#"event.type == "widget" || event.type == "gadget""#;
    let scenario = v2(
        &[(WIDGET, "/widgets"), (widget_or_gadget, "/gadgets")],
        Some("/orders"),
    );
    let rows = vec![
        typed("widget", Some("/widgets")),
        typed("gadget", Some("/gadgets")),
    ];
    routed(t, scenario, rows).await
}

async fn rules_default(t: &mut Trial) -> Result<(), Problem> {
    let scenario = v2(&[(WIDGET, "/widgets")], Some("/fallback"));
    routed(
        t,
        scenario,
        vec![typed("something.else", Some("/fallback"))],
    )
    .await
}

async fn default_wins_over_route(t: &mut Trial) -> Result<(), Problem> {
    let mut entry = v2_entry(&[], Some("/from-default"));
    entry["route"] = json!("/from-route");
    let scenario = Scenario::new().subscription(entry);
    routed(t, scenario, vec![to("/from-default")]).await
}

async fn case_insensitive_keys(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new()
        .subscription(json!({"pubsubName": PUBSUB, "Topic": TOPIC, "Route": "/orders"}));
    routed(t, scenario, vec![to("/orders")]).await
}

async fn route_path_cleaned(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new()
        .subscription(json!({"pubsubname": PUBSUB, "topic": TOPIC, "route": "orders"}));
    routed(t, scenario, vec![to("/orders")]).await
}

async fn entry_without_route_dropped(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new()
        .subscription(json!({"pubsubname": PUBSUB, "topic": "noroute"}))
        .subscription(json!({"pubsubname": PUBSUB, "topic": "noroute2", "routes": {"rules": []}}))
        .subscribe(TOPIC, "/orders");
    let rows = vec![on("noroute", None), on("noroute2", None), to("/orders")];
    routed(t, scenario, rows).await
}

async fn entry_without_pubsub_skipped(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new()
        .subscription(json!({"topic": "nopubsub", "route": "/nopubsub"}))
        .subscription(json!({"pubsubname": PUBSUB, "route": "/notopic"}))
        .subscription(
            json!({"pubsubname": "tck-not-loaded", "topic": TOPIC, "route": "/elsewhere"}),
        )
        .subscribe(TOPIC, "/orders");
    routed(t, scenario, vec![to("/orders")]).await
}

async fn idle_entries_listed(t: &mut Trial) -> Result<(), Problem> {
    t.start(
        Scenario::new()
            .subscription(json!({"topic": "nopubsub", "route": "/nopubsub"}))
            .subscription(json!({"pubsubname": PUBSUB, "route": "/notopic"}))
            .subscribe(TOPIC, "/orders"),
    )
    .await?;
    // Discovery is done once the sidecar is ready (as core::discovery::metadata_programmatic
    // reads it).
    let r = t.client().metadata().await?;
    let body = r.json().unwrap_or(Value::Null);
    let listed = |pubsub: &str, topic: &str| {
        body["subscriptions"].as_array().is_some_and(|subs| {
            subs.iter()
                .any(|s| s["pubsubname"] == json!(pubsub) && s["topic"] == json!(topic))
        })
    };
    let evidence = || vec![format!("subscriptions: {}", body["subscriptions"])];
    if !listed("", "nopubsub") {
        return Err(Problem::fail(
            "the metadata API does not list the entry without a pubsub (topic nopubsub)",
            evidence(),
        ));
    }
    if !listed(PUBSUB, "") {
        return Err(Problem::fail(
            "the metadata API does not list the entry without a topic",
            evidence(),
        ));
    }
    Ok(())
}

async fn empty_match_catch_all(t: &mut Trial) -> Result<(), Problem> {
    let scenario = v2(&[("", "/all"), (WIDGET, "/widgets")], Some("/fallback"));
    let rows = vec![typed("widget", Some("/all")), typed("other", Some("/all"))];
    routed(t, scenario, rows).await
}

async fn cel_numeric_double(t: &mut Trial) -> Result<(), Problem> {
    let scenario = v2(&[("event.data.amount > 100.0", "/big")], Some("/small"));
    let rows = vec![
        data(json!({"amount": 150}), "/big"),
        data(json!({"amount": 50}), "/small"),
        data(json!({"amount": 100.5}), "/big"),
    ];
    routed(t, scenario, rows).await
}

async fn cel_error_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    let scenario = v2_dead_lettered(&[("event.data.missing == 1.0", "/orders")]);
    routed(t, scenario, vec![data(json!({"present": 1}), "/dlq")]).await
}

async fn no_match_not_delivered(t: &mut Trial) -> Result<(), Problem> {
    // The widget proves the subscription runs; the unmatched message was published first.
    let scenario = v2(&[(WIDGET, "/widgets")], None);
    let rows = vec![typed("gadget", None), typed("widget", Some("/widgets"))];
    routed(t, scenario, rows).await
}

async fn no_match_dead_lettered(t: &mut Trial) -> Result<(), Problem> {
    let scenario = v2_dead_lettered(&[(WIDGET, "/widgets")]);
    routed(t, scenario, vec![typed("gadget", Some("/dlq"))]).await
}

async fn declarative_v1alpha1(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new().resource(declarative_v1("tck-decl-v1", TOPIC, "/decl", &[]));
    routed(t, scenario, vec![to("/decl")]).await
}

async fn declarative_v2alpha1(t: &mut Trial) -> Result<(), Problem> {
    let yaml = format!(
        r#"apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: tck-decl-v2
spec:
  pubsubname: {PUBSUB}
  topic: {TOPIC}
  routes:
    rules:
    - match: event.type == "widget"
      path: /widgets
    default: /orders
"#
    );
    let rows = vec![
        typed("widget", Some("/widgets")),
        typed("other", Some("/orders")),
    ];
    routed(t, Scenario::new().resource(yaml), rows).await
}

async fn declarative_scopes(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new()
        .app_id("tck-scoped-app")
        .resource(declarative_v1(
            "tck-hidden",
            "hidden",
            "/hidden",
            &["another-app"],
        ))
        .resource(declarative_v1(
            "tck-visible",
            "visible",
            "/visible",
            &["tck-scoped-app"],
        ));
    let rows = vec![on("hidden", None), on("visible", Some("/visible"))];
    routed(t, scenario, rows).await
}

async fn declarative_first_wins(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new()
        .resource(declarative_v1("tck-first", TOPIC, "/first", &[]))
        .resource(declarative_v1("tck-second", TOPIC, "/second", &[]))
        .resource(declarative_v1("tck-other", OTHER_TOPIC, "/other", &[]));
    routed(
        t,
        scenario,
        vec![to("/first"), on(OTHER_TOPIC, Some("/other"))],
    )
    .await
}

async fn programmatic_replaces_declarative(t: &mut Trial) -> Result<(), Problem> {
    let scenario = Scenario::new()
        // Loaded first (by file and by name), so that replacing the first subscription of the
        // pubsub, whatever its topic, would replace this one.
        .resource(declarative_v1("tck-another", OTHER_TOPIC, "/other", &[]))
        .resource(declarative_v1("tck-decl", TOPIC, "/decl", &[]))
        .subscribe(TOPIC, "/prog");
    routed(
        t,
        scenario,
        vec![to("/prog"), on(OTHER_TOPIC, Some("/other"))],
    )
    .await
}

async fn slow_app_subscribes_once(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().app_later().subscribe(TOPIC, "/orders"))
        .await?;
    // The app does not listen yet; the publish API must already work (§8.7 outbound readiness).
    super::publish_before_app(t, "early", r#"{"early":true}"#).await?;
    t.app().wait_subscribe_calls(1, DEADLINE).await?;
    t.sidecar().wait_healthz(DEADLINE).await.map_err(|e| {
        Problem::fail(
            "the sidecar did not become healthy after the app started listening",
            vec![e.to_string()],
        )
    })?;
    let id = t.publish(TOPIC, json!({})).await?;
    t.wait_msg("/orders", &id, 1).await?;
    quiet_all(t).await;
    ensure_eq(
        "GET /dapr/subscribe calls",
        1,
        t.app().subscribe_calls().len(),
        t.evidence(),
    )
}

async fn malformed_reply_publish_ok(t: &mut Trial) -> Result<(), Problem> {
    // The app comes up after the sidecar, so the scenario does not depend on whether a
    // sidecar reports itself healthy after a bad reply (daprd's behaviour there is unclear).
    t.start(Scenario::new().app_later().subscribe_reply(200, "not json"))
        .await?;
    t.start_app().await?;
    t.app().wait_subscribe_calls(1, DEADLINE).await?;
    let r = t
        .publish_raw(TOPIC, r#"{"orderId":1}"#, Some("application/json"), &[])
        .await?;
    status_is(
        "publish status after a malformed /dapr/subscribe reply",
        204,
        &r,
    )
}

/// The metadata API's subscription entry for `topic`.
async fn metadata_entry(t: &Trial, topic: &str) -> Result<Value, Problem> {
    let r = t.client().metadata().await?;
    status_is("GET /v1.0/metadata status", 200, &r)?;
    let body = r.json().unwrap_or(Value::Null);
    body["subscriptions"]
        .as_array()
        .and_then(|subs| subs.iter().find(|s| s["topic"] == json!(topic)))
        .cloned()
        .ok_or_else(|| {
            Problem::fail(
                format!("/v1.0/metadata lists no subscription for topic {topic}"),
                vec![line(&r)],
            )
        })
}

/// The rule list of a metadata entry as (match, path), with an absent match read as "".
fn rules_of(entry: &Value) -> Vec<(String, String)> {
    entry["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    (
                        r["match"].as_str().unwrap_or("").to_owned(),
                        r["path"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn metadata_programmatic(t: &mut Trial) -> Result<(), Problem> {
    let mut entry = v2_entry(&[(WIDGET, "/widgets")], Some("/orders"));
    entry["deadLetterTopic"] = json!("poison");
    t.start(
        Scenario::new()
            .subscription(entry)
            .subscribe("poison", "/dlq"),
    )
    .await?;
    let e = metadata_entry(t, TOPIC).await?;
    let ev = [format!("metadata entry: {e}")];
    ensure_eq(
        "pubsubname",
        json!(PUBSUB),
        e["pubsubname"].clone(),
        ev.clone(),
    )?;
    ensure_eq("type", json!("PROGRAMMATIC"), e["type"].clone(), ev.clone())?;
    ensure_eq(
        "deadLetterTopic",
        json!("poison"),
        e["deadLetterTopic"].clone(),
        ev.clone(),
    )?;
    ensure_eq(
        "rules (match, path)",
        vec![
            (WIDGET.to_owned(), "/widgets".to_owned()),
            (String::new(), "/orders".to_owned()),
        ],
        rules_of(&e),
        ev,
    )
}

async fn metadata_lists_subscription_metadata(t: &mut Trial) -> Result<(), Problem> {
    let mut entry = v2_entry(&[], Some("/orders"));
    entry["metadata"] = json!({"tck-key": "tck-value"});
    t.start(Scenario::new().subscription(entry)).await?;
    let e = metadata_entry(t, TOPIC).await?;
    ensure_eq(
        "metadata",
        json!({"tck-key": "tck-value"}),
        e["metadata"].clone(),
        [format!("metadata entry: {e}")],
    )
}

async fn metadata_declarative(t: &mut Trial) -> Result<(), Problem> {
    t.start(Scenario::new().resource(declarative_v1("tck-decl-md", TOPIC, "/decl", &[])))
        .await?;
    let e = metadata_entry(t, TOPIC).await?;
    let ev = [format!("metadata entry: {e}")];
    ensure_eq("type", json!("DECLARATIVE"), e["type"].clone(), ev.clone())?;
    ensure_eq(
        "rules (match, path)",
        vec![(String::new(), "/decl".to_owned())],
        rules_of(&e),
        ev,
    )
}

#[cfg(test)]
mod tests {
    use super::{MIN_BACKOFF_SPAN, round_starts, rounds};

    #[test]
    fn an_immediate_resend_joins_its_round() {
        assert_eq!(rounds(&[]), 0);
        assert_eq!(rounds(&[361_938]), 1);
        // daprd 1.18.3 with every GET /dapr/subscribe dropped: a resend 2 ms after the first
        // call, then three retries.
        assert_eq!(
            rounds(&[361_938, 364_156, 1_095_643, 1_690_600, 2_596_701]),
            4
        );
        assert_eq!(rounds(&[0, 99_999, 199_998]), 1);
        assert_eq!(rounds(&[0, 100_000]), 2);
    }

    #[test]
    fn a_round_starts_with_its_first_call() {
        let daprd = [361_938, 364_156, 1_095_643, 1_690_600, 2_596_701];
        let starts = round_starts(&daprd);
        assert_eq!(starts, [361_938, 1_095_643, 1_690_600, 2_596_701]);
        // daprd's three waits there took 2.2 s.
        assert!(starts[3] - starts[0] >= MIN_BACKOFF_SPAN);
        assert!(round_starts(&[]).is_empty());
    }
}

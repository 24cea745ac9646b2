//! The check bodies, one module per area. Each module exposes `checks()`; the catalog order is
//! the order below.

use crate::catalog::Check;
use harness_engine::problem::{Problem, ensure_eq};

mod apps;
mod auth;
mod bulk;
mod chaos;
mod cloudevents;
mod discovery;
mod dlq;
mod durability;
mod grpc_api;
mod health;
mod invoke;
mod lifecycle;
mod metadata;
mod ordering;
mod publish;
mod redelivery;
mod resiliency;
mod robustness;
mod state;
mod status;
mod streaming;

/// Every check, area by area; each id in [`OVER_GRPC`] is followed by its run over a gRPC app.
pub(crate) fn all() -> Vec<Check> {
    let http = [
        publish::checks(),
        grpc_api::checks(),
        cloudevents::checks(),
        discovery::checks(),
        status::checks(),
        streaming::checks(),
        redelivery::checks(),
        resiliency::checks(),
        dlq::checks(),
        auth::checks(),
        health::checks(),
        metadata::checks(),
        invoke::checks(),
        state::checks(),
        bulk::checks(),
        ordering::checks(),
        lifecycle::checks(),
        durability::checks(),
        apps::checks(),
        chaos::checks(),
        robustness::checks(),
    ]
    .concat();
    let mut out = Vec::with_capacity(http.len() + OVER_GRPC.len());
    for c in http {
        let twin = OVER_GRPC.contains(&c.id).then(|| c.over_grpc());
        out.push(c);
        out.extend(twin);
    }
    out
}

/// The checks whose promise means the same for an app that subscribes over gRPC: each also
/// runs with the test app speaking the `AppCallback` service (`<id>::grpc`). Left out are the
/// checks of HTTP's own wire (status codes, bodies, headers, the `/dapr/subscribe` JSON).
const OVER_GRPC: &[&str] = &[
    "core::status::success_once",
    "core::status::empty_2xx_success",
    "core::status::retry_retried",
    "core::status::drop_not_retried",
    "core::status::unknown_status_retried",
    "core::redelivery::retry_then_success",
    "core::redelivery::error_then_success",
    "core::redelivery::same_event",
    "core::redelivery::budget_per_message",
    "core::redelivery::no_policy_single_attempt",
    "core::redelivery::app_restart_delivered",
    "core::redelivery::hang_isolated",
    "core::resiliency::max_retries_2",
    "core::resiliency::max_retries_4",
    "core::resiliency::max_retries_zero",
    "core::resiliency::unlimited_retries",
    "core::resiliency::max_retries_default_unlimited",
    "core::resiliency::constant_spacing",
    "core::resiliency::exponential_spacing",
    "core::resiliency::matching_ignores_retry_status",
    "core::resiliency::per_attempt_timeout",
    "core::resiliency::no_default_timeout",
    "core::resiliency::default_retry_policy",
    "core::resiliency::target_without_inbound",
    "core::dlq::exhausted_exactly_once",
    "core::dlq::copy_is_original_event",
    "core::dlq::original_not_redelivered",
    "core::dlq::no_dlq_single_delivery",
    "core::dlq::dlq_retry_no_loop",
    "core::dlq::no_route_match_dead_lettered",
    "core::dlq::expired_never_delivered",
    "core::dlq::expired_dead_lettered",
    "core::ordering::fifo_single_publisher",
    "core::ordering::per_key_interleaved",
    "core::ordering::one_in_flight",
    "core::ordering::order_kept_under_retry",
    "core::delivery::no_loss_no_duplicates",
    "core::delivery::two_topics_independent",
    "core::discovery::subscribe_called_once",
    "core::discovery::rules_first_match_wins",
    "core::discovery::rules_default",
    "core::discovery::empty_match_catch_all",
    "core::discovery::cel_numeric_double",
    "core::discovery::no_match_not_delivered",
    "core::discovery::no_match_dead_lettered",
    "core::discovery::declarative_v2alpha1",
    "core::metadata::app_connection",
    "core::grpc_api::metadata_lists_subscriptions",
    "core::discovery::subscribe_retried",
    "core::discovery::subscribe_gives_up",
];

/// The topic [`start_orders`] and [`orders`] subscribe the app to.
const TOPIC: &str = "orders";
/// The app's route for [`TOPIC`].
const ROUTE: &str = "/orders";

/// Starts the trial with the app subscribed to `orders` at `/orders`.
async fn start_orders(t: &mut harness_engine::trial::Trial) -> Result<(), Problem> {
    t.start(harness_engine::trial::Scenario::new().subscribe(TOPIC, ROUTE))
        .await
}

/// A subscriber on `orders` at `/orders` that answers as `script` says.
fn orders(script: harness::Script) -> harness_engine::trial::Scenario {
    harness_engine::trial::Scenario::new()
        .subscribe(TOPIC, ROUTE)
        .script(ROUTE, script)
}

/// App `scoped`, whose pubsub component has the scoping rule `key: value` in its metadata,
/// subscribed to each `(topic, route)` in order.
fn scoped(
    (key, value): (&str, &str),
    subscriptions: &[(&str, &str)],
) -> harness_engine::trial::Scenario {
    let app = harness_engine::trial::Scenario::new()
        .app_id("scoped")
        .component_metadata(key, value);
    subscriptions
        .iter()
        .fold(app, |s, (topic, route)| s.subscribe(topic, route))
}

/// Publishes `body` (JSON) to `topic` before the app listens and requires 204: the publish
/// API works before the app does (spec notes §8.7). Then starts the app.
async fn publish_before_app(
    t: &mut harness_engine::trial::Trial,
    topic: &str,
    body: &str,
) -> Result<(), Problem> {
    let r = t
        .publish_raw(topic, body.to_owned(), Some("application/json"), &[])
        .await?;
    status_is("status of a publish before the app listens", 204, &r)?;
    t.start_app().await
}

/// Requires answer `r` to be an error with `status` and the `errorCode` `code`.
fn rejected(r: &harness::ApiResponse, status: u16, code: &str) -> Result<(), Problem> {
    status_is("status", status, r)?;
    ensure_eq(
        "errorCode",
        Some(code.to_owned()),
        r.error_code(),
        [line(r)],
    )
}

/// Requires answer `r` to have `status`; `what` names it in a failure, with the answer (its
/// [`line`]) as evidence.
fn status_is(what: &str, status: u16, r: &harness::ApiResponse) -> Result<(), Problem> {
    ensure_eq(what, status, r.status, [line(r)])
}

/// An answer in one line for a problem's evidence: status, content type and the first 200
/// bytes of the body.
fn line(r: &harness::ApiResponse) -> String {
    format!(
        "HTTP {} {:?} body {}",
        r.status,
        r.header("content-type"),
        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
    )
}

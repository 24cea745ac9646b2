//! Delivery throughput to real apps, for `pubsub-tck bench apps`: how many deliveries a second
//! a target sidecar gets answered by each subscriber of `fixtures/apps/`, on the in-memory
//! broker. A measurement, not a check: it judges nothing and no test asserts a rate.
//!
//! One measurement brings up an [`AppsWorld`] with one app and its sidecar, publishes
//! [`WARM_UP`] messages and waits until the app has taken them (the subscription works, every
//! connection is open), then publishes `messages` more with a fixed number in flight and polls
//! the app's `GET /count` until it has taken them all. The rate is the messages over the time
//! from the first of those publishes to the poll that saw the last one.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use harness::AppProtocol;
use serde_json::json;
use tokio::time::Instant;

use crate::apps::{App, AppSpec, AppsWorld, Ready, Runtime};
use crate::env::RunEnv;
use crate::problem::Problem;
use crate::trial::PUBSUB;

/// Messages published and taken before the measurement starts.
pub const WARM_UP: usize = 20;
/// How often the app's count is read while a measurement runs.
const POLL: Duration = Duration::from_millis(5);

/// A subscriber of `fixtures/apps/` that counts what it takes on `GET /count`.
#[derive(Debug, Clone, Copy)]
pub struct RateApp {
    /// Its name on the command line and in reports.
    pub name: &'static str,
    /// What it is built on, for the report.
    pub stack: &'static str,
    /// How to start it.
    pub spec: AppSpec,
    /// How its sidecar reaches it.
    pub protocol: AppProtocol,
    /// The topic it subscribes to.
    pub topic: &'static str,
}

/// Every app `pubsub-tck bench apps` knows, in report order.
pub const APPS: &[RateApp] = &[
    RateApp {
        name: "plain",
        stack: "Python http.server (standard library), HTTP/1.1, head and body in two writes",
        spec: AppSpec {
            name: "plain-subscriber",
            runtime: Runtime::Python,
            script: "python/plain_subscriber.py",
            ready: Ready::Http("/count"),
        },
        protocol: AppProtocol::Http,
        topic: "plain-events",
    },
    RateApp {
        name: "fastapi",
        stack: "FastAPI on uvicorn with dapr-ext-fastapi",
        spec: AppSpec {
            name: "fastapi-subscriber",
            runtime: Runtime::Python,
            script: "python/subscriber.py",
            ready: Ready::Http("/count"),
        },
        protocol: AppProtocol::Http,
        topic: "task-events",
    },
    RateApp {
        name: "flask",
        stack: "Flask on its own threaded server (Werkzeug)",
        spec: AppSpec {
            name: "flask-subscriber",
            runtime: Runtime::Python,
            script: "python/flask_subscriber.py",
            ready: Ready::Http("/count"),
        },
        protocol: AppProtocol::Http,
        topic: "flask-events",
    },
    RateApp {
        name: "express",
        stack: "express with @dapr/dapr's DaprServer",
        spec: AppSpec {
            name: "express-subscriber",
            runtime: Runtime::Node,
            script: "node/subscriber.js",
            ready: Ready::Http("/count"),
        },
        protocol: AppProtocol::Http,
        topic: "orders",
    },
    RateApp {
        name: "go-grpc",
        stack: "the Go SDK's gRPC service (go-sdk service/grpc)",
        spec: AppSpec {
            name: "go-warehouse",
            runtime: Runtime::Go,
            script: "warehouse",
            ready: Ready::Http("/count"),
        },
        protocol: AppProtocol::Grpc,
        topic: "orders",
    },
];

/// The app named `name`.
pub fn app(name: &str) -> Option<&'static RateApp> {
    APPS.iter().find(|a| a.name == name)
}

/// What one measurement saw.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Messages published for the measurement (after the warm-up).
    pub messages: usize,
    /// How many of them the app took before the deadline.
    pub taken: usize,
    /// Seconds from the first publish to the poll that saw the last message taken.
    pub seconds: f64,
    /// Deliveries per second.
    pub rate: f64,
}

/// Measures `app` behind the target of `env` (whose broker must be in-memory): see the module
/// docs. `in_flight` publishes run at once; the app must take every message within `deadline`
/// or the measurement reports what it took by then.
pub async fn measure(
    env: &RunEnv,
    app: &RateApp,
    messages: usize,
    in_flight: usize,
    deadline: Duration,
) -> Result<Measured, Problem> {
    if let Some(why) = app.spec.runtime.unavailable() {
        return Err(Problem::Setup(why));
    }
    let mut world = AppsWorld::for_env(env, false).await?;
    let result = run(&mut world, app, messages, in_flight, deadline).await;
    let result = result.map_err(|p| match p {
        Problem::Setup(msg) => Problem::Setup(format!("{msg}\n{}", world.evidence().join("\n"))),
        other => other,
    });
    world.finish().await;
    result
}

async fn run(
    world: &mut AppsWorld,
    app: &RateApp,
    messages: usize,
    in_flight: usize,
    deadline: Duration,
) -> Result<Measured, Problem> {
    // A gRPC app serves its count on a port of its own.
    let (sc, a) = world.subscriber(app.spec, app.protocol).await?;
    let client = world.sidecar_ref(sc).client();
    let topic = app.topic;
    publish_all(client.clone(), topic, 0..WARM_UP, in_flight).await?;
    let warm_deadline = Instant::now() + crate::trial::DEADLINE;
    loop {
        let n = count(world.app_ref(a)).await?;
        if n >= WARM_UP {
            break;
        }
        if Instant::now() >= warm_deadline {
            return Err(Problem::Setup(format!(
                "the app took {n} of {WARM_UP} warm-up messages within {:?}",
                crate::trial::DEADLINE
            )));
        }
        tokio::time::sleep(POLL).await;
    }

    let started = Instant::now();
    let end = started + deadline;
    let total = WARM_UP + messages;
    let publishing = tokio::spawn(publish_all(client, topic, WARM_UP..total, in_flight));
    let mut taken = count(world.app_ref(a)).await?;
    while taken < total && Instant::now() < end {
        tokio::time::sleep(POLL).await;
        taken = count(world.app_ref(a)).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if taken < total {
        // Out of time: what was taken is the measurement; publishes still waiting on the
        // sidecar (daprd's in-memory broker answers a publish once the delivery before it
        // finished) are abandoned.
        publishing.abort();
    } else {
        match publishing.await {
            Ok(r) => r?,
            Err(e) => return Err(Problem::Setup(format!("the publishers failed: {e}"))),
        }
    }
    let taken = taken.saturating_sub(WARM_UP).min(messages);
    Ok(Measured {
        messages,
        taken,
        seconds,
        rate: taken as f64 / seconds.max(f64::EPSILON),
    })
}

/// Publishes one JSON message per index of `range` to `topic`, `in_flight` at a time; the first
/// publish that is not answered 204 is the error.
async fn publish_all(
    client: harness::SidecarClient,
    topic: &'static str,
    range: std::ops::Range<usize>,
    in_flight: usize,
) -> Result<(), Problem> {
    let results: Vec<Result<(), String>> = futures::stream::iter(range)
        .map(|i| {
            let client = client.clone();
            let body = json!({"key": format!("m{i}"), "kind": "ok", "n": i}).to_string();
            async move {
                match client
                    .publish(
                        PUBSUB,
                        topic,
                        Bytes::from(body),
                        Some("application/json"),
                        &[],
                    )
                    .await
                {
                    Ok(r) if r.status == 204 => Ok(()),
                    Ok(r) => Err(format!("publish answered {}", r.status)),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(Problem::Setup(format!("publishing to {topic}: {e}"))),
        None => Ok(()),
    }
}

/// The app's `GET /count`.
async fn count(app: &App) -> Result<usize, Problem> {
    let v = app.get_json("/count").await?;
    v.get("count")
        .and_then(serde_json::Value::as_u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .ok_or_else(|| Problem::Setup(format!("GET /count answered {v} (no \"count\")")))
}

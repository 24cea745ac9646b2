//! The `chaos` profile: one fault each, under steady load, on the broker where it matters.
//!
//! Each check publishes 40 messages a second over 4 keys, applies one fault for 1.5 s,
//! heals it, keeps publishing for a second and waits for the backlog. It then requires that
//! every publish acknowledged with 204 was delivered at least once (lost = 0) and nothing
//! unpublished arrived; per-key order is required where the broker promises it, and the
//! duplicate rate and the fault window's metrics (backlog drain, time to recover, redelivery
//! gap) are reported as observations. `pubsub-tck chaos` runs the same experiment with a
//! seeded schedule of many faults.
//!
//! Network faults go through the trial's Toxiproxy-API proxies (the bundled server, or
//! `TOXIPROXY_URL`); process faults act on the sidecar, the test app or the trial's private
//! broker process.

use std::time::Duration;

use harness::fault::{Fault, Hop, Proc, Stream, ToxicKind as Toxic};

use crate::catalog::{Check, Need};
use harness_engine::broker::{Broker, Promise};
use harness_engine::chaos::experiment::{Experiment, hops_of, run, scenario};
use harness_engine::chaos::nemesis::Window;
use harness_engine::problem::Problem;
use harness_engine::trial::Trial;

const CLAUSE_URL: Option<&str> =
    Some("https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-overview/");

/// One check per (fault, broker set). `$fault` must be a constant expression: it is built
/// inside a non-capturing closure so the check stays a plain function pointer.
macro_rules! chaos {
    ($id:literal, $title:literal, [$($need:expr),*], $fault:expr) => {
        Check {
            id: $id,
            title: $title,
            clause: "Dapr pub/sub at-least-once delivery under network and process faults (spec notes §5.6, §7, §8)",
            clause_url: CLAUSE_URL,
            level: crate::catalog::Level::Must,
            needs: &[Need::Launch, $($need),*],
            app: crate::catalog::AppProtocol::Http,
            run: |t| Box::pin(one_fault(t, $fault)),
        }
    };
}

const fn toxic(hop: Hop, stream: Stream, toxic: Toxic) -> Fault {
    Fault::AddToxic { hop, stream, toxic }
}

const LATENCY: Toxic = Toxic::Latency {
    latency: Duration::from_millis(200),
    jitter: Duration::from_millis(50),
};
const BANDWIDTH: Toxic = Toxic::Bandwidth { rate: 5 };
const SLOW_CLOSE: Toxic = Toxic::SlowClose {
    delay: Duration::from_millis(500),
};
const TIMEOUT: Toxic = Toxic::Timeout {
    timeout: Duration::from_millis(500),
};
const RESET: Toxic = Toxic::ResetPeer {
    timeout: Duration::from_millis(100),
};
const SLICER: Toxic = Toxic::Slicer {
    average_size: 16,
    size_variation: 4,
    delay: Duration::from_micros(100),
};
const LIMIT: Toxic = Toxic::LimitData { bytes: 600 };

/// Brokers whose data lives outside the sidecar (in-memory dies with it).
const DURABLE: &[Broker] = &[Broker::Redis, Broker::Kafka];
const REDIS: &[Broker] = &[Broker::Redis];
const IN_MEMORY: &[Broker] = &[Broker::InMemory];

pub(crate) fn checks() -> Vec<Check> {
    vec![
        // The sidecar's deliveries to the app: every toxic, on the in-memory broker (the hop
        // does not depend on the broker, and in-memory is the fastest to bring up).
        chaos!(
            "chaos::sidecar_app::latency",
            "Deliveries slowed by 200 ± 50 ms latency: nothing acknowledged is lost",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::SidecarToApp, Stream::Downstream, LATENCY)
        ),
        chaos!(
            "chaos::sidecar_app::bandwidth",
            "Deliveries throttled to 5 KB/s: nothing acknowledged is lost",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::SidecarToApp, Stream::Upstream, BANDWIDTH)
        ),
        chaos!(
            "chaos::sidecar_app::slow_close",
            "Delivery connections closed 500 ms late: nothing acknowledged is lost",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::SidecarToApp, Stream::Downstream, SLOW_CLOSE)
        ),
        chaos!(
            "chaos::sidecar_app::timeout",
            "Delivery responses swallowed and connections cut after 500 ms: failed deliveries are retried, nothing is lost",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::SidecarToApp, Stream::Downstream, TIMEOUT)
        ),
        chaos!(
            "chaos::sidecar_app::reset_peer",
            "Delivery connections reset (TCP RST): failed deliveries are retried, nothing is lost",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::SidecarToApp, Stream::Upstream, RESET)
        ),
        chaos!(
            "chaos::sidecar_app::slicer",
            "Deliveries cut into 16-byte pieces: nothing acknowledged is lost",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::SidecarToApp, Stream::Upstream, SLICER)
        ),
        chaos!(
            "chaos::sidecar_app::limit_data",
            "Delivery connections closed after 600 bytes: failed deliveries are retried, nothing is lost",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::SidecarToApp, Stream::Upstream, LIMIT)
        ),
        chaos!(
            "chaos::sidecar_app::down",
            "The app unreachable for 1.5 s: deliveries are retried until it is back, nothing is lost",
            [Need::OneOf(IN_MEMORY)],
            Fault::ProxyDown(Hop::SidecarToApp)
        ),
        // The app's publishes: whatever the sidecar acknowledged must arrive.
        chaos!(
            "chaos::app_sidecar::latency",
            "Publishes slowed by 200 ± 50 ms: every acknowledged publish is delivered",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::AppToSidecar, Stream::Upstream, LATENCY)
        ),
        chaos!(
            "chaos::app_sidecar::timeout",
            "Publish responses swallowed: every publish the sidecar did acknowledge is delivered",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::AppToSidecar, Stream::Downstream, TIMEOUT)
        ),
        chaos!(
            "chaos::app_sidecar::reset_peer",
            "Publish connections reset: every acknowledged publish is delivered, none twice as a new message",
            [Need::OneOf(IN_MEMORY)],
            toxic(Hop::AppToSidecar, Stream::Upstream, RESET)
        ),
        chaos!(
            "chaos::app_sidecar::down",
            "The sidecar unreachable for publishes for 1.5 s: every acknowledged publish is delivered",
            [Need::OneOf(IN_MEMORY)],
            Fault::ProxyDown(Hop::AppToSidecar)
        ),
        // The sidecar's broker connections.
        chaos!(
            "chaos::sidecar_broker::latency",
            "Broker traffic slowed by 200 ± 50 ms: nothing acknowledged is lost",
            [Need::OneOf(DURABLE)],
            toxic(Hop::SidecarToBroker, Stream::Downstream, LATENCY)
        ),
        chaos!(
            "chaos::sidecar_broker::bandwidth",
            "Broker traffic throttled to 5 KB/s: nothing acknowledged is lost",
            [Need::OneOf(REDIS)],
            toxic(Hop::SidecarToBroker, Stream::Downstream, BANDWIDTH)
        ),
        chaos!(
            "chaos::sidecar_broker::slow_close",
            "Broker connections closed 500 ms late: nothing acknowledged is lost",
            [Need::OneOf(REDIS)],
            toxic(Hop::SidecarToBroker, Stream::Downstream, SLOW_CLOSE)
        ),
        chaos!(
            "chaos::sidecar_broker::timeout",
            "Broker replies swallowed and connections cut: the sidecar reconnects, nothing acknowledged is lost",
            [Need::OneOf(REDIS)],
            toxic(Hop::SidecarToBroker, Stream::Downstream, TIMEOUT)
        ),
        chaos!(
            "chaos::sidecar_broker::reset_peer",
            "Broker connections reset: the sidecar reconnects, nothing acknowledged is lost",
            [Need::OneOf(DURABLE)],
            toxic(Hop::SidecarToBroker, Stream::Upstream, RESET)
        ),
        chaos!(
            "chaos::sidecar_broker::slicer",
            "Broker traffic cut into 16-byte pieces: nothing acknowledged is lost",
            [Need::OneOf(REDIS)],
            toxic(Hop::SidecarToBroker, Stream::Downstream, SLICER)
        ),
        chaos!(
            "chaos::sidecar_broker::limit_data",
            "Broker connections closed after 600 bytes: the sidecar reconnects, nothing acknowledged is lost",
            [Need::OneOf(REDIS)],
            toxic(Hop::SidecarToBroker, Stream::Downstream, LIMIT)
        ),
        chaos!(
            "chaos::sidecar_broker::down",
            "The broker unreachable for 1.5 s: publishes fail or succeed honestly, nothing acknowledged is lost",
            [Need::OneOf(DURABLE)],
            Fault::ProxyDown(Hop::SidecarToBroker)
        ),
        // Processes.
        chaos!(
            "chaos::process::kill_sidecar",
            "The sidecar SIGKILLed under load and restarted: every acknowledged publish is delivered",
            [
                Need::OneOf(DURABLE),
                Need::Promise(Promise::SurvivesSidecarCrash)
            ],
            Fault::Kill(Proc::Sidecar)
        ),
        chaos!(
            "chaos::process::kill_app",
            "The app killed under load and restarted: deliveries are retried until it is back",
            [Need::OneOf(&[Broker::InMemory, Broker::Redis])],
            Fault::Kill(Proc::App)
        ),
        chaos!(
            "chaos::process::kill_broker",
            "The broker SIGKILLed under load and restarted (its log on disk): every acknowledged publish is delivered",
            [
                Need::OneOf(DURABLE),
                Need::PrivateBroker,
                Need::Promise(Promise::SurvivesBrokerRestart)
            ],
            Fault::Kill(Proc::Broker)
        ),
        chaos!(
            "chaos::process::pause_sidecar",
            "The sidecar SIGSTOPped for 1.5 s under load: every acknowledged publish is delivered",
            [Need::OneOf(&[Broker::InMemory, Broker::Redis])],
            Fault::Pause(Proc::Sidecar)
        ),
        chaos!(
            "chaos::process::pause_broker",
            "The broker SIGSTOPped for 1.5 s under load: every acknowledged publish is delivered",
            [Need::OneOf(DURABLE), Need::PrivateBroker],
            Fault::Pause(Proc::Broker)
        ),
    ]
}

/// Brings up the chaos scenario for `fault` and runs the experiment.
async fn one_fault(t: &mut Trial, fault: Fault) -> Result<(), Problem> {
    let hops = hops_of([&fault]);
    t.start(scenario(t.env().broker, &hops)).await?;
    let e = Experiment {
        rate: 40,
        keys: 4,
        before: Duration::from_secs(1),
        after: Duration::from_secs(1),
        drain: Duration::from_secs(20),
        windows: vec![Window {
            start: Duration::from_secs(1),
            stop: Duration::from_millis(2_500),
            fault,
        }],
    };
    run(t, &e).await
}

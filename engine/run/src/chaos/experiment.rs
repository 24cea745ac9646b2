//! One chaos experiment on a [`Trial`]: steady load, faults applied and healed on a
//! schedule, the backlog drained, the history judged.
//!
//! Shared by the `chaos` profile's checks (one fault each) and `pubsub-tck chaos` (a seeded
//! schedule). The judgement is the at-least-once checker (nothing acknowledged may be lost,
//! nothing unpublished may arrive), per-key order where the broker promises it, and, as
//! observations, the duplicate rate and every fault window's metrics.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::fault::{Fault, Hop};
use harness_checkers::{delivery, faults, ordering};
use harness_history::{History, MessageId, Phase};

use crate::broker::{Broker, Promise};
use crate::chaos::load::{Load, LoadConfig};
use crate::chaos::nemesis::Window;
use crate::problem::{Problem, verdict};
use crate::trial::{PUBSUB, Scenario, Trial};

/// The topic and route of chaos trials.
pub const TOPIC: &str = "chaos";
/// The app route chaos deliveries arrive on.
pub const ROUTE: &str = "/chaos";

/// How a chaos experiment runs.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Messages per second.
    pub rate: u32,
    /// Ordering keys.
    pub keys: u32,
    /// Load before the first fault.
    pub before: Duration,
    /// Load after the last heal, before the load stops.
    pub after: Duration,
    /// How long to wait for the backlog once the load stopped.
    pub drain: Duration,
    /// The faults, with offsets from the start of the load.
    pub windows: Vec<Window>,
}

/// The scenario every chaos experiment runs: one subscription, unlimited inbound retries (so
/// a delivery that fails because of a fault is retried rather than dropped: §5.6), short
/// broker-side back-off, and proxies on every hop the faults use.
pub fn scenario(broker: Broker, hops: &[Hop]) -> Scenario {
    let mut s = Scenario::new()
        .subscribe(TOPIC, ROUTE)
        .retry_constant("100ms", -1)
        .through_proxies(hops);
    if broker == Broker::Kafka {
        s = s.component_metadata("backOffDuration", "100ms");
    }
    s
}

/// The hops a fault list needs proxies on.
pub fn hops_of<'a>(faults: impl IntoIterator<Item = &'a Fault>) -> Vec<Hop> {
    let set: BTreeSet<Hop> = faults.into_iter().filter_map(Fault::hop).collect();
    set.into_iter().collect()
}

/// Runs `e` on a started trial and judges it.
pub async fn run(t: &mut Trial, e: &Experiment) -> Result<(), Problem> {
    if let Some(proxy) = t.fault_proxy() {
        t.observe(format!("faults injected through {proxy}"));
    }
    let config = LoadConfig {
        pubsub: PUBSUB.to_owned(),
        topic: TOPIC.to_owned(),
        rate: e.rate,
        keys: e.keys,
        id_prefix: "c-".to_owned(),
        trial: t.nonce().to_owned(),
        request_timeout: Duration::from_secs(2),
    };
    let began = Instant::now();
    let mut load = Load::start(t.load_client()?, config, t.started());
    let result = drive(t, &mut load, e, began).await;
    t.absorb(load.stop().await);
    result?;
    drain(t, e.drain).await;
    judge(t, &e.windows)
}

/// Applies every window at its offset and heals it at its stop, then lets the load run on.
async fn drive(
    t: &mut Trial,
    load: &mut Load,
    e: &Experiment,
    began: Instant,
) -> Result<(), Problem> {
    let mut end = e.before;
    for w in &e.windows {
        // A fault's start and stop are points of the experiment's plan, not synchronisation:
        // nothing here waits for the system to reach a state.
        tokio::time::sleep_until((began + e.before.max(w.start)).into()).await;
        t.inject(&w.fault).await?;
        tokio::time::sleep_until((began + e.before.max(w.stop)).into()).await;
        t.inject(&w.fault.inverse()).await?;
        end = e.before.max(w.stop);
    }
    tokio::time::sleep_until((began + end + e.after).into()).await;
    if load.invoked() == 0 {
        return Err(Problem::Setup("the load published nothing".into()));
    }
    Ok(())
}

/// Waits until every acknowledged publish has been delivered, or `deadline` passes (the
/// judgement then names what is missing).
async fn drain(t: &Trial, deadline: Duration) {
    let until = Instant::now() + deadline;
    loop {
        let h = t.history();
        if missing(&h).is_empty() {
            return;
        }
        let seen = h.deliveries_on(ROUTE).count();
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero()
            || t.app()
                .wait_deliveries(Some(ROUTE), seen + 1, left)
                .await
                .is_err()
        {
            return;
        }
    }
}

/// Acknowledged publishes not delivered on [`ROUTE`].
fn missing(h: &History) -> Vec<MessageId> {
    let delivered: BTreeSet<&MessageId> = h
        .deliveries_on(ROUTE)
        .filter_map(|(_, d)| d.msg.as_ref())
        .collect();
    let acked: BTreeSet<&MessageId> = h
        .publishes()
        .filter(|(_, p)| p.phase == Phase::Ok)
        .map(|(_, p)| &p.msg)
        .collect();
    acked
        .into_iter()
        .filter(|m| !delivered.contains(m))
        .cloned()
        .collect()
}

/// One line per fault window, for observations and evidence.
pub fn describe_window(m: &faults::WindowMetrics) -> String {
    let w = &m.window;
    let ms = |us: u64| format!("{:.0} ms", us as f64 / 1000.0);
    let span = match w.stop {
        Some(stop) => format!("{}–{}", ms(w.start), ms(stop)),
        None => format!("from {} (never healed)", ms(w.start)),
    };
    let opt = |v: Option<u64>, none: &str| v.map_or_else(|| none.to_owned(), ms);
    format!(
        "{} on {} at {span}: {} acknowledged and {} failed/unknown publishes during it; backlog {} drained in {}; recovered in {}; {} of {} delivered more than once ({:.1}%), max redelivery gap {}; {} lost",
        w.kind,
        w.detail.as_deref().unwrap_or("-"),
        m.acknowledged,
        m.failed_publishes,
        m.backlog,
        opt(m.backlog_drain, "never"),
        opt(m.time_to_recover, "never"),
        m.duplicated,
        m.delivered_after,
        100.0 * m.duplicate_rate(),
        opt(m.max_redelivery_delay, "-"),
        m.lost.len(),
    )
}

/// At-least-once (MUST), order where promised, and the metrics as observations.
fn judge(t: &mut Trial, windows: &[Window]) -> Result<(), Problem> {
    let h = t.history();
    let routes = vec![ROUTE.to_owned()];
    let report = delivery::check(
        &h,
        &delivery::DeliveryExpect {
            routes: routes.clone(),
        },
    );
    let metrics = faults::window_metrics(&h, &routes);
    t.observe(format!(
        "{} acknowledged, {} delivered, {} lost, {} delivered more than once ({:.2}%), {} with unknown publish outcome delivered",
        report.acknowledged,
        report.delivered,
        report.lost.len(),
        report.duplicated.len(),
        100.0 * report.duplicate_rate,
        report.recovered.len()
    ));
    for m in &metrics {
        t.observe(describe_window(m));
    }
    if let Err(Problem::Fail {
        summary,
        mut evidence,
    }) = verdict(report.verdict())
    {
        // Name the fault windows first: the reader wants to know what was going on.
        let mut lines: Vec<String> = metrics.iter().map(describe_window).collect();
        lines.append(&mut evidence);
        return Err(Problem::fail(summary, lines));
    }
    let first = ordering::per_key(&h, ROUTE);
    let done = ordering::per_key_completed(&h, ROUTE);
    // Per-key publish order is only defined when every publish got an answer in time: a
    // timed-out publish may still be stored after its successor (app→sidecar faults).
    let publishes_clean = h
        .publishes()
        .all(|(_, p)| matches!(p.phase, Phase::Invoke | Phase::Ok));
    let promised = t.env().keeps(Promise::FifoPerPartitionKey)
        && !windows
            .iter()
            .any(|w| w.fault.hop() == Some(Hop::AppToSidecar));
    t.observe(first.describe());
    t.observe(done.describe());
    if promised && publishes_clean {
        verdict(first.verdict())?;
        verdict(done.verdict())
    } else {
        Ok(())
    }
}

//! `pubsub-tck chaos`: a long run under a seeded nemesis, for nightly jobs.
//!
//! Owns choosing what the nemesis may do on this target and broker, running the experiment as
//! one trial (`chaos::nemesis`), and the report sections: the fault windows with their
//! metrics and the timeline SVG. The run's verdict is the experiment's (at-least-once, order
//! where promised); the windows and the timeline say where things went wrong.

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::fault::{FaultKind, Hop, Proc};
use harness_checkers::faults;
use harness_history::History;
use harness_report::event::{RunEvent, RunEvents, emit};
use harness_report::{CheckResult, Level, Section};

use crate::broker::{Broker, Promise};
use crate::chaos::experiment::{Experiment, ROUTE, describe_window, hops_of, run, scenario};
use crate::chaos::nemesis::{self, NemesisConfig, Window};
use crate::env::RunEnv;
use crate::runner::Heading;
use crate::trial::Trial;

/// The check id of a nightly chaos run.
pub const ID: &str = "chaos::nemesis";

/// What to run.
#[derive(Debug, Clone)]
pub struct NightlyConfig {
    /// Length of the load (faults included); the backlog drain comes on top.
    pub duration: Duration,
    /// Fault kinds the nemesis may use.
    pub faults: Vec<FaultKind>,
    /// Publishes per second.
    pub rate: u32,
    /// Ordering keys.
    pub keys: u32,
}

/// What a nightly run produced.
#[derive(Debug)]
pub struct NightlyOutcome {
    /// The verdict, with observations.
    pub result: CheckResult,
    /// The schedule the seed gave.
    pub schedule: Vec<Window>,
    /// The trial's history (`histories/<name>` in the run directory).
    pub history: History,
    /// The timeline SVG.
    pub timeline_svg: String,
    /// The report section with the windows table and the timeline.
    pub section: Section,
}

/// What the nemesis can act on for this broker (and whether the trial has a private broker).
pub fn nemesis_config(env: &RunEnv, config: &NightlyConfig) -> NemesisConfig {
    let broker = env.broker;
    let mut hops = vec![Hop::SidecarToApp, Hop::AppToSidecar];
    if broker != Broker::InMemory
        && !(broker == Broker::Kafka && env.broker_sources.kafka.is_some())
    {
        hops.insert(0, Hop::SidecarToBroker);
    }
    let mut procs = vec![Proc::App];
    if !env.target.is_attach() {
        procs.push(Proc::Sidecar);
    }
    let private_broker = broker != Broker::InMemory && env.external_broker().is_none();
    if private_broker {
        procs.push(Proc::Broker);
    }
    // Kinds whose loss a broker does not promise to survive are left out, rather than
    // reported as losses the contract allows.
    let kinds = config
        .faults
        .iter()
        .copied()
        .filter(|k| match k {
            FaultKind::Kill(Proc::Sidecar) => env.keeps(Promise::SurvivesSidecarCrash),
            FaultKind::Kill(Proc::Broker) => env.keeps(Promise::SurvivesBrokerRestart),
            FaultKind::Pause(Proc::App) => false,
            _ => true,
        })
        .collect();
    NemesisConfig {
        duration: config.duration,
        kinds,
        hops,
        procs,
    }
}

/// Fault kinds asked for that this run cannot use, each with the reason.
pub fn unusable(env: &RunEnv, config: &NightlyConfig) -> Vec<(FaultKind, String)> {
    let usable = nemesis::applicable(&nemesis_config(env, config));
    config
        .faults
        .iter()
        .filter(|k| !usable.contains(k))
        .map(|&k| {
            let why = match k {
                FaultKind::Kill(Proc::Sidecar) => format!(
                    "broker `{}` does not promise to survive a sidecar crash",
                    env.broker
                ),
                FaultKind::Kill(Proc::Broker) if env.external_broker().is_none() => {
                    format!(
                        "broker `{}` does not promise to survive a restart",
                        env.broker
                    )
                }
                FaultKind::Pause(Proc::App) => {
                    "the test app runs inside the harness and cannot be paused".to_owned()
                }
                FaultKind::Kill(Proc::Broker) | FaultKind::Pause(Proc::Broker) => format!(
                    "broker `{}` has no private process (in-memory, external or a container)",
                    env.broker
                ),
                _ => "no proxy can be placed for it".to_owned(),
            };
            (k, why)
        })
        .collect()
}

/// Runs the nightly experiment with `seed`, as one stage of `events` counted in seconds of
/// load (then the drain and the judgement).
pub async fn run_nightly(
    env: Arc<RunEnv>,
    config: &NightlyConfig,
    seed: u64,
    events: &RunEvents,
) -> NightlyOutcome {
    let started = Instant::now();
    let stage = "load and faults".to_owned();
    emit(
        events,
        RunEvent::Stage {
            label: stage.clone(),
            total: config.duration.as_secs().max(1),
            unit: "s",
        },
    );
    let ticker = {
        let events = events.clone();
        let total = config.duration;
        tokio::spawn(async move {
            // Display only: the progress follows the clock, nothing waits on it.
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut draining = false;
            loop {
                tick.tick().await;
                let e = started.elapsed();
                let current = (e > total && !draining).then(|| {
                    draining = true;
                    "draining the backlog and judging".to_owned()
                });
                emit(
                    &events,
                    RunEvent::Progress {
                        done: e.as_secs().min(total.as_secs()),
                        current,
                    },
                );
            }
        })
    };
    let outcome = experiment_with_seed(env, config, seed, started).await;
    ticker.abort();
    emit(
        events,
        RunEvent::StageFinished {
            label: stage,
            summary: None,
        },
    );
    outcome
}

/// The experiment itself: bring-up, load under the seeded nemesis, drain, judgement, report.
async fn experiment_with_seed(
    env: Arc<RunEnv>,
    config: &NightlyConfig,
    seed: u64,
    started: Instant,
) -> NightlyOutcome {
    let nemesis = nemesis_config(&env, config);
    let schedule = nemesis::schedule(seed, &nemesis);
    let mut result = Heading {
        id: ID,
        title: format!(
            "{} s of load at {} msg/s under a seeded nemesis ({} fault windows): nothing acknowledged is lost",
            config.duration.as_secs(),
            config.rate,
            schedule.len()
        ),
        level: Level::Must,
        clause: "Dapr pub/sub at-least-once delivery under network and process faults (spec notes §5.6, §7, §8)",
        clause_url: Some(
            "https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-overview/",
        ),
        profile: "chaos",
    }
    .result(&env, seed);
    let mut trial = Trial::new(env.clone(), ID, seed);
    let last_stop = schedule.last().map_or(Duration::ZERO, |w| w.stop);
    let experiment = Experiment {
        rate: config.rate,
        keys: config.keys,
        before: Duration::ZERO,
        after: config.duration.saturating_sub(last_stop),
        drain: Duration::from_secs(60),
        windows: schedule.clone(),
    };
    let hops = hops_of(schedule.iter().map(|w| &w.fault));
    let outcome = match trial.start(scenario(env.broker, &hops)).await {
        Ok(()) => run(&mut trial, &experiment).await,
        Err(p) => Err(p),
    };
    let history = trial.history();
    result.observations = trial.observations().to_vec();
    trial.finish(false).await;
    if let Err(p) = outcome {
        crate::runner::record_problem(&mut result, p);
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    let routes = vec![ROUTE.to_owned()];
    let timeline = faults::timeline(&history, &routes, 250_000);
    let title = format!(
        "chaos on {} / {}, seed {seed}: rates and end-to-end latency, fault windows shaded",
        env.target.name(),
        env.broker
    );
    let timeline_svg = harness_report::timeline::render(&timeline, &title);
    let metrics = faults::window_metrics(&history, &routes);
    let section = section(&metrics, &timeline_svg, seed);
    NightlyOutcome {
        result,
        schedule,
        history,
        timeline_svg,
        section,
    }
}

/// The windows table and the timeline, for `summary.md` and `report.html`.
fn section(metrics: &[faults::WindowMetrics], svg: &str, seed: u64) -> Section {
    let ms = |us: u64| format!("{:.0}", us as f64 / 1000.0);
    let opt = |v: Option<u64>| v.map_or_else(|| "never".to_owned(), ms);
    let mut md = format!(
        "Replay the schedule: `pubsub-tck chaos --seed {seed}` with the same `--duration`, `--faults` and `--broker`.\n\n![timeline](timeline.svg)\n\n\
         | # | fault | on | start ms | stop ms | acked in it | failed/unknown | backlog | drained after ms | recovered after ms | duplicates | max redelivery gap ms | lost |\n\
         |---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let mut rows = String::new();
    for (i, m) in metrics.iter().enumerate() {
        let w = &m.window;
        let cells = [
            (i + 1).to_string(),
            w.kind.clone(),
            w.detail.clone().unwrap_or_default(),
            ms(w.start),
            w.stop.map_or_else(|| "-".to_owned(), ms),
            m.acknowledged.to_string(),
            m.failed_publishes.to_string(),
            m.backlog.to_string(),
            opt(m.backlog_drain),
            opt(m.time_to_recover),
            format!("{} ({:.1}%)", m.duplicated, 100.0 * m.duplicate_rate()),
            m.max_redelivery_delay.map_or_else(|| "-".to_owned(), ms),
            m.lost.len().to_string(),
        ];
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
        rows.push_str("<tr>");
        for c in &cells {
            rows.push_str(&format!("<td>{}</td>", harness_report::text::xml(c)));
        }
        rows.push_str("</tr>");
    }
    if metrics.is_empty() {
        md.push_str("| | no fault window | | | | | | | | | | | |\n");
    }
    let details: Vec<String> = metrics.iter().map(describe_window).collect();
    let html = format!(
        "<p>Replay the schedule: <code>pubsub-tck chaos --seed {seed}</code> with the same <code>--duration</code>, <code>--faults</code> and <code>--broker</code>.</p>{svg}\
         <table><thead><tr><th>#</th><th>fault</th><th>on</th><th>start ms</th><th>stop ms</th><th>acked in it</th><th>failed/unknown</th><th>backlog</th><th>drained after ms</th><th>recovered after ms</th><th>duplicates</th><th>max redelivery gap ms</th><th>lost</th></tr></thead><tbody>{rows}</tbody></table>\
         <details><summary>window details</summary><pre>{}</pre></details>",
        harness_report::text::xml(&details.join("\n"))
    );
    Section {
        title: "Fault windows".to_owned(),
        markdown: md,
        html,
    }
}

//! `results.json`: the serialized bench report.
//!
//! Times are milliseconds (floats), rates are messages per second, memory is MB (10^6 bytes).
//! `format_version` changes whenever a field changes meaning or disappears; added optional
//! fields keep it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The current `format_version`.
pub const FORMAT_VERSION: u32 = 1;

/// One bench run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// `<UTC time>-<seed>`, also the directory name.
    pub run_id: String,
    /// The `pubsub-tck` version that wrote it.
    pub tool_version: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// The target's name.
    pub target: String,
    /// The target file.
    pub target_file: Option<String>,
    /// The broker behind the component.
    pub broker: String,
    /// `http` or `grpc`.
    pub protocol: String,
    /// The run's parameters.
    pub params: Params,
    /// The machine it ran on.
    pub machine: Machine,
    /// One entry per measured rate, with its baselines.
    pub rates: Vec<RateResult>,
    /// The maximum-rate search, when asked for.
    pub search: Option<SearchReport>,
    /// The other targets of the run, after the first (`target`): their names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_targets: Vec<String>,
    /// The maximum-rate search of each other target, in the order of `other_targets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_searches: Vec<TargetSearch>,
    /// Why the run failed (empty: it passed).
    pub failures: Vec<String>,
    /// Things worth knowing that are not failures (an unavailable baseline, a lossy baseline).
    pub notes: Vec<String>,
    /// Wall-clock duration of the whole run.
    pub duration_ms: u64,
}

impl BenchReport {
    /// 0 when the run passed, 1 when it showed failures.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.failures.is_empty())
    }
}

/// What the run was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Rates asked for (msg/s).
    pub rates: Vec<f64>,
    /// Measured duration per rate.
    pub duration_ms: u64,
    /// Warm-up per phase.
    pub warmup_ms: u64,
    /// Bytes per payload.
    pub payload_size: usize,
    /// Publishers.
    pub publishers: usize,
    /// Connections (in-flight requests) per publisher.
    pub connections: usize,
    /// Drain window after the last answer.
    pub drain_ms: u64,
    /// Request timeout.
    pub request_timeout_ms: u64,
    /// The error-rate threshold (fraction) above which a rate fails.
    pub max_error_rate: f64,
    /// Interleaved rounds per measured duration (0 in reports that predate rounds).
    #[serde(default)]
    pub rounds: usize,
    /// Worker threads of the load generator's and app's runtime (0 in reports that predate it).
    #[serde(default)]
    pub threads: usize,
}

/// The machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical cores available to this process.
    pub cores: usize,
    /// `std::env::consts::OS`.
    pub os: String,
    /// `std::env::consts::ARCH`.
    pub arch: String,
    /// The CPU model from `/proc/cpuinfo`, when readable.
    pub cpu_model: Option<String>,
}

/// One rate: the sidecar measurement, its baselines and the overhead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateResult {
    /// The rate asked for.
    pub rate: f64,
    /// Through the sidecar.
    pub sidecar: PhaseResult,
    /// No-op HTTP round trip on loopback.
    pub noop: Option<PhaseResult>,
    /// Direct to the broker, without a sidecar.
    pub direct: Baseline,
    /// Sidecar minus baselines.
    pub overhead: Overhead,
    /// The other targets at this rate, measured in rounds interleaved with the first's and the
    /// baselines', in the order of [`BenchReport::other_targets`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<TargetResult>,
}

/// Another target at one rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetResult {
    /// The target's name.
    pub target: String,
    /// Through its sidecar.
    pub sidecar: PhaseResult,
    /// Its overhead over the same baselines.
    pub overhead: Overhead,
    /// Its figures divided by the first target's (below 1: it did better).
    pub vs_first: Ratios,
}

/// One target's figures divided by another's, each `None` when either side lacks it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// Publish latency p50, p90, p99 and p99.9.
    pub publish: [Option<f64>; 4],
    /// End-to-end latency p50, p90, p99 and p99.9.
    pub e2e: [Option<f64>; 4],
    /// CPU per accepted message (mean mCPU over the achieved rate).
    pub cpu_per_msg: Option<f64>,
    /// Largest resident set size.
    pub rss: Option<f64>,
}

impl Ratios {
    /// `other`'s figures divided by `first`'s.
    pub fn between(other: &PhaseResult, first: &PhaseResult) -> Ratios {
        let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
            _ => None,
        };
        let quantiles = |a: Option<LatencySummary>, b: Option<LatencySummary>| {
            let pick = |s: LatencySummary| [s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms];
            let (a, b) = (a.map(pick), b.map(pick));
            std::array::from_fn(|i| div(a.map(|a| a[i]), b.map(|b| b[i])))
        };
        let cpu_per_msg = |r: &PhaseResult| {
            r.resources
                .filter(|_| r.achieved_rate > 0.0)
                .map(|x| x.mcpu_mean / r.achieved_rate)
        };
        Ratios {
            publish: quantiles(other.publish, first.publish),
            e2e: quantiles(other.e2e, first.e2e),
            cpu_per_msg: div(cpu_per_msg(other), cpu_per_msg(first)),
            rss: div(
                other.resources.map(|x| x.rss_mb_max),
                first.resources.map(|x| x.rss_mb_max),
            ),
        }
    }
}

/// The maximum-rate search of one more target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSearch {
    /// The target's name.
    pub target: String,
    /// Its search.
    pub search: SearchReport,
}

/// A baseline that ran, or why it did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Baseline {
    /// It ran.
    Measured {
        /// What it measured (`tokio channel`, `XADD + XREADGROUP`, ...).
        method: String,
        /// The measurement.
        result: Box<PhaseResult>,
    },
    /// It could not run here.
    Unavailable {
        /// Why.
        reason: String,
    },
    /// Not asked for.
    Skipped,
}

impl Baseline {
    /// The measurement, if it ran.
    pub fn result(&self) -> Option<&PhaseResult> {
        match self {
            Baseline::Measured { result, .. } => Some(&**result),
            _ => None,
        }
    }
}

/// Differences (ms) and ratios between the sidecar and its baselines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// Sidecar publish p50 minus no-op p50.
    pub publish_p50_ms: Option<f64>,
    /// Sidecar publish p99 minus no-op p99.
    pub publish_p99_ms: Option<f64>,
    /// Sidecar publish p50 divided by no-op p50.
    pub publish_p50_ratio: Option<f64>,
    /// Sidecar publish p99 divided by no-op p99.
    pub publish_p99_ratio: Option<f64>,
    /// Sidecar end-to-end p50 minus direct-broker end-to-end p50.
    pub e2e_p50_ms: Option<f64>,
    /// Sidecar end-to-end p99 minus direct-broker end-to-end p99.
    pub e2e_p99_ms: Option<f64>,
    /// Sidecar end-to-end p50 divided by direct-broker end-to-end p50.
    pub e2e_p50_ratio: Option<f64>,
    /// Sidecar end-to-end p99 divided by direct-broker end-to-end p99.
    pub e2e_p99_ratio: Option<f64>,
}

/// One measured phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    /// The rate asked for.
    pub rate: f64,
    /// Measured (scheduled) duration.
    pub duration_ms: u64,
    /// Messages scheduled.
    pub sent: u64,
    /// Publishes accepted.
    pub ok: u64,
    /// Failed publishes by kind (`http 500`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Failed publishes / sent.
    pub error_rate: f64,
    /// Accepted publishes per second over the window (the schedule's span, or until the last
    /// answer when that came later).
    pub achieved_rate: f64,
    /// Deliveries per second over the window (to the last delivery).
    pub received_rate: Option<f64>,
    /// Accepted but not received by the end of the drain window (not latency samples).
    pub lost: Option<u64>,
    /// Messages received more than once.
    pub duplicates: Option<u64>,
    /// Deliveries that were not messages of this phase.
    pub unexpected: Option<u64>,
    /// Intended send → accepted.
    pub publish: Option<LatencySummary>,
    /// Intended send → received by the app.
    pub e2e: Option<LatencySummary>,
    /// Intended send → actually sent (how far the generator fell behind).
    pub send_delay: Option<LatencySummary>,
    /// Publish latency at fixed quantiles, for the spectrum plot.
    pub publish_spectrum: Vec<SpectrumPoint>,
    /// End-to-end latency at fixed quantiles.
    pub e2e_spectrum: Vec<SpectrumPoint>,
    /// Per time bucket: throughput and latency.
    pub timeline: Vec<TimelineBucket>,
    /// The sidecar's CPU and memory during the window.
    pub resources: Option<Resources>,
}

/// Percentiles of one latency distribution, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// 50th percentile.
    pub p50_ms: f64,
    /// 90th.
    pub p90_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// 99.9th.
    pub p999_ms: f64,
    /// 99.99th.
    pub p9999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// The latency at quantile `q`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// The quantile, in [0, 1].
    pub q: f64,
    /// The latency at it.
    pub ms: f64,
}

/// One time bucket of a phase (by intended send time for latency, by event time for rates).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimelineBucket {
    /// Bucket start, seconds since `t0`.
    pub t_s: f64,
    /// Accepted publishes per second answered in the bucket.
    pub published_per_s: f64,
    /// Deliveries per second in the bucket.
    pub received_per_s: f64,
    /// Publish p50 of messages intended in the bucket.
    pub publish_p50_ms: Option<f64>,
    /// Publish p99.
    pub publish_p99_ms: Option<f64>,
    /// Publish max.
    pub publish_max_ms: Option<f64>,
    /// End-to-end p50.
    pub e2e_p50_ms: Option<f64>,
    /// End-to-end p99.
    pub e2e_p99_ms: Option<f64>,
}

/// The sidecar's resources, sampled from `/proc` during the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU over the whole window, in thousandths of a core.
    pub mcpu_mean: f64,
    /// The busiest sampling interval.
    pub mcpu_max: f64,
    /// Mean resident set size.
    pub rss_mb_mean: f64,
    /// Largest resident set size.
    pub rss_mb_max: f64,
    /// Samples taken.
    pub samples: usize,
}

/// The maximum-rate search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The p99 bound.
    pub p99_bound_ms: f64,
    /// Measured duration per step.
    pub step_duration_ms: u64,
    /// Every step, in order.
    pub steps: Vec<SearchStep>,
    /// The highest rate that passed (none passed: `None`).
    pub max_rate: Option<f64>,
}

/// One step of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    /// The rate tried.
    pub rate: f64,
    /// Whether it passed.
    pub passed: bool,
    /// Why (the numbers that decided).
    pub reason: String,
    /// The measurement.
    pub result: PhaseResult,
}

/// Parses `results.json`.
pub fn parse(text: &str) -> Result<BenchReport, serde_json::Error> {
    serde_json::from_str(text)
}

/// Renders `results.json`.
pub fn render(report: &BenchReport) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        // Every field is a plain number, string, map with string keys or list: serialization
        // cannot fail, but a report must never panic.
        format!("{{\"format_version\":{FORMAT_VERSION},\"error\":\"{e}\"}}")
    });
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::test_support::phase;

    #[test]
    fn ratios_divide_the_other_target_by_the_first() {
        let mut first = phase(1.0, true);
        let mut other = first.clone();
        if let (Some(a), Some(b)) = (other.publish.as_mut(), first.publish.as_mut()) {
            a.p50_ms = 3.0;
            b.p50_ms = 1.5;
            a.p999_ms = 1.0;
            b.p999_ms = 0.0;
        }
        first.resources = Some(Resources {
            mcpu_mean: 200.0,
            mcpu_max: 300.0,
            rss_mb_mean: 10.0,
            rss_mb_max: 20.0,
            samples: 5,
        });
        other.resources = Some(Resources {
            mcpu_mean: 600.0,
            rss_mb_max: 50.0,
            ..first.resources.unwrap()
        });
        other.achieved_rate = 1000.0;
        first.achieved_rate = 500.0;
        let r = Ratios::between(&other, &first);
        assert_eq!(r.publish[0], Some(2.0));
        // A zero on the first target's side has no ratio.
        assert_eq!(r.publish[3], None);
        // 0.6 mCPU per message against 0.4.
        assert!((r.cpu_per_msg.unwrap() - 1.5).abs() < 1e-9, "{r:?}");
        assert_eq!(r.rss, Some(2.5));
        other.e2e = None;
        assert_eq!(Ratios::between(&other, &first).e2e, [None; 4]);
    }
}

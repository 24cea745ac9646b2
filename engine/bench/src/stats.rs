//! Statistics of a phase: HDR histograms of publish, end-to-end and send-delay latency,
//! throughput, errors, losses and a timeline, computed from a [`PhaseData`] snapshot.
//!
//! Pure: no clock, no IO. Latency samples count from the intended send time
//! ([`crate::schedule::latency_nanos`]); a failed publish is an error, not a latency sample,
//! and a message never received is lost, not a latency sample.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::record::{Outcome, PhaseData};
use crate::schedule::{Schedule, latency_nanos};
use harness_report::bench::model::{
    LatencySummary, Overhead, PhaseResult, Resources, SpectrumPoint, TimelineBucket,
};

/// The quantiles of the spectrum plot (and of `results.json`'s spectra).
pub const SPECTRUM_QUANTILES: &[f64] = &[
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 1.0,
];

/// Histograms hold 1 ns .. 10 min with 3 significant digits; larger samples saturate.
#[expect(
    clippy::expect_used,
    reason = "constant bounds that hdrhistogram accepts; a unit test builds one"
)]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3)
        .expect("invariant: the bounds 1..600e9 with 3 significant digits are valid")
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// A latency histogram of nanosecond samples.
#[derive(Debug, Clone)]
pub struct Latencies {
    h: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

impl Latencies {
    /// Empty.
    pub fn new() -> Latencies {
        Latencies { h: histogram() }
    }

    /// Adds one sample (0 counts as 1 ns).
    pub fn record(&mut self, nanos: u64) {
        self.h.saturating_record(nanos.max(1));
    }

    /// Samples so far.
    pub fn len(&self) -> u64 {
        self.h.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// The percentiles, or `None` without samples.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.h.is_empty() {
            return None;
        }
        let q = |q: f64| ms(self.h.value_at_quantile(q));
        Some(LatencySummary {
            count: self.h.len(),
            min_ms: ms(self.h.min()),
            mean_ms: self.h.mean() / 1e6,
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            p9999_ms: q(0.9999),
            max_ms: ms(self.h.max()),
        })
    }

    /// The latency at each of [`SPECTRUM_QUANTILES`] (empty without samples).
    pub fn spectrum(&self) -> Vec<SpectrumPoint> {
        if self.h.is_empty() {
            return Vec::new();
        }
        SPECTRUM_QUANTILES
            .iter()
            .map(|&q| SpectrumPoint {
                q,
                ms: if q >= 1.0 {
                    ms(self.h.max())
                } else {
                    ms(self.h.value_at_quantile(q))
                },
            })
            .collect()
    }
}

/// Whether the phase had a subscriber whose receives count (false for the no-op baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Messages are delivered: report end-to-end latency, losses and duplicates.
    Expected,
    /// Publish only.
    None,
}

/// The width of the timeline's buckets: about 40 buckets, between 100 ms and 1 s.
pub fn bucket_width(duration: Duration) -> Duration {
    (duration / 40).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Everything [`PhaseResult`] says about a phase, except its resources.
pub fn analyze(
    data: &PhaseData,
    schedule: &Schedule,
    duration: Duration,
    delivery: Delivery,
) -> PhaseResult {
    let n = data.outcome.len();
    let mut publish = Latencies::new();
    let mut e2e = Latencies::new();
    let mut delay = Latencies::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok = 0u64;
    let mut lost = 0u64;
    let mut duplicates = 0u64;
    let mut last_answer = 0u64;
    let mut last_receive = 0u64;
    let mut received = 0u64;

    let width = bucket_width(duration).as_nanos().max(1) as u64;
    let span = schedule.span().as_nanos() as u64;
    let buckets = (span.div_ceil(width)).max(1) as usize;
    let mut tl_publish: Vec<Latencies> = vec![Latencies::new(); buckets];
    let mut tl_e2e: Vec<Latencies> = vec![Latencies::new(); buckets];
    let mut tl_published = vec![0u64; buckets];
    let mut tl_received = vec![0u64; buckets];
    let bucket_of = |t: u64| ((t / width) as usize).min(buckets - 1);

    for i in 0..n {
        let intended = schedule.intended_nanos(i as u64);
        let b = bucket_of(intended);
        if let Some(issued) = data.issued.get(i).copied().flatten() {
            delay.record(latency_nanos(intended, issued));
        }
        let answered = data.answered.get(i).copied().flatten();
        match data.outcome.get(i).copied().unwrap_or(Outcome::Pending) {
            Outcome::Ok => {
                ok += 1;
                if let Some(at) = answered {
                    let l = latency_nanos(intended, at);
                    publish.record(l);
                    tl_publish[b].record(l);
                    tl_published[bucket_of(at)] += 1;
                    last_answer = last_answer.max(at);
                }
            }
            other => {
                *errors.entry(other.label()).or_default() += 1;
                if let Some(at) = answered {
                    last_answer = last_answer.max(at);
                }
            }
        }
        if delivery == Delivery::Expected {
            let count = data.receive_count.get(i).copied().unwrap_or(0);
            match data.received.get(i).copied().flatten() {
                Some(at) => {
                    received += 1;
                    let l = latency_nanos(intended, at);
                    e2e.record(l);
                    tl_e2e[b].record(l);
                    tl_received[bucket_of(at)] += 1;
                    last_receive = last_receive.max(at);
                }
                None if data.outcome.get(i) == Some(&Outcome::Ok) => lost += 1,
                None => {}
            }
            if count > 1 {
                duplicates += 1;
            }
        }
    }

    let sent = n as u64;
    let failed = sent - ok;
    let window = |last: u64| (span.max(last) as f64 / 1e9).max(1e-9);
    let w_s = width as f64 / 1e9;
    let timeline = (0..buckets)
        .map(|b| {
            let p = tl_publish[b].summary();
            let e = tl_e2e[b].summary();
            TimelineBucket {
                t_s: b as f64 * w_s,
                published_per_s: tl_published[b] as f64 / w_s,
                received_per_s: tl_received[b] as f64 / w_s,
                publish_p50_ms: p.map(|s| s.p50_ms),
                publish_p99_ms: p.map(|s| s.p99_ms),
                publish_max_ms: p.map(|s| s.max_ms),
                e2e_p50_ms: e.map(|s| s.p50_ms),
                e2e_p99_ms: e.map(|s| s.p99_ms),
            }
        })
        .collect();
    let expected = delivery == Delivery::Expected;
    PhaseResult {
        rate: schedule.rate(),
        duration_ms: duration.as_millis() as u64,
        sent,
        ok,
        errors,
        error_rate: if sent == 0 {
            0.0
        } else {
            failed as f64 / sent as f64
        },
        achieved_rate: ok as f64 / window(last_answer),
        received_rate: expected.then(|| received as f64 / window(last_receive)),
        lost: expected.then_some(lost),
        duplicates: expected.then_some(duplicates),
        unexpected: expected.then_some(data.unexpected),
        publish: publish.summary(),
        e2e: if expected { e2e.summary() } else { None },
        send_delay: delay.summary(),
        publish_spectrum: publish.spectrum(),
        e2e_spectrum: if expected { e2e.spectrum() } else { Vec::new() },
        timeline,
        resources: None,
    }
}

/// Joins rounds of one kind of phase (same rate, same schedule) into one phase, as if they had
/// run back to back: round `k`'s times are shifted by `k` schedule spans, so message `i` of
/// round `k` becomes message `k × count + i` of one longer schedule with the same intended
/// times. Interleaving short rounds of the sidecar and its baselines exposes them to the same
/// background load; joining them afterwards gives one distribution per kind.
pub fn merge_rounds(rounds: &[PhaseData], schedule: &Schedule) -> (PhaseData, Schedule) {
    let span = schedule.span().as_nanos() as u64;
    let mut out = PhaseData::default();
    for (k, d) in rounds.iter().enumerate() {
        let shift = |t: &Option<u64>| t.map(|t| t + k as u64 * span);
        out.issued.extend(d.issued.iter().map(shift));
        out.answered.extend(d.answered.iter().map(shift));
        out.received.extend(d.received.iter().map(shift));
        out.outcome.extend_from_slice(&d.outcome);
        out.receive_count.extend_from_slice(&d.receive_count);
        out.unexpected += d.unexpected;
    }
    let merged = Schedule::with_count(schedule.rate(), out.outcome.len() as u64);
    (out, merged)
}

/// Resources of equal-length rounds: means of the means, maxima of the maxima.
pub fn merge_resources(rounds: &[Resources]) -> Option<Resources> {
    let n = rounds.len() as f64;
    (!rounds.is_empty()).then(|| Resources {
        mcpu_mean: rounds.iter().map(|r| r.mcpu_mean).sum::<f64>() / n,
        mcpu_max: rounds.iter().map(|r| r.mcpu_max).fold(0.0, f64::max),
        rss_mb_mean: rounds.iter().map(|r| r.rss_mb_mean).sum::<f64>() / n,
        rss_mb_max: rounds.iter().map(|r| r.rss_mb_max).fold(0.0, f64::max),
        samples: rounds.iter().map(|r| r.samples).sum(),
    })
}

/// The sidecar's overhead over its baselines.
pub fn overhead(
    sidecar: &PhaseResult,
    noop: Option<&PhaseResult>,
    direct: Option<&PhaseResult>,
) -> Overhead {
    let pair = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (Some(a - b), (b > 0.0).then(|| a / b)),
        _ => (None, None),
    };
    let sp = sidecar.publish;
    let np = noop.and_then(|r| r.publish);
    let se = sidecar.e2e;
    let de = direct.and_then(|r| r.e2e);
    let (publish_p50_ms, publish_p50_ratio) = pair(sp.map(|s| s.p50_ms), np.map(|s| s.p50_ms));
    let (publish_p99_ms, publish_p99_ratio) = pair(sp.map(|s| s.p99_ms), np.map(|s| s.p99_ms));
    let (e2e_p50_ms, e2e_p50_ratio) = pair(se.map(|s| s.p50_ms), de.map(|s| s.p50_ms));
    let (e2e_p99_ms, e2e_p99_ratio) = pair(se.map(|s| s.p99_ms), de.map(|s| s.p99_ms));
    Overhead {
        publish_p50_ms,
        publish_p99_ms,
        publish_p50_ratio,
        publish_p99_ratio,
        e2e_p50_ms,
        e2e_p99_ms,
        e2e_p50_ratio,
        e2e_p99_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// `n` messages at 1000/s, each answered `publish_ms` and received `e2e_ms` after its
    /// intended time.
    /// Asserts that `got` is within `within` of `want`.
    fn assert_near(got: f64, want: f64, within: f64) {
        assert!(
            (got - want).abs() < within,
            "{got}, expected {want} ± {within}"
        );
    }

    /// `data` analysed as a phase scheduled at `rate` per second for `secs` seconds.
    fn analyze_steady(data: &PhaseData, rate: f64, secs: u64, delivery: Delivery) -> PhaseResult {
        let duration = Duration::from_secs(secs);
        analyze(data, &Schedule::new(rate, duration), duration, delivery)
    }

    fn uniform(n: usize, publish_ms: u64, e2e_ms: u64) -> PhaseData {
        PhaseData {
            issued: (0..n).map(|i| Some(i as u64 * MS)).collect(),
            answered: (0..n)
                .map(|i| Some(i as u64 * MS + publish_ms * MS))
                .collect(),
            outcome: vec![Outcome::Ok; n],
            received: (0..n).map(|i| Some(i as u64 * MS + e2e_ms * MS)).collect(),
            receive_count: vec![1; n],
            unexpected: 0,
        }
    }

    #[test]
    fn summaries_are_ordered_and_exact_enough() {
        let mut l = Latencies::new();
        for v in 1..=10_000u64 {
            l.record(v * 1000);
        }
        let s = l.summary().unwrap();
        assert_eq!(s.count, 10_000);
        assert!((s.p50_ms - 5.0).abs() < 0.01, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() < 0.01, "{s:?}");
        assert!((s.max_ms - 10.0).abs() < 0.01, "{s:?}");
        let ordered = [
            s.min_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.p9999_ms, s.max_ms,
        ];
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
        let sp = l.spectrum();
        assert_eq!(sp.len(), SPECTRUM_QUANTILES.len());
        assert!(sp.windows(2).all(|w| w[0].ms <= w[1].ms));
        assert!(Latencies::new().summary().is_none());
        assert!(Latencies::new().spectrum().is_empty());
    }

    #[test]
    fn a_steady_phase_is_summarised() {
        let r = analyze_steady(&uniform(2000, 1, 3), 1000.0, 2, Delivery::Expected);
        assert_eq!(
            (r.sent, r.ok, r.lost, r.duplicates),
            (2000, 2000, Some(0), Some(0))
        );
        assert_near(r.publish.unwrap().p50_ms, 1.0, 0.01);
        assert_near(r.e2e.unwrap().p99_ms, 3.0, 0.01);
        assert_near(r.achieved_rate, 1000.0, 5.0);
        assert_eq!(r.error_rate, 0.0);
        assert_eq!(r.timeline.len(), 20);
        assert!(r.timeline.iter().all(|b| b.publish_p99_ms.is_some()));
    }

    #[test]
    fn a_stall_counts_against_every_message_it_delayed() {
        // Coordinated omission: the sidecar stalls for 200 ms at message 0, so messages
        // 1..200 (intended every ms) leave late. A closed-loop tool would record one 200 ms
        // sample; from intended times there are two hundred slow samples.
        let n = 1000;
        let mut d = uniform(n, 1, 2);
        for i in 0..200u64 {
            d.issued[i as usize] = Some(200 * MS);
            d.answered[i as usize] = Some(200 * MS + MS);
        }
        let r = analyze_steady(&d, 1000.0, 1, Delivery::Expected);
        let p = r.publish.unwrap();
        assert!(p.p90_ms > 1.5, "{p:?}");
        assert!(p.max_ms > 200.0, "{p:?}");
        assert!(r.send_delay.unwrap().p90_ms > 1.0);
    }

    #[test]
    fn errors_and_losses_are_not_latency_samples() {
        let mut d = uniform(10, 1, 2);
        d.outcome[0] = Outcome::Status(500);
        d.received[0] = None;
        d.outcome[1] = Outcome::Timeout;
        d.received[2] = None;
        d.receive_count[3] = 2;
        d.unexpected = 4;
        let r = analyze_steady(&d, 10.0, 1, Delivery::Expected);
        assert_eq!(r.ok, 8);
        assert_eq!(r.publish.unwrap().count, 8);
        assert_eq!(r.errors.get("http 500"), Some(&1));
        assert_eq!(r.errors.get("timeout"), Some(&1));
        assert_near(r.error_rate, 0.2, 1e-9);
        // Message 2 was accepted and never arrived; message 1 timed out yet arrived.
        assert_eq!(r.lost, Some(1));
        assert_eq!(r.e2e.unwrap().count, 8);
        assert_eq!(r.duplicates, Some(1));
        assert_eq!(r.unexpected, Some(4));
    }

    #[test]
    fn a_late_finish_lowers_the_achieved_rate() {
        let mut d = uniform(1000, 1, 2);
        // The last answer comes at 2 s instead of 1 s.
        d.answered[999] = Some(2000 * MS);
        let r = analyze_steady(&d, 1000.0, 1, Delivery::None);
        assert_near(r.achieved_rate, 500.0, 1.0);
        assert_eq!(r.lost, None);
        assert!(r.e2e.is_none());
        assert!(r.e2e_spectrum.is_empty());
    }

    #[test]
    fn overhead_is_a_difference_and_a_ratio() {
        let side = analyze_steady(&uniform(1000, 3, 8), 1000.0, 1, Delivery::Expected);
        let noop = analyze_steady(&uniform(1000, 1, 1), 1000.0, 1, Delivery::None);
        let direct = analyze_steady(&uniform(1000, 1, 2), 1000.0, 1, Delivery::Expected);
        let o = overhead(&side, Some(&noop), Some(&direct));
        assert!((o.publish_p50_ms.unwrap() - 2.0).abs() < 0.01, "{o:?}");
        assert!((o.publish_p50_ratio.unwrap() - 3.0).abs() < 0.01, "{o:?}");
        assert!((o.e2e_p99_ms.unwrap() - 6.0).abs() < 0.01, "{o:?}");
        assert!((o.e2e_p99_ratio.unwrap() - 4.0).abs() < 0.01, "{o:?}");
        assert_eq!(overhead(&side, None, None), Overhead::default());
    }

    #[test]
    fn rounds_merge_into_one_schedule() {
        let s = Schedule::new(1000.0, Duration::from_millis(500));
        let mut second = uniform(500, 2, 3);
        second.unexpected = 1;
        let (d, merged) = merge_rounds(&[uniform(500, 1, 2), second], &s);
        assert_eq!(merged.count(), 1000);
        assert_eq!(merged.intended_nanos(500), 500 * MS);
        // Message 0 of round 2 was answered 2 ms after its own t0: 502 ms in the joined phase.
        assert_eq!(d.answered[500], Some(502 * MS));
        assert_eq!(d.unexpected, 1);
        let r = analyze(&d, &merged, Duration::from_secs(1), Delivery::Expected);
        assert_eq!(r.publish.unwrap().count, 1000);
        assert_near(r.publish.unwrap().p50_ms, 1.0, 0.01);
        assert_near(r.publish.unwrap().max_ms, 2.0, 0.01);
        assert_near(r.achieved_rate, 1000.0, 5.0);
    }

    #[test]
    fn resources_merge() {
        let r = |mcpu: f64, rss: f64| Resources {
            mcpu_mean: mcpu,
            mcpu_max: mcpu * 2.0,
            rss_mb_mean: rss,
            rss_mb_max: rss + 1.0,
            samples: 4,
        };
        let m = merge_resources(&[r(100.0, 10.0), r(200.0, 12.0)]).unwrap();
        assert_eq!(m.mcpu_mean, 150.0);
        assert_eq!(m.mcpu_max, 400.0);
        assert_eq!(m.rss_mb_max, 13.0);
        assert_eq!(m.samples, 8);
        assert!(merge_resources(&[]).is_none());
    }

    #[test]
    fn buckets_stay_within_limits() {
        assert_eq!(
            bucket_width(Duration::from_secs(20)),
            Duration::from_millis(500)
        );
        assert_eq!(
            bucket_width(Duration::from_secs(1)),
            Duration::from_millis(100)
        );
        assert_eq!(
            bucket_width(Duration::from_secs(600)),
            Duration::from_secs(1)
        );
    }
}

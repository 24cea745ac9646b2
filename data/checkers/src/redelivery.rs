//! Retry expectations after the app rejects a message: how many attempts
//! arrived, and whether their spacing follows the retry policy.
//!
//! Owns attempt counting for one message on one route and the tolerance
//! model for backoff spacing. It does not know which policy a component is
//! configured with; the suite passes a [`Backoff`].
//!
//! # Spacing bounds
//!
//! Gap `i` is the time between arrival `i` and arrival `i + 1` at the app.
//! Its nominal value is `ms` for [`Backoff::Constant`], and
//! `min(initial_ms * multiplier^i, max_ms)` for [`Backoff::Exponential`].
//! With jitter `j` (a randomization factor, 0 for constant) and tolerance
//! `tol` (a fraction, such as 0.2), the gap must lie in
//!
//! ```text
//! [ nominal * (1 - j) * (1 - tol) - EARLY_SLACK_MS ,  nominal * (1 + j) * (1 + tol) + LATE_SLACK_MS ]
//! ```
//!
//! The lower slack ([`EARLY_SLACK_MS`], small) absorbs timer granularity and
//! clock rounding: a sidecar must not retry early. The upper slack
//! ([`LATE_SLACK_MS`], larger) absorbs scheduling delay, the delivery round
//! trip and a loaded CI machine, which only ever make gaps longer.
//! For an exponential policy this implies growth up to the cap and that no
//! gap exceeds `max_ms * (1 + j) * (1 + tol) + LATE_SLACK_MS`.

use harness_history::{History, MessageId};

use crate::Verdict;

/// Absolute slack below the lower bound of a gap, in milliseconds.
pub const EARLY_SLACK_MS: f64 = 5.0;

/// Absolute slack above the upper bound of a gap, in milliseconds.
pub const LATE_SLACK_MS: f64 = 50.0;

/// The outcome of [`attempts`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptsReport {
    /// The message checked.
    pub msg: MessageId,
    /// The route checked.
    pub route: String,
    /// Deliveries expected.
    pub expected: u32,
    /// Deliveries seen.
    pub seen: u32,
    /// Arrival times in milliseconds since trial start, in order.
    pub times_ms: Vec<f64>,
    /// What the app answered to each delivery.
    pub answers: Vec<String>,
}

/// Counts deliveries of `msg` on `route` against `expected`.
#[must_use]
pub fn attempts(history: &History, msg: &MessageId, route: &str, expected: u32) -> AttemptsReport {
    let mut arrivals: Vec<(u64, &str)> = history
        .deliveries_on(route)
        .filter(|(_, d)| d.msg.as_ref() == Some(msg))
        .map(|(at, d)| (at, d.answered.as_str()))
        .collect();
    arrivals.sort_by_key(|(at, _)| *at);
    AttemptsReport {
        msg: msg.clone(),
        route: route.to_owned(),
        expected,
        seen: crate::delivery::count(arrivals.len()),
        times_ms: arrivals.iter().map(|(at, _)| *at as f64 / 1000.0).collect(),
        answers: arrivals.iter().map(|(_, a)| (*a).to_owned()).collect(),
    }
}

impl AttemptsReport {
    /// Invalid when the number of deliveries differs from the expectation.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if self.seen == self.expected {
            return Verdict::Valid;
        }
        let mut items = vec![format!("expected {}, seen {}", self.expected, self.seen)];
        items.extend(
            self.times_ms
                .iter()
                .zip(&self.answers)
                .enumerate()
                .map(|(i, (t, a))| format!("attempt {} at {t:.1} ms answered {a}", i + 1)),
        );
        Verdict::invalid(
            format!(
                "{} was delivered {} times on {}, expected {}",
                self.msg, self.seen, self.route, self.expected
            ),
            items,
        )
    }
}

/// A retry policy's intervals between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The same interval every time.
    Constant {
        /// Interval in milliseconds.
        ms: u64,
    },
    /// Intervals that grow by `multiplier` up to `max_ms`.
    Exponential {
        /// First interval in milliseconds.
        initial_ms: u64,
        /// Growth factor per attempt, at least 1.
        multiplier: f64,
        /// Cap on the interval in milliseconds.
        max_ms: u64,
        /// Randomization factor in `[0, 1)`: each interval may be scaled by
        /// a factor in `[1 - jitter, 1 + jitter]`.
        jitter: f64,
    },
}

/// The allowed range of one gap, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GapBound {
    /// The policy's interval before jitter and tolerance.
    pub nominal_ms: f64,
    /// Shortest allowed gap.
    pub min_ms: f64,
    /// Longest allowed gap.
    pub max_ms: f64,
}

/// The outcome of [`spacing`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpacingReport {
    /// The arrival times judged, in milliseconds.
    pub times_ms: Vec<f64>,
    /// Gaps between consecutive arrivals.
    pub gaps_ms: Vec<f64>,
    /// The allowed range of each gap.
    pub bounds: Vec<GapBound>,
    /// Indexes into `gaps_ms` of gaps outside their bounds.
    pub violations: Vec<usize>,
    /// Why the inputs could not be judged, if they could not.
    pub invalid_input: Option<String>,
}

/// Judges the gaps between consecutive `times_ms` against `backoff`, with
/// `tolerance` as a fraction of the nominal interval. See the module docs
/// for the exact bounds.
#[must_use]
pub fn spacing(times_ms: &[f64], backoff: &Backoff, tolerance: f64) -> SpacingReport {
    let gaps_ms: Vec<f64> = times_ms.windows(2).map(|w| w[1] - w[0]).collect();
    let mut report = SpacingReport {
        times_ms: times_ms.to_vec(),
        gaps_ms,
        bounds: Vec::new(),
        violations: Vec::new(),
        invalid_input: None,
    };
    let (jitter, multiplier) = match *backoff {
        Backoff::Constant { .. } => (0.0, 1.0),
        Backoff::Exponential {
            jitter, multiplier, ..
        } => (jitter, multiplier),
    };
    report.invalid_input = if !(tolerance.is_finite() && tolerance >= 0.0) {
        Some(format!(
            "tolerance {tolerance} is not a non-negative number"
        ))
    } else if !(jitter.is_finite() && (0.0..1.0).contains(&jitter)) {
        Some(format!("jitter {jitter} is outside [0, 1)"))
    } else if !(multiplier.is_finite() && multiplier >= 1.0) {
        Some(format!("multiplier {multiplier} is below 1"))
    } else {
        None
    };
    if report.invalid_input.is_some() {
        return report;
    }

    let mut nominal = match *backoff {
        Backoff::Constant { ms } => ms as f64,
        Backoff::Exponential { initial_ms, .. } => initial_ms as f64,
    };
    for (i, gap) in report.gaps_ms.iter().enumerate() {
        if let Backoff::Exponential { max_ms, .. } = *backoff {
            nominal = nominal.min(max_ms as f64);
        }
        let bound = GapBound {
            nominal_ms: nominal,
            min_ms: (nominal * (1.0 - jitter) * (1.0 - tolerance) - EARLY_SLACK_MS).max(0.0),
            max_ms: nominal * (1.0 + jitter) * (1.0 + tolerance) + LATE_SLACK_MS,
        };
        // Written so that NaN gaps count as violations.
        if !(*gap >= bound.min_ms && *gap <= bound.max_ms) {
            report.violations.push(i);
        }
        report.bounds.push(bound);
        nominal *= multiplier;
    }
    report
}

impl SpacingReport {
    /// Invalid when any gap is outside its bounds; unknown when there are
    /// fewer than two attempts or the policy parameters make no sense.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if let Some(reason) = &self.invalid_input {
            return Verdict::unknown(format!("cannot judge retry spacing: {reason}"));
        }
        if self.gaps_ms.is_empty() {
            return Verdict::unknown(format!(
                "{} attempt(s) seen, so there is no gap to judge",
                self.times_ms.len()
            ));
        }
        if self.violations.is_empty() {
            return Verdict::Valid;
        }
        Verdict::invalid(
            format!(
                "{} of {} retry intervals were outside the policy's bounds",
                self.violations.len(),
                self.gaps_ms.len()
            ),
            self.violations.iter().map(|&i| {
                let b = self.bounds[i];
                format!(
                    "attempt {} at {:.1} ms came {:.1} ms after attempt {} at {:.1} ms; \
                     expected {:.1}..={:.1} ms (nominal {:.1} ms)",
                    i + 2,
                    self.times_ms[i + 1],
                    self.gaps_ms[i],
                    i + 1,
                    self.times_ms[i],
                    b.min_ms,
                    b.max_ms,
                    b.nominal_ms
                )
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use harness_history::Delivery;

    use super::*;

    fn render(v: Verdict) -> String {
        v.to_string()
    }

    const CONSTANT: Backoff = Backoff::Constant { ms: 100 };
    const EXPONENTIAL: Backoff = Backoff::Exponential {
        initial_ms: 100,
        multiplier: 2.0,
        max_ms: 300,
        jitter: 0.0,
    };
    const JITTERY: Backoff = Backoff::Exponential {
        initial_ms: 100,
        multiplier: 2.0,
        max_ms: 300,
        jitter: 0.5,
    };

    #[test]
    fn spacing_verdicts() {
        let cases: [(&str, &[f64], Backoff, f64, &str); 8] = [
            // Bounds with tolerance 0.1: 85..=160 ms.
            (
                "constant",
                &[0.0, 100.0, 190.0, 350.0],
                CONSTANT,
                0.1,
                "valid",
            ),
            (
                "constant, one gap short",
                &[0.0, 80.0, 240.0, 400.0],
                CONSTANT,
                0.1,
                "invalid: 1 of 3 retry intervals were outside the policy's bounds [\
                 attempt 2 at 80.0 ms came 80.0 ms after attempt 1 at 0.0 ms; \
                 expected 85.0..=160.0 ms (nominal 100.0 ms)]",
            ),
            // Nominal gaps 100, 200, 300, 300: exponential spacing grows and caps.
            (
                "exponential",
                &[0.0, 100.0, 300.0, 600.0, 900.0],
                EXPONENTIAL,
                0.0,
                "valid",
            ),
            (
                "exponential, not growing",
                &[0.0, 100.0, 200.0],
                EXPONENTIAL,
                0.0,
                "invalid: 1 of 2 retry intervals were outside the policy's bounds [\
                 attempt 3 at 200.0 ms came 100.0 ms after attempt 2 at 100.0 ms; \
                 expected 195.0..=250.0 ms (nominal 200.0 ms)]",
            ),
            // Jitter widens the bounds: the capped gap may reach 300 * 1.5 + 50 = 500 ms.
            ("jitter", &[0.0, 60.0, 160.0, 660.0], JITTERY, 0.0, "valid"),
            (
                "jitter, one ms over",
                &[0.0, 60.0, 160.0, 661.0],
                JITTERY,
                0.0,
                "invalid: 1 of 3 retry intervals were outside the policy's bounds [\
                 attempt 4 at 661.0 ms came 501.0 ms after attempt 3 at 160.0 ms; \
                 expected 145.0..=500.0 ms (nominal 300.0 ms)]",
            ),
            // Degenerate inputs are unknown.
            (
                "one attempt",
                &[5.0],
                CONSTANT,
                0.1,
                "unknown: 1 attempt(s) seen, so there is no gap to judge",
            ),
            (
                "NaN tolerance",
                &[0.0, 100.0],
                CONSTANT,
                f64::NAN,
                "unknown: cannot judge retry spacing: tolerance NaN is not a non-negative number",
            ),
        ];
        for (what, times_ms, backoff, tolerance, expect) in cases {
            assert_eq!(
                render(spacing(times_ms, &backoff, tolerance).verdict()),
                expect,
                "{what}"
            );
        }
    }

    #[test]
    fn attempts_counts_one_message_on_one_route() {
        let mut h = History::new();
        h.record(1_000, Delivery::new("m-1", "/orders", 1, "RETRY"));
        h.record(2_500, Delivery::new("m-1", "/orders", 2, "RETRY"));
        h.record(2_600, Delivery::new("m-2", "/orders", 1, "SUCCESS"));
        h.record(3_000, Delivery::new("m-1", "/dlq", 1, "SUCCESS"));
        let r = attempts(&h, &"m-1".into(), "/orders", 2);
        assert_eq!((r.seen, r.times_ms.clone()), (2, vec![1.0, 2.5]));
        assert_eq!(render(r.verdict()), "valid");
        let r = attempts(&h, &"m-1".into(), "/orders", 3);
        assert_eq!(
            render(r.verdict()),
            "invalid: m-1 was delivered 2 times on /orders, expected 3 [\
             expected 3, seen 2 | attempt 1 at 1.0 ms answered RETRY | \
             attempt 2 at 2.5 ms answered RETRY]"
        );
    }
}

//! The maximum sustainable rate: the highest rate whose publish and end-to-end p99 stay at or
//! under a bound while at least 99% of the rate is achieved, with no lost message and an error
//! rate under the run's threshold.
//!
//! The search doubles the rate while steps pass (halves it while they fail), then bisects
//! between the highest pass and the lowest failure until they are within [`RESOLUTION`] of each
//! other or the step budget is spent. Each step is a short open-loop run; [`judge`] and
//! [`Search::next`] are pure. A step that fails while the generator itself sent late (a busy
//! machine) is measured once more before it counts (`run.rs`).

use harness_report::bench::model::PhaseResult;

/// The search stops when the lowest failing rate is within this fraction of the highest
/// passing one.
pub const RESOLUTION: f64 = 0.05;
/// Required fraction of the target rate.
pub const MIN_ACHIEVED: f64 = 0.99;
/// No rate below this is tried.
pub const MIN_RATE: f64 = 10.0;
/// No rate above this is tried.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Whether `result` passes at `bound_ms`, and the numbers that decided.
pub fn judge(result: &PhaseResult, bound_ms: f64, max_error_rate: f64) -> (bool, String) {
    let mut why = Vec::new();
    let achieved = result.achieved_rate / result.rate.max(f64::MIN_POSITIVE);
    if achieved < MIN_ACHIEVED {
        why.push(format!(
            "achieved {:.0}/s = {:.1}% of the rate (< {:.0}%)",
            result.achieved_rate,
            achieved * 100.0,
            MIN_ACHIEVED * 100.0
        ));
    }
    for (name, summary) in [("publish", result.publish), ("end-to-end", result.e2e)] {
        match summary {
            Some(s) if s.p99_ms > bound_ms => {
                why.push(format!("{name} p99 {:.3} ms > {bound_ms} ms", s.p99_ms));
            }
            Some(_) => {}
            None if name == "end-to-end" && result.lost.is_none() => {}
            None => why.push(format!("no {name} samples")),
        }
    }
    if result.error_rate > max_error_rate {
        why.push(format!("error rate {:.2}%", result.error_rate * 100.0));
    }
    if let Some(lost) = result.lost.filter(|&l| l > 0) {
        why.push(format!("{lost} lost"));
    }
    if why.is_empty() {
        let p99 = |s: Option<harness_report::bench::model::LatencySummary>| {
            s.map_or("-".to_owned(), |s| format!("{:.3} ms", s.p99_ms))
        };
        (
            true,
            format!(
                "publish p99 {}, end-to-end p99 {}, achieved {:.1}%",
                p99(result.publish),
                p99(result.e2e),
                achieved * 100.0
            ),
        )
    } else {
        (false, why.join("; "))
    }
}

/// What to do after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Measure this rate.
    Try(f64),
    /// Done: the highest passing rate, if any.
    Done(Option<f64>),
}

/// The state of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pass: Option<f64>,
    fail: Option<f64>,
    steps: usize,
    max_steps: usize,
}

impl Search {
    /// A search that takes at most `max_steps` steps.
    pub fn new(max_steps: usize) -> Search {
        Search {
            pass: None,
            fail: None,
            steps: 0,
            max_steps: max_steps.max(1),
        }
    }

    /// The highest passing rate so far.
    pub fn best(&self) -> Option<f64> {
        self.pass
    }

    /// Records that `rate` passed or failed and decides the next step.
    pub fn next(&mut self, rate: f64, passed: bool) -> Next {
        self.steps += 1;
        if passed {
            self.pass = Some(self.pass.map_or(rate, |p| p.max(rate)));
        } else {
            self.fail = Some(self.fail.map_or(rate, |f| f.min(rate)));
        }
        if self.steps >= self.max_steps {
            return Next::Done(self.pass);
        }
        let next = match (self.pass, self.fail) {
            (Some(p), None) if p >= MAX_RATE => return Next::Done(Some(p)),
            (Some(p), None) => (p * 2.0).min(MAX_RATE),
            (None, Some(f)) if f <= MIN_RATE => return Next::Done(None),
            (None, Some(f)) => (f / 2.0).max(MIN_RATE),
            (Some(p), Some(f)) => {
                if f <= p * (1.0 + RESOLUTION) {
                    return Next::Done(Some(p));
                }
                (p + f) / 2.0
            }
            (None, None) => return Next::Done(None),
        };
        Next::Try(next.round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_report::bench::model::LatencySummary;

    fn check(
        start: f64,
        max_steps: usize,
        capacity: f64,
        expect_steps: &[f64],
        expect: Option<f64>,
    ) {
        let mut s = Search::new(max_steps);
        let mut rate = start;
        let mut tried = vec![rate];
        loop {
            match s.next(rate, rate <= capacity) {
                Next::Try(r) => {
                    rate = r;
                    tried.push(r);
                }
                Next::Done(best) => {
                    assert_eq!(best, expect);
                    break;
                }
            }
        }
        assert_eq!(tried, expect_steps);
    }

    #[test]
    fn doubles_then_bisects() {
        check(
            1000.0,
            20,
            5000.0,
            &[
                1000.0, 2000.0, 4000.0, 8000.0, 6000.0, 5000.0, 5500.0, 5250.0,
            ],
            Some(5000.0),
        );
    }

    #[test]
    fn halves_when_the_first_step_fails() {
        check(
            1000.0,
            20,
            300.0,
            &[1000.0, 500.0, 250.0, 375.0, 313.0, 282.0, 298.0, 306.0],
            Some(298.0),
        );
        check(40.0, 20, 1.0, &[40.0, 20.0, 10.0], None);
    }

    #[test]
    fn stops_at_the_step_budget() {
        check(1000.0, 3, 1e9, &[1000.0, 2000.0, 4000.0], Some(4000.0));
    }

    fn result(rate: f64, achieved: f64, p99: f64) -> PhaseResult {
        let s = LatencySummary {
            count: 10,
            min_ms: 0.1,
            mean_ms: 0.5,
            p50_ms: 0.5,
            p90_ms: 0.8,
            p99_ms: p99,
            p999_ms: p99,
            p9999_ms: p99,
            max_ms: p99,
        };
        PhaseResult {
            rate,
            duration_ms: 1000,
            sent: 10,
            ok: 10,
            errors: Default::default(),
            error_rate: 0.0,
            achieved_rate: achieved,
            received_rate: Some(achieved),
            lost: Some(0),
            duplicates: Some(0),
            unexpected: Some(0),
            publish: Some(s),
            e2e: Some(s),
            send_delay: None,
            publish_spectrum: vec![],
            e2e_spectrum: vec![],
            timeline: vec![],
            resources: None,
        }
    }

    #[test]
    fn judges_bound_and_throughput() {
        assert!(judge(&result(1000.0, 995.0, 4.0), 10.0, 0.001).0);
        let (ok, why) = judge(&result(1000.0, 980.0, 4.0), 10.0, 0.001);
        assert!(!ok);
        assert!(why.contains("98.0%"), "{why}");
        let (ok, why) = judge(&result(1000.0, 1000.0, 12.5), 10.0, 0.001);
        assert!(!ok);
        assert!(why.contains("publish p99 12.500 ms > 10 ms"), "{why}");
        let mut lossy = result(1000.0, 1000.0, 1.0);
        lossy.lost = Some(3);
        assert_eq!(judge(&lossy, 10.0, 0.001), (false, "3 lost".to_owned()));
    }
}

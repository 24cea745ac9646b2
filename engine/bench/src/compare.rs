//! `pubsub-tck bench compare A.json B.json`: per rate and metric, whether B regressed from A.
//!
//! A change is a regression only when it is worse by more than a relative threshold *and* by
//! more than the metric's absolute floor: a p50 going from 0.10 ms to 0.13 ms is +30% but
//! within the noise of a loopback round trip, and a p99 going from 40 ms to 44 ms is +4 ms but
//! within 10%. Pure: the caller reads the files and prints the table.

use harness_report::bench::model::{BenchReport, PhaseResult, RateResult};

/// Which direction is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worse {
    Higher,
    Lower,
}

/// One metric of a rate.
struct Metric {
    name: &'static str,
    unit: &'static str,
    worse: Worse,
    /// The smallest absolute change that can count.
    floor: f64,
    get: fn(&PhaseResult) -> Option<f64>,
}

/// The absolute floor of p50 and p90; tails get wider floors (p99 ×4, p99.9 ×20) because a
/// single scheduling hiccup on a shared machine moves them by that much.
const LATENCY_FLOOR_MS: f64 = 0.05;

const METRICS: &[Metric] = &[
    Metric {
        name: "achieved rate",
        unit: "/s",
        worse: Worse::Lower,
        floor: 1.0,
        get: |r| Some(r.achieved_rate),
    },
    Metric {
        name: "publish p50",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS,
        get: |r| r.publish.map(|s| s.p50_ms),
    },
    Metric {
        name: "publish p90",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS,
        get: |r| r.publish.map(|s| s.p90_ms),
    },
    Metric {
        name: "publish p99",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS * 4.0,
        get: |r| r.publish.map(|s| s.p99_ms),
    },
    Metric {
        name: "publish p99.9",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS * 20.0,
        get: |r| r.publish.map(|s| s.p999_ms),
    },
    Metric {
        name: "e2e p50",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS,
        get: |r| r.e2e.map(|s| s.p50_ms),
    },
    Metric {
        name: "e2e p90",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS,
        get: |r| r.e2e.map(|s| s.p90_ms),
    },
    Metric {
        name: "e2e p99",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS * 4.0,
        get: |r| r.e2e.map(|s| s.p99_ms),
    },
    Metric {
        name: "e2e p99.9",
        unit: "ms",
        worse: Worse::Higher,
        floor: LATENCY_FLOOR_MS * 20.0,
        get: |r| r.e2e.map(|s| s.p999_ms),
    },
    Metric {
        name: "lost",
        unit: "",
        worse: Worse::Higher,
        floor: 0.5,
        get: |r| r.lost.map(|l| l as f64),
    },
    Metric {
        name: "error rate",
        unit: "%",
        worse: Worse::Higher,
        floor: 0.1,
        get: |r| Some(r.error_rate * 100.0),
    },
    Metric {
        name: "sidecar CPU",
        unit: "mCPU",
        worse: Worse::Higher,
        floor: 10.0,
        get: |r| r.resources.map(|x| x.mcpu_mean),
    },
    Metric {
        name: "sidecar RSS",
        unit: "MB",
        worse: Worse::Higher,
        floor: 2.0,
        get: |r| r.resources.map(|x| x.rss_mb_max),
    },
];

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Within the threshold or the floor.
    Same,
    /// Better beyond noise.
    Better,
    /// Worse beyond noise.
    Regression,
    /// Only one side has a value.
    Missing,
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The rate (msg/s).
    pub rate: f64,
    /// The metric.
    pub metric: &'static str,
    /// Its unit.
    pub unit: &'static str,
    /// The value in A.
    pub a: Option<f64>,
    /// The value in B.
    pub b: Option<f64>,
    /// The verdict.
    pub change: Change,
}

impl Row {
    /// The relative change from A to B, in percent.
    pub fn percent(&self) -> Option<f64> {
        match (self.a, self.b) {
            (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a.abs() * 100.0),
            _ => None,
        }
    }
}

/// What a comparison found.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Every compared metric.
    pub rows: Vec<Row>,
    /// Rates only one report measured.
    pub unmatched: Vec<f64>,
    /// Differences in how the runs were set up (broker, protocol, payload...).
    pub caveats: Vec<String>,
}

impl Comparison {
    /// Whether any metric regressed.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.change == Change::Regression)
    }
}

/// Decides one metric: worse by more than `threshold_pct` percent and by more than `floor`.
pub fn classify(
    a: Option<f64>,
    b: Option<f64>,
    threshold_pct: f64,
    floor: f64,
    higher_is_worse: bool,
) -> Change {
    let (Some(a), Some(b)) = (a, b) else {
        return if a.is_none() && b.is_none() {
            Change::Same
        } else {
            Change::Missing
        };
    };
    let delta = if higher_is_worse { b - a } else { a - b };
    let relative = if a == 0.0 {
        f64::INFINITY
    } else {
        delta.abs() / a.abs() * 100.0
    };
    if delta.abs() <= floor || relative <= threshold_pct {
        Change::Same
    } else if delta > 0.0 {
        Change::Regression
    } else {
        Change::Better
    }
}

/// `report` as if `target` had been its only target: its measurements and searches in place
/// of the first target's, so that [`compare`] judges one target of a run against another
/// (`None`, or the first target's name: the report as it is). Errors name the targets the
/// report has.
pub fn select(report: &BenchReport, target: Option<&str>) -> Result<BenchReport, String> {
    let Some(name) = target.filter(|t| *t != report.target) else {
        return Ok(BenchReport {
            other_targets: Vec::new(),
            other_searches: Vec::new(),
            rates: report
                .rates
                .iter()
                .map(|r| RateResult {
                    others: Vec::new(),
                    ..r.clone()
                })
                .collect(),
            ..report.clone()
        });
    };
    let Some(i) = report.other_targets.iter().position(|t| t == name) else {
        let mut known = vec![report.target.clone()];
        known.extend(report.other_targets.iter().cloned());
        return Err(format!(
            "run {} has no target `{name}` (it has `{}`)",
            report.run_id,
            known.join("`, `")
        ));
    };
    let mut rates = Vec::new();
    for r in &report.rates {
        let o = r.others.get(i).ok_or_else(|| {
            format!(
                "run {} has no measurement of `{name}` at {} msg/s",
                report.run_id, r.rate
            )
        })?;
        rates.push(RateResult {
            sidecar: o.sidecar.clone(),
            overhead: o.overhead.clone(),
            others: Vec::new(),
            ..r.clone()
        });
    }
    Ok(BenchReport {
        target: name.to_owned(),
        target_file: None,
        rates,
        search: report
            .other_searches
            .iter()
            .find(|s| s.target == name)
            .map(|s| s.search.clone()),
        other_targets: Vec::new(),
        other_searches: Vec::new(),
        ..report.clone()
    })
}

/// Compares every rate measured by both reports (the sidecar measurement, not the baselines).
pub fn compare(a: &BenchReport, b: &BenchReport, threshold_pct: f64) -> Comparison {
    // What makes two runs not comparable, as each run states it.
    let setup = |r: &BenchReport| {
        [
            ("target", r.target.clone()),
            ("broker", r.broker.clone()),
            ("protocol", r.protocol.clone()),
            ("payload size", r.params.payload_size.to_string()),
            (
                "connections",
                (r.params.publishers * r.params.connections).to_string(),
            ),
            ("generator threads", r.params.threads.to_string()),
            ("cores", r.machine.cores.to_string()),
        ]
    };
    let caveats: Vec<String> = setup(a)
        .into_iter()
        .zip(setup(b))
        .filter(|((_, x), (_, y))| x != y)
        .map(|((what, x), (_, y))| format!("{what} differs: {x} vs {y}"))
        .collect();

    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    for ra in &a.rates {
        let Some(rb) = b.rates.iter().find(|r| same_rate(r.rate, ra.rate)) else {
            unmatched.push(ra.rate);
            continue;
        };
        for m in METRICS {
            let (va, vb) = ((m.get)(&ra.sidecar), (m.get)(&rb.sidecar));
            // Throughput is judged against the rate asked for, so its floor scales with it.
            let floor = if m.name == "achieved rate" {
                m.floor.max(ra.rate * 0.01)
            } else {
                m.floor
            };
            rows.push(Row {
                rate: ra.rate,
                metric: m.name,
                unit: m.unit,
                a: va,
                b: vb,
                change: classify(va, vb, threshold_pct, floor, m.worse == Worse::Higher),
            });
        }
    }
    unmatched.extend(
        b.rates
            .iter()
            .filter(|rb| !a.rates.iter().any(|ra| same_rate(ra.rate, rb.rate)))
            .map(|r| r.rate),
    );
    Comparison {
        rows,
        unmatched,
        caveats,
    }
}

fn same_rate(x: f64, y: f64) -> bool {
    (x - y).abs() < 1e-6
}

/// The comparison as a plain-text table, with caveats and a last line naming the regressions.
pub fn render(c: &Comparison, threshold_pct: f64) -> String {
    let mut out = String::new();
    for caveat in &c.caveats {
        out.push_str(&format!("note: {caveat}\n"));
    }
    out.push_str(&format!(
        "{:>9} {:<14} {:>12} {:>12} {:>9}  {}\n",
        "rate", "metric", "A", "B", "change", "verdict"
    ));
    let num = |v: Option<f64>, unit: &str| match v {
        Some(v) => format!("{v:.3}{}", if unit.is_empty() { "" } else { " " }) + unit,
        None => "-".to_owned(),
    };
    for r in &c.rows {
        let verdict = match r.change {
            Change::Same => "ok",
            Change::Better => "better",
            Change::Regression => "REGRESSION",
            Change::Missing => "missing",
        };
        out.push_str(&format!(
            "{:>9} {:<14} {:>12} {:>12} {:>9}  {verdict}\n",
            format!("{}/s", r.rate),
            r.metric,
            num(r.a, r.unit),
            num(r.b, r.unit),
            r.percent().map_or("-".to_owned(), |p| format!("{p:+.1}%")),
        ));
    }
    for rate in &c.unmatched {
        out.push_str(&format!("rate {rate}/s is in only one report\n"));
    }
    let regressions: Vec<String> = c
        .rows
        .iter()
        .filter(|r| r.change == Change::Regression)
        .map(|r| format!("{} at {}/s", r.metric, r.rate))
        .collect();
    if regressions.is_empty() {
        out.push_str(&format!(
            "no regression beyond {threshold_pct}% and the absolute floors\n"
        ));
    } else {
        out.push_str(&format!("regressions: {}\n", regressions.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_report::bench::test_support::sample_report;

    #[test]
    fn one_target_of_a_run_compares_with_another() {
        let r = harness_report::bench::test_support::two_target_report();
        let a = select(&r, None).unwrap();
        let b = select(&r, Some("daprd")).unwrap();
        assert_eq!(b.target, "daprd");
        assert!(a.rates[0].others.is_empty() && b.rates[0].others.is_empty());
        let c = compare(&a, &b, 10.0);
        // daprd's latencies are three times reference's: a regression from A to B.
        assert!(c.regressed());
        assert!(c.caveats.iter().any(|x| x.contains("target differs")));
        let e = select(&r, Some("nope")).unwrap_err();
        assert!(
            e.contains("has no target `nope` (it has `reference`, `daprd`)"),
            "{e}"
        );
    }

    #[test]
    fn classify_needs_both_threshold_and_floor() {
        // (before, after, threshold %, floor, lower is better) and the change it is.
        let cases = [
            // +30% but only 0.03 ms: noise.
            ((Some(0.10), Some(0.13), 10.0, 0.05, true), Change::Same),
            // +4 ms but only 10%: within the threshold.
            ((Some(40.0), Some(44.0), 10.0, 0.05, true), Change::Same),
            ((Some(1.0), Some(1.5), 10.0, 0.05, true), Change::Regression),
            ((Some(1.5), Some(1.0), 10.0, 0.05, true), Change::Better),
            // Throughput: lower is worse.
            (
                (Some(1000.0), Some(800.0), 10.0, 10.0, false),
                Change::Regression,
            ),
            ((Some(0.0), Some(3.0), 10.0, 0.5, true), Change::Regression),
            ((None, Some(3.0), 10.0, 0.5, true), Change::Missing),
            ((None, None, 10.0, 0.5, true), Change::Same),
        ];
        for ((before, after, threshold, floor, lower_better), change) in cases {
            assert_eq!(
                classify(before, after, threshold, floor, lower_better),
                change,
                "{before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn a_slower_run_regresses() {
        let a = sample_report();
        let mut b = sample_report();
        let same = compare(&a, &b, 10.0);
        assert!(!same.regressed());
        assert!(same.caveats.is_empty());
        assert!(same.rows.iter().all(|r| r.change == Change::Same));
        if let Some(p) = b.rates[0].sidecar.publish.as_mut() {
            p.p99_ms *= 2.0;
        }
        b.broker = "redis".into();
        let c = compare(&a, &b, 10.0);
        assert!(c.regressed());
        assert_eq!(c.caveats, ["broker differs: in-memory vs redis"]);
        let text = render(&c, 10.0);
        assert!(text.contains("REGRESSION"), "{text}");
        assert!(
            text.ends_with("regressions: publish p99 at 1000/s\n"),
            "{text}"
        );
    }

    #[test]
    fn unmatched_rates_are_listed() {
        let a = sample_report();
        let mut b = sample_report();
        b.rates[0].rate = 2000.0;
        let c = compare(&a, &b, 10.0);
        assert!(c.rows.is_empty());
        assert_eq!(c.unmatched, [1000.0, 2000.0]);
        assert!(!c.regressed());
    }
}

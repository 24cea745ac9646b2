//! A small synthetic report for the renderers' and the comparison's tests.

use std::collections::BTreeMap;

use super::model::*;

fn summary(scale: f64) -> LatencySummary {
    LatencySummary {
        count: 1000,
        min_ms: 0.1 * scale,
        mean_ms: 0.6 * scale,
        p50_ms: 0.5 * scale,
        p90_ms: 0.9 * scale,
        p99_ms: 1.5 * scale,
        p999_ms: 3.0 * scale,
        p9999_ms: 4.0 * scale,
        max_ms: 5.0 * scale,
    }
}

fn spectrum(scale: f64) -> Vec<SpectrumPoint> {
    [
        (0.0, 0.1),
        (0.5, 0.5),
        (0.9, 0.9),
        (0.99, 1.5),
        (0.999, 3.0),
        (1.0, 5.0),
    ]
    .into_iter()
    .map(|(q, ms)| SpectrumPoint { q, ms: ms * scale })
    .collect()
}

pub fn phase(scale: f64, delivered: bool) -> PhaseResult {
    PhaseResult {
        rate: 1000.0,
        duration_ms: 2000,
        sent: 2000,
        ok: 2000,
        errors: BTreeMap::new(),
        error_rate: 0.0,
        achieved_rate: 999.5,
        received_rate: delivered.then_some(999.0),
        lost: delivered.then_some(0),
        duplicates: delivered.then_some(0),
        unexpected: delivered.then_some(0),
        publish: Some(summary(scale)),
        e2e: delivered.then(|| summary(scale * 2.0)),
        send_delay: Some(summary(0.01)),
        publish_spectrum: spectrum(scale),
        e2e_spectrum: if delivered {
            spectrum(scale * 2.0)
        } else {
            Vec::new()
        },
        timeline: (0..4)
            .map(|i| TimelineBucket {
                t_s: f64::from(i) * 0.5,
                published_per_s: 1000.0,
                received_per_s: if delivered { 1000.0 } else { 0.0 },
                publish_p50_ms: Some(0.5 * scale),
                publish_p99_ms: Some(1.5 * scale),
                publish_max_ms: Some(2.0 * scale),
                e2e_p50_ms: delivered.then_some(scale),
                e2e_p99_ms: delivered.then_some(3.0 * scale),
            })
            .collect(),
        resources: delivered.then_some(Resources {
            mcpu_mean: 120.0,
            mcpu_max: 180.0,
            rss_mb_mean: 12.0,
            rss_mb_max: 13.5,
            samples: 8,
        }),
    }
}

/// [`sample_report`] with a second target, `daprd`, three times slower with twice the CPU.
pub fn two_target_report() -> BenchReport {
    let mut r = sample_report();
    r.other_targets = vec!["daprd".into()];
    for rr in &mut r.rates {
        let mut sidecar = phase(6.0, true);
        sidecar.resources = rr.sidecar.resources.map(|x| super::model::Resources {
            mcpu_mean: x.mcpu_mean * 2.0,
            ..x
        });
        let vs_first = super::model::Ratios::between(&sidecar, &rr.sidecar);
        rr.others.push(super::model::TargetResult {
            target: "daprd".into(),
            sidecar,
            overhead: Overhead::default(),
            vs_first,
        });
    }
    r
}

pub fn sample_report() -> BenchReport {
    BenchReport {
        format_version: FORMAT_VERSION,
        run_id: "20250101T000000Z-7".into(),
        tool_version: "0.1.0".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        seed: 7,
        target: "reference".into(),
        target_file: Some("fixtures/targets/reference.toml".into()),
        broker: "in-memory".into(),
        protocol: "http".into(),
        params: Params {
            rates: vec![1000.0],
            duration_ms: 2000,
            warmup_ms: 500,
            payload_size: 100,
            publishers: 4,
            connections: 2,
            drain_ms: 5000,
            request_timeout_ms: 5000,
            max_error_rate: 0.001,
            rounds: 2,
            threads: 1,
        },
        machine: Machine {
            cores: 2,
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu_model: Some("Test CPU <fast> & cheap".into()),
        },
        rates: vec![RateResult {
            rate: 1000.0,
            sidecar: phase(2.0, true),
            noop: Some(phase(0.5, false)),
            direct: Baseline::Measured {
                method: "tokio channel".into(),
                result: Box::new(phase(0.25, true)),
            },
            overhead: Overhead {
                publish_p50_ms: Some(0.75),
                publish_p99_ms: Some(2.25),
                publish_p50_ratio: Some(4.0),
                publish_p99_ratio: Some(4.0),
                e2e_p50_ms: Some(1.75),
                e2e_p99_ms: Some(5.25),
                e2e_p50_ratio: Some(8.0),
                e2e_p99_ratio: Some(8.0),
            },
            others: Vec::new(),
        }],
        search: None,
        other_targets: Vec::new(),
        other_searches: Vec::new(),
        failures: Vec::new(),
        notes: vec!["a note".into()],
        duration_ms: 9000,
    }
}

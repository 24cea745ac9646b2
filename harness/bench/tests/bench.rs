//! A short real bench against the reference sidecar on the in-memory broker: every publish
//! answered 204, every message delivered exactly once, ordered positive percentiles, and the
//! three report files written and readable.
//!
//! Needs `target/release/refsidecar` (the README's test command builds it first).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness_bench::report::model::{self, Baseline, LatencySummary};
use harness_bench::{BenchConfig, Broker, Protocol, RunInfo};

fn workspace_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_owned()
}

fn assert_ordered(name: &str, s: &LatencySummary) {
    let v = [
        s.min_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.p9999_ms, s.max_ms,
    ];
    assert!(v[0] > 0.0, "{name}: {s:?}");
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{name}: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_against_the_reference_sidecar() {
    let root = workspace_root();
    let target = harness::TargetFile::load(&root.join("fixtures/targets/reference.toml")).unwrap();
    let base = tempfile::tempdir().unwrap();
    let run_dir = base.path().join("run");
    let config = BenchConfig {
        target,
        workspace_root: root,
        work_dir: run_dir.clone(),
        broker: Broker::InMemory,
        protocol: Protocol::Http,
        rates: vec![300.0],
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(300),
        rounds: 2,
        threads: 1,
        payload_size: 100,
        publishers: 2,
        connections: 2,
        seed: 7,
        drain: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
        max_error_rate: 0.0,
        baselines: true,
        find_max: None,
        redis: None,
        kafka: None,
        kafka_home: None,
    };
    let info = RunInfo {
        run_id: "run".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        tool_version: "test".into(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let report = harness_bench::run(&config, info, &tx).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(tx);
    let mut phases = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let harness_bench::Event::PhaseFinished { label, .. } = ev {
            phases.push(label);
        }
    }
    // Warm-ups and rounds are loads; a finished phase is the rounds of one kind joined.
    assert_eq!(phases, ["sidecar", "no-op HTTP", "direct: tokio channel"]);

    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.rates.len(), 1);
    let r = &report.rates[0];
    let s = &r.sidecar;
    // Every publish got 204, every message was received exactly once.
    assert_eq!((s.sent, s.ok), (600, 600), "{:?}", s.errors);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.lost, Some(0));
    assert_eq!(s.duplicates, Some(0));
    assert_eq!(s.unexpected, Some(0));
    let publish = s.publish.unwrap();
    let e2e = s.e2e.unwrap();
    assert_eq!(publish.count, 600);
    assert_eq!(e2e.count, 600);
    assert_ordered("publish", &publish);
    assert_ordered("e2e", &e2e);
    assert!(s.achieved_rate > 250.0, "{}", s.achieved_rate);
    let resources = s.resources.unwrap();
    assert!(resources.rss_mb_max > 0.0, "{resources:?}");

    let noop = r.noop.as_ref().unwrap();
    assert_eq!(noop.ok, 600);
    assert_ordered("no-op", &noop.publish.unwrap());
    let Baseline::Measured { result: direct, .. } = &r.direct else {
        panic!("{:?}", r.direct);
    };
    assert_eq!(direct.lost, Some(0));
    assert_eq!(direct.e2e.unwrap().count, 600);
    assert!(r.overhead.publish_p50_ms.is_some());
    assert!(r.overhead.e2e_p99_ratio.is_some());

    let dir = harness_bench::report::store::write_run(base.path(), &run_dir, &report).unwrap();
    let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(model::parse(&json).unwrap(), report);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("| 300 | "), "{md}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    assert!(base.path().join("latest").join("results.json").is_file());
    assert!(dir.join("logs").read_dir().unwrap().next().is_some());
}

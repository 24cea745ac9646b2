//! A short real bench against the reference sidecar on the in-memory broker: every publish
//! answered 204, every message delivered exactly once, ordered positive percentiles, and the
//! three report files written and readable. Then two targets in one run on one Redis: each
//! gets only its own messages, and the report compares the second with the first.
//!
//! Needs `target/release/refsidecar` (the README's test command builds it first).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness_bench::{BenchConfig, Broker, Protocol, RunInfo};
use harness_report::bench::model::{self, Baseline, LatencySummary};

fn workspace_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_owned()
}

/// A short run: 2 s in two rounds after a 300 ms warm-up, two publishers with two connections.
fn config(
    targets: Vec<harness::TargetFile>,
    run_dir: &Path,
    broker: Broker,
    rate: f64,
    baselines: bool,
) -> BenchConfig {
    BenchConfig {
        targets,
        workspace_root: workspace_root(),
        work_dir: run_dir.to_owned(),
        broker,
        protocol: Protocol::Http,
        rates: vec![rate],
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
        baselines,
        find_max: None,
        broker_sources: Default::default(),
    }
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
    let config = config(vec![target], &run_dir, Broker::InMemory, 300.0, true);
    let info = RunInfo {
        run_id: "run".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        tool_version: "test".into(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let report = harness_bench::run(&config, info, &tx).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(tx);
    let mut phases = Vec::new();
    for ev in rx.try_iter() {
        if let harness_bench::RunEvent::StageFinished { label, .. } = ev {
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

    let dir = harness_report::bench::store::write_run(base.path(), &run_dir, &report).unwrap();
    let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(model::parse(&json).unwrap(), report);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("| 300 | "), "{md}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    assert!(base.path().join("latest").join("results.json").is_file());
    assert!(dir.join("logs").read_dir().unwrap().next().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_targets_share_a_broker_and_are_compared() {
    let root = workspace_root();
    let path = root.join("fixtures/targets/reference.toml");
    let first = harness::TargetFile::load(&path).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("name = \"reference\"", "name = \"reference-2\"");
    let second = harness::TargetFile::parse(&text, &path).unwrap();
    let base = tempfile::tempdir().unwrap();
    let run_dir = base.path().join("run");
    let config = config(vec![first, second], &run_dir, Broker::Redis, 200.0, false);
    let info = RunInfo {
        run_id: "run".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        tool_version: "test".into(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let report = harness_bench::run(&config, info, &tx).await.unwrap();
    drop(tx);
    let mut phases = Vec::new();
    for ev in rx.try_iter() {
        if let harness_bench::RunEvent::StageFinished { label, .. } = ev {
            phases.push(label);
        }
    }
    assert_eq!(phases, ["reference", "reference-2"]);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.target, "reference");
    assert_eq!(report.other_targets, ["reference-2"]);
    let r = &report.rates[0];
    assert_eq!(r.others.len(), 1);
    // Each sidecar delivered its own 400 messages once, and none of the other's: their
    // subscriptions are on topics of their own on the shared Redis.
    for (name, s) in [
        ("reference", &r.sidecar),
        ("reference-2", &r.others[0].sidecar),
    ] {
        assert_eq!((s.sent, s.ok), (400, 400), "{name}: {:?}", s.errors);
        assert_eq!(s.lost, Some(0), "{name}");
        assert_eq!(s.duplicates, Some(0), "{name}");
        assert_eq!(s.unexpected, Some(0), "{name}");
    }
    let vs = &r.others[0].vs_first;
    assert!(
        vs.publish
            .iter()
            .chain(&vs.e2e)
            .all(|x| x.is_some_and(|v| v > 0.0)),
        "{vs:?}"
    );
    assert!(vs.rss.is_some_and(|v| v > 0.0), "{vs:?}");

    let dir = harness_report::bench::store::write_run(base.path(), &run_dir, &report).unwrap();
    let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(model::parse(&json).unwrap(), report);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("| 200 | reference-2 ÷ reference |"), "{md}");
}

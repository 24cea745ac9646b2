//! `pubsub-tck chaos`: flags, the progress bar and the reports of a nightly chaos run. The
//! experiment itself is `harness_engine::chaos::nightly`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use harness::fault::parse_kinds;
use harness_engine::Broker;
use harness_engine::chaos::nightly::{self, NightlyConfig};
use harness_engine::env::{EnvSettings, RunEnv, find_workspace};
use harness_report::RunReport;

/// Flags of `pubsub-tck chaos`.
#[derive(Debug, clap::Args)]
pub(crate) struct ChaosArgs {
    /// Length of the load, faults included, such as `60s` or `10m` (the backlog drain comes
    /// on top).
    #[arg(long, default_value = "60s", value_parser = crate::bench::parse_duration)]
    duration: Duration,
    /// Target file (TOML). Default: $PUBSUB_TCK_TARGET, else fixtures/targets/reference.toml.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Broker behind the target's pubsub component: in-memory, redis or kafka.
    #[arg(long, default_value = "redis")]
    broker: String,
    /// Fault kinds the nemesis may use, comma-separated, or `all`: latency, bandwidth,
    /// slow-close, timeout, reset-peer, slicer, limit-data, down, kill-sidecar, kill-app,
    /// kill-broker, pause-sidecar, pause-broker.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Publishes per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Ordering keys (one publishing lane each).
    #[arg(long, default_value_t = 4)]
    keys: u32,
    #[command(flatten)]
    common: crate::Common,
}

pub(crate) fn chaos(args: ChaosArgs) -> anyhow::Result<u8> {
    let mut settings = EnvSettings::from_env()?;
    if args.target.is_some() {
        settings.target = args.target.clone();
    }
    if args.common.seed.is_some() {
        settings.seed = args.common.seed;
    }
    let seed = settings
        .seed
        .unwrap_or_else(harness_engine::env::random_seed);
    settings.seed = Some(seed);
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = find_workspace(&cwd)?;
    let broker = Broker::parse(&args.broker).with_context(|| {
        format!(
            "unknown broker {:?} (in-memory, redis or kafka)",
            args.broker
        )
    })?;
    let faults = parse_kinds(&args.faults).map_err(anyhow::Error::msg)?;
    if args.rate == 0 {
        bail!("--rate must be at least 1");
    }
    let _containers = harness_engine::containers::start_blocking(&mut settings)?;
    crate::provision::ensure(&[broker], &mut settings, !args.common.no_install)?;
    let base = args
        .common
        .report_dir
        .clone()
        .or_else(|| settings.report_dir.as_ref().map(|d| d.join("chaos")))
        .unwrap_or_else(|| harness_engine::env::reports_base(&root, &cwd).join("chaos"));
    let now = time::OffsetDateTime::now_utc();
    let run_id = suites::run_report::run_id(now, seed);
    let env = RunEnv::new(
        &settings,
        &suites::catalog::ids(),
        root,
        base.join(&run_id),
        broker,
    )?;
    if !args.common.no_build {
        crate::build_target(&env.target, &[broker])?;
    }
    let config = NightlyConfig {
        duration: args.duration,
        faults,
        rate: args.rate,
        keys: args.keys,
    };
    for (kind, why) in nightly::unusable(&env, &config) {
        eprintln!("pubsub-tck: fault `{}` left out: {why}", kind.name());
    }
    let schedule =
        harness_engine::chaos::nemesis::schedule(seed, &nightly::nemesis_config(&env, &config));
    eprintln!(
        "pubsub-tck: chaos against target `{}` on broker `{broker}`, seed {seed}: {} fault windows over {:?} at {} msg/s",
        env.target.name(),
        schedule.len(),
        args.duration,
        args.rate
    );
    for w in &schedule {
        eprintln!(
            "  {:>7.1} s – {:>7.1} s  {} on {}",
            w.start.as_secs_f64(),
            w.stop.as_secs_f64(),
            w.fault.kind(),
            w.fault.detail()
        );
    }

    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let console = crate::console::Console::start();
    let outcome = rt.block_on(nightly::run_nightly(
        env.clone(),
        &config,
        seed,
        console.events(),
    ));
    console.finish();

    let mut report = RunReport::new(
        run_id,
        env!("CARGO_PKG_VERSION"),
        env.target.name(),
        suites::run_report::rfc3339_seconds(now),
        seed,
    );
    report.target_file = Some(env.target.path().display().to_string());
    report.profile = Some("chaos".to_owned());
    report.broker = Some(broker.name().to_owned());
    report.environment = harness_engine::env::environment(&[broker], &settings);
    report.duration_ms = started.elapsed().as_millis() as u64;
    let history_name =
        harness_report::store::history_file_name(&format!("{}::{broker}", nightly::ID));
    let mut result = outcome.result;
    result.history_file = Some(format!("histories/{history_name}"));
    report.checks.push(result);
    report.extra_sections.push(outcome.section);
    let dir = harness_report::store::write_run(
        &base,
        &report,
        &[(history_name, outcome.history.to_jsonl())],
    )
    .with_context(|| format!("writing reports under {}", base.display()))?;
    std::fs::write(dir.join("timeline.svg"), &outcome.timeline_svg)
        .with_context(|| format!("writing {}", dir.join("timeline.svg").display()))?;
    // `latest` is a copy: refresh it now that the run directory is complete.
    harness_report::store::refresh_latest(&base, &dir)
        .with_context(|| format!("refreshing {}", base.join("latest").display()))?;
    crate::print_summary(&report, &dir)?;
    Ok(u8::try_from(report.exit_code()).unwrap_or(2))
}

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
use indicatif::{ProgressBar, ProgressStyle};

/// Flags of `pubsub-tck chaos`.
#[derive(Debug, clap::Args)]
pub(crate) struct ChaosArgs {
    /// Length of the load, faults included, such as `60s` or `10m` (the backlog drain comes
    /// on top).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and every other random choice; the same seed replays the
    /// same schedule. Default: $PUBSUB_TCK_SEED or random.
    #[arg(long)]
    seed: Option<u64>,
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
    /// Base directory of chaos reports. Default: $PUBSUB_TCK_REPORT_DIR/chaos, else
    /// reports/chaos.
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Do not run the target file's `build` command first.
    #[arg(long)]
    no_build: bool,
    /// Fail on a missing broker instead of installing it (as `pubsub-tck run`).
    #[arg(long)]
    no_install: bool,
}

/// `90s`, `2m`, `1h`, `500ms` or bare seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 60s, 10m or 500ms"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    }
}

pub(crate) fn chaos(args: ChaosArgs) -> anyhow::Result<u8> {
    let mut settings = EnvSettings::from_env()?;
    if args.target.is_some() {
        settings.target = args.target.clone();
    }
    if args.seed.is_some() {
        settings.seed = args.seed;
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
    crate::provision::ensure(&[broker], &mut settings, !args.no_install)?;
    let base = args
        .report_dir
        .clone()
        .or_else(|| settings.report_dir.as_ref().map(|d| d.join("chaos")))
        .unwrap_or_else(|| harness_engine::env::reports_base(&root, &cwd).join("chaos"));
    let now = time::OffsetDateTime::now_utc();
    let run_id = crate::run_id(now, seed);
    let env = RunEnv::new(
        &settings,
        &suites::catalog::ids(),
        root,
        base.join(&run_id),
        broker,
    )?;
    if !args.no_build {
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
    let outcome = rt.block_on(async {
        let bar = ProgressBar::new(args.duration.as_secs().max(1));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} s {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message("load and faults");
        let ticker = {
            let bar = bar.clone();
            let total = args.duration;
            tokio::spawn(async move {
                // Display only: the bar follows the clock, nothing waits on it.
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    let e = started.elapsed();
                    bar.set_position(e.as_secs().min(total.as_secs()));
                    if e > total {
                        bar.set_message("draining the backlog and judging");
                    }
                }
            })
        };
        let outcome = nightly::run_nightly(env.clone(), &config, seed).await;
        ticker.abort();
        bar.finish_and_clear();
        outcome
    });

    let mut report = RunReport::new(
        run_id,
        env!("CARGO_PKG_VERSION"),
        env.target.name(),
        crate::suites_rfc3339(now),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }
}

//! `pubsub-tck bench` and `pubsub-tck bench compare`: flags, the progress bar and the console
//! summary. The benchmark itself is `harness_bench::run`; `bench apps` is in `bench_apps`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use harness_bench::{BenchConfig, Broker, Protocol, SearchConfig};
use harness_engine::env::{EnvSettings, find_workspace};
use harness_report::bench::markdown::{ms, rate as fmt_rate};
use harness_report::bench::model::{self, BenchReport};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: BenchRunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Compare two results.json files; exits 1 when B regressed from A beyond noise.
    Compare(CompareArgs),
    /// Deliveries a second through each target to real subscriber apps (fixtures/apps).
    Apps(crate::bench_apps::AppsArgs),
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// The reference run's results.json.
    a: PathBuf,
    /// The run to judge.
    b: PathBuf,
    /// The target of A to compare, in a run of several targets. Default: its first.
    #[arg(long)]
    target_a: Option<String>,
    /// The target of B to compare (B may be the same file as A). Default: its first.
    #[arg(long)]
    target_b: Option<String>,
    /// Relative change (percent) a metric must exceed, besides its absolute floor, to count.
    #[arg(long, default_value_t = 10.0)]
    threshold: f64,
}

#[derive(Debug, clap::Args)]
struct BenchRunArgs {
    /// Target file (TOML); repeat it to measure several targets in one run, in interleaved
    /// rounds, each compared with the first. Default: $PUBSUB_TCK_TARGET, else
    /// fixtures/targets/reference.toml.
    #[arg(long)]
    target: Vec<PathBuf>,
    /// Broker behind the target's pubsub component: in-memory, redis or kafka.
    #[arg(long, default_value = "in-memory")]
    broker: String,
    /// Rate(s) in messages per second, comma-separated; with --find-max, the first step.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    rate: Vec<f64>,
    /// Measured duration per rate (`20s`, `500ms`, `2m`). Default: 20s; 5s per --find-max step.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before each measured phase, same rate, discarded. Default: 3s; 1s per --find-max step.
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Interleaved rounds: the measured duration is split into this many rounds, and rounds of
    /// the sidecar and its baselines take turns (background load then hits them alike).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Payload size in bytes (at least 35: the sequence marker).
    #[arg(long, default_value_t = 100)]
    payload_size: usize,
    /// Publishers; messages are spread over them round robin from a seeded offset.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Keep-alive connections (in-flight requests) per publisher.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Worker threads of the runtime the load generator, the app and the baselines share. One
    /// (the default) keeps the generator cheap on small machines: a second thread costs more in
    /// cross-thread wake-ups than it gives, and leaves less CPU to the sidecar under test.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Publish API: http or grpc.
    #[arg(long, default_value = "http")]
    protocol: String,
    /// Search the maximum sustainable rate instead of measuring the given rates.
    #[arg(long)]
    find_max: bool,
    /// With --find-max: the p99 bound (publish and end-to-end) a rate must stay under.
    #[arg(long, value_parser = parse_duration, default_value = "10ms")]
    p99_bound: Duration,
    /// With --find-max: at most this many steps.
    #[arg(long, default_value_t = 12)]
    max_steps: usize,
    /// How long deliveries may still arrive after the last publish answer.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    drain: Duration,
    /// How long one publish may take before it counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,
    /// Percent of failed publishes above which a rate fails the run.
    #[arg(long, default_value_t = 0.1)]
    max_error_rate: f64,
    /// Skip the no-op HTTP and direct-broker baselines.
    #[arg(long)]
    no_baselines: bool,
    #[command(flatten)]
    common: crate::Common,
}

/// Where bench runs go: `--report-dir`, else `$PUBSUB_TCK_REPORT_DIR/bench`, else
/// `reports/bench` of the clone (or of the current directory outside one).
pub(crate) fn reports_dir(
    given: Option<&Path>,
    settings: &EnvSettings,
    root: &Path,
    cwd: &Path,
) -> PathBuf {
    match (given, &settings.report_dir) {
        (Some(d), _) => d.to_owned(),
        (None, Some(d)) => d.join("bench"),
        (None, None) => harness_engine::env::reports_base(root, cwd).join("bench"),
    }
}

/// Parses `20s`, `500ms`, `2m`, `1.5s`, `250us`; a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 20s, 500ms or 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

pub(crate) fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    match args.command {
        Some(BenchCommand::Compare(c)) => compare(&c),
        Some(BenchCommand::Apps(a)) => crate::bench_apps::apps(&a),
        None => run(args.run),
    }
}

fn read_report(path: &Path) -> anyhow::Result<BenchReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let report = model::parse(&text)
        .with_context(|| format!("parsing {} as a bench results.json", path.display()))?;
    if report.format_version != model::FORMAT_VERSION {
        bail!(
            "{} has format_version {}, this pubsub-tck reads {}",
            path.display(),
            report.format_version,
            model::FORMAT_VERSION
        );
    }
    Ok(report)
}

fn compare(args: &CompareArgs) -> anyhow::Result<u8> {
    let select = |r: BenchReport, t: &Option<String>| {
        harness_bench::compare::select(&r, t.as_deref()).map_err(anyhow::Error::msg)
    };
    let a = select(read_report(&args.a)?, &args.target_a)?;
    let b = select(read_report(&args.b)?, &args.target_b)?;
    let c = harness_bench::compare::compare(&a, &b, args.threshold);
    let mut out = format!(
        "A: {} ({} on {} over {})\nB: {} ({} on {} over {})\n",
        a.run_id, a.target, a.broker, a.protocol, b.run_id, b.target, b.broker, b.protocol
    );
    out.push_str(&harness_bench::compare::render(&c, args.threshold));
    crate::write_stdout(&out)?;
    Ok(u8::from(c.regressed()))
}

fn run(args: BenchRunArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let mut settings = EnvSettings::from_env()?;
    let broker = Broker::parse(&args.broker).with_context(|| {
        format!(
            "unknown broker {:?} (in-memory, redis or kafka)",
            args.broker
        )
    })?;
    let protocol = Protocol::parse(&args.protocol)
        .with_context(|| format!("unknown protocol {:?} (http or grpc)", args.protocol))?;
    if args.rate.is_empty() || args.rate.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        bail!("--rate takes positive numbers of messages per second");
    }
    if args.publishers == 0 || args.connections == 0 || args.threads == 0 {
        bail!("--publishers, --connections and --threads must be at least 1");
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = find_workspace(&cwd)?;
    crate::provision::ensure(&[broker], &mut settings, !args.common.no_install)?;
    let paths: Vec<Option<&std::path::Path>> = if args.target.is_empty() {
        vec![settings.target.as_deref()]
    } else {
        args.target.iter().map(|p| Some(p.as_path())).collect()
    };
    let mut targets = Vec::new();
    for path in paths {
        let target_path = harness_engine::env::target_path(path, &root)?;
        let target = harness::TargetFile::load(&target_path)
            .with_context(|| format!("loading target file {}", target_path.display()))?;
        if broker != Broker::InMemory && !target.has_capability(broker.component_type()) {
            bail!(
                "target `{}` does not declare the capability {:?} in {}",
                target.name(),
                broker.component_type(),
                target_path.display()
            );
        }
        if targets
            .iter()
            .any(|t: &harness::TargetFile| t.name() == target.name())
        {
            bail!(
                "two targets are named `{}`: a report tells targets apart by name",
                target.name()
            );
        }
        if !args.common.no_build {
            crate::build_target(&target, &[broker])?;
        }
        targets.push(target);
    }
    let seed = args
        .common
        .seed
        .or(settings.seed)
        .unwrap_or_else(harness_engine::env::random_seed);
    let now = time::OffsetDateTime::now_utc();
    let run_id = suites::run_report::run_id(now, seed);
    let base = reports_dir(args.common.report_dir.as_deref(), &settings, &root, &cwd);
    let run_dir = base.join(&run_id);
    let searching = args.find_max;
    let duration = args
        .duration
        .unwrap_or(Duration::from_secs(if searching { 5 } else { 20 }));
    let warmup = args
        .warmup
        .unwrap_or(Duration::from_secs(if searching { 1 } else { 3 }));
    let names: Vec<&str> = targets.iter().map(harness::TargetFile::name).collect();
    let names = names.join("`, `");
    let config = BenchConfig {
        targets,
        workspace_root: root.clone(),
        work_dir: run_dir.clone(),
        broker,
        protocol,
        rates: args.rate.clone(),
        duration,
        warmup,
        rounds: args.rounds.max(1),
        threads: args.threads,
        payload_size: args.payload_size,
        publishers: args.publishers,
        connections: args.connections,
        seed,
        drain: args.drain,
        request_timeout: args.timeout,
        max_error_rate: args.max_error_rate / 100.0,
        baselines: !args.no_baselines,
        find_max: searching.then_some(SearchConfig {
            p99_bound: args.p99_bound,
            step_duration: duration,
            step_warmup: warmup,
            max_steps: args.max_steps,
        }),
        broker_sources: settings.broker_sources.clone(),
    };
    let rates: Vec<String> = config.rates.iter().map(|&r| fmt_rate(r)).collect();
    eprintln!(
        "pubsub-tck bench: target `{names}` on broker `{broker}` over {}, {} {} msg/s, {} s per phase after {} s warm-up, {} B payloads, {} publishers × {} connections on {} generator thread(s), seed {seed}",
        protocol.name(),
        if searching {
            "searching the maximum rate from"
        } else {
            "rates"
        },
        rates.join(", "),
        duration.as_secs_f64(),
        warmup.as_secs_f64(),
        config.payload_size.max(harness_bench::payload::MIN_SIZE),
        config.publishers,
        config.connections,
        config.threads,
    );
    let info = harness_bench::RunInfo {
        run_id,
        started_at: suites::run_report::rfc3339_seconds(now),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let console = crate::console::Console::start();
    let report = rt.block_on(harness_bench::run(&config, info, console.events()));
    console.finish();
    let report = report?;
    let dir = harness_report::bench::store::write_run(&base, &run_dir, &report)
        .with_context(|| format!("writing reports under {}", base.display()))?;
    print_summary(&report, &dir, started.elapsed())?;
    Ok(report.exit_code())
}

fn print_summary(report: &BenchReport, dir: &Path, took: Duration) -> anyhow::Result<()> {
    let mut out = String::new();
    if !report.rates.is_empty() {
        out.push_str(&format!(
            "\n{:>8} {:>9} {:>17} {:>17} {:>17} {:>17} {:>7} {:>7}\n",
            "rate",
            "achieved",
            "publish p50/p99",
            "e2e p50/p99",
            "no-op p50/p99",
            "broker e2e p50/99",
            "mCPU",
            "RSS MB"
        ));
        let pair = |s: Option<model::LatencySummary>| {
            s.map_or("-".to_owned(), |s| {
                format!("{}/{}", ms(s.p50_ms), ms(s.p99_ms))
            })
        };
        for r in &report.rates {
            let s = &r.sidecar;
            out.push_str(&format!(
                "{:>8} {:>9.1} {:>17} {:>17} {:>17} {:>17} {:>7} {:>7}\n",
                fmt_rate(r.rate),
                s.achieved_rate,
                pair(s.publish),
                pair(s.e2e),
                pair(r.noop.as_ref().and_then(|n| n.publish)),
                pair(r.direct.result().and_then(|d| d.e2e)),
                s.resources
                    .map_or("-".to_owned(), |x| format!("{:.0}", x.mcpu_mean)),
                s.resources
                    .map_or("-".to_owned(), |x| format!("{:.1}", x.rss_mb_max)),
            ));
            for o in &r.others {
                let s = &o.sidecar;
                let x = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("×{v:.1}"));
                out.push_str(&format!(
                    "{:>8} {:>9.1} {:>17} {:>17} {:>17} {:>17} {:>7} {:>7}   {}: publish p99 {}, e2e p99 {}, CPU/msg {}, RSS {} of {}\n",
                    "",
                    s.achieved_rate,
                    pair(s.publish),
                    pair(s.e2e),
                    "",
                    "",
                    s.resources
                        .map_or("-".to_owned(), |x| format!("{:.0}", x.mcpu_mean)),
                    s.resources
                        .map_or("-".to_owned(), |x| format!("{:.1}", x.rss_mb_max)),
                    o.target,
                    x(o.vs_first.publish[2]),
                    x(o.vs_first.e2e[2]),
                    x(o.vs_first.cpu_per_msg),
                    x(o.vs_first.rss),
                    report.target,
                ));
            }
        }
        out.push('\n');
    }
    for o in &report.other_searches {
        out.push_str(&format!(
            "  {}: maximum sustainable rate {}\n",
            o.target,
            o.search
                .max_rate
                .map_or("none".to_owned(), |m| format!("{} msg/s", fmt_rate(m)))
        ));
    }
    for f in &report.failures {
        out.push_str(&format!("  FAIL {f}\n"));
    }
    let headline = match (&report.search, report.rates.first()) {
        (Some(s), _) => format!(
            "maximum sustainable rate {} (p99 ≤ {} ms)",
            s.max_rate
                .map_or("none".to_owned(), |m| format!("{} msg/s", fmt_rate(m))),
            s.p99_bound_ms
        ),
        (None, Some(r)) => {
            let p = r.sidecar.publish.map_or("-".to_owned(), |p| ms(p.p99_ms));
            let e = r.sidecar.e2e.map_or("-".to_owned(), |e| ms(e.p99_ms));
            let o = r
                .overhead
                .publish_p99_ms
                .map_or(String::new(), |o| format!(" ({:+.3} ms over no-op)", o));
            format!(
                "{} msg/s: publish p99 {p} ms{o}, e2e p99 {e} ms, lost {}",
                fmt_rate(r.rate),
                r.sidecar.lost.unwrap_or(0)
            )
        }
        (None, None) => "nothing measured".to_owned(),
    };
    out.push_str(&format!(
        "pubsub-tck bench: {} — {headline} (seed {}, {:.0} s) — reports in {}\n",
        if report.failures.is_empty() {
            "PASS"
        } else {
            "FAIL"
        },
        report.seed,
        took.as_secs_f64(),
        dir.display()
    ));
    crate::write_stdout(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }
}

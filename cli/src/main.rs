//! `pubsub-tck`: run the conformance checks against a daprd-compatible sidecar and write
//! reports, list the checks, run a nightly chaos experiment (`chaos`), or benchmark the sidecar
//! (`bench`, `bench compare`).
//!
//! Exit codes: 0 when every MUST check passed, 1 when a MUST check failed, 2 on setup errors
//! (bad flags, a target that cannot be built or loaded, a harness error in a check).
//! `bench` exits 1 when the run showed failures (lost messages, errors above the threshold,
//! no rate under the bound), `bench compare` when a metric regressed.

mod bench;
mod bench_apps;
mod chaos;
mod console;
mod doctor;
mod init;
mod provision;
mod selfcheck;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use harness_engine::env::{EnvSettings, RunEnv, find_workspace};
use harness_engine::runner;
use harness_report::{RunReport, VerdictKind};
use suites::run_report::RunRecord;

#[derive(Debug, Parser)]
#[command(
    name = "pubsub-tck",
    version,
    about = "Conformance checks for daprd-compatible pub/sub sidecars"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run checks against a target and write reports (junit.xml, results.json, summary.md, report.html).
    Run(RunArgs),
    /// List the checks.
    List(ListArgs),
    /// Run steady load under a seeded fault schedule (nightly chaos) and write reports with a
    /// timeline of fault windows.
    Chaos(chaos::ChaosArgs),
    /// Measure publish and end-to-end latency against a target, with baselines (or compare two runs).
    Bench(Box<bench::BenchArgs>),
    /// Scaffold a target file (NAME.toml) and an empty expectations file for a sidecar command,
    /// in the current directory, with a comment on every field and placeholder.
    Init(init::InitArgs),
    /// Tell what this environment can run (brokers, Kafka, Toxiproxy, daprd, the apps' runtimes)
    /// and how to get each missing part, with the checks it would skip.
    Doctor,
    /// Prove the checks catch broken versions of a target: wrap it in deliberately broken
    /// proxies (mutants), each of which some check must fail, and a pass-through control that
    /// must pass.
    Selfcheck(selfcheck::SelfcheckArgs),
    /// The wrapper `selfcheck` launches in front of a sidecar (the same as `tck-mutant`).
    #[command(hide = true)]
    Mutant(harness_mutant::cli::MutantArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Target file (TOML); repeat it to run every check on several targets and get a
    /// conformance matrix. Default: $PUBSUB_TCK_TARGET, else fixtures/targets/reference.toml.
    #[arg(long)]
    target: Vec<PathBuf>,
    /// Only checks of this profile (the first segment of the id, e.g. `core`).
    #[arg(long)]
    profile: Option<String>,
    /// Only checks whose id contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Broker(s) behind the target's pubsub component: in-memory, redis, kafka, or all (comma-separated).
    #[arg(long, default_value = "in-memory")]
    broker: String,
    /// Checks run at the same time (default: four per core, between 4 and 32).
    #[arg(long, default_value_t = runner::default_jobs())]
    jobs: usize,
    /// Run the selection this many times, each with a fresh seed (the first is `--seed`, if
    /// given), and report each check's pass rate and the seeds of its non-passing runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Run against each target wrapped in this deliberately broken proxy (a mutant mode of
    /// `selfcheck`, such as `never-ack`): how a broken version of the sidecar would fare.
    #[arg(long)]
    mutant: Option<harness_mutant::Mode>,
    /// Requests per campaign of the `robustness` profile (default 20000; nightly: 1000000).
    /// Default: $PUBSUB_TCK_BUDGET.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    budget: Option<u64>,
    #[command(flatten)]
    common: crate::Common,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The wrapper (`mutant`) forwards SIGTERM and SIGINT to its sidecar and logs on its own.
    if !matches!(cli.command, Command::Mutant(_)) {
        if let Err(e) = harness::proc::stop_children_on_interrupt() {
            eprintln!(
                "pubsub-tck: cannot handle SIGINT/SIGTERM ({e}); an interrupted run may leave child processes"
            );
        }
        let filter = tracing_subscriber::EnvFilter::try_from_env("PUBSUB_TCK_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,harness_toxiproxy=error"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let result = match cli.command {
        Command::List(args) => list(&args).map(|()| 0),
        Command::Run(args) => run(args),
        Command::Chaos(args) => chaos::chaos(args),
        Command::Bench(args) => bench::bench(*args),
        Command::Init(args) => init_here(&args),
        Command::Doctor => doctor_here(),
        Command::Selfcheck(args) => selfcheck::selfcheck(args),
        Command::Mutant(args) => mutant(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("pubsub-tck: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the wrapper until its sidecar exits, with the sidecar's exit code.
fn mutant(args: harness_mutant::cli::MutantArgs) -> anyhow::Result<u8> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PUBSUB_TCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let code = rt.block_on(harness_mutant::cli::main_with(args))?;
    Ok(u8::try_from(code).unwrap_or(1))
}

fn init_here(args: &init::InitArgs) -> anyhow::Result<u8> {
    let dir = std::env::current_dir().context("reading the current directory")?;
    let (target, expect) = init::init(args, &dir)?;
    eprintln!(
        "pubsub-tck: wrote {} and {}; next: pubsub-tck run --target {}",
        target.display(),
        expect.display(),
        target.display()
    );
    Ok(0)
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let checks = suites::all();
    let mut out = String::new();
    match args.format {
        Format::Json => {
            let items: Vec<serde_json::Value> = checks
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "id": c.id,
                        "title": c.title,
                        "level": match c.level { harness_report::Level::Must => "MUST", harness_report::Level::Should => "SHOULD" },
                        "clause": c.clause,
                        "clause_url": c.clause_url,
                        "profile": c.profile(),
                    })
                })
                .collect();
            out.push_str(&serde_json::to_string_pretty(&items)?);
            out.push('\n');
        }
        Format::Text => {
            for c in &checks {
                let level = match c.level {
                    harness_report::Level::Must => "MUST  ",
                    harness_report::Level::Should => "SHOULD",
                };
                out.push_str(&format!("{level} {:<52} {}\n", c.id, c.title));
            }
            out.push_str(&format!("{} checks\n", checks.len()));
        }
    }
    write_stdout(&out)
}

fn write_stdout(s: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(s.as_bytes())
        .context("writing to stdout")?;
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    let mut settings = EnvSettings::from_env()?;
    // Every trial of a run runs on the one runtime of `execute`, which stops the idle brokers.
    settings.reuse_kafka = true;
    if args.common.seed.is_some() {
        settings.seed = args.common.seed;
    }
    if args.budget.is_some() {
        settings.budget = args.budget;
    }
    if args.common.report_dir.is_some() {
        settings.report_dir = args.common.report_dir.clone();
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = find_workspace(&cwd)?;
    let base = settings
        .report_dir
        .clone()
        .unwrap_or_else(|| harness_engine::env::reports_base(&root, &cwd));
    let brokers = harness_engine::broker::parse_list(&args.broker).map_err(anyhow::Error::msg)?;
    let checks = runner::select(
        suites::all(),
        args.profile.as_deref(),
        args.filter.as_deref(),
    );
    if checks.is_empty() {
        bail!(
            "no check matches --profile {:?} --filter {:?} (see `pubsub-tck list`)",
            args.profile,
            args.filter
        );
    }
    // Containers (feature `testcontainers`) become external broker addresses; they live until
    // the run's reports are written.
    let _containers = harness_engine::containers::start_blocking(&mut settings)?;
    // Every broker is found or installed before anything runs, so a missing one costs no run.
    provision::ensure(&brokers, &mut settings, !args.common.no_install)?;
    // No --target: the environment's target or the default (`None`), as for one run.
    let targets: Vec<Option<PathBuf>> = if args.target.is_empty() {
        vec![settings.target.clone()]
    } else {
        args.target.iter().cloned().map(Some).collect()
    };
    let first_seed = settings
        .seed
        .unwrap_or_else(harness_engine::env::random_seed);
    let mut reports = Vec::new();
    for i in 0..args.repeat {
        let seed = if i == 0 {
            first_seed
        } else {
            harness_engine::env::random_seed()
        };
        if args.repeat > 1 {
            eprintln!("pubsub-tck: run {} of {}, seed {seed}", i + 1, args.repeat);
        }
        settings.seed = Some(seed);
        let build = i == 0 && !args.common.no_build;
        let selection = Selection {
            targets: &targets,
            brokers: &brokers,
            checks: &checks,
        };
        let (report, dir) = run_once(&args, &settings, &root, &base, &selection, build)?;
        print_summary(&report, &dir)?;
        reports.push(report);
    }
    if args.repeat == 1 {
        let code = reports.first().map_or(2, RunReport::exit_code);
        return Ok(u8::try_from(code).unwrap_or(2));
    }
    let target = reports
        .first()
        .map(|r| r.target.clone())
        .unwrap_or_default();
    let repeat = harness_report::repeat::RepeatReport::from_runs(&target, &reports);
    let dir = base.join(format!(
        "{}-repeat",
        reports.first().map_or("run", |r| r.run_id.as_str())
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("repeat.md"), repeat.markdown())
        .with_context(|| format!("writing {}", dir.join("repeat.md").display()))?;
    std::fs::write(
        dir.join("repeat.json"),
        serde_json::to_string_pretty(&repeat)?,
    )
    .with_context(|| format!("writing {}", dir.join("repeat.json").display()))?;
    let mut out = String::new();
    for c in repeat.checks.iter().filter(|c| !c.not_passed.is_empty()) {
        let seeds: Vec<String> = c.not_passed.iter().map(|(s, _, _)| s.to_string()).collect();
        out.push_str(&format!(
            "  {} {}{}{}: passed {}/{} (seeds {})\n",
            if c.is_flaky() { "flaky  " } else { "failing" },
            c.id,
            c.broker
                .as_deref()
                .map(|b| format!("::{b}"))
                .unwrap_or_default(),
            c.target
                .as_deref()
                .map(|t| format!(" on {t}"))
                .unwrap_or_default(),
            c.passed,
            c.decided(),
            seeds.join(", ")
        ));
    }
    out.push_str(&format!(
        "pubsub-tck: repeat: {} — {}\n",
        repeat.headline(),
        dir.join("repeat.md").display()
    ));
    write_stdout(&out)?;
    Ok(u8::try_from(repeat.exit_code()).unwrap_or(2))
}

/// The flags every command that runs a target shares.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Common {
    /// Seed of every random choice; printed in every report. Default: $PUBSUB_TCK_SEED or random.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Where the reports go. Default: $PUBSUB_TCK_REPORT_DIR, else reports/ (`bench` and `chaos`
    /// write into a folder of that name in it).
    #[arg(long)]
    pub(crate) report_dir: Option<PathBuf>,
    /// Do not run the target file's `build` command first.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Fail on a missing broker instead of installing it (redis-server with apt-get, Apache
    /// Kafka fetched with Maven into the cache directory).
    #[arg(long)]
    pub(crate) no_install: bool,
}

/// What one run covers: every check on every broker of every target.
struct Selection<'a> {
    targets: &'a [Option<PathBuf>],
    brokers: &'a [harness_engine::Broker],
    checks: &'a [suites::Check],
}

/// One run of the selection with `settings.seed`: runs every check on every broker of every
/// target and writes the run's reports (with a conformance matrix over several targets).
fn run_once(
    args: &RunArgs,
    settings: &EnvSettings,
    root: &std::path::Path,
    base: &std::path::Path,
    selection: &Selection<'_>,
    build: bool,
) -> anyhow::Result<(RunReport, PathBuf)> {
    let seed = settings.seed.context("the run has a seed")?;
    let mut record = RunRecord::start(env!("CARGO_PKG_VERSION"), seed);
    let run_dir = base.join(record.run_id());
    let mut names = Vec::new();
    let mut envs = Vec::new();
    for target in selection.targets {
        let settings = EnvSettings {
            target: target.clone(),
            ..settings.clone()
        };
        let mut built = false;
        for &broker in selection.brokers {
            let mut broker_env = RunEnv::new(
                &settings,
                &suites::catalog::ids(),
                root.to_owned(),
                run_dir.clone(),
                broker,
            )?;
            if build && !built {
                build_target(&broker_env.target, selection.brokers)?;
                built = true;
            }
            if let Some(mode) = args.mutant {
                broker_env = mutant_env(broker_env, mode)?;
            }
            eprintln!(
                "pubsub-tck: {} checks against target `{}` ({}) on broker `{broker}`, seed {seed}",
                selection.checks.len(),
                broker_env.target.name(),
                broker_env.target.path().display()
            );
            envs.push(broker_env);
        }
        if let Some(e) = envs.last() {
            names.push(e.target.name().to_owned());
        }
    }
    let env = envs.last().cloned().context("no broker selected")?;
    let outcomes = execute(&envs, selection.checks, args.jobs)?;

    let report = record.report_mut();
    report.target = names.join(" + ");
    report.target_file = Some(env.target.path().display().to_string());
    report.profile = args.profile.clone();
    report.broker = Some(args.broker.clone());
    report.environment = harness_engine::env::environment(selection.brokers, settings);
    for o in outcomes {
        record.push(o);
    }
    record
        .write(base, &env.target)
        .with_context(|| format!("writing reports under {}", base.display()))
}

/// `env` with its target behind `pubsub-tck mutant --mode MODE` (this very binary).
fn mutant_env(env: Arc<RunEnv>, mode: harness_mutant::Mode) -> anyhow::Result<Arc<RunEnv>> {
    let exe = std::env::current_exe().context("finding the pubsub-tck binary")?;
    let wrapper = [exe.display().to_string(), "mutant".to_owned()];
    let mutant = harness_mutant::wrap(&env.target, mode, &wrapper)
        .with_context(|| format!("wrapping target `{}`", env.target.name()))?;
    let mut env = Arc::unwrap_or_clone(env);
    env.target = mutant;
    Ok(Arc::new(env))
}

/// `pubsub-tck doctor`, with hints pointing into the kit this binary runs from.
fn doctor_here() -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = find_workspace(&cwd)?;
    write_stdout(&doctor::render(&doctor::probe(&root))).map(|()| 0)
}

/// Runs the target file's `build` command for a run on `brokers` in the target's root.
fn build_target(
    target: &harness::TargetFile,
    brokers: &[harness_engine::Broker],
) -> anyhow::Result<()> {
    let names: Vec<&str> = brokers.iter().map(|b| b.name()).collect();
    let Some(cmd) = target.build_command_for(&names) else {
        return Ok(());
    };
    let (program, args) = cmd.split_first().context("empty build command")?;
    eprintln!(
        "pubsub-tck: building target `{}`: {}",
        target.name(),
        cmd.join(" ")
    );
    let status = std::process::Command::new(program)
        .args(args)
        .current_dir(target.root())
        .status()
        .with_context(|| format!("running the build command of target `{}`", target.name()))?;
    if !status.success() {
        bail!(
            "the build command of target `{}` failed ({status})",
            target.name()
        );
    }
    Ok(())
}

/// Runs every check on every environment (a target on a broker) on a tokio runtime, with a
/// progress bar fed by runner events. The checks start longest first, each on every
/// environment in turn, so that one broker's heavy trials overlap the others' waits; the
/// outcomes come back grouped by environment, each group in catalog order.
fn execute(
    envs: &[Arc<RunEnv>],
    checks: &[suites::Check],
    jobs: usize,
) -> anyhow::Result<Vec<runner::Outcome>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Each pair keeps its place in the report's order: environment, then catalog.
    let mut indexed: Vec<(usize, &suites::Check)> = checks.iter().enumerate().collect();
    indexed.sort_by_key(|(_, check)| runner::start_rank(check));
    let mut order = Vec::new();
    let mut work = Vec::new();
    for (c, check) in indexed {
        for (e, env) in envs.iter().enumerate() {
            order.push((e, c));
            work.push((env.clone(), (*check).clone()));
        }
    }
    let console = console::Console::start();
    let outcomes = rt.block_on(async {
        let outcomes = runner::run_many(work, jobs, console.events()).await;
        harness::KafkaServer::stop_idle().await;
        outcomes
    });
    console.finish();
    let mut grouped: Vec<_> = order.into_iter().zip(outcomes).collect();
    grouped.sort_by_key(|(key, _)| *key);
    Ok(grouped.into_iter().map(|(_, o)| o).collect())
}

fn print_summary(report: &RunReport, dir: &std::path::Path) -> anyhow::Result<()> {
    let t = report.totals();
    let h = report.headline();
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<8} {:>6} {:>6} {:>11} {:>9} {:>9} {:>8} {:>6}\n",
        "total", "pass", "fail", "non-strict", "expected", "unexp.ok", "skipped", "error"
    ));
    out.push_str(&format!(
        "{:<8} {:>6} {:>6} {:>11} {:>9} {:>9} {:>8} {:>6}\n\n",
        t.total, t.pass, t.fail, t.non_strict, t.expected_fail, t.unexpected_pass, t.skip, t.error
    ));
    for c in report.checks.iter().filter(|c| {
        matches!(
            c.verdict,
            VerdictKind::Fail | VerdictKind::Error | VerdictKind::UnexpectedPass
        )
    }) {
        out.push_str(&format!(
            "  {:?} {}: {}\n",
            c.verdict,
            c.id,
            c.summary.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "{}: {} (seed {}) — reports in {}\n",
        h.status,
        h.text,
        report.seed,
        dir.display()
    ));
    // Expected failures are named in the headline above; this line keeps its fixed shape.
    out.push_str(&format!(
        "pubsub-tck: {} passed, {} failed, {} skipped\n",
        t.pass + t.non_strict,
        t.fail + t.error + t.unexpected_pass,
        t.skip
    ));
    write_stdout(&out)
}

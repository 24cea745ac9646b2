//! `pubsub-tck selfcheck`: do the checks catch a broken version of *this* sidecar?
//!
//! Each case of `suites::selfcheck` wraps the user's target in one `tck-mutant` mode (the
//! wrapper is this very binary, `pubsub-tck mutant`, so an installed kit needs nothing else), runs one check and judges it: a mutant must
//! be caught, the pass-through control must pass. Writes `selfcheck.md` in the run directory;
//! exits 0 when every case ended as required (skips say why), 1 otherwise.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use harness_engine::env::{EnvSettings, RunEnv, find_workspace};
use harness_mutant::Mode;
use harness_report::event::{RunEvent, emit};
use suites::selfcheck::{Case, Judgement};

/// Flags of `pubsub-tck selfcheck`.
#[derive(Debug, clap::Args)]
pub(crate) struct SelfcheckArgs {
    /// Target file (TOML) to wrap; it must launch its sidecar with daprd's `--app-port
    /// {app_port}` flag. Default: $PUBSUB_TCK_TARGET, else fixtures/targets/reference.toml.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Broker(s): in-memory, redis, kafka, or all (comma-separated).
    #[arg(long, default_value = "in-memory")]
    broker: String,
    /// Only these mutant modes (comma-separated), such as `drop-every-3rd,none`.
    #[arg(long)]
    mode: Option<String>,
    /// Only cases whose check id contains this text.
    #[arg(long)]
    filter: Option<String>,
    #[command(flatten)]
    common: crate::Common,
}

pub(crate) fn selfcheck(args: SelfcheckArgs) -> anyhow::Result<u8> {
    let mut settings = EnvSettings::from_env()?;
    if args.common.seed.is_some() {
        settings.seed = args.common.seed;
    }
    if args.target.is_some() {
        settings.target = args.target.clone();
    }
    let seed = settings
        .seed
        .unwrap_or_else(harness_engine::env::random_seed);
    settings.seed = Some(seed);
    let brokers = harness_engine::broker::parse_list(&args.broker).map_err(anyhow::Error::msg)?;
    let modes = match &args.mode {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|m| m.trim().parse::<Mode>())
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let cases: Vec<Case> = suites::selfcheck::cases()
        .into_iter()
        .filter(|c| brokers.contains(&c.broker))
        .filter(|c| modes.as_ref().is_none_or(|m| m.contains(&c.mode)))
        .filter(|c| args.filter.as_deref().is_none_or(|f| c.check.contains(f)))
        .collect();
    if cases.is_empty() {
        bail!(
            "no self-check case matches --broker {} --mode {:?} --filter {:?}",
            args.broker,
            args.mode,
            args.filter
        );
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = find_workspace(&cwd)?;
    let base = args
        .common
        .report_dir
        .clone()
        .or_else(|| settings.report_dir.clone())
        .unwrap_or_else(|| harness_engine::env::reports_base(&root, &cwd));
    crate::provision::ensure(&brokers, &mut settings, !args.common.no_install)?;
    let run_dir = base.join(format!(
        "{}-selfcheck",
        suites::run_report::run_id(time::OffsetDateTime::now_utc(), seed)
    ));

    let env_of = |case: &Case| {
        RunEnv::new(
            &settings,
            &suites::catalog::ids(),
            root.clone(),
            run_dir.join(case.mode.as_str()),
            case.broker,
        )
    };
    if let Some(first) = cases.first() {
        let env = env_of(first)?;
        if !args.common.no_build {
            crate::build_target(&env.target, &brokers)?;
        }
        eprintln!(
            "pubsub-tck: selfcheck: {} cases around target `{}` ({}), seed {seed}",
            cases.len(),
            env.target.name(),
            env.target.path().display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let console = crate::console::Console::start();
    let events = console.events();
    emit(
        events,
        RunEvent::Stage {
            label: "self-check".to_owned(),
            total: cases.len() as u64,
            unit: "cases",
        },
    );
    let mut judged = Vec::new();
    for case in &cases {
        emit(
            events,
            RunEvent::Progress {
                done: judged.len() as u64,
                current: Some(case.name()),
            },
        );
        let env = env_of(case)?;
        let judgement = match suites::selfcheck::not_observable(&env.target, case) {
            Some(why) => Judgement::Skipped(why),
            None => rt.block_on(suites::selfcheck::judge(
                crate::mutant_env(env, case.mode)?,
                case,
            )),
        };
        // A line per case, so a log without a terminal has every one.
        emit(events, RunEvent::Line(line(case, &judgement)));
        judged.push((*case, judgement));
    }
    emit(
        events,
        RunEvent::StageFinished {
            label: "self-check".to_owned(),
            summary: None,
        },
    );
    console.finish();

    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let md = markdown(&judged, seed);
    let path = run_dir.join("selfcheck.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    let count = |f: fn(&Judgement) -> bool| judged.iter().filter(|(_, j)| f(j)).count();
    let caught = count(|j| matches!(j, Judgement::Caught(_)));
    let passed = count(|j| *j == Judgement::ControlPassed);
    let skipped = count(|j| matches!(j, Judgement::Skipped(_)));
    let bad = count(|j| !j.is_ok());
    crate::write_stdout(&format!(
        "pubsub-tck: selfcheck: {caught} mutants caught, {passed} controls passed, {skipped} skipped, {bad} not as required (seed {seed}) — {}\n",
        path.display()
    ))?;
    Ok(if bad == 0 { 0 } else { 1 })
}

/// One line per case: the judgement, the case, and why when it is not a plain success.
fn line(case: &Case, j: &Judgement) -> String {
    let mut s = format!("{:>14} {}", j.label(), case.name());
    if let Some(d) = j.detail() {
        let _ = write!(s, ": {}", d.lines().next().unwrap_or_default());
    }
    s
}

fn markdown(judged: &[(Case, Judgement)], seed: u64) -> String {
    let mut s = format!(
        "# Self-check\n\nSeed {seed}. Each case wraps the target in one mutant mode and runs one check: a mutant must be caught, the control `none` must pass.\n\n| result | mode | check | broker | detail |\n|---|---|---|---|---|\n"
    );
    for (c, j) in judged {
        let detail = j
            .detail()
            .unwrap_or_default()
            .replace('|', "\\|")
            .replace('\n', " ");
        let _ = writeln!(
            s,
            "| {} | {} | `{}` | {} | {detail} |",
            j.label(),
            c.mode,
            c.check,
            c.broker
        );
    }
    s
}

//! `pubsub-tck bench apps`: delivery throughput from each target to the subscribers of
//! `fixtures/apps/` (the measurement is `harness_engine::app_rates`). Writes `apps.md` and `apps.json`
//! and prints the table; exits 0 when every cell was measured, 2 when one could not be.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use harness_engine::app_rates::{self, Measured, RateApp};
use harness_engine::env::{EnvSettings, RunEnv, find_workspace};
use harness_report::event::{RunEvent, emit};

#[derive(Debug, clap::Args)]
pub(crate) struct AppsArgs {
    /// Target file (TOML); repeat it to measure several targets, each compared with the first.
    /// Default: $PUBSUB_TCK_TARGET, else fixtures/targets/reference.toml.
    #[arg(long)]
    target: Vec<PathBuf>,
    /// Apps to measure, comma-separated: plain, fastapi, flask, express, go-grpc.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "plain,fastapi,flask,express,go-grpc"
    )]
    app: Vec<String>,
    /// Messages per measurement, after a warm-up of 20.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Publishes in flight at once.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// How long one measurement may take; an app slower than that is reported with what it
    /// took by then.
    #[arg(long, value_parser = crate::bench::parse_duration, default_value = "30s")]
    deadline: Duration,
    /// Directory of bench runs. Default: reports/bench ($PUBSUB_TCK_REPORT_DIR/bench when set).
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Do not run the target files' `build` commands first.
    #[arg(long)]
    no_build: bool,
}

/// One cell of the table.
#[derive(Debug)]
struct Cell {
    app: &'static str,
    target: String,
    measured: Option<Measured>,
    error: Option<String>,
}

impl Cell {
    /// Its entry in `apps.json`.
    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"app": self.app, "target": self.target});
        if let Some(m) = &self.measured {
            v["messages"] = m.messages.into();
            v["taken"] = m.taken.into();
            v["seconds"] = m.seconds.into();
            v["rate"] = m.rate.into();
        }
        if let Some(e) = &self.error {
            v["error"] = e.as_str().into();
        }
        v
    }
}

pub(crate) fn apps(args: &AppsArgs) -> anyhow::Result<u8> {
    let settings = EnvSettings::from_env()?;
    let mut apps: Vec<&'static RateApp> = Vec::new();
    for name in &args.app {
        let app = app_rates::app(name).with_context(|| {
            let known: Vec<&str> = app_rates::APPS.iter().map(|a| a.name).collect();
            format!("unknown app {name:?} ({})", known.join(", "))
        })?;
        apps.push(app);
    }
    if args.messages == 0 {
        bail!("--messages must be at least 1");
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = find_workspace(&cwd)?;
    let paths: Vec<Option<PathBuf>> = if args.target.is_empty() {
        vec![settings.target.clone()]
    } else {
        args.target.iter().cloned().map(Some).collect()
    };
    let run_id = format!(
        "apps-{}",
        suites::run_report::compact_utc(time::OffsetDateTime::now_utc())
    );
    let base = crate::bench::reports_dir(args.report_dir.as_deref(), &settings, &root, &cwd);
    let run_dir = base.join(&run_id);
    let mut envs = Vec::new();
    for path in paths {
        let mut s = settings.clone();
        s.target = path;
        let env = RunEnv::new(
            &s,
            &suites::catalog::ids(),
            root.clone(),
            run_dir.clone(),
            harness_engine::Broker::InMemory,
        )?;
        if envs
            .iter()
            .any(|e: &std::sync::Arc<RunEnv>| e.target.name() == env.target.name())
        {
            bail!(
                "two targets are named `{}`: the table tells targets apart by name",
                env.target.name()
            );
        }
        if !args.no_build {
            crate::build_target(&env.target, &[harness_engine::Broker::InMemory])?;
        }
        envs.push(env);
    }
    let names: Vec<&str> = envs.iter().map(|e| e.target.name()).collect();
    eprintln!(
        "pubsub-tck bench apps: {} app(s) × target `{}`, in-memory broker, {} messages each after a warm-up of {}, {} publishes in flight",
        apps.len(),
        names.join("`, `"),
        args.messages,
        app_rates::WARM_UP,
        args.in_flight
    );
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let console = crate::console::Console::start();
    let events = console.events();
    let stage = "measurements".to_owned();
    emit(
        events,
        RunEvent::Stage {
            label: stage.clone(),
            total: (apps.len() * envs.len()) as u64,
            unit: "apps",
        },
    );
    let mut cells = Vec::new();
    for app in &apps {
        for env in &envs {
            emit(
                events,
                RunEvent::Progress {
                    done: cells.len() as u64,
                    current: Some(format!("{} via {}", app.name, env.target.name())),
                },
            );
            let r = rt.block_on(app_rates::measure(
                env,
                app,
                args.messages,
                args.in_flight,
                args.deadline,
            ));
            let (measured, error) = match r {
                Ok(m) => (Some(m), None),
                Err(harness_engine::Problem::Setup(msg)) => (None, Some(msg)),
                Err(harness_engine::Problem::Fail { summary, evidence }) => {
                    (None, Some(format!("{summary}: {}", evidence.join("; "))))
                }
            };
            cells.push(Cell {
                app: app.name,
                target: env.target.name().to_owned(),
                measured,
                error,
            });
        }
    }
    emit(
        events,
        RunEvent::StageFinished {
            label: stage,
            summary: None,
        },
    );
    console.finish();
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let md = markdown(&apps, &names, &cells, args);
    std::fs::write(run_dir.join("apps.md"), &md)?;
    let json = serde_json::to_string_pretty(&cells.iter().map(Cell::json).collect::<Vec<_>>())?;
    std::fs::write(run_dir.join("apps.json"), json)?;
    crate::write_stdout(&md)?;
    let errors = cells.iter().filter(|c| c.error.is_some()).count();
    eprintln!(
        "pubsub-tck bench apps: {} measured, {errors} could not be; report: {}",
        cells.len() - errors,
        run_dir.join("apps.md").display()
    );
    Ok(if errors > 0 { 2 } else { 0 })
}

/// The table: a row per app, a column per target, then each other target over the first.
fn markdown(apps: &[&RateApp], targets: &[&str], cells: &[Cell], args: &AppsArgs) -> String {
    let mut out = format!(
        "# Deliveries to real apps\n\nDeliveries a second each app answered SUCCESS, through each target on the in-memory broker: {} messages after a warm-up of {}, {} publishes in flight, at most {} s per measurement.\n\n",
        args.messages,
        app_rates::WARM_UP,
        args.in_flight,
        args.deadline.as_secs_f64()
    );
    out.push_str("| app | stack |");
    for t in targets {
        let _ = write!(out, " {t} |");
    }
    for t in targets.iter().skip(1) {
        let _ = write!(out, " {t} / {} |", targets[0]);
    }
    out.push_str("\n|---|---|");
    for _ in 0..(targets.len() * 2).saturating_sub(1) {
        out.push_str("---:|");
    }
    out.push('\n');
    let mut errors = Vec::new();
    for app in apps {
        let _ = write!(out, "| {} | {} |", app.name, app.stack);
        let row: Vec<&Cell> = cells.iter().filter(|c| c.app == app.name).collect();
        for c in &row {
            match (&c.measured, &c.error) {
                (Some(m), _) if m.taken < m.messages => {
                    let _ = write!(
                        out,
                        " {:.0}/s ({} of {} taken) |",
                        m.rate, m.taken, m.messages
                    );
                }
                (Some(m), _) => {
                    let _ = write!(out, " {:.0}/s |", m.rate);
                }
                (None, e) => {
                    out.push_str(" error |");
                    errors.push(format!(
                        "- {} via {}: {}",
                        app.name,
                        c.target,
                        e.as_deref().unwrap_or("?")
                    ));
                }
            }
        }
        let first = row.first().and_then(|c| c.measured.as_ref());
        for c in row.iter().skip(1) {
            match (first, &c.measured) {
                (Some(a), Some(b)) if a.rate > 0.0 => {
                    let _ = write!(out, " {:.2} |", b.rate / a.rate);
                }
                _ => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    if !errors.is_empty() {
        out.push_str("\nNot measured:\n\n");
        for e in errors {
            out.push_str(&e);
            out.push('\n');
        }
    }
    out
}

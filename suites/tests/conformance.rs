//! `cargo test -p suites --test conformance`: every check as a libtest-mimic trial named
//! `profile::area::check`, run against `PUBSUB_TCK_TARGET` (default: the reference target).
//!
//! Listing starts nothing. A MUST failure fails the trial; a SHOULD failure passes and prints
//! `non-strict:` with the evidence. Checks the target cannot run are listed as ignored, and
//! their kind tag says why.

use std::process::ExitCode;
use std::sync::Arc;

use harness_report::VerdictKind;
use libtest_mimic::{Arguments, Failed, Trial};
use suites::env::{EnvSettings, RunEnv, find_workspace};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let env = match setup() {
        Ok(env) => env,
        Err(e) => {
            // Still list a trial, so the failure shows up as a test with its reason.
            let trial = Trial::test("setup::target", move || Err(Failed::from(e.clone())));
            return libtest_mimic::run(&args, vec![trial]).exit_code();
        }
    };
    if !args.list {
        eprintln!(
            "pubsub-tck: target `{}`, seed {} (replay with PUBSUB_TCK_SEED={})",
            env.target.name(),
            env.seed,
            env.seed
        );
    }
    let trials = suites::all()
        .into_iter()
        .map(|check| {
            let id = check.id;
            let skip = check.skip_reason(&env.target);
            let env = env.clone();
            let trial = Trial::test(id, move || run(env, check));
            match skip {
                Some(reason) => trial
                    .with_ignored_flag(true)
                    .with_kind(format!("skip: {reason}")),
                None => trial,
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn setup() -> Result<Arc<RunEnv>, String> {
    let settings = EnvSettings::from_env().map_err(|e| format!("{e:#}"))?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let root = find_workspace(&cwd).map_err(|e| e.to_string())?;
    let run_dir = settings
        .report_dir
        .clone()
        .unwrap_or_else(|| root.join("reports").join("cargo-test"));
    RunEnv::new(&settings, root, run_dir).map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    })
}

fn run(env: Arc<RunEnv>, check: suites::Check) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    let outcome = rt.block_on(suites::runner::run_one(env, &check));
    let r = outcome.result;
    let details = || {
        let mut s = r.summary.clone().unwrap_or_default();
        for e in &r.evidence {
            s.push_str("\n    ");
            s.push_str(e);
        }
        s.push_str(&format!(
            "\n    clause: {}\n    seed: {}",
            r.clause,
            r.seed.unwrap_or_default()
        ));
        s
    };
    match r.verdict {
        VerdictKind::Pass | VerdictKind::Skip => Ok(()),
        VerdictKind::NonStrict => {
            eprintln!("non-strict: {} (SHOULD): {}", r.id, details());
            Ok(())
        }
        VerdictKind::Fail => Err(Failed::from(format!("MUST failed: {}", details()))),
        VerdictKind::Error => Err(Failed::from(format!(
            "setup error (not a verdict on the target): {}",
            details()
        ))),
    }
}

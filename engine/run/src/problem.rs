//! What a failing check returns, and the helpers to build it.
//!
//! Keep "the target broke a promise" ([`Problem::Fail`]) apart from "the harness could not
//! set up the trial" ([`Problem::Setup`]): the first is a failure, the second an error with its
//! own exit code.

use std::fmt::Display;

/// Why a check did not pass.
#[derive(Debug, Clone)]
pub enum Problem {
    /// The target broke the promise: one-line summary plus concrete evidence.
    Fail {
        /// What broke, in one line.
        summary: String,
        /// Facts: message ids, times, expected vs seen.
        evidence: Vec<String>,
    },
    /// The harness could not run the trial (launch failed, a port, a file).
    Setup(String),
}

impl Problem {
    /// A failure with evidence.
    pub fn fail(summary: impl Into<String>, evidence: Vec<String>) -> Problem {
        Problem::Fail {
            summary: summary.into(),
            evidence,
        }
    }

    /// A setup error; the chain of causes is flattened into the message.
    pub fn setup(err: &(dyn std::error::Error + 'static)) -> Problem {
        Problem::Setup(error_chain(err))
    }
}

/// An error and its causes on one line, joined by `: `.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

macro_rules! setup_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Problem {
            fn from(e: $t) -> Problem {
                Problem::setup(&e)
            }
        }
    )*};
}

setup_from!(
    harness::LaunchError,
    harness::TestAppError,
    harness::ClientError,
    harness::ReadyError,
    std::io::Error
);

impl From<harness::WaitError> for Problem {
    /// A wait that ran out is the target not doing what it must, not a harness error.
    fn from(e: harness::WaitError) -> Problem {
        Problem::fail(e.to_string(), Vec::new())
    }
}

/// `Ok(())` when `cond`, else a failure with the summary and evidence lines.
pub fn ensure(
    cond: bool,
    summary: impl Display,
    evidence: impl IntoIterator<Item = String>,
) -> Result<(), Problem> {
    if cond {
        Ok(())
    } else {
        Err(Problem::fail(
            summary.to_string(),
            evidence.into_iter().collect(),
        ))
    }
}

/// Fails unless `seen == expected`, with both in the evidence.
pub fn ensure_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    expected: T,
    seen: T,
    evidence: impl IntoIterator<Item = String>,
) -> Result<(), Problem> {
    if expected == seen {
        return Ok(());
    }
    let mut ev = vec![
        format!("expected {what}: {expected:?}"),
        format!("seen {what}: {seen:?}"),
    ];
    ev.extend(evidence);
    Err(Problem::fail(
        format!("{what}: expected {expected:?}, saw {seen:?}"),
        ev,
    ))
}

/// Turns a checker verdict into a check result: `Invalid` fails with the checker's evidence;
/// `Unknown` (nothing could be judged) fails too, because a check must test something.
pub fn verdict(v: harness_checkers::Verdict) -> Result<(), Problem> {
    match v {
        harness_checkers::Verdict::Valid => Ok(()),
        harness_checkers::Verdict::Invalid { evidence } => {
            Err(Problem::fail(evidence.summary, evidence.items))
        }
        harness_checkers::Verdict::Unknown { reason } => {
            Err(Problem::fail(format!("nothing to judge: {reason}"), vec![]))
        }
    }
}

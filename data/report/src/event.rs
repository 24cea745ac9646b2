//! The event stream: what an engine (the runner, a chaos experiment, the benchmark, the
//! self-check) tells a front-end while it works. It is the only interface from an engine to a
//! console: the `pubsub-tck` command draws every engine's events with one reporter, and an
//! engine never prints. A closed receiver is fine (nobody is listening).
//!
//! An engine's work is a sequence of stages (the checks of a run, the load of a chaos
//! experiment, each phase of a benchmark), each with a number of steps; lines and results
//! arrive in between.

use crate::CheckResult;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// A stage of `total` steps began (`unit` says what a step is: `checks`, `s`, `msgs`); it
    /// ends the stage before it.
    Stage {
        /// What the stage does: `checks`, `load and faults`, `sidecar @ 1000/s`.
        label: String,
        /// Its steps.
        total: u64,
        /// What one step is.
        unit: &'static str,
    },
    /// Steps of the current stage done so far; `current` names the step in progress when it
    /// changed.
    Progress {
        /// Steps done.
        done: u64,
        /// The step in progress (a check id, a case), if it changed.
        current: Option<String>,
    },
    /// The current stage ended; `summary`, when given, stays on screen under its label.
    StageFinished {
        /// The stage's label, as in [`RunEvent::Stage`].
        label: String,
        /// One line of numbers, or nothing worth keeping (a warm-up).
        summary: Option<String>,
    },
    /// A check (or a self-check case) finished: the reporter shows those that did not pass.
    Finished(Box<CheckResult>),
    /// A line worth keeping on screen: a set-up step, a search step, a note.
    Line(String),
}

/// Where events go.
pub type RunEvents = std::sync::mpsc::Sender<RunEvent>;

/// Sends `event`; a receiver that is gone means nobody is listening, which is fine.
pub fn emit(events: &RunEvents, event: RunEvent) {
    let _ = events.send(event);
}

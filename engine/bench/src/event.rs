//! What a bench run tells its caller while it runs: the only interface from the run to a
//! console. The `pubsub-tck` command turns these into a progress bar and lines.

use std::time::Duration;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Something was set up or torn down (`starting redis-server`, `sidecar ready`).
    Setup(String),
    /// A phase started: `total` messages over `duration`.
    PhaseStarted {
        /// `warm-up`, `sidecar`, `no-op HTTP`, `direct: tokio channel`, `search step 3`.
        label: String,
        /// Messages per second.
        rate: f64,
        /// Messages it sends.
        total: u64,
        /// Its scheduled duration.
        duration: Duration,
    },
    /// Publishes answered so far in the current phase.
    Progress {
        /// Answered.
        done: u64,
        /// Scheduled.
        total: u64,
    },
    /// A phase ended (after its drain window).
    PhaseFinished {
        /// As in [`Event::PhaseStarted`].
        label: String,
        /// One line of numbers.
        summary: String,
    },
    /// A step of the maximum-rate search was judged.
    SearchStep {
        /// 1-based.
        step: usize,
        /// The rate tried.
        rate: f64,
        /// Whether it passed.
        passed: bool,
        /// The numbers that decided.
        reason: String,
    },
    /// Worth a line (an unavailable baseline, lost messages).
    Note(String),
}

/// Where events go; a closed receiver is fine (nobody is listening).
pub type Events = tokio::sync::mpsc::UnboundedSender<Event>;

pub(crate) fn emit(events: &Events, event: Event) {
    let _ = events.send(event);
}

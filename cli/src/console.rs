//! The one console reporter: draws every engine's `harness_report::event` stream (the runner,
//! a chaos experiment, the benchmark, the self-check) the same way, on stderr. A stage is a
//! progress bar; lines and the results that did not pass are printed above it.

use std::sync::mpsc;
use std::thread::JoinHandle;

use harness_report::VerdictKind;
use harness_report::event::{RunEvent, RunEvents};
use indicatif::{ProgressBar, ProgressStyle};

/// The reporter, on a thread of its own.
pub(crate) struct Console {
    events: RunEvents,
    thread: JoinHandle<()>,
}

impl Console {
    /// Starts drawing; `events()` is what the engine sends on.
    pub(crate) fn start() -> Console {
        let (events, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || draw(&rx));
        Console { events, thread }
    }

    /// Where an engine sends its events.
    pub(crate) fn events(&self) -> &RunEvents {
        &self.events
    }

    /// Waits until every event sent so far is drawn, then clears the bar.
    pub(crate) fn finish(self) {
        drop(self.events);
        let _ = self.thread.join();
    }
}

/// The tag printed for a result that did not pass, or `None` to print nothing.
fn tag(verdict: VerdictKind) -> Option<&'static str> {
    match verdict {
        VerdictKind::Fail => Some("FAIL"),
        VerdictKind::Error => Some("ERROR"),
        VerdictKind::NonStrict => Some("non-strict"),
        VerdictKind::UnexpectedPass => Some("UNEXP.PASS"),
        _ => None,
    }
}

/// Draws events until every sender is gone (other engines' clones included).
fn draw(rx: &mpsc::Receiver<RunEvent>) {
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {prefix} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut bar: Option<ProgressBar> = None;
    // Printed around the bar rather than through it: `ProgressBar::println` prints nothing
    // when stderr is not a terminal, and a CI log must have every line too.
    let line = |bar: &Option<ProgressBar>, text: String| match bar {
        Some(b) => b.suspend(|| eprintln!("{text}")),
        None => eprintln!("{text}"),
    };
    while let Ok(event) = rx.recv() {
        match event {
            RunEvent::Stage { label, total, unit } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                let b = ProgressBar::new(total).with_style(style.clone());
                b.set_prefix(unit);
                b.set_message(label);
                bar = Some(b);
            }
            RunEvent::Progress { done, current } => {
                if let Some(b) = &bar {
                    b.set_position(done);
                    if let Some(current) = current {
                        b.set_message(current);
                    }
                }
            }
            RunEvent::StageFinished { label, summary } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                if let Some(summary) = summary {
                    eprintln!("  {label}: {summary}");
                }
            }
            RunEvent::Finished(r) => {
                if let Some(tag) = tag(r.verdict) {
                    line(
                        &bar,
                        format!("{tag:>10} {}: {}", r.id, r.summary.as_deref().unwrap_or("")),
                    );
                }
            }
            RunEvent::Line(text) => line(&bar, text),
        }
    }
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
}

//! The three-valued [`Verdict`] with [`Evidence`], and worst-wins composition.
//!
//! Owns the shape of a judgement and the evidence cap. It does not own how a
//! verdict is reported (`harness-report` does).

use std::{
    any::Any,
    panic::{self, UnwindSafe},
};

/// At most this many evidence items are kept; the rest are summarised as
/// `... and N more`.
pub const MAX_EVIDENCE_ITEMS: usize = 20;

/// The facts behind an invalid verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// One line: which promise broke.
    pub summary: String,
    /// Concrete facts: message ids, times in milliseconds since trial start,
    /// expected against seen.
    pub items: Vec<String>,
}

impl Evidence {
    /// Evidence with `items` capped at [`MAX_EVIDENCE_ITEMS`], the last item
    /// replaced by `... and N more` when there are too many.
    #[must_use]
    pub fn new(summary: impl Into<String>, items: impl IntoIterator<Item = String>) -> Self {
        let mut items: Vec<String> = items.into_iter().collect();
        cap(&mut items);
        Self {
            summary: summary.into(),
            items,
        }
    }
}

fn cap(items: &mut Vec<String>) {
    if items.len() > MAX_EVIDENCE_ITEMS {
        let more = items.len() - MAX_EVIDENCE_ITEMS;
        items.truncate(MAX_EVIDENCE_ITEMS);
        items.push(format!("... and {more} more"));
    }
}

/// The outcome of a check.
///
/// Composition is worst-wins: `Invalid` beats `Unknown` beats `Valid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every promise checked held.
    Valid,
    /// A promise broke; the evidence says which and where.
    Invalid {
        /// What broke and the facts behind it.
        evidence: Evidence,
    },
    /// The history cannot decide, or the checker could not run.
    Unknown {
        /// Why not.
        reason: String,
    },
}

/// One line: `valid`, `unknown: <reason>`, or `invalid: <summary> [<item> | <item>...]`.
impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Valid => f.write_str("valid"),
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
            Verdict::Invalid { evidence } => write!(
                f,
                "invalid: {} [{}]",
                evidence.summary,
                evidence.items.join(" | ")
            ),
        }
    }
}

impl Verdict {
    /// An invalid verdict with capped evidence.
    #[must_use]
    pub fn invalid(summary: impl Into<String>, items: impl IntoIterator<Item = String>) -> Self {
        Self::Invalid {
            evidence: Evidence::new(summary, items),
        }
    }

    /// An unknown verdict.
    #[must_use]
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self::Unknown {
            reason: reason.into(),
        }
    }

    /// Worst-wins composition. Two invalid verdicts merge their evidence
    /// (summaries joined with `; `); two unknown verdicts join their reasons.
    #[must_use]
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Self::Invalid { evidence: mut a }, Self::Invalid { evidence: b }) => {
                a.summary = format!("{}; {}", a.summary, b.summary);
                // Re-cap, so a merged list carries one "... and N more" line.
                let dropped: usize = a
                    .items
                    .iter()
                    .chain(&b.items)
                    .filter_map(|i| more_count(i))
                    .sum();
                a.items.retain(|i| more_count(i).is_none());
                a.items
                    .extend(b.items.into_iter().filter(|i| more_count(i).is_none()));
                let over = a.items.len().saturating_sub(MAX_EVIDENCE_ITEMS);
                a.items.truncate(MAX_EVIDENCE_ITEMS);
                if over + dropped > 0 {
                    a.items.push(format!("... and {} more", over + dropped));
                }
                Self::Invalid { evidence: a }
            }
            (invalid @ Self::Invalid { .. }, _) | (_, invalid @ Self::Invalid { .. }) => invalid,
            (Self::Unknown { reason: a }, Self::Unknown { reason: b }) => Self::Unknown {
                reason: format!("{a}; {b}"),
            },
            (unknown @ Self::Unknown { .. }, Self::Valid)
            | (Self::Valid, unknown @ Self::Unknown { .. }) => unknown,
            (Self::Valid, Self::Valid) => Self::Valid,
        }
    }

    /// `self` and, when `found` is not empty, an invalid verdict whose summary is
    /// `summary(found.len())` and whose evidence is one `item` per finding.
    pub(crate) fn and_invalid_if_any<T>(
        self,
        found: &[T],
        summary: impl FnOnce(usize) -> String,
        item: impl FnMut(&T) -> String,
    ) -> Verdict {
        if found.is_empty() {
            return self;
        }
        self.and(Verdict::invalid(
            summary(found.len()),
            found.iter().map(item),
        ))
    }

    /// Composes any number of verdicts; `Valid` when there are none.
    #[must_use]
    pub fn all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts.into_iter().fold(Verdict::Valid, Verdict::and)
    }

    /// Runs a checker and turns a panic into [`Verdict::Unknown`] with the
    /// panic message, so a broken checker never takes a run down.
    pub fn catch(checker: impl FnOnce() -> Verdict + UnwindSafe) -> Verdict {
        panic::catch_unwind(checker).unwrap_or_else(|payload| {
            Verdict::unknown(format!("checker panicked: {}", panic_message(&*payload)))
        })
    }

    /// Whether this is [`Verdict::Valid`].
    #[must_use]
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid)
    }

    /// Whether this is [`Verdict::Invalid`].
    #[must_use]
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }

    /// The one-line reason for a non-valid verdict: the evidence summary or
    /// the unknown reason.
    #[must_use]
    pub fn summary(&self) -> Option<&str> {
        match self {
            Self::Valid => None,
            Self::Invalid { evidence } => Some(&evidence.summary),
            Self::Unknown { reason } => Some(reason),
        }
    }

    /// The evidence items; empty unless invalid.
    #[must_use]
    pub fn items(&self) -> &[String] {
        match self {
            Self::Invalid { evidence } => &evidence.items,
            _ => &[],
        }
    }
}

fn more_count(item: &str) -> Option<usize> {
    item.strip_prefix("... and ")?
        .strip_suffix(" more")?
        .parse()
        .ok()
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Formats microseconds since trial start as milliseconds for evidence.
pub(crate) fn ms(at_micros: u64) -> String {
    format!("{:.1} ms", at_micros as f64 / 1000.0)
}

/// Formats a list of times for evidence, such as `12.0, 15.3 ms`.
pub(crate) fn ms_list(at_micros: &[u64]) -> String {
    let parts: Vec<String> = at_micros
        .iter()
        .map(|t| format!("{:.1}", *t as f64 / 1000.0))
        .collect();
    format!("{} ms", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(actual: Verdict, expect: &str) {
        assert_eq!(actual.to_string(), expect);
    }

    fn bad(summary: &str, n: usize) -> Verdict {
        Verdict::invalid(summary, (0..n).map(|i| format!("{summary}{i}")))
    }

    #[test]
    fn worst_wins() {
        check(Verdict::Valid.and(Verdict::Valid), "valid");
        check(Verdict::Valid.and(Verdict::unknown("u")), "unknown: u");
        check(Verdict::unknown("u").and(Verdict::Valid), "unknown: u");
        check(
            Verdict::unknown("a").and(Verdict::unknown("b")),
            "unknown: a; b",
        );
        check(Verdict::unknown("u").and(bad("x", 1)), "invalid: x [x0]");
        check(bad("x", 1).and(Verdict::Valid), "invalid: x [x0]");
        check(bad("x", 1).and(bad("y", 2)), "invalid: x; y [x0 | y0 | y1]");
        check(Verdict::all([]), "valid");
    }

    #[test]
    fn evidence_is_capped() {
        let v = bad("a", 25);
        assert_eq!(v.items().len(), MAX_EVIDENCE_ITEMS + 1);
        assert_eq!(v.items().last().unwrap(), "... and 5 more");

        // Merging keeps a single, correct overflow line.
        let merged = bad("a", 25).and(bad("b", 3));
        assert_eq!(merged.items().len(), MAX_EVIDENCE_ITEMS + 1);
        assert_eq!(merged.items().last().unwrap(), "... and 8 more");
    }

    #[test]
    fn panics_become_unknown() {
        let v = Verdict::catch(|| panic!("boom"));
        check(v, "unknown: checker panicked: boom");
        check(Verdict::catch(|| Verdict::Valid), "valid");
    }
}

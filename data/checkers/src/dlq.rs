//! Dead-letter expectations: which messages reach the dead-letter route,
//! and how often.
//!
//! Owns counting on the route the dead-letter topic is delivered to. It does
//! not check that retries were exhausted first; pair it with
//! [`redelivery::attempts`](crate::redelivery::attempts).

use std::collections::BTreeMap;

use harness_history::{History, MessageId};

use crate::{
    Verdict,
    delivery::{count, sorted_on},
    verdict::{ms, ms_list},
};

/// The outcome of [`exactly_once`] or [`none`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqReport {
    /// The dead-letter route checked.
    pub route: String,
    /// Messages expected exactly once; empty for [`none`].
    pub expected: Vec<MessageId>,
    /// Expected messages that never arrived.
    pub missing: Vec<MessageId>,
    /// Expected messages that arrived more than once, with their count.
    pub duplicated: Vec<(MessageId, u32)>,
    /// Messages that arrived but were not expected.
    pub others: Vec<MessageId>,
    /// Deliveries whose payload carried no message id.
    pub unidentified: usize,
    /// Total deliveries on the route.
    pub total: usize,
    strict: bool,
    arrivals: BTreeMap<MessageId, Vec<u64>>,
    unidentified_at: Vec<u64>,
}

/// Each message of `msgs` must arrive on `dlq_route` exactly once.
///
/// Other messages on the route are reported in `others` but do not fail
/// this check, so a suite may judge a subset; use [`none`] where the route
/// must stay empty.
#[must_use]
pub fn exactly_once(history: &History, dlq_route: &str, msgs: &[MessageId]) -> DlqReport {
    build(history, dlq_route, msgs, false)
}

/// Nothing may arrive on `dlq_route`.
#[must_use]
pub fn none(history: &History, dlq_route: &str) -> DlqReport {
    build(history, dlq_route, &[], true)
}

fn build(history: &History, route: &str, msgs: &[MessageId], strict: bool) -> DlqReport {
    let mut arrivals: BTreeMap<MessageId, Vec<u64>> = BTreeMap::new();
    let mut unidentified_at = Vec::new();
    let all = sorted_on(history, &[route.to_owned()]);
    for (at, d) in &all {
        match &d.msg {
            Some(m) => arrivals.entry(m.clone()).or_default().push(*at),
            None => unidentified_at.push(*at),
        }
    }
    let mut expected = msgs.to_vec();
    expected.sort();
    expected.dedup();
    let missing = expected
        .iter()
        .filter(|m| !arrivals.contains_key(*m))
        .cloned()
        .collect();
    let duplicated = expected
        .iter()
        .filter_map(|m| {
            let n = arrivals.get(m)?.len();
            (n > 1).then(|| (m.clone(), count(n)))
        })
        .collect();
    let others = arrivals
        .keys()
        .filter(|m| expected.binary_search(m).is_err())
        .cloned()
        .collect();
    DlqReport {
        route: route.to_owned(),
        expected,
        missing,
        duplicated,
        others,
        unidentified: unidentified_at.len(),
        total: all.len(),
        strict,
        arrivals,
        unidentified_at,
    }
}

impl DlqReport {
    /// For [`exactly_once`]: invalid when an expected message is missing or
    /// duplicated. For [`none`]: invalid when anything arrived.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        let route = &self.route;
        if self.strict {
            if self.total == 0 {
                return Verdict::Valid;
            }
            let named = self.others.iter().map(|m| {
                let times = self.arrivals.get(m).map_or(&[][..], Vec::as_slice);
                format!("{m}: dead-lettered at {}", ms_list(times))
            });
            let anonymous = self
                .unidentified_at
                .iter()
                .map(|t| format!("delivery without message id at {}", ms(*t)));
            return Verdict::invalid(
                format!(
                    "{} deliveries arrived on dead-letter route {route}, expected none",
                    self.total
                ),
                named.chain(anonymous).collect::<Vec<_>>(),
            );
        }
        let expected = self.expected.len();
        let v = Verdict::Valid
            .and_invalid_if_any(
                &self.missing,
                |n| format!("{n} of {expected} messages never reached dead-letter route {route}"),
                |m| format!("{m}: expected once on {route}, seen 0 times"),
            )
            .and_invalid_if_any(
                &self.duplicated,
                |n| {
                    format!(
                        "{n} of {expected} messages reached dead-letter route {route} more than once"
                    )
                },
                |(m, n)| {
                    let times = self.arrivals.get(m).map_or(&[][..], Vec::as_slice);
                    format!("{m}: expected once, seen {n} times at {}", ms_list(times))
                },
            );
        if v.is_valid() && self.expected.is_empty() {
            return Verdict::unknown("no dead-letter message was expected; use dlq::none instead");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use harness_history::Delivery;

    use super::*;

    /// Deliveries are `(at_micros, msg)` on `/dlq`; an empty msg has no id.
    fn history(deliveries: &[(u64, &str)]) -> History {
        let mut h = History::new();
        h.record(1, Delivery::new("m-main", "/orders", 1, "RETRY"));
        for &(at, msg) in deliveries {
            let mut d = Delivery::new(msg, "/dlq", 1, "SUCCESS");
            if msg.is_empty() {
                d.msg = None;
            }
            h.record(at, d);
        }
        h
    }

    fn render(v: Verdict) -> String {
        v.to_string()
    }

    /// `expected` of `None` means [`none`].
    fn check(deliveries: &[(u64, &str)], expected: Option<&[&str]>, expect: &str) {
        let h = history(deliveries);
        let report = match expected {
            Some(ids) => {
                let ids: Vec<MessageId> = ids.iter().map(|&i| i.into()).collect();
                exactly_once(&h, "/dlq", &ids)
            }
            None => none(&h, "/dlq"),
        };
        assert_eq!(render(report.verdict()), expect);
    }

    #[test]
    fn exactly_once_per_listed_message() {
        check(
            &[(1_000, "m-1"), (2_000, "m-2")],
            Some(&["m-1", "m-2"]),
            "valid",
        );
        // Unlisted messages are reported, not judged.
        check(&[(1_000, "m-1"), (2_000, "m-9")], Some(&["m-1"]), "valid");
        check(
            &[(1_000, "m-1"), (2_000, "m-1")],
            Some(&["m-1", "m-2"]),
            "invalid: 1 of 2 messages never reached dead-letter route /dlq; \
             1 of 2 messages reached dead-letter route /dlq more than once [\
             m-2: expected once on /dlq, seen 0 times | \
             m-1: expected once, seen 2 times at 1.0, 2.0 ms]",
        );
        check(
            &[],
            Some(&[]),
            "unknown: no dead-letter message was expected; use dlq::none instead",
        );
    }

    #[test]
    fn none_means_an_empty_route() {
        check(&[], None, "valid");
        check(
            &[(1_500, "m-3"), (2_000, "")],
            None,
            "invalid: 2 deliveries arrived on dead-letter route /dlq, expected none [\
             m-3: dead-lettered at 1.5 ms | delivery without message id at 2.0 ms]",
        );
    }
}

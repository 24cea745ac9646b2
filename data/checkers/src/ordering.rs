//! Per-key ordering and concurrency on one app route.
//!
//! Owns the order promise "for one key, first deliveries arrive in
//! non-decreasing sequence order" and the observed request concurrency.
//! It does not decide whether a broker promises order at all; suites only
//! call it where the component does.
//!
//! Only *first* deliveries count: a redelivery after `RETRY` legitimately
//! arrives after later messages. A delivery needs a message id, a key and a
//! sequence number to be judged; others are skipped.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;

use harness_history::{History, MessageId};

use crate::{
    Verdict,
    delivery::{Answer, sorted_on},
    verdict::ms,
};

/// A first delivery that arrived after a higher sequence number of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderViolation {
    /// The ordering key.
    pub key: String,
    /// The message that arrived late.
    pub msg: MessageId,
    /// Its sequence number.
    pub seq: u64,
    /// The highest sequence number of the key seen before it.
    pub after_seq: u64,
    /// The message that carried `after_seq`.
    pub after_msg: MessageId,
    /// How many first deliveries of the same key with a higher sequence
    /// number arrived before it: how far it was overtaken.
    pub lag: usize,
    /// When the late message arrived, microseconds since trial start.
    pub at_micros: u64,
}

/// The outcome of [`per_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderReport {
    /// The route checked.
    pub route: String,
    /// Distinct keys seen.
    pub keys: usize,
    /// First deliveries judged (with id, key and sequence).
    pub checked: usize,
    /// Whether order was judged on completions ([`per_key_completed`]) rather than on
    /// first deliveries.
    pub completions: bool,
    /// Out-of-order first deliveries, in arrival order.
    pub violations: Vec<OrderViolation>,
}

/// Checks that, per key, first deliveries on `route` arrive with
/// non-decreasing sequence numbers. Equal sequence numbers are allowed.
#[must_use]
pub fn per_key(history: &History, route: &str) -> OrderReport {
    judge(history, route, false)
}

/// Like [`per_key`], but in the order the app *finished* messages: each message counts at its
/// first delivery the app answered with a terminal answer (SUCCESS or DROP). This is the
/// order an app that applies messages sees; a retried message that completes after later
/// messages breaks it, although its first delivery was in order.
#[must_use]
pub fn per_key_completed(history: &History, route: &str) -> OrderReport {
    judge(history, route, true)
}

fn judge(history: &History, route: &str, completed_only: bool) -> OrderReport {
    let mut seen_msgs: HashSet<&MessageId> = HashSet::new();
    // Per key: the highest sequence so far and the message that carried it.
    let mut high: BTreeMap<&str, (u64, &MessageId)> = BTreeMap::new();
    // Per key: how many first deliveries carried each sequence number so far, to measure how far
    // a late message was overtaken.
    let mut seen_seqs: BTreeMap<&str, BTreeMap<u64, usize>> = BTreeMap::new();
    let mut checked = 0;
    let mut violations = Vec::new();
    for (at, d) in sorted_on(history, &[route.to_owned()]) {
        let (Some(msg), Some(key), Some(seq)) = (&d.msg, &d.key, d.seq) else {
            continue;
        };
        if completed_only && !Answer::classify(&d.answered).is_terminal() {
            continue;
        }
        if !seen_msgs.insert(msg) {
            continue;
        }
        checked += 1;
        let seqs = seen_seqs.entry(key.as_str()).or_default();
        let lag = seqs
            .range((Bound::Excluded(seq), Bound::Unbounded))
            .map(|(_, n)| n)
            .sum();
        *seqs.entry(seq).or_default() += 1;
        match high.get(key.as_str()) {
            Some(&(top, top_msg)) if seq < top => violations.push(OrderViolation {
                key: key.clone(),
                msg: msg.clone(),
                seq,
                after_seq: top,
                after_msg: top_msg.clone(),
                lag,
                at_micros: at,
            }),
            Some(&(top, _)) if seq == top => {}
            _ => {
                high.insert(key, (seq, msg));
            }
        }
    }
    OrderReport {
        route: route.to_owned(),
        keys: high.len(),
        checked,
        completions: completed_only,
        violations,
    }
}

impl OrderReport {
    /// What was ordered: `first deliveries` or `completions`.
    #[must_use]
    pub fn unit(&self) -> &'static str {
        if self.completions {
            "completions"
        } else {
            "first deliveries"
        }
    }

    /// Invalid when any key went backwards; unknown when no keyed, sequenced
    /// delivery arrived, since then order was never exercised.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if !self.violations.is_empty() {
            return Verdict::invalid(
                format!(
                    "{} of {} {} on {} arrived out of per-key order",
                    self.violations.len(),
                    self.checked,
                    self.unit(),
                    self.route
                ),
                self.violations.iter().map(|v| {
                    format!(
                        "key {}: {} (seq {}) arrived at {} after {} (seq {})",
                        v.key,
                        v.msg,
                        v.seq,
                        ms(v.at_micros),
                        v.after_msg,
                        v.after_seq
                    )
                }),
            );
        }
        if self.checked == 0 {
            return Verdict::unknown(format!(
                "no delivery on {} carried an id, key and sequence number",
                self.route
            ));
        }
        Verdict::Valid
    }
}

impl OrderReport {
    /// One line on how order held or broke, for reports where the broker does not promise
    /// order and a violation is an observation rather than a failure.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.checked == 0 {
            return format!(
                "order not exercised on {}: no keyed, sequenced delivery",
                self.route
            );
        }
        if self.violations.is_empty() {
            return format!(
                "per-key order held: {} {} over {} keys",
                self.checked,
                self.unit(),
                self.keys
            );
        }
        let keys: BTreeSet<&str> = self.violations.iter().map(|v| v.key.as_str()).collect();
        let worst = self.violations.iter().map(|v| v.lag).max().unwrap_or(0);
        let total: usize = self.violations.iter().map(|v| v.lag).sum();
        format!(
            "per-key order broken: {} of {} {} late ({:.1}%) in {} of {} keys, \
             overtaken by up to {worst} (mean {:.1}) later messages of their key",
            self.violations.len(),
            self.checked,
            self.unit(),
            100.0 * self.violations.len() as f64 / self.checked as f64,
            keys.len(),
            self.keys,
            total as f64 / self.violations.len() as f64,
        )
    }
}

/// The highest `in_flight` observed on `route`, or 0 when nothing arrived.
#[must_use]
pub fn concurrency(history: &History, route: &str) -> u32 {
    history
        .deliveries_on(route)
        .map(|(_, d)| d.in_flight)
        .max()
        .unwrap_or(0)
}

/// Invalid when any delivery on `route` arrived while more than `limit`
/// requests were in flight (including itself); unknown when nothing
/// arrived.
#[must_use]
pub fn concurrency_limit(history: &History, route: &str, limit: u32) -> Verdict {
    let all = sorted_on(history, &[route.to_owned()]);
    if all.is_empty() {
        return Verdict::unknown(format!("no delivery arrived on {route}"));
    }
    let over: Vec<_> = all.iter().filter(|(_, d)| d.in_flight > limit).collect();
    if over.is_empty() {
        return Verdict::Valid;
    }
    Verdict::invalid(
        format!(
            "{} deliveries on {route} arrived with more than {limit} requests in flight (max {})",
            over.len(),
            concurrency(history, route)
        ),
        over.iter().map(|(at, d)| {
            format!(
                "{} at {}: {} in flight, limit {limit}",
                d.msg.as_ref().map_or("(no id)", MessageId::as_str),
                ms(*at),
                d.in_flight
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use harness_history::Delivery;

    use super::*;

    /// Deliveries are `(at_micros, msg, key, seq)` on `/orders`.
    fn history(deliveries: &[(u64, &str, &str, u64)]) -> History {
        let mut h = History::new();
        for &(at, msg, key, seq) in deliveries {
            let d = Delivery::new(msg, "/orders", 1, "SUCCESS");
            let d = if key.is_empty() { d } else { d.with_key(key) };
            h.record(at, d.with_seq(seq));
        }
        h
    }

    fn check(deliveries: &[(u64, &str, &str, u64)], expect: &str) {
        let r = per_key(&history(deliveries), "/orders");
        let actual = match r.verdict() {
            Verdict::Valid => format!("valid keys={} checked={}", r.keys, r.checked),
            other => other.to_string(),
        };
        assert_eq!(actual, expect);
    }

    #[test]
    fn in_order_per_key_is_valid() {
        check(
            &[
                (1, "a1", "a", 1),
                (2, "b1", "b", 1),
                (3, "a2", "a", 2),
                (4, "a2b", "a", 2),
                (5, "b2", "b", 2),
            ],
            "valid keys=2 checked=5",
        );
    }

    #[test]
    fn out_of_order_is_invalid_and_redeliveries_are_ignored() {
        check(
            &[
                (1_000, "a1", "a", 1),
                (2_000, "a3", "a", 3),
                (3_000, "a2", "a", 2),
                // A redelivery of a1 after a3 is not an order violation.
                (4_000, "a1", "a", 1),
                (5_000, "b1", "b", 1),
            ],
            "invalid: 1 of 4 first deliveries on /orders arrived out of per-key order \
             [key a: a2 (seq 2) arrived at 3.0 ms after a3 (seq 3)]",
        );
    }

    #[test]
    fn describe_measures_how_far_order_broke() {
        let h = history(&[
            (1, "a1", "a", 1),
            (2, "a3", "a", 3),
            (3, "a4", "a", 4),
            (4, "a2", "a", 2),
            (5, "b2", "b", 2),
            (6, "b1", "b", 1),
        ]);
        let r = per_key(&h, "/orders");
        assert_eq!(
            r.violations
                .iter()
                .map(|v| (v.msg.as_str(), v.lag))
                .collect::<Vec<_>>(),
            [("a2", 2), ("b1", 1)]
        );
        assert_eq!(
            r.describe(),
            "per-key order broken: 2 of 6 first deliveries late (33.3%) in 2 of 2 keys, \
             overtaken by up to 2 (mean 1.5) later messages of their key"
        );
        let held = per_key(&history(&[(1, "a1", "a", 1), (2, "a2", "a", 2)]), "/orders");
        assert_eq!(
            held.describe(),
            "per-key order held: 2 first deliveries over 1 keys"
        );
    }

    #[test]
    fn completion_order_counts_the_terminal_answer() {
        let mut h = History::new();
        h.record(
            1,
            Delivery::new("a1", "/orders", 1, "RETRY")
                .with_key("a")
                .with_seq(1),
        );
        h.record(
            2,
            Delivery::new("a2", "/orders", 1, "SUCCESS")
                .with_key("a")
                .with_seq(2),
        );
        h.record(
            3,
            Delivery::new("a1", "/orders", 2, "SUCCESS")
                .with_key("a")
                .with_seq(1),
        );
        assert!(per_key(&h, "/orders").violations.is_empty());
        let done = per_key_completed(&h, "/orders");
        assert_eq!(
            done.violations
                .iter()
                .map(|v| v.msg.as_str())
                .collect::<Vec<_>>(),
            ["a1"]
        );
    }

    #[test]
    fn arrival_order_is_by_time_not_append_order() {
        check(
            &[(2_000, "a2", "a", 2), (1_000, "a1", "a", 1)],
            "valid keys=1 checked=2",
        );
    }

    #[test]
    fn unkeyed_deliveries_are_unknown() {
        check(
            &[(1, "m1", "", 1)],
            "unknown: no delivery on /orders carried an id, key and sequence number",
        );
    }

    #[test]
    fn concurrency_is_the_max_in_flight() {
        let mut h = History::new();
        assert_eq!(concurrency(&h, "/orders"), 0);
        assert!(!concurrency_limit(&h, "/orders", 1).is_valid());
        for (i, n) in [1, 3, 2].into_iter().enumerate() {
            let d = Delivery::new(format!("m-{i}"), "/orders", 1, "SUCCESS").with_in_flight(n);
            h.record(i as u64 * 1000, d);
        }
        assert_eq!(concurrency(&h, "/orders"), 3);
        assert!(concurrency_limit(&h, "/orders", 3).is_valid());
        assert_eq!(
            concurrency_limit(&h, "/orders", 2).items(),
            ["m-1 at 1.0 ms: 3 in flight, limit 2"]
        );
    }
}

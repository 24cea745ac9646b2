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

use std::collections::{BTreeMap, HashSet};

use harness_history::{History, MessageId};

use crate::{Verdict, delivery::sorted_on, verdict::ms};

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
    /// Out-of-order first deliveries, in arrival order.
    pub violations: Vec<OrderViolation>,
}

/// Checks that, per key, first deliveries on `route` arrive with
/// non-decreasing sequence numbers. Equal sequence numbers are allowed.
#[must_use]
pub fn per_key(history: &History, route: &str) -> OrderReport {
    let mut seen_msgs: HashSet<&MessageId> = HashSet::new();
    // Per key: the highest sequence so far and the message that carried it.
    let mut high: BTreeMap<&str, (u64, &MessageId)> = BTreeMap::new();
    let mut checked = 0;
    let mut violations = Vec::new();
    for (at, d) in sorted_on(history, &[route.to_owned()]) {
        let (Some(msg), Some(key), Some(seq)) = (&d.msg, &d.key, d.seq) else {
            continue;
        };
        if !seen_msgs.insert(msg) {
            continue;
        }
        checked += 1;
        match high.get(key.as_str()) {
            Some(&(top, top_msg)) if seq < top => violations.push(OrderViolation {
                key: key.clone(),
                msg: msg.clone(),
                seq,
                after_seq: top,
                after_msg: top_msg.clone(),
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
        violations,
    }
}

impl OrderReport {
    /// Invalid when any key went backwards; unknown when no keyed, sequenced
    /// delivery arrived, since then order was never exercised.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if !self.violations.is_empty() {
            return Verdict::invalid(
                format!(
                    "{} of {} first deliveries on {} arrived out of per-key order",
                    self.violations.len(),
                    self.checked,
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
            Verdict::Unknown { reason } => format!("unknown: {reason}"),
            Verdict::Invalid { evidence } => {
                format!(
                    "invalid: {} [{}]",
                    evidence.summary,
                    evidence.items.join(" | ")
                )
            }
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

//! At-least-once delivery, after Jepsen's `total-queue` checker.
//!
//! Owns the buckets *lost*, *unexpected*, *duplicated* and *recovered* for
//! one subscription (a set of app routes), and the reading of the test app's
//! answers ([`Answer`]). It does not judge order, retry timing or dead
//! letters; see [`ordering`](crate::ordering), [`redelivery`](crate::redelivery)
//! and [`dlq`](crate::dlq).
//!
//! Definitions, per message id:
//! - *attempted*: any publish entry exists.
//! - *acknowledged*: some publish completed [`Phase::Ok`].
//! - *indeterminate*: not acknowledged, and some publish completed
//!   [`Phase::Info`] or was invoked and never completed.
//! - *failed*: every completion was [`Phase::Fail`].
//! - *lost*: acknowledged, never delivered on the routes.
//! - *unexpected*: delivered, but never attempted or failed.
//! - *recovered*: indeterminate and delivered; this is not a failure.
//! - *duplicated*: delivered again after the app already answered a terminal
//!   answer ([`Answer::Success`] or [`Answer::Drop`]). Redeliveries after
//!   `RETRY` are the retry policy at work, not duplicates.
//!
//! Deliveries whose payload carried no message id are *unidentified* and
//! count as unexpected: the sidecar delivered something nobody published.

use std::collections::BTreeMap;

use harness_history::{Delivery, History, MessageId, Phase};

use crate::{
    Verdict,
    verdict::{ms, ms_list},
};

/// What the checker needs to know about the subscription under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryExpect {
    /// App routes that count as the main subscription, such as `/orders`.
    /// Deliveries on other routes (a dead-letter route, say) are ignored.
    pub routes: Vec<String>,
}

/// How the sidecar must read what the test app answered, after Dapr's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `SUCCESS`, an empty answer or a 2xx status: the message is done.
    Success,
    /// `DROP`, HTTP 404 or a gRPC app's UNIMPLEMENTED: the message is done and must not be
    /// retried.
    Drop,
    /// `RETRY` or any other status: the sidecar should redeliver.
    Retry,
}

impl Answer {
    /// Classifies the `answered` field of a [`Delivery`]. Case-insensitive.
    #[must_use]
    pub fn classify(answered: &str) -> Self {
        let a = answered.trim();
        if a.is_empty() || a.eq_ignore_ascii_case("SUCCESS") {
            Self::Success
        } else if a.eq_ignore_ascii_case("DROP") || a == "404" || a == "grpc:Unimplemented" {
            Self::Drop
        } else if a.len() == 3 && a.starts_with('2') && a.bytes().all(|b| b.is_ascii_digit()) {
            Self::Success
        } else {
            Self::Retry
        }
    }

    /// Whether the sidecar must not deliver the message again.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Drop)
    }
}

/// A delivery whose payload carried no harness message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unidentified {
    /// Arrival time, microseconds since trial start.
    pub at_micros: u64,
    /// The route it arrived on.
    pub route: String,
    /// Its CloudEvent id, if any.
    pub ce_id: Option<String>,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryReport {
    /// Distinct messages with any publish entry.
    pub attempted: usize,
    /// Distinct messages whose publish completed `Ok`.
    pub acknowledged: usize,
    /// Distinct identified messages delivered at least once on the routes.
    pub delivered: usize,
    /// Acknowledged but never delivered.
    pub lost: Vec<MessageId>,
    /// Delivered again after a terminal answer, with the total number of
    /// deliveries on the routes.
    pub duplicated: Vec<(MessageId, u32)>,
    /// Delivered but never published, or published with phase `Fail` only.
    pub unexpected: Vec<MessageId>,
    /// Publish outcome unknown, yet delivered. Not a failure.
    pub recovered: Vec<MessageId>,
    /// Deliveries with no message id in the payload.
    pub unidentified: Vec<Unidentified>,
    /// `duplicated.len() / delivered`, or 0 when nothing was delivered.
    pub duplicate_rate: f64,
    routes: Vec<String>,
    outcomes: BTreeMap<MessageId, Outcome>,
    arrivals: BTreeMap<MessageId, Vec<(u64, Answer)>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Acknowledged(u64),
    Indeterminate(u64),
    Failed(u64),
}

/// Sorts deliveries into lost, unexpected, duplicated and recovered.
#[must_use]
pub fn check(history: &History, expect: &DeliveryExpect) -> DeliveryReport {
    let mut outcomes: BTreeMap<MessageId, Outcome> = BTreeMap::new();
    for (at, p) in history.publishes() {
        let next = match p.phase {
            Phase::Ok => Outcome::Acknowledged(at),
            Phase::Info | Phase::Invoke => Outcome::Indeterminate(at),
            Phase::Fail => Outcome::Failed(at),
        };
        // Strongest claim wins: any Ok beats unknown beats failed, so a
        // retried publish that eventually succeeded counts as acknowledged.
        let merged = match (outcomes.get(&p.msg).copied(), next) {
            (None, n) => n,
            (Some(Outcome::Acknowledged(t)), _) => Outcome::Acknowledged(t),
            (Some(_), n @ Outcome::Acknowledged(_)) => n,
            (Some(Outcome::Indeterminate(t)), _) => Outcome::Indeterminate(t),
            (Some(Outcome::Failed(_)), n) => n,
        };
        outcomes.insert(p.msg.clone(), merged);
    }

    let mut arrivals: BTreeMap<MessageId, Vec<(u64, Answer)>> = BTreeMap::new();
    let mut unidentified = Vec::new();
    for (at, d) in sorted_on(history, &expect.routes) {
        match &d.msg {
            Some(msg) => arrivals
                .entry(msg.clone())
                .or_default()
                .push((at, Answer::classify(&d.answered))),
            None => unidentified.push(Unidentified {
                at_micros: at,
                route: d.route.clone(),
                ce_id: d.ce_id.clone(),
            }),
        }
    }

    let mut lost = Vec::new();
    let mut recovered = Vec::new();
    let mut acknowledged = 0;
    for (msg, outcome) in &outcomes {
        let seen = arrivals.contains_key(msg);
        match outcome {
            Outcome::Acknowledged(_) => {
                acknowledged += 1;
                if !seen {
                    lost.push(msg.clone());
                }
            }
            Outcome::Indeterminate(_) if seen => recovered.push(msg.clone()),
            _ => {}
        }
    }

    let mut unexpected = Vec::new();
    let mut duplicated = Vec::new();
    for (msg, times) in &arrivals {
        if matches!(outcomes.get(msg), None | Some(Outcome::Failed(_))) {
            unexpected.push(msg.clone());
        }
        let done = times.iter().position(|(_, a)| a.is_terminal());
        if done.is_some_and(|i| i + 1 < times.len()) {
            duplicated.push((msg.clone(), count(times.len())));
        }
    }

    let delivered = arrivals.len();
    let duplicate_rate = if delivered == 0 {
        0.0
    } else {
        duplicated.len() as f64 / delivered as f64
    };
    DeliveryReport {
        attempted: outcomes.len(),
        acknowledged,
        delivered,
        lost,
        duplicated,
        unexpected,
        recovered,
        unidentified,
        duplicate_rate,
        routes: expect.routes.clone(),
        outcomes,
        arrivals,
    }
}

impl DeliveryReport {
    /// At-least-once: invalid when a message was lost or something
    /// unexpected was delivered; duplicates are reported but allowed.
    /// Unknown when no publish was acknowledged, since then nothing could
    /// be lost and a pass would be vacuous.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        let routes = self.routes.join(", ");
        let mut v = Verdict::Valid.and_invalid_if_any(
            &self.lost,
            |n| {
                format!(
                    "{n} of {} acknowledged messages were never delivered on {routes}",
                    self.acknowledged
                )
            },
            |m| {
                let at = match self.outcomes.get(m) {
                    Some(Outcome::Acknowledged(t)) => ms(*t),
                    _ => "?".to_owned(),
                };
                format!("{m}: publish acknowledged at {at}, never delivered")
            },
        );
        let strangers = self.unexpected.len() + self.unidentified.len();
        if strangers > 0 {
            let named = self.unexpected.iter().map(|m| {
                let first = self.first_arrival(m);
                match self.outcomes.get(m) {
                    Some(Outcome::Failed(t)) => format!(
                        "{m}: delivered at {first} though its publish failed at {}",
                        ms(*t)
                    ),
                    _ => format!("{m}: delivered at {first} but never published"),
                }
            });
            let anonymous = self.unidentified.iter().map(|u| {
                format!(
                    "delivery at {} on {} carried no message id (ce_id {})",
                    ms(u.at_micros),
                    u.route,
                    u.ce_id.as_deref().unwrap_or("absent")
                )
            });
            v = v.and(Verdict::invalid(
                format!("{strangers} deliveries on {routes} were never published"),
                named.chain(anonymous).collect::<Vec<_>>(),
            ));
        }
        if v.is_valid() && self.acknowledged == 0 {
            return Verdict::unknown(format!(
                "no publish was acknowledged ({} attempted), so nothing could be lost",
                self.attempted
            ));
        }
        v
    }

    /// Exactly-once: everything [`verdict`](Self::verdict) checks, and also
    /// invalid when any message was duplicated.
    #[must_use]
    pub fn exactly_once_verdict(&self) -> Verdict {
        self.verdict().and_invalid_if_any(
            &self.duplicated,
            |n| {
                format!(
                    "{n} of {} delivered messages were delivered again after a final answer",
                    self.delivered
                )
            },
            |(m, n)| {
                let times: Vec<u64> = self.delivery_times(m);
                format!("{m}: delivered {n} times at {}", ms_list(&times))
            },
        )
    }

    /// Arrival times (microseconds) of `msg` on the routes, in order.
    #[must_use]
    pub fn delivery_times(&self, msg: &MessageId) -> Vec<u64> {
        self.arrivals
            .get(msg)
            .map(|a| a.iter().map(|(t, _)| *t).collect())
            .unwrap_or_default()
    }

    fn first_arrival(&self, msg: &MessageId) -> String {
        self.arrivals
            .get(msg)
            .and_then(|a| a.first())
            .map_or_else(|| "?".to_owned(), |(t, _)| ms(*t))
    }
}

/// Deliveries on any of `routes`, stably sorted by arrival time.
pub(crate) fn sorted_on<'a>(history: &'a History, routes: &[String]) -> Vec<(u64, &'a Delivery)> {
    let mut v: Vec<_> = history
        .deliveries()
        .filter(|(_, d)| routes.contains(&d.route))
        .collect();
    v.sort_by_key(|(at, _)| *at);
    v
}

/// Saturating conversion for counts that end up in `u32` fields.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use harness_history::{Delivery, Publish};

    use super::*;

    /// Publishes are `(at_micros, msg, phase)`; deliveries are `(at_micros, msg, route,
    /// answered)`, their attempts counted per message and route.
    fn history(
        publishes: &[(u64, &str, Phase)],
        deliveries: &[(u64, &str, &str, &str)],
    ) -> History {
        let mut h = History::new();
        for &(at, msg, phase) in publishes {
            h.record(at, Publish::new(msg, "orders", phase));
        }
        for &(at, msg, route, answered) in deliveries {
            let attempt = h
                .deliveries_on(route)
                .filter(|(_, d)| d.msg == Some(msg.into()))
                .count();
            h.record(at, Delivery::new(msg, route, count(attempt + 1), answered));
        }
        h
    }

    /// Renders the report buckets plus both verdicts' summaries.
    fn check_(history: &History, expect: &str) {
        let r = check(
            history,
            &DeliveryExpect {
                routes: vec!["/orders".into()],
            },
        );
        let ids = |v: &[MessageId]| v.iter().map(|m| m.0.clone()).collect::<Vec<_>>().join(",");
        let dups: Vec<String> = r
            .duplicated
            .iter()
            .map(|(m, n)| format!("{m}x{n}"))
            .collect();
        let verdict = |v: Verdict| match v {
            Verdict::Valid => "valid".to_owned(),
            Verdict::Unknown { reason } => format!("unknown({reason})"),
            Verdict::Invalid { evidence } => {
                format!(
                    "invalid({}: {})",
                    evidence.summary,
                    evidence.items.join(" | ")
                )
            }
        };
        let actual = format!(
            "ack={} delivered={} lost=[{}] unexpected=[{}] recovered=[{}] dup=[{}] rate={:.2}\n{}\n{}",
            r.acknowledged,
            r.delivered,
            ids(&r.lost),
            ids(&r.unexpected),
            ids(&r.recovered),
            dups.join(","),
            r.duplicate_rate,
            verdict(r.verdict()),
            verdict(r.exactly_once_verdict()),
        );
        assert_eq!(actual, expect);
    }

    #[test]
    fn all_delivered_once_is_valid() {
        let h = history(
            &[
                (0, "m-1", Phase::Invoke),
                (100, "m-1", Phase::Ok),
                (1_000, "m-2", Phase::Invoke),
                (1_100, "m-2", Phase::Ok),
            ],
            &[
                (500, "m-1", "/orders", "SUCCESS"),
                (1_500, "m-2", "/orders", "SUCCESS"),
                (9_000, "m-9", "/dlq", "SUCCESS"),
            ],
        );
        check_(
            &h,
            "ack=2 delivered=2 lost=[] unexpected=[] recovered=[] dup=[] rate=0.00\nvalid\nvalid",
        );
    }

    #[test]
    fn lost_and_unexpected_are_invalid() {
        let mut h = history(
            &[
                (0, "m-1", Phase::Ok),
                (1_000, "m-2", Phase::Ok),
                (2_000, "m-3", Phase::Fail),
            ],
            &[
                (1_500, "m-1", "/orders", "SUCCESS"),
                (2_500, "m-3", "/orders", "SUCCESS"),
                (3_000, "m-7", "/orders", "SUCCESS"),
            ],
        );
        h.record(
            3_500,
            Delivery {
                msg: None,
                ..Delivery::new("x", "/orders", 1, "SUCCESS").with_ce_id("ce-x")
            },
        );
        let invalid = "invalid(1 of 2 acknowledged messages were never delivered on /orders; \
            3 deliveries on /orders were never published: \
            m-2: publish acknowledged at 1.0 ms, never delivered | \
            m-3: delivered at 2.5 ms though its publish failed at 2.0 ms | \
            m-7: delivered at 3.0 ms but never published | \
            delivery at 3.5 ms on /orders carried no message id (ce_id ce-x))";
        check_(
            &h,
            &format!(
                "ack=2 delivered=3 lost=[m-2] unexpected=[m-3,m-7] recovered=[] dup=[] rate=0.00\n{invalid}\n{invalid}"
            ),
        );
    }

    #[test]
    fn indeterminate_publishes_may_go_either_way() {
        let h = history(
            &[
                (0, "m-1", Phase::Ok),
                (0, "m-2", Phase::Info),
                (0, "m-3", Phase::Info),
                (0, "m-4", Phase::Invoke),
                // m-5 failed once, then a retried publish succeeded.
                (0, "m-5", Phase::Fail),
                (10, "m-5", Phase::Ok),
            ],
            &[
                (100, "m-1", "/orders", "SUCCESS"),
                (200, "m-2", "/orders", "SUCCESS"),
                (300, "m-4", "/orders", "SUCCESS"),
                (400, "m-5", "/orders", "SUCCESS"),
            ],
        );
        check_(
            &h,
            "ack=2 delivered=4 lost=[] unexpected=[] recovered=[m-2,m-4] dup=[] rate=0.00\nvalid\nvalid",
        );
    }

    #[test]
    fn duplicates_pass_at_least_once_but_fail_exactly_once() {
        let h = history(
            &[(0, "m-1", Phase::Ok), (0, "m-2", Phase::Ok)],
            &[
                (1_000, "m-1", "/orders", "SUCCESS"),
                (2_000, "m-1", "/orders", "SUCCESS"),
                // Redelivery after RETRY is the retry policy, not a duplicate.
                (1_000, "m-2", "/orders", "RETRY"),
                (2_000, "m-2", "/orders", "500"),
                (3_000, "m-2", "/orders", "SUCCESS"),
            ],
        );
        check_(
            &h,
            "ack=2 delivered=2 lost=[] unexpected=[] recovered=[] dup=[m-1x2] rate=0.50\nvalid\n\
             invalid(1 of 2 delivered messages were delivered again after a final answer: \
             m-1: delivered 2 times at 1.0, 2.0 ms)",
        );
    }

    #[test]
    fn nothing_acknowledged_is_unknown() {
        check_(
            &history(&[(0, "m-1", Phase::Fail)], &[]),
            "ack=0 delivered=0 lost=[] unexpected=[] recovered=[] dup=[] rate=0.00\n\
             unknown(no publish was acknowledged (1 attempted), so nothing could be lost)\n\
             unknown(no publish was acknowledged (1 attempted), so nothing could be lost)",
        );
    }

    #[test]
    fn answers_follow_dapr() {
        for (a, e) in [
            ("SUCCESS", Answer::Success),
            ("success", Answer::Success),
            ("", Answer::Success),
            ("204", Answer::Success),
            ("DROP", Answer::Drop),
            ("404", Answer::Drop),
            ("grpc:Unimplemented", Answer::Drop),
            ("grpc:NotFound", Answer::Retry),
            ("status:3", Answer::Retry),
            ("RETRY", Answer::Retry),
            ("500", Answer::Retry),
            ("timeout", Answer::Retry),
            ("2xx", Answer::Retry),
        ] {
            assert_eq!(Answer::classify(a), e, "{a:?}");
        }
    }
}

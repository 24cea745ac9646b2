//! Foreign traffic: deliveries that the trial itself did not cause.
//!
//! Every payload a trial publishes carries the trial's nonce (`tck_trial`), recorded on each
//! delivery as [`Delivery::trial`]. Two things in a history mean something other than this
//! trial's sidecar and broker produced a delivery:
//! - *strangers*: a delivery carrying another trial's nonce. Some other trial's broker or
//!   sidecar reached this trial's app (a shared port, a shared broker): the harness broke, so
//!   the verdict of the trial cannot be trusted.
//! - *re-wrapped* messages: one publish of this trial arriving under two or more CloudEvent
//!   ids. A sidecar wraps a published payload once; every delivery of it (retries, broker
//!   redeliveries, the dead-letter copy) carries the same envelope. Raw-payload deliveries
//!   are exempt, since their CloudEvent is made anew on every attempt.
//!
//! Deliveries without a nonce (bodies a check wrote by hand) are not judged here.
//!
//! [`Delivery::trial`]: harness_history::Delivery::trial

use std::collections::{BTreeMap, BTreeSet};

use harness_history::{History, MessageId};

use crate::Verdict;

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignReport {
    /// Deliveries carrying another trial's nonce: `(at, route, message, nonce)`.
    pub strangers: Vec<(u64, String, Option<MessageId>, String)>,
    /// Messages published once by this trial that arrived under several CloudEvent ids.
    pub rewrapped: Vec<(MessageId, Vec<String>)>,
}

/// Judges `history` against this trial's nonce `trial`.
#[must_use]
pub fn check(history: &History, trial: &str) -> ForeignReport {
    let mut publishes: BTreeMap<&MessageId, usize> = BTreeMap::new();
    for (_, p) in history.publishes() {
        // Count invocations: one publish request is one Invoke (its Ok/Fail/Info follow).
        if p.phase == harness_history::Phase::Invoke {
            *publishes.entry(&p.msg).or_default() += 1;
        }
    }
    let mut strangers = Vec::new();
    let mut ce_ids: BTreeMap<&MessageId, BTreeSet<&str>> = BTreeMap::new();
    for (at, d) in history.deliveries() {
        match d.trial.as_deref() {
            Some(nonce) if nonce != trial => {
                strangers.push((at, d.route.clone(), d.msg.clone(), nonce.to_owned()));
            }
            Some(_) if !d.raw => {
                if let (Some(msg), Some(ce)) = (&d.msg, &d.ce_id)
                    && publishes.get(msg) == Some(&1)
                {
                    ce_ids.entry(msg).or_default().insert(ce);
                }
            }
            _ => {}
        }
    }
    let rewrapped = ce_ids
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(m, ids)| (m.clone(), ids.into_iter().map(str::to_owned).collect()))
        .collect();
    ForeignReport {
        strangers,
        rewrapped,
    }
}

impl ForeignReport {
    /// Invalid when another trial's deliveries reached this trial's app.
    #[must_use]
    pub fn strangers_verdict(&self) -> Verdict {
        Verdict::Valid.and_invalid_if_any(
            &self.strangers,
            |n| {
                format!(
                    "{n} deliveries from another trial reached this trial's app: a neighbour shares its broker or sidecar"
                )
            },
            |(at, route, msg, nonce)| {
                format!(
                    "{:.1} ms {route}: {} published by trial {nonce}",
                    *at as f64 / 1000.0,
                    msg.as_ref().map_or("a message", MessageId::as_str)
                )
            },
        )
    }

    /// Invalid when a message published once arrived under several CloudEvent ids.
    #[must_use]
    pub fn rewrapped_verdict(&self) -> Verdict {
        Verdict::Valid.and_invalid_if_any(
            &self.rewrapped,
            |n| format!("{n} messages published once arrived under several CloudEvent ids"),
            |(m, ids)| format!("{m}: CloudEvent ids {}", ids.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use harness_history::{Delivery, EventKind, Phase, Publish};

    use super::*;

    /// A history of `m-1` on `/orders`: publishes invoked at `publishes` (each acknowledged
    /// 1 µs later), and deliveries `(at_micros, ce_id, trial)`.
    fn history(publishes: &[u64], deliveries: &[(u64, &str, &str)]) -> History {
        let mut h = History::new();
        for &at in publishes {
            for (at, phase) in [(at, Phase::Invoke), (at + 1, Phase::Ok)] {
                h.record(at, EventKind::Publish(Publish::new("m-1", "orders", phase)));
            }
        }
        for &(at, ce, trial) in deliveries {
            let d = Delivery::new("m-1", "/orders", 1, "SUCCESS")
                .with_ce_id(ce)
                .with_trial(trial);
            h.record(at, EventKind::Delivery(d));
        }
        h
    }

    /// Renders the strangers, the re-wrapped messages and whether each verdict is valid.
    fn check_(h: &History, expect: &str) {
        let r = check(h, "t1");
        let actual = format!(
            "strangers={:?} rewrapped={:?}\n{:?}\n{:?}",
            r.strangers
                .iter()
                .map(|(_, _, m, n)| format!("{}@{n}", m.as_ref().map_or("-", MessageId::as_str)))
                .collect::<Vec<_>>(),
            r.rewrapped,
            r.strangers_verdict() == Verdict::Valid,
            r.rewrapped_verdict() == Verdict::Valid,
        );
        assert_eq!(actual, expect);
    }

    #[test]
    fn own_deliveries_and_redeliveries_are_fine() {
        let h = history(&[0], &[(10, "ce-a", "t1"), (20, "ce-a", "t1")]);
        check_(&h, "strangers=[] rewrapped=[]\ntrue\ntrue");
    }

    #[test]
    fn another_trials_delivery_is_a_stranger() {
        // The incident that motivated this: two trials on one Redis, both publishing m-1.
        let h = history(&[0], &[(10, "ce-a", "t1"), (11, "ce-b", "t2")]);
        check_(&h, "strangers=[\"m-1@t2\"] rewrapped=[]\nfalse\ntrue");
    }

    #[test]
    fn one_publish_under_two_envelopes_is_rewrapped() {
        let mut h = history(&[0], &[(10, "ce-a", "t1"), (20, "ce-b", "t1")]);
        let mut raw = Delivery::new("m-1", "/raw", 1, "SUCCESS")
            .with_ce_id("ce-c")
            .with_trial("t1");
        raw.raw = true;
        h.record(30, EventKind::Delivery(raw));
        check_(
            &h,
            "strangers=[] rewrapped=[(MessageId(\"m-1\"), [\"ce-a\", \"ce-b\"])]\ntrue\nfalse",
        );
    }

    #[test]
    fn messages_published_twice_or_without_a_nonce_are_not_judged() {
        let mut h = history(&[0, 2], &[(10, "ce-a", "t1"), (20, "ce-b", "t1")]);
        let anon = Delivery::new("hand-written", "/orders", 1, "SUCCESS").with_ce_id("x");
        h.record(30, EventKind::Delivery(anon));
        check_(&h, "strangers=[] rewrapped=[]\ntrue\ntrue");
    }
}

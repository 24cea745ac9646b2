//! The append-only [`History`] and its JSONL encoding.
//!
//! Owns storage order and the line format. It does not sort, deduplicate or
//! interpret events; checkers do that.

use std::{error::Error, fmt};

use crate::{Delivery, Event, EventKind, FaultEvent, Publish};

/// Every event of one trial, in the order it was appended.
///
/// Append order is not guaranteed to be time order: the driver and the test
/// app record concurrently and are merged. Consumers that care about arrival
/// order sort by [`Event::at_micros`] (stably, so ties keep append order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

/// A history could not be decoded from JSONL.
#[derive(Debug)]
pub enum HistoryError {
    /// A line was not a valid event.
    Decode {
        /// 1-based line number in the input.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode { line, .. } => write!(f, "invalid history event on line {line}"),
        }
    }
}

impl Error for HistoryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Decode { source, .. } => Some(source),
        }
    }
}

impl History {
    /// An empty history.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one event.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Appends `kind` at `at_micros` since trial start.
    pub fn record(&mut self, at_micros: u64, kind: impl Into<EventKind>) {
        self.events.push(Event::new(at_micros, kind));
    }

    /// All events in append order.
    #[must_use]
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Number of events.
    #[must_use]
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Publish entries with their time in microseconds, in append order.
    pub fn publishes(&self) -> impl Iterator<Item = (u64, &Publish)> {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::Publish(p) => Some((e.at_micros, p)),
            _ => None,
        })
    }

    /// Deliveries on every route with their time in microseconds, in append
    /// order.
    pub fn deliveries(&self) -> impl Iterator<Item = (u64, &Delivery)> {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::Delivery(d) => Some((e.at_micros, d)),
            _ => None,
        })
    }

    /// Deliveries on one app route (exact match), in append order.
    pub fn deliveries_on<'a>(
        &'a self,
        route: &'a str,
    ) -> impl Iterator<Item = (u64, &'a Delivery)> + 'a {
        self.deliveries().filter(move |(_, d)| d.route == route)
    }

    /// Fault starts and stops with their time in microseconds.
    pub fn faults(&self) -> impl Iterator<Item = (u64, &FaultEvent)> {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::Fault(f) => Some((e.at_micros, f)),
            _ => None,
        })
    }

    /// One JSON object per line, each line ending in `\n`.
    #[must_use]
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            match serde_json::to_string(event) {
                Ok(line) => out.push_str(&line),
                // These types have only string keys, so this cannot happen;
                // if it ever does, keep the line count and say why.
                Err(err) => {
                    let text = serde_json::Value::String(format!("unserializable event: {err}"));
                    out.push_str(&format!(
                        r#"{{"at_micros":{},"type":"note","text":{text}}}"#,
                        event.at_micros
                    ));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Decodes the output of [`History::to_jsonl`]. Blank lines are skipped.
    pub fn from_jsonl(input: &str) -> Result<Self, HistoryError> {
        let mut events = Vec::new();
        for (index, line) in input.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(line).map_err(|source| HistoryError::Decode {
                line: index + 1,
                source,
            })?;
            events.push(event);
        }
        Ok(Self { events })
    }
}

impl FromIterator<Event> for History {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> Self {
        Self {
            events: iter.into_iter().collect(),
        }
    }
}

impl Extend<Event> for History {
    fn extend<I: IntoIterator<Item = Event>>(&mut self, iter: I) {
        self.events.extend(iter);
    }
}

impl<'a> IntoIterator for &'a History {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultPhase, MessageId, Phase};

    fn sample() -> History {
        let mut h = History::new();
        h.record(0, EventKind::Note("trial start".into()));
        h.record(
            10,
            Publish::new("m-1", "orders", Phase::Invoke)
                .with_key("k")
                .with_seq(1),
        );
        h.record(
            1_500,
            Publish::new("m-1", "orders", Phase::Ok).with_status(204),
        );
        h.record(
            2_000,
            FaultEvent {
                kind: "partition".into(),
                phase: FaultPhase::Start,
                detail: Some("sidecar<->broker".into()),
            },
        );
        h.record(
            2_500,
            Delivery::new("m-1", "/orders", 1, "SUCCESS")
                .with_ce_id("ce-1")
                .with_seq(1),
        );
        h.record(
            3_000,
            Delivery::new("m-2", "/dlq", 1, "SUCCESS").with_in_flight(2),
        );
        h
    }

    /// Encodes `history` and compares the text; then checks it decodes back.
    fn check(history: &History, expect: &str) {
        let text = history.to_jsonl();
        assert_eq!(text, expect);
        assert_eq!(&History::from_jsonl(&text).unwrap(), history);
    }

    #[test]
    fn jsonl_round_trip() {
        check(
            &sample(),
            concat!(
                r#"{"at_micros":0,"type":"note","text":"trial start"}"#,
                "\n",
                r#"{"at_micros":10,"type":"publish","msg":"m-1","topic":"orders","key":"k","seq":1,"phase":"invoke"}"#,
                "\n",
                r#"{"at_micros":1500,"type":"publish","msg":"m-1","topic":"orders","phase":"ok","status":204}"#,
                "\n",
                r#"{"at_micros":2000,"type":"fault","kind":"partition","phase":"start","detail":"sidecar<->broker"}"#,
                "\n",
                r#"{"at_micros":2500,"type":"delivery","msg":"m-1","ce_id":"ce-1","route":"/orders","seq":1,"attempt":1,"answered":"SUCCESS","in_flight":1}"#,
                "\n",
                r#"{"at_micros":3000,"type":"delivery","msg":"m-2","route":"/dlq","attempt":1,"answered":"SUCCESS","in_flight":2}"#,
                "\n",
            ),
        );
        check(&History::new(), "");
    }

    #[test]
    fn accessors_filter_by_kind_and_route() {
        let h = sample();
        assert_eq!(h.len(), 6);
        assert_eq!(h.publishes().count(), 2);
        assert_eq!(h.deliveries().count(), 2);
        assert_eq!(h.faults().count(), 1);
        let on_orders: Vec<_> = h.deliveries_on("/orders").collect();
        assert_eq!(on_orders.len(), 1);
        assert_eq!(on_orders[0].0, 2_500);
        assert_eq!(on_orders[0].1.msg, Some(MessageId::from("m-1")));
    }

    #[test]
    fn decode_skips_blank_lines_and_reports_bad_line() {
        let ok = "\n{\"at_micros\":5,\"type\":\"note\",\"text\":\"x\"}\n\n";
        assert_eq!(History::from_jsonl(ok).unwrap().len(), 1);

        let bad = "{\"at_micros\":5,\"type\":\"note\",\"text\":\"x\"}\n{\"type\":\"bogus\"}\n";
        let err = History::from_jsonl(bad).unwrap_err();
        assert_eq!(err.to_string(), "invalid history event on line 2");
        assert!(err.source().is_some());
    }

    #[test]
    fn message_id_is_a_bare_string() {
        let id = MessageId::from("m-17");
        assert_eq!(id.to_string(), "m-17");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"m-17\"");
    }
}

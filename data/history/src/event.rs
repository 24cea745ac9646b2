//! The event vocabulary of a history: publishes, deliveries, faults and notes.
//!
//! Owns the in-memory types and their serde shape (one flat JSON object per
//! event, tagged by `type`). It does not own ordering or storage; see
//! [`History`](crate::History).

use serde::{Deserialize, Serialize};

use crate::MessageId;

/// Builder setters for optional fields, written as `with_x(x: T);`: each sets field `x` to
/// `Some(x)`, converting through `Into` where `T` is `impl Into<_>`.
macro_rules! setters {
    () => {};
    ($(#[doc = $doc:literal])* $name:ident($field:ident: impl Into<$ty:ty>); $($rest:tt)*) => {
        $(#[doc = $doc])*
        #[must_use]
        pub fn $name(mut self, $field: impl Into<$ty>) -> Self {
            self.$field = Some($field.into());
            self
        }
        setters!($($rest)*);
    };
    ($(#[doc = $doc:literal])* $name:ident($field:ident: $ty:ty); $($rest:tt)*) => {
        $(#[doc = $doc])*
        #[must_use]
        pub fn $name(mut self, $field: $ty) -> Self {
            self.$field = Some($field);
            self
        }
        setters!($($rest)*);
    };
}

/// Where a client operation is in its life, after Jepsen's `:type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The harness sent the request; no answer yet.
    Invoke,
    /// The sidecar acknowledged the operation.
    Ok,
    /// The sidecar definitely rejected the operation.
    Fail,
    /// The outcome is unknown, for example the request timed out.
    Info,
}

/// One publish operation entry: either its invocation or its completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// The harness-assigned id carried in the payload.
    pub msg: MessageId,
    /// The topic published to.
    pub topic: String,
    /// The ordering key (partition key), if the scenario sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Per-key sequence number carried in the payload, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Invocation or outcome.
    pub phase: Phase,
    /// HTTP status (or gRPC code) of the answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Free-form detail, such as an error body or "timed out after 5s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Publish {
    /// A publish entry with no key, sequence, status or detail.
    #[must_use]
    pub fn new(msg: impl Into<MessageId>, topic: impl Into<String>, phase: Phase) -> Self {
        Self {
            msg: msg.into(),
            topic: topic.into(),
            key: None,
            seq: None,
            phase,
            status: None,
            detail: None,
        }
    }

    setters! {
        /// Sets the ordering key.
        with_key(key: impl Into<String>);
        /// Sets the per-key sequence number.
        with_seq(seq: u64);
        /// Sets the answer's status code.
        with_status(status: u16);
        /// Sets the free-form detail.
        with_detail(detail: impl Into<String>);
    }
}

/// One delivery the test app received, recorded when the request arrived.
///
/// Key and sequence are read back from the payload by the test app, so they
/// describe what the sidecar delivered, not what the harness meant to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The harness id found in the payload; `None` when the payload carried
    /// none (or could not be parsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<MessageId>,
    /// The CloudEvent `id` attribute, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_id: Option<String>,
    /// The app route the sidecar called, such as `/orders`.
    pub route: String,
    /// The CloudEvent `topic` attribute, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The ordering key found in the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The sequence number found in the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// 1-based count of deliveries of this message on this route so far.
    pub attempt: u32,
    /// What the test app answered: `SUCCESS`, `RETRY`, `DROP`, or an HTTP
    /// status such as `404`.
    pub answered: String,
    /// Concurrent requests on this route at arrival, including this one.
    pub in_flight: u32,
    /// The publishing trial's nonce (`tck_trial` in the payload): a delivery carrying
    /// another trial's nonce is foreign traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
    /// Whether the payload arrived wrapped in a synthetic CloudEvent (a raw-payload
    /// subscription), whose `id` is made anew on every attempt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
}

impl Delivery {
    /// A delivery of `msg` on `route` with no CloudEvent id, topic, key or
    /// sequence, and `in_flight` of 1.
    #[must_use]
    pub fn new(
        msg: impl Into<MessageId>,
        route: impl Into<String>,
        attempt: u32,
        answered: impl Into<String>,
    ) -> Self {
        Self {
            msg: Some(msg.into()),
            ce_id: None,
            route: route.into(),
            topic: None,
            key: None,
            seq: None,
            attempt,
            answered: answered.into(),
            in_flight: 1,
            trial: None,
            raw: false,
        }
    }

    setters! {
        /// Sets the publishing trial's nonce.
        with_trial(trial: impl Into<String>);
        /// Sets the CloudEvent id.
        with_ce_id(ce_id: impl Into<String>);
        /// Sets the topic.
        with_topic(topic: impl Into<String>);
        /// Sets the ordering key.
        with_key(key: impl Into<String>);
        /// Sets the sequence number.
        with_seq(seq: u64);
    }

    /// Sets the number of concurrent requests at arrival.
    #[must_use]
    pub fn with_in_flight(mut self, in_flight: u32) -> Self {
        self.in_flight = in_flight;
        self
    }
}

/// Whether a fault is being applied or healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPhase {
    /// The fault took effect.
    Start,
    /// The fault was healed.
    Stop,
}

/// A fault start or stop, recorded on the same timeline as client operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// The fault kind, such as `partition` or `kill-sidecar`.
    pub kind: String,
    /// Start or stop.
    pub phase: FaultPhase,
    /// Free-form detail, such as the proxy or process affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A publish invocation or completion.
    Publish(Publish),
    /// A delivery the test app received.
    Delivery(Delivery),
    /// A fault start or stop.
    Fault(FaultEvent),
    /// A free-form note for people reading the history.
    Note(String),
}

impl From<Publish> for EventKind {
    fn from(publish: Publish) -> Self {
        Self::Publish(publish)
    }
}

impl From<Delivery> for EventKind {
    fn from(delivery: Delivery) -> Self {
        Self::Delivery(delivery)
    }
}

impl From<FaultEvent> for EventKind {
    fn from(fault: FaultEvent) -> Self {
        Self::Fault(fault)
    }
}

/// One timestamped entry of a history.
///
/// Serialized as one flat object: `{"at_micros":1200,"type":"publish",...}`,
/// where `type` is `publish`, `delivery`, `fault` or `note` (a note carries
/// its text in `text`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "WireEvent")]
pub struct Event {
    /// Microseconds since trial start, from a monotonic clock.
    pub at_micros: u64,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// An event at `at_micros` since trial start.
    #[must_use]
    pub fn new(at_micros: u64, kind: impl Into<EventKind>) -> Self {
        Self {
            at_micros,
            kind: kind.into(),
        }
    }

    /// Milliseconds since trial start, for evidence and reports.
    #[must_use]
    pub fn at_ms(&self) -> f64 {
        self.at_micros as f64 / 1000.0
    }
}

// `Note(String)` cannot be internally tagged as is, so the wire shape is a
// private mirror with `Note { text }`. Serialization borrows to avoid a clone.

#[derive(Deserialize)]
struct WireEvent {
    at_micros: u64,
    #[serde(flatten)]
    kind: WireKind,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireKind {
    Publish(Publish),
    Delivery(Delivery),
    Fault(FaultEvent),
    Note { text: String },
}

impl From<WireEvent> for Event {
    fn from(wire: WireEvent) -> Self {
        let kind = match wire.kind {
            WireKind::Publish(p) => EventKind::Publish(p),
            WireKind::Delivery(d) => EventKind::Delivery(d),
            WireKind::Fault(f) => EventKind::Fault(f),
            WireKind::Note { text } => EventKind::Note(text),
        };
        Self {
            at_micros: wire.at_micros,
            kind,
        }
    }
}

#[derive(Serialize)]
struct WireEventRef<'a> {
    at_micros: u64,
    #[serde(flatten)]
    kind: WireKindRef<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireKindRef<'a> {
    Publish(&'a Publish),
    Delivery(&'a Delivery),
    Fault(&'a FaultEvent),
    Note { text: &'a str },
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kind = match &self.kind {
            EventKind::Publish(p) => WireKindRef::Publish(p),
            EventKind::Delivery(d) => WireKindRef::Delivery(d),
            EventKind::Fault(f) => WireKindRef::Fault(f),
            EventKind::Note(text) => WireKindRef::Note { text },
        };
        WireEventRef {
            at_micros: self.at_micros,
            kind,
        }
        .serialize(serializer)
    }
}

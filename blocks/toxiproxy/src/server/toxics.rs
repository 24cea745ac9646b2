//! Toxics as the server keeps them: the typed attributes of each toxic type, their parsing
//! from the wire (missing attributes keep their value, unknown ones are ignored), and the
//! per-proxy collection that publishes each stream's chain to the live connections.
//!
//! Attributes stay the Go server's integers (milliseconds, bytes, microseconds for the
//! slicer's delay) so that a toxic reads back exactly as it was written, negative values
//! included; the engine clamps them when it uses them.
//! What a toxic does to the bytes is the `link` module's business.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::Serializer;
use serde_json::Value;
use tokio::sync::watch;

/// The direction a toxic acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Stream {
    /// Client to upstream server.
    Upstream,
    /// Upstream server to client.
    Downstream,
}

impl Stream {
    /// Parses a `stream` value the way the Go server does: case-insensitively.
    pub(crate) fn parse(label: &str) -> Option<Stream> {
        if label.eq_ignore_ascii_case("upstream") {
            Some(Stream::Upstream)
        } else if label.eq_ignore_ascii_case("downstream") {
            Some(Stream::Downstream)
        } else {
            None
        }
    }

    /// The position of the stream in per-stream arrays; upstream first, as toxics are listed.
    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Upstream => 0,
            Stream::Downstream => 1,
        }
    }

    /// Both streams in listing order.
    pub(crate) const ALL: [Stream; 2] = [Stream::Upstream, Stream::Downstream];
}

/// A toxic type with its attributes, in the Go server's units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Passes data through.
    Noop,
    /// Delays every chunk by `latency ± jitter` ms from its arrival.
    Latency {
        /// Milliseconds.
        latency: i64,
        /// Milliseconds.
        jitter: i64,
    },
    /// Limits the rate to `rate` KB/s (1 KB = 1000 bytes); 0 means no limit.
    Bandwidth {
        /// KB/s.
        rate: i64,
    },
    /// Delays the EOF by `delay` ms.
    SlowClose {
        /// Milliseconds.
        delay: i64,
    },
    /// Drops data, and closes the connection after `timeout` ms when it is above 0.
    Timeout {
        /// Milliseconds.
        timeout: i64,
    },
    /// Resets the connection `timeout` ms after the first chunk or EOF.
    ResetPeer {
        /// Milliseconds.
        timeout: i64,
    },
    /// Splits chunks into pieces of about `average_size ± size_variation` bytes.
    Slicer {
        /// Bytes.
        average_size: i64,
        /// Bytes.
        size_variation: i64,
        /// Microseconds between pieces.
        delay: i64,
    },
    /// Passes `bytes` bytes, then closes the connection.
    LimitData {
        /// Bytes.
        bytes: i64,
    },
}

/// An attribute had a value of the wrong type.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AttributeError {
    /// `attributes` is neither an object nor null.
    #[error("attributes must be an object, got {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// One attribute is not a 64-bit integer.
    #[error("attribute {key} must be an integer, got {found}")]
    NotAnInteger {
        /// The attribute.
        key: &'static str,
        /// What was found instead.
        found: String,
    },
}

impl Kind {
    /// The toxic of type `type_name` with every attribute 0, or `None` for an unknown type.
    pub(crate) fn zero(type_name: &str) -> Option<Kind> {
        Some(match type_name {
            "noop" => Kind::Noop,
            "latency" => Kind::Latency {
                latency: 0,
                jitter: 0,
            },
            "bandwidth" => Kind::Bandwidth { rate: 0 },
            "slow_close" => Kind::SlowClose { delay: 0 },
            "timeout" => Kind::Timeout { timeout: 0 },
            "reset_peer" => Kind::ResetPeer { timeout: 0 },
            "slicer" => Kind::Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0,
            },
            "limit_data" => Kind::LimitData { bytes: 0 },
            _ => return None,
        })
    }

    /// The wire name of the type.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Kind::Noop => "noop",
            Kind::Latency { .. } => "latency",
            Kind::Bandwidth { .. } => "bandwidth",
            Kind::SlowClose { .. } => "slow_close",
            Kind::Timeout { .. } => "timeout",
            Kind::ResetPeer { .. } => "reset_peer",
            Kind::Slicer { .. } => "slicer",
            Kind::LimitData { .. } => "limit_data",
        }
    }

    /// The attributes in the Go server's field order.
    pub(crate) fn fields(&self) -> Vec<(&'static str, i64)> {
        let mut copy = self.clone();
        copy.fields_mut()
            .into_iter()
            .map(|(key, value)| (key, *value))
            .collect()
    }

    /// The attributes in the Go server's field order, to update in place.
    fn fields_mut(&mut self) -> Vec<(&'static str, &mut i64)> {
        match self {
            Kind::Noop => vec![],
            Kind::Latency { latency, jitter } => vec![("latency", latency), ("jitter", jitter)],
            Kind::Bandwidth { rate } => vec![("rate", rate)],
            Kind::SlowClose { delay } => vec![("delay", delay)],
            Kind::Timeout { timeout } | Kind::ResetPeer { timeout } => vec![("timeout", timeout)],
            Kind::Slicer {
                average_size,
                size_variation,
                delay,
            } => vec![
                ("average_size", average_size),
                ("size_variation", size_variation),
                ("delay", delay),
            ],
            Kind::LimitData { bytes } => vec![("bytes", bytes)],
        }
    }

    /// This toxic with the attributes of `attrs` applied: present keys replace, missing or
    /// null ones keep their value, unknown keys are ignored, and a null `attrs` changes
    /// nothing. Nothing changes when an error is returned.
    pub(crate) fn merge(&self, attrs: &Value) -> Result<Kind, AttributeError> {
        let mut next = self.clone();
        let object = match attrs {
            Value::Null => return Ok(next),
            Value::Object(object) => object,
            other => {
                return Err(AttributeError::NotAnObject {
                    found: json_type(other),
                });
            }
        };
        for (key, slot) in next.fields_mut() {
            match object.get(key) {
                None | Some(Value::Null) => {}
                Some(value) => {
                    *slot = value.as_i64().ok_or_else(|| AttributeError::NotAnInteger {
                        key,
                        found: match value {
                            Value::Number(n) => format!("the number {n}"),
                            other => json_type(other).to_owned(),
                        },
                    })?;
                }
            }
        }
        Ok(next)
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One toxic of a proxy. A new `id` is given on every add, so a toxic removed and added
/// again under the same name starts afresh on every link; `version` changes on every update.
#[derive(Debug)]
pub(crate) struct ToxicEntry {
    pub(crate) id: u64,
    pub(crate) version: u64,
    pub(crate) name: String,
    pub(crate) stream: Stream,
    /// The `stream` value as the client sent it (the Go server echoes it unchanged).
    pub(crate) stream_label: String,
    pub(crate) toxicity: f32,
    pub(crate) kind: Kind,
}

/// The toxics of one stream in chain order, as links see them.
pub(crate) type Chain = Arc<[Arc<ToxicEntry>]>;

/// The toxics of one proxy, and the channels that publish each stream's chain to links.
#[derive(Debug)]
pub(crate) struct ToxicSet {
    next_id: u64,
    lists: [Vec<Arc<ToxicEntry>>; 2],
    chains: [watch::Sender<Chain>; 2],
}

impl ToxicSet {
    pub(crate) fn new() -> ToxicSet {
        let empty = || watch::channel::<Chain>(Arc::from(Vec::new())).0;
        ToxicSet {
            next_id: 1,
            lists: [Vec::new(), Vec::new()],
            chains: [empty(), empty()],
        }
    }

    /// A receiver of the chain of `stream`, for a new connection.
    pub(crate) fn subscribe(&self, stream: Stream) -> watch::Receiver<Chain> {
        self.chains[stream.index()].subscribe()
    }

    /// Every toxic, upstream ones first, each stream in insertion order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<ToxicEntry>> {
        self.lists.iter().flatten()
    }

    /// The toxic called `name`, whatever its stream.
    pub(crate) fn find(&self, name: &str) -> Option<&Arc<ToxicEntry>> {
        self.all().find(|t| t.name == name)
    }

    /// Appends a toxic to its stream's chain. The caller has checked that the name is free.
    pub(crate) fn add(
        &mut self,
        name: String,
        stream: Stream,
        stream_label: String,
        toxicity: f32,
        kind: Kind,
    ) -> Arc<ToxicEntry> {
        let entry = Arc::new(ToxicEntry {
            id: self.next_id,
            version: 0,
            name,
            stream,
            stream_label,
            toxicity,
            kind,
        });
        self.next_id += 1;
        self.lists[stream.index()].push(Arc::clone(&entry));
        self.publish(stream);
        entry
    }

    /// Replaces the attributes and toxicity of toxic `name`, keeping its place and identity.
    pub(crate) fn update(
        &mut self,
        name: &str,
        kind: Kind,
        toxicity: f32,
    ) -> Option<Arc<ToxicEntry>> {
        let (stream, slot) = self.locate(name)?;
        let list = &mut self.lists[stream.index()];
        let old = &list[slot];
        let entry = Arc::new(ToxicEntry {
            id: old.id,
            version: old.version + 1,
            name: old.name.clone(),
            stream: old.stream,
            stream_label: old.stream_label.clone(),
            toxicity,
            kind,
        });
        list[slot] = Arc::clone(&entry);
        self.publish(stream);
        Some(entry)
    }

    /// Removes toxic `name`; false when there is none.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let Some((stream, slot)) = self.locate(name) else {
            return false;
        };
        self.lists[stream.index()].remove(slot);
        self.publish(stream);
        true
    }

    /// Removes every toxic.
    pub(crate) fn clear(&mut self) {
        for stream in Stream::ALL {
            if !self.lists[stream.index()].is_empty() {
                self.lists[stream.index()].clear();
                self.publish(stream);
            }
        }
    }

    fn locate(&self, name: &str) -> Option<(Stream, usize)> {
        Stream::ALL.into_iter().find_map(|stream| {
            self.lists[stream.index()]
                .iter()
                .position(|t| t.name == name)
                .map(|slot| (stream, slot))
        })
    }

    fn publish(&self, stream: Stream) {
        let chain: Chain = Arc::from(self.lists[stream.index()].clone());
        // `send_replace` stores the chain even while no connection is subscribed.
        self.chains[stream.index()].send_replace(chain);
    }
}

/// A toxicity as the Go server writes a float32: integral values without a fraction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Toxicity(pub(crate) f32);

impl Serialize for Toxicity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
            // The guard above keeps the value well inside i64, so the cast is exact.
            serializer.serialize_i64(v as i64)
        } else {
            serializer.serialize_f32(v)
        }
    }
}

/// The `attributes` object of a toxic, in field order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attributes<'a>(pub(crate) &'a Kind);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.fields())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(type_name: &str, attrs: Value, expect: &str) {
        let kind = Kind::zero(type_name).expect("known type");
        let got = match kind.merge(&attrs) {
            Ok(kind) => serde_json::to_string(&Attributes(&kind)).unwrap(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expect, "{type_name} {attrs}");
    }

    #[test]
    fn attributes_default_to_zero_in_field_order() {
        check("latency", json!(null), r#"{"latency":0,"jitter":0}"#);
        check("bandwidth", json!({}), r#"{"rate":0}"#);
        check("slow_close", json!({}), r#"{"delay":0}"#);
        check("timeout", json!({}), r#"{"timeout":0}"#);
        check("reset_peer", json!({}), r#"{"timeout":0}"#);
        check(
            "slicer",
            json!({}),
            r#"{"average_size":0,"size_variation":0,"delay":0}"#,
        );
        check("limit_data", json!({}), r#"{"bytes":0}"#);
        check("noop", json!({"x": 1}), r#"{}"#);
        assert_eq!(Kind::zero("direction"), None);
        assert_eq!(Kind::zero("Latency"), None);
    }

    #[test]
    fn attributes_merge_and_reject_non_integers() {
        check(
            "latency",
            json!({"latency": 100, "unknown": "x", "jitter": null}),
            r#"{"latency":100,"jitter":0}"#,
        );
        check(
            "latency",
            json!({"latency": -5}),
            r#"{"latency":-5,"jitter":0}"#,
        );
        check(
            "latency",
            json!({"latency": 1.5}),
            "error: attribute latency must be an integer, got the number 1.5",
        );
        check(
            "latency",
            json!({"latency": "100"}),
            "error: attribute latency must be an integer, got a string",
        );
        check(
            "bandwidth",
            json!([1]),
            "error: attributes must be an object, got an array",
        );
        let base = Kind::Latency {
            latency: 100,
            jitter: 10,
        };
        assert_eq!(
            base.merge(&json!({"jitter": 20})).unwrap(),
            Kind::Latency {
                latency: 100,
                jitter: 20
            }
        );
    }

    #[test]
    fn stream_is_case_insensitive() {
        assert_eq!(Stream::parse("UpStream"), Some(Stream::Upstream));
        assert_eq!(Stream::parse("DOWNSTREAM"), Some(Stream::Downstream));
        assert_eq!(Stream::parse(""), None);
        assert_eq!(Stream::parse("up"), None);
    }

    #[test]
    fn toxicity_is_written_like_a_go_float32() {
        let write = |v: f32| serde_json::to_string(&Toxicity(v)).unwrap();
        assert_eq!(write(1.0), "1");
        assert_eq!(write(0.0), "0");
        assert_eq!(write(0.5), "0.5");
        assert_eq!(write(0.3), "0.3");
    }

    #[test]
    fn set_keeps_order_identity_and_versions() {
        let mut set = ToxicSet::new();
        let rx = set.subscribe(Stream::Downstream);
        set.add(
            "a".into(),
            Stream::Downstream,
            "downstream".into(),
            1.0,
            Kind::Noop,
        );
        set.add(
            "b".into(),
            Stream::Upstream,
            "upstream".into(),
            1.0,
            Kind::Noop,
        );
        set.add(
            "c".into(),
            Stream::Downstream,
            "downstream".into(),
            1.0,
            Kind::Noop,
        );
        let names: Vec<&str> = set.all().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        let before = set.find("a").unwrap().id;
        let updated = set.update("a", Kind::Noop, 0.5).unwrap();
        assert_eq!((updated.id, updated.version), (before, 1));
        assert_eq!(rx.borrow().len(), 2);
        assert!(set.remove("a"));
        assert!(!set.remove("a"));
        assert_eq!(rx.borrow().len(), 1);
        set.clear();
        assert_eq!(set.all().count(), 0);
        assert!(rx.borrow().is_empty());
    }
}

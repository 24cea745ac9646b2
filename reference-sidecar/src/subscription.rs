//! Subscriptions: the domain type, parsing of the app's `GET /dapr/subscribe` reply, and the
//! precedence that picks one effective subscription per (pubsub, topic).
//!
//! Declarative YAML parsing lives in `resources`; delivery lives in `delivery`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::routing::{CompileError, Rule};

/// Where a subscription came from (the metadata API's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Subscription resource in a resources path.
    Declarative,
    /// The app's `/dapr/subscribe` reply.
    Programmatic,
    /// A client's `SubscribeTopicEventsAlpha1` stream.
    Streaming,
}

impl Kind {
    /// The metadata API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Declarative => "DECLARATIVE",
            Kind::Programmatic => "PROGRAMMATIC",
            Kind::Streaming => "STREAMING",
        }
    }
}

/// Bulk-subscribe settings (accepted and reported; deliveries stay single).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulk {
    /// `bulkSubscribe.enabled`.
    pub enabled: bool,
    /// `maxMessagesCount`.
    pub max_messages_count: Option<i64>,
    /// `maxAwaitDurationMs`.
    pub max_await_duration_ms: Option<i64>,
}

/// One effective app subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Component name.
    pub pubsub: String,
    /// Topic name.
    pub topic: String,
    /// Routing rules in order; the default rule (if any) is last with an empty expression.
    pub rules: Vec<Rule>,
    /// Where failed messages go, if anywhere.
    pub dead_letter_topic: Option<String>,
    /// Subscription metadata (`rawPayload`, ...).
    pub metadata: BTreeMap<String, String>,
    /// Bulk settings, if given.
    pub bulk: Option<Bulk>,
    /// Declarative or programmatic.
    pub kind: Kind,
}

impl Subscription {
    /// Builds the rule list from v2 `rules` + `default`, or the v1 `route` when no default is set.
    pub fn build_rules(
        rules: &[(String, String)],
        default: Option<&str>,
        route: Option<&str>,
    ) -> Result<Vec<Rule>, CompileError> {
        let mut out = Vec::with_capacity(rules.len() + 1);
        for (expr, path) in rules {
            out.push(Rule::new(expr, path)?);
        }
        let default = default
            .filter(|d| !d.is_empty())
            .or(route.filter(|r| !r.is_empty()));
        if let Some(d) = default {
            out.push(Rule::new("", d)?);
        }
        Ok(out)
    }

    /// The value of subscription metadata `rawPayload` (case-sensitive key, Go bool syntax).
    pub fn raw_payload(&self) -> Result<bool, String> {
        match self.metadata.get("rawPayload") {
            None => Ok(false),
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                format!("rawPayload value must be a valid boolean: actual is '{v}'")
            }),
        }
    }
}

/// Go's `strconv.ParseBool`; the empty string counts as false as daprd's metadata helper treats it.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "" => Some(false),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A `/dapr/subscribe` reply that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProgrammaticError {
    /// Not a JSON array of objects.
    #[error("the reply is not a JSON array of subscription objects: {0}")]
    Shape(String),
    /// An entry misses pubsubname or topic, or has a bad field.
    #[error("entry {index}: {message}")]
    Entry {
        /// Position in the array.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// What parsing a reply produced: the subscriptions, and warnings for dropped entries.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Usable subscriptions, in reply order.
    pub subscriptions: Vec<Subscription>,
    /// Entries dropped (no routes) and ignored keys, one message each.
    pub warnings: Vec<String>,
}

/// Parses the body of `GET /dapr/subscribe`. Keys are matched case-insensitively. An empty body
/// means no subscriptions. A reply or entry of the wrong shape fails the whole reply, as in
/// daprd; an entry naming no pubsub or topic is kept (it receives nothing).
pub fn parse_programmatic(body: &[u8]) -> Result<Parsed, ProgrammaticError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Parsed::default());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ProgrammaticError::Shape(e.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Null => return Ok(Parsed::default()),
        other => {
            return Err(ProgrammaticError::Shape(format!(
                "got {}",
                json_kind(&other)
            )));
        }
    };
    let mut parsed = Parsed::default();
    for (index, item) in items.iter().enumerate() {
        let err = |message: String| ProgrammaticError::Entry { index, message };
        let Value::Object(obj) = item else {
            return Err(err(format!("expected an object, got {}", json_kind(item))));
        };
        let get = |key: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        };
        let string = |key: &str| -> Result<Option<String>, ProgrammaticError> {
            match get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(err(format!(
                    "{key} must be a string, got {}",
                    json_kind(other)
                ))),
            }
        };
        let pubsub = string("pubsubname")?.unwrap_or_default();
        let topic = string("topic")?.unwrap_or_default();
        let route = string("route")?;
        let dead_letter_topic = string("deadLetterTopic")?.filter(|s| !s.is_empty());
        let mut rules = Vec::new();
        let mut default = None;
        match get("routes") {
            None | Some(Value::Null) => {}
            Some(Value::Object(routes)) => {
                let rget = |key: &str| {
                    routes
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                };
                match rget("default") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => default = Some(s.clone()),
                    Some(other) => {
                        return Err(err(format!(
                            "routes.default must be a string, got {}",
                            json_kind(other)
                        )));
                    }
                }
                match rget("rules") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(list)) => {
                        for (i, r) in list.iter().enumerate() {
                            let Value::Object(r) = r else {
                                return Err(err(format!("routes.rules[{i}] must be an object")));
                            };
                            let field = |key: &str| -> Result<String, ProgrammaticError> {
                                match r
                                    .iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                                    .map(|(_, v)| v)
                                {
                                    None | Some(Value::Null) => Ok(String::new()),
                                    Some(Value::String(s)) => Ok(s.clone()),
                                    Some(_) => Err(err(format!(
                                        "routes.rules[{i}].{key} must be a string"
                                    ))),
                                }
                            };
                            rules.push((field("match")?, field("path")?));
                        }
                    }
                    Some(other) => {
                        return Err(err(format!(
                            "routes.rules must be an array, got {}",
                            json_kind(other)
                        )));
                    }
                }
            }
            Some(other) => {
                return Err(err(format!(
                    "routes must be an object, got {}",
                    json_kind(other)
                )));
            }
        }
        let mut metadata = BTreeMap::new();
        match get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            metadata.insert(k.clone(), s.clone());
                        }
                        other => {
                            return Err(err(format!(
                                "metadata.{k} must be a string, got {} (write \"{}\")",
                                json_kind(other),
                                other
                            )));
                        }
                    }
                }
            }
            Some(other) => {
                return Err(err(format!(
                    "metadata must be an object, got {}",
                    json_kind(other)
                )));
            }
        }
        let bulk = match get("bulkSubscribe") {
            None | Some(Value::Null) => None,
            Some(Value::Object(b)) => {
                let bget = |key: &str| {
                    b.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                };
                Some(Bulk {
                    enabled: bget("enabled").and_then(Value::as_bool).unwrap_or(false),
                    max_messages_count: bget("maxMessagesCount").and_then(Value::as_i64),
                    max_await_duration_ms: bget("maxAwaitDurationMs").and_then(Value::as_i64),
                })
            }
            Some(other) => {
                return Err(err(format!(
                    "bulkSubscribe must be an object, got {}",
                    json_kind(other)
                )));
            }
        };
        // An entry without a pubsub or a topic is kept, as daprd keeps it (the metadata API
        // lists it); starting it (`subscribe` in runtime.rs) says why it receives nothing.
        let rules = Subscription::build_rules(&rules, default.as_deref(), route.as_deref())
            .map_err(|e| err(e.to_string()))?;
        if rules.is_empty() {
            parsed.warnings.push(format!(
                "topic {topic} has an empty routes. removing from subscriptions list"
            ));
            continue;
        }
        parsed.subscriptions.push(Subscription {
            pubsub,
            topic,
            rules,
            dead_letter_topic,
            metadata,
            bulk,
            kind: Kind::Programmatic,
        });
    }
    Ok(parsed)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The effective subscriptions: among declaratives the first per (pubsub, topic) wins; a
/// programmatic entry replaces a declarative one; among programmatic entries the last wins.
/// Order: declaratives (survivors) in load order, then programmatic additions in reply order.
pub fn merge(declarative: Vec<Subscription>, programmatic: Vec<Subscription>) -> Vec<Subscription> {
    let mut out: Vec<Subscription> = Vec::with_capacity(declarative.len() + programmatic.len());
    for sub in declarative {
        if !out
            .iter()
            .any(|s| s.pubsub == sub.pubsub && s.topic == sub.topic)
        {
            out.push(sub);
        }
    }
    for sub in programmatic {
        match out
            .iter_mut()
            .find(|s| s.pubsub == sub.pubsub && s.topic == sub.topic)
        {
            Some(slot) => *slot = sub,
            None => out.push(sub),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(s: &Subscription) -> Vec<&str> {
        s.rules.iter().map(|r| r.path.as_str()).collect()
    }

    #[test]
    fn v1_and_v2_entries_case_insensitive_keys() {
        let body = br#"[
          {"pubsubName":"ps","Topic":"a","route":"/a","deadLetterTopic":"dlq","metadata":{"rawPayload":"true"}},
          {"pubsubname":"ps","topic":"b","route":"/ignored","routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}],"default":"/b"}},
          {"pubsubname":"ps","topic":"c","routes":{"rules":[{"match":"","path":"c"}]}}
        ]"#;
        let p = parse_programmatic(body).unwrap();
        assert_eq!(p.subscriptions.len(), 3);
        assert_eq!(paths(&p.subscriptions[0]), ["/a"]);
        assert_eq!(p.subscriptions[0].dead_letter_topic.as_deref(), Some("dlq"));
        assert!(p.subscriptions[0].raw_payload().unwrap());
        assert_eq!(paths(&p.subscriptions[1]), ["/x", "/b"]);
        assert_eq!(paths(&p.subscriptions[2]), ["/c"]);
    }

    #[test]
    fn entries_without_routes_are_dropped_with_a_warning() {
        let p = parse_programmatic(br#"[{"pubsubname":"ps","topic":"a"}]"#).unwrap();
        assert!(p.subscriptions.is_empty());
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn malformed_replies_fail_with_a_precise_message() {
        assert!(parse_programmatic(b"").unwrap().subscriptions.is_empty());
        let e = parse_programmatic(b"{not json").unwrap_err().to_string();
        assert!(e.contains("not a JSON array"), "{e}");
        let e = parse_programmatic(
            br#"[{"pubsubname":"ps","topic":"a","route":"/a","metadata":{"rawPayload":true}}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("entry 0") && e.contains("metadata.rawPayload"),
            "{e}"
        );
        // An entry without a pubsub or a topic is kept, as daprd lists it; the others stay.
        let p = parse_programmatic(
            br#"[{"topic":"a","route":"/a"},{"pubsubname":"ps","route":"/n"},{"pubsubname":"ps","topic":"b","route":"/b"}]"#,
        )
        .unwrap();
        let topics: Vec<_> = p
            .subscriptions
            .iter()
            .map(|s| (s.pubsub.as_str(), s.topic.as_str()))
            .collect();
        assert_eq!(topics, [("", "a"), ("ps", ""), ("ps", "b")]);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(parse_programmatic(br#"{"a":1}"#).is_err());
    }

    fn sub(topic: &str, path: &str, kind: Kind) -> Subscription {
        Subscription {
            pubsub: "ps".into(),
            topic: topic.into(),
            rules: Subscription::build_rules(&[], Some(path), None).unwrap(),
            dead_letter_topic: None,
            metadata: BTreeMap::new(),
            bulk: None,
            kind,
        }
    }

    #[test]
    fn precedence() {
        let decl = vec![
            sub("a", "/d1", Kind::Declarative),
            sub("a", "/d2", Kind::Declarative),
            sub("b", "/db", Kind::Declarative),
        ];
        let prog = vec![
            sub("b", "/p1", Kind::Programmatic),
            sub("b", "/p2", Kind::Programmatic),
            sub("c", "/pc", Kind::Programmatic),
        ];
        let m = merge(decl, prog);
        let got: Vec<_> = m
            .iter()
            .map(|s| (s.topic.as_str(), s.rules[0].path.as_str()))
            .collect();
        assert_eq!(got, [("a", "/d1"), ("b", "/p2"), ("c", "/pc")]);
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("T"), Some(true));
        assert_eq!(parse_go_bool("False"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
    }
}

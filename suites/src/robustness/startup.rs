//! Inputs a sidecar reads when it starts: the app's `/dapr/subscribe` reply and resource
//! files. Each case is one start of the target; it must become ready or refuse, never hang.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

/// `n` values of `strategy`, drawn with `seed` (each case is a start of the target, so cases
/// are few and are not shrunk: the report shows the whole input).
pub(crate) fn draw<S: Strategy>(strategy: S, n: usize, seed: u64) -> Result<Vec<S::Value>, String> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).map(|t| t.current()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// A `/dapr/subscribe` answer: a status and a body, from subscriptions with wrongly typed or
/// odd fields to bodies that are not JSON at all.
pub(crate) fn subscribe_replies() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let status = prop_oneof![
        8 => Just(200u16),
        1 => Just(204),
        1 => Just(404),
        1 => Just(500),
        1 => Just(302),
    ];
    let body = prop_oneof![
        6 => vec(subscription(), 0..4).prop_map(|s| Value::Array(s).to_string().into_bytes()),
        1 => (1usize..2000).prop_map(|n| {
            let s: Vec<Value> = (0..n)
                .map(|i| json!({"pubsubname": "pubsub", "topic": format!("t{i}"), "route": format!("/r{i}")}))
                .collect();
            Value::Array(s).to_string().into_bytes()
        }),
        1 => prop_oneof![
            Just(""), Just("null"), Just("[]"), Just("{}"), Just("[null]"), Just("[[]]"),
            Just("\"x\""), Just("5"), Just("[{}]"), Just("{\"subscriptions\": 5}"),
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..200),
        1 => (1usize..100_000).prop_map(|n| "[".repeat(n).into_bytes()),
    ];
    (status, body)
}

/// One subscription of a `/dapr/subscribe` answer, each field right, missing, or odd.
fn subscription() -> impl Strategy<Value = Value> {
    let field = |name: &'static str, choices: Vec<Value>| {
        prop_oneof![
            1 => Just(None),
            4 => proptest::sample::select(choices).prop_map(move |v| Some((name, v))),
        ]
    };
    let odd = |good: Value| {
        vec![
            good.clone(),
            good,
            json!(""),
            json!(5),
            json!(null),
            json!([]),
            json!({}),
            json!("x".repeat(5000)),
        ]
    };
    (
        field("pubsubname", odd(json!("pubsub"))),
        field("topic", odd(json!("orders"))),
        field(
            "route",
            [odd(json!("/orders")), vec![json!("orders"), json!("/../x"), json!("http://x/y"), json!("/%zz")]].concat(),
        ),
        field(
            "routes",
            vec![
                json!({"default": "/orders"}),
                json!({"rules": [{"match": "event.type == 'x'", "path": "/x"}], "default": "/orders"}),
                json!({"rules": [{"match": "((", "path": "/x"}]}),
                json!({"rules": [{"match": 5, "path": []}]}),
                json!({"rules": 5}),
                json!({"rules": [{"match": "", "path": ""}]}),
                json!([]),
            ],
        ),
        field("deadLetterTopic", odd(json!("dead"))),
        field(
            "metadata",
            vec![
                json!({"rawPayload": "true"}),
                json!({"rawPayload": "maybe"}),
                json!({"rawPayload": 5}),
                json!([1]),
                json!({"": ""}),
            ],
        ),
        field(
            "bulkSubscribe",
            vec![
                json!({"enabled": true, "maxMessagesCount": 10}),
                json!({"enabled": "yes", "maxMessagesCount": -1}),
                json!({"enabled": true, "maxMessagesCount": 1e12, "maxAwaitDurationMs": -5}),
                json!(5),
            ],
        ),
    )
        .prop_map(|(a, b, c, d, e, f, g)| {
            let mut o = serde_json::Map::new();
            for (k, v) in [a, b, c, d, e, f, g].into_iter().flatten() {
                o.insert(k.to_owned(), v);
            }
            Value::Object(o)
        })
}

/// The resource documents the mutations start from: a second pubsub component, a Resiliency
/// for the trial's pubsub, a declarative subscription. Their names (`extra*`) are what a
/// refusal must name, with the file.
const BASES: &[&str] = &[
    "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: extra\nspec:\n  type: pubsub.in-memory\n  version: v1\n  metadata:\n  - name: consumerID\n    value: \"x\"\n",
    "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: extra-resiliency\nspec:\n  policies:\n    retries:\n      r:\n        policy: constant\n        duration: 1s\n        maxRetries: 3\n    timeouts:\n      t: 5s\n  targets:\n    components:\n      pubsub:\n        inbound:\n          retry: r\n          timeout: t\n",
    "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: extra-subscription\nspec:\n  pubsubname: pubsub\n  topic: extra-topic\n  routes:\n    default: /extra\n  deadLetterTopic: extra-dead\n",
];

/// One edit of a YAML document's text.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    /// The value after the first `:` of a line becomes this.
    Value(Index, &'static str),
    /// The text ends at this byte.
    Truncate(Index),
    /// A line goes.
    Delete(Index),
    /// A line appears twice.
    Duplicate(Index),
    /// A line gets bytes that are not UTF-8.
    Bytes(Index),
    /// A line is indented by this many more spaces (or a tab, for 0).
    Indent(Index, u8),
    /// Another document follows, of junk.
    Junk,
}

/// A mutated resource file: which base, the edits, and the text they make.
#[derive(Debug, Clone)]
pub(crate) struct Mutation {
    /// Which of [`BASES`]: 1 is the Resiliency.
    pub base: usize,
    pub edits: Vec<Edit>,
    pub text: Vec<u8>,
}

pub(crate) fn yaml_mutations() -> impl Strategy<Value = Mutation> {
    let value = proptest::sample::select(vec![
        "[]",
        "{}",
        "5",
        "-1",
        "\"\"",
        "~",
        "1y",
        "-5s",
        "99999999999h",
        "0s",
        "1e400",
        "!!binary aGk=",
        "&a x",
        "*nowhere",
        "\"\\u0000\"",
        "'unclosed",
        "[unclosed",
        "pubsub.does-not-exist",
        "dapr.io/v9",
        "Nonsense",
        "9223372036854775808",
        "true",
    ]);
    let edit = prop_oneof![
        6 => (any::<Index>(), value).prop_map(|(i, v)| Edit::Value(i, v)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Duplicate),
        1 => any::<Index>().prop_map(Edit::Bytes),
        1 => (any::<Index>(), 0u8..5).prop_map(|(i, n)| Edit::Indent(i, n)),
        1 => Just(Edit::Junk),
    ];
    (0..BASES.len(), vec(edit, 1..4)).prop_map(|(base, edits)| {
        let mut lines: Vec<Vec<u8>> = BASES[base].lines().map(|l| l.as_bytes().to_vec()).collect();
        let mut tail: Vec<u8> = Vec::new();
        let mut cut = None;
        for e in &edits {
            let n = lines.len().max(1);
            match e {
                Edit::Value(i, v) => {
                    let line = &mut lines[i.index(n)];
                    if let Some(p) = line.iter().position(|b| *b == b':') {
                        line.truncate(p + 1);
                        line.push(b' ');
                        line.extend_from_slice(v.as_bytes());
                    }
                }
                Edit::Truncate(i) => cut = Some(*i),
                Edit::Delete(i) if lines.len() > 1 => {
                    lines.remove(i.index(n));
                }
                Edit::Duplicate(i) => {
                    let l = lines[i.index(n)].clone();
                    lines.insert(i.index(n), l);
                }
                Edit::Bytes(i) => lines[i.index(n)].extend_from_slice(b"\xff\xfe\x80"),
                Edit::Indent(i, k) => {
                    let pad: Vec<u8> = if *k == 0 {
                        b"\t".to_vec()
                    } else {
                        vec![b' '; usize::from(*k)]
                    };
                    let idx = i.index(n);
                    lines[idx].splice(0..0, pad);
                }
                Edit::Junk => tail.extend_from_slice(b"---\n: : :\n- [\n"),
                Edit::Delete(_) => {}
            }
        }
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        text.extend_from_slice(&tail);
        if let Some(i) = cut {
            text.truncate(i.index(text.len().max(1)));
        }
        Mutation { base, edits, text }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_replayed_by_their_seed_and_the_bases_parse() {
        let a = draw(yaml_mutations(), 50, 3).unwrap();
        let b = draw(yaml_mutations(), 50, 3).unwrap();
        let texts = |v: &[Mutation]| v.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&a), texts(&b));
        assert!(a.iter().any(|m| std::str::from_utf8(&m.text).is_err()));
        for base in BASES {
            assert!(base.contains("name: extra"), "{base}");
        }
        let replies = draw(subscribe_replies(), 50, 3).unwrap();
        assert!(replies.iter().any(|(s, _)| *s != 200));
    }
}

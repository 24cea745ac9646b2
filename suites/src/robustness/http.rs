//! Requests to a target's HTTP API that a sidecar must survive: generated, shrunk and written
//! back as a command a person can paste.
//!
//! A probe is one HTTP/1.1 request, written byte for byte: the route families of the API
//! (publish, bulk publish, state, invocation, metadata, health, and paths that are none of
//! these), names with escapes, slashes and raw bytes, `metadata.*` query parameters with
//! extreme values, odd headers, and bodies from random bytes to deep, wide and oversized JSON.
//! Large bodies are described, not stored ([`Body::Filler`], [`Body::Deep`], [`Body::Wide`]),
//! so that generating and shrinking them stays cheap.

use proptest::collection::vec;
use proptest::prelude::*;

use super::campaign::Probe;
use serde_json::Value;

/// What a campaign knows about its target's API.
#[derive(Debug, Clone)]
pub(crate) struct HttpContext {
    /// The pubsub component of the trial.
    pub pubsub: String,
    /// The topic the test app subscribes to (junk published there reaches the delivery path).
    pub topic: String,
    /// The app id (invocation of the test app itself).
    pub app_id: String,
    /// The request body limit the target is assumed to have (daprd's default: 4 MiB).
    pub body_limit: usize,
}

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct HttpProbe {
    /// The method token, as written.
    pub method: String,
    /// The request target (path and query), as written.
    pub target: Vec<u8>,
    /// Headers beyond `Host` and `Content-Length`.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Body,
}

/// A request body; the large kinds are made when the request is written.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` times the byte (sizes around the body limit).
    Filler { len: usize, byte: u8 },
    /// `depth` nested arrays or objects, never closed.
    Deep { depth: usize, object: bool },
    /// A JSON array of `n` zeros.
    Wide { n: usize },
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Bytes(b) => b.len(),
            Body::Filler { len, .. } => *len,
            Body::Deep { depth, object } => depth * if *object { 5 } else { 1 },
            Body::Wide { n } => 2 * n + 1,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Body::Bytes(b) => out.extend_from_slice(b),
            Body::Filler { len, byte } => out.resize(out.len() + len, *byte),
            Body::Deep { depth, object } => {
                let unit: &[u8] = if *object { b"{\"a\":" } else { b"[" };
                for _ in 0..*depth {
                    out.extend_from_slice(unit);
                }
            }
            Body::Wide { n } => {
                out.push(b'[');
                for i in 0..*n {
                    out.extend_from_slice(if i + 1 == *n { b"0" } else { b"0," });
                }
                out.push(b']');
            }
        }
    }

    /// A shell pipeline writing this body to standard output.
    fn shell(&self) -> String {
        match self {
            Body::Bytes(b) => format!("printf '{}'", printf_escape(b)),
            Body::Filler { len, byte } => {
                format!("head -c {len} /dev/zero | tr '\\0' '\\{:03o}'", byte)
            }
            Body::Deep { depth, object } => format!(
                "yes '{}' | head -n {depth} | tr -d '\\n'",
                if *object { "{\"a\":" } else { "[" }
            ),
            Body::Wide { n } if *n == 0 => "printf '[]'".to_owned(),
            Body::Wide { n } => format!(
                "{{ printf '['; yes '0,' | head -n {} | tr -d '\\n'; printf '0]'; }}",
                n - 1
            ),
        }
    }
}

impl HttpProbe {
    /// The request as written to `host` (`host:port`), with the API token if the trial has one.
    pub fn request(&self, host: &str, token: Option<&str>) -> Vec<u8> {
        let mut fixed = vec![("Host", host)];
        fixed.extend(token.map(|t| ("dapr-api-token", t)));
        let mut out = self.head(&fixed);
        self.body.write(&mut out);
        out
    }

    /// The request line and headers: `fixed` first, then the probe's own, then the body's
    /// length and the blank line.
    fn head(&self, fixed: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let fixed = fixed.iter().map(|(n, v)| (*n, v.as_bytes()));
        let own = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
        for (name, value) in fixed.chain(own) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out
    }

    /// Whether the answer has no body whatever its headers say.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

impl Probe for HttpProbe {
    /// A command a person can paste that sends exactly this request to a sidecar listening on
    /// `$DAPR_HTTP_PORT` (default 3500).
    fn command(&self) -> String {
        let head = self.head(&[("Host", "127.0.0.1"), ("Connection", "close")]);
        format!(
            "{{ printf '{}'; {}; }} | nc -q 10 127.0.0.1 \"${{DAPR_HTTP_PORT:-3500}}\"",
            printf_escape(&head),
            self.body.shell()
        )
    }

    /// One line naming the request (method, target, headers, body size).
    fn summary(&self) -> String {
        let target = String::from_utf8_lossy(&self.target);
        let target: String = target.chars().take(160).collect();
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v: String = String::from_utf8_lossy(v).chars().take(60).collect();
                format!("{n}: {v}")
            })
            .collect();
        format!(
            "{} {target} [{}] body {} bytes",
            self.method,
            headers.join("; "),
            self.body.len()
        )
    }
}

/// `bytes` as the format of a shell `printf '...'`: printable ASCII as is, everything else,
/// quotes, backslashes and `%` as octal escapes.
pub(crate) fn printf_escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\'' | b'\\' | b'%' => s.push_str(&format!("\\{b:03o}")),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\{b:03o}")),
        }
    }
    s
}

/// The generator of probes for one target.
pub(crate) fn probes(ctx: &HttpContext) -> BoxedStrategy<HttpProbe> {
    let topic = format!("/{}", ctx.topic).into_bytes();
    (route(ctx), headers(ctx), body(ctx))
        .prop_map(move |((method, target), headers, body)| HttpProbe {
            target: away_from_the_app(target, &topic, body.len()),
            method,
            headers,
            body,
        })
        .boxed()
}

/// A method and request target, by route family.
fn route(ctx: &HttpContext) -> BoxedStrategy<(String, Vec<u8>)> {
    let pubsub = name(&ctx.pubsub);
    let topic = name(&ctx.topic);
    let app = name(&ctx.app_id);
    let store = name("statestore");
    let publish = (pubsub.clone(), topic.clone(), query()).prop_map(|(p, t, q)| {
        (
            "POST".to_owned(),
            join(&[b"/v1.0/publish/", &p, b"/", &t, &q]),
        )
    });
    let bulk = (pubsub, topic, query()).prop_map(|(p, t, q)| {
        (
            "POST".to_owned(),
            join(&[b"/v1.0-alpha1/publish/bulk/", &p, b"/", &t, &q]),
        )
    });
    let state = (
        prop_oneof![Just("POST"), Just("GET"), Just("DELETE")],
        store,
        prop_oneof![Just(Vec::new()), segment().prop_map(|k| join(&[b"/", &k]))],
        prop_oneof![
            Just(&b""[..]),
            Just(&b"/bulk"[..]),
            Just(&b"/transaction"[..])
        ],
        query(),
    )
        .prop_map(|(m, s, key, suffix, q)| {
            (m.to_owned(), join(&[b"/v1.0/state/", &s, &key, suffix, &q]))
        });
    let invoke = (method(), app, vec(segment(), 0..4), query()).prop_map(|(m, a, path, q)| {
        let path = path.join(&b"/"[..]);
        (m, join(&[b"/v1.0/invoke/", &a, b"/method/", &path, &q]))
    });
    let metadata = prop_oneof![
        Just(("GET".to_owned(), b"/v1.0/metadata".to_vec())),
        segment().prop_map(|k| ("PUT".to_owned(), join(&[b"/v1.0/metadata/", &k]))),
    ];
    let health = (
        method(),
        prop_oneof![
            Just(b"/v1.0/healthz".to_vec()),
            Just(b"/v1.0/healthz/outbound".to_vec())
        ],
    );
    let elsewhere = (method(), vec(segment(), 0..5), query()).prop_map(|(m, path, q)| {
        let path = path.join(&b"/"[..]);
        (m, join(&[b"/", &path, &q]))
    });
    prop_oneof![
        6 => publish,
        3 => bulk,
        2 => state,
        2 => invoke,
        1 => metadata,
        1 => health,
        1 => elsewhere,
    ]
    .boxed()
}

/// The largest body published to the subscribed topic. The test app keeps every delivery it
/// records, so larger bodies go to a topic nobody subscribes (`<topic>-large`): they still
/// cross the publish path, and the app's memory stays that of a few thousand small deliveries.
pub(crate) const DELIVERED_BODY_MAX: usize = 16 * 1024;

/// `target` with its first `/<topic>` renamed `/<topic>-large` when the body is too large to
/// be delivered to the test app.
fn away_from_the_app(target: Vec<u8>, topic: &[u8], body_len: usize) -> Vec<u8> {
    if body_len <= DELIVERED_BODY_MAX {
        return target;
    }
    match target.windows(topic.len()).position(|w| w == topic) {
        Some(i) => [
            &target[..i + topic.len()],
            b"-large",
            &target[i + topic.len()..],
        ]
        .concat(),
        None => target,
    }
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("POST".to_owned()),
        2 => Just("GET".to_owned()),
        1 => Just("PUT".to_owned()),
        1 => Just("DELETE".to_owned()),
        1 => Just("HEAD".to_owned()),
        1 => Just("OPTIONS".to_owned()),
        1 => Just("PATCH".to_owned()),
        1 => "[A-Z]{1,12}",
    ]
}

/// A name in a path: the valid one, or something odd.
fn name(valid: &str) -> impl Strategy<Value = Vec<u8>> + Clone + use<> {
    let valid = valid.as_bytes().to_vec();
    prop_oneof![
        3 => Just(valid),
        2 => segment(),
    ]
}

/// One path segment: letters, escapes, dots, slashes, raw bytes (never CR or LF, which would
/// end the request line), or very long.
fn segment() -> BoxedStrategy<Vec<u8>> {
    let raw = vec(any::<u8>(), 1..24).prop_map(|mut b| {
        for x in &mut b {
            if *x == b'\r' || *x == b'\n' {
                *x = b'x';
            }
        }
        b
    });
    prop_oneof![
        4 => "[a-z0-9._-]{1,16}".prop_map(String::into_bytes),
        2 => prop_oneof![
            Just("%2F"), Just("%2f"), Just(".."), Just("."), Just("%00"), Just("%zz"),
            Just("%"), Just("a%2Fb"), Just("a/b"), Just("%C3%BC"), Just("%FF%FE"),
            Just("ünï"), Just("日本"), Just("*"), Just("orders*"), Just("$"), Just("~"),
            Just("%20"), Just(";x=1"), Just("@"), Just(":"), Just("#frag"), Just("%252F"),
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => raw,
        1 => (1usize..70_000).prop_map(|n| vec![b'a'; n]),
    ]
    .boxed()
}

/// A query: `metadata.*` parameters (and others) with extreme values.
fn query() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("metadata.ttlInSeconds"),
        Just("metadata.ttl"),
        Just("metadata.rawPayload"),
        Just("metadata.partitionKey"),
        Just("metadata.contentType"),
        Just("metadata.cloudevent.id"),
        Just("metadata.cloudevent.source"),
        Just("metadata.cloudevent.type"),
        Just("metadata.cloudevent.time"),
        Just("metadata.cloudevent.datacontenttype"),
        Just("metadata.cloudevent.subject"),
        Just("metadata.traceparent"),
        Just("metadata.priority"),
        Just("metadata.queueName"),
        Just("metadata.maxLen"),
        Just("metadata."),
        Just("metadata"),
        Just("consistency"),
        Just("concurrency"),
        Just(""),
    ]
    .prop_map(|s| s.as_bytes().to_vec());
    let key = prop_oneof![4 => key, 1 => segment()];
    let pair = (key, value()).prop_map(|(k, v)| join(&[&k, b"=", &v]));
    prop_oneof![
        2 => Just(Vec::new()),
        3 => vec(pair, 1..5).prop_map(|pairs| join(&[b"?", &pairs.join(&b"&"[..])])),
    ]
}

/// A parameter or header value: numbers at and beyond every limit, booleans spelled oddly,
/// escapes, long strings.
fn value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => prop_oneof![
            Just(""), Just("-1"), Just("0"), Just("1"), Just("30"), Just("2147483648"),
            Just("9223372036854775807"), Just("9223372036854775808"),
            Just("-9223372036854775808"), Just("400000000000"), Just("1e400"), Just("-0"),
            Just("NaN"), Just("Infinity"), Just("0x10"), Just("1.5"), Just("true"),
            Just("false"), Just("TRUE"), Just("yes"), Just("%zz"), Just("%00"), Just("%FF"),
            Just("null"), Just("9999-12-31T23:59:59Z"), Just("0000-00-00T00:00:00Z"),
            Just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            Just("ff-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff"),
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        1 => any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        2 => segment(),
    ]
    .boxed()
}

/// Headers: content types, trace context, tokens, app ids, `If-Match`, `Expect`, and names
/// made up.
fn headers(ctx: &HttpContext) -> impl Strategy<Value = Vec<(String, Vec<u8>)>> + use<> {
    let content_type = prop_oneof![
        Just("application/json"),
        Just("application/cloudevents+json"),
        Just("application/cloudevents-batch+json"),
        Just("text/plain"),
        Just("application/octet-stream"),
        Just("application/xml"),
        Just(""),
        Just("application/json; charset=utf-16"),
        Just("multipart/form-data; boundary="),
        Just("application/cloudevents+json; charset=latin1"),
        Just("*/*"),
    ]
    .prop_map(|s| s.as_bytes().to_vec());
    let content_type = prop_oneof![4 => content_type, 1 => header_value()];
    let app = ctx.app_id.clone().into_bytes();
    let header = prop_oneof![
        5 => content_type.prop_map(|v| ("Content-Type".to_owned(), v)),
        2 => prop_oneof![value(), header_value()].prop_map(|v| ("traceparent".to_owned(), v)),
        1 => header_value().prop_map(|v| ("tracestate".to_owned(), v)),
        1 => header_value().prop_map(|v| ("dapr-api-token".to_owned(), v)),
        1 => prop_oneof![Just(app), header_value()].prop_map(|v| ("dapr-app-id".to_owned(), v)),
        1 => prop_oneof![value(), header_value()].prop_map(|v| ("If-Match".to_owned(), v)),
        1 => Just(("Expect".to_owned(), b"100-continue".to_vec())),
        1 => (
            "[A-Za-z][A-Za-z0-9-]{0,20}",
            prop_oneof![value(), header_value()]
        ),
    ];
    vec(header, 0..4)
}

/// A header value: any bytes but CR, LF and NUL (which would end or break the head).
fn header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..40).prop_map(|mut b| {
            for x in &mut b {
                if matches!(*x, b'\r' | b'\n' | 0) {
                    *x = b' ';
                }
            }
            b
        }),
        1 => (1usize..16_000).prop_map(|n| vec![b'v'; n]),
    ]
    .boxed()
}

/// A body: empty, random bytes, odd JSON, CloudEvents with odd attributes, bulk entries,
/// invalid UTF-8 in strings, deep and wide JSON, and sizes around the limit.
fn body(ctx: &HttpContext) -> impl Strategy<Value = Body> + use<> {
    let limit = ctx.body_limit;
    let around = prop_oneof![
        Just(limit - 1),
        Just(limit),
        Just(limit + 1),
        (limit - 64..limit + 64),
        Just(2 * limit),
    ];
    prop_oneof![
        30 => Just(Body::Bytes(Vec::new())),
        60 => vec(any::<u8>(), 0..256).prop_map(Body::Bytes),
        20 => prop_oneof![
            Just("null"), Just("5"), Just("\"x\""), Just("[]"), Just("true"), Just("{}"),
        ]
        .prop_map(|s| Body::Bytes(s.as_bytes().to_vec())),
        80 => json().prop_map(|v| Body::Bytes(v.to_string().into_bytes())),
        80 => cloudevent().prop_map(|v| Body::Bytes(v.to_string().into_bytes())),
        40 => bulk_body().prop_map(|v| Body::Bytes(v.to_string().into_bytes())),
        20 => vec(any::<u8>(), 0..32).prop_map(|junk| {
            // A JSON string holding bytes that are not UTF-8.
            let mut b = b"{\"data\":\"".to_vec();
            b.extend(junk.into_iter().map(|x| if x == b'"' || x == b'\\' { 0xff } else { x | 0x80 }));
            b.extend_from_slice(b"\"}");
            Body::Bytes(b)
        }),
        4 => (1usize..200_000, any::<bool>()).prop_map(|(depth, object)| Body::Deep { depth, object }),
        2 => (1usize..400_000).prop_map(|n| Body::Wide { n }),
        1 => (around, b'a'..=b'z').prop_map(|(len, byte)| Body::Filler { len, byte }),
    ]
}

/// A JSON value with the values a parser meets least: huge and tiny numbers, escapes, lone
/// surrogates written as escapes, empty keys.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
        Just(Value::String("\u{0}\u{ffff}\u{10ffff}".to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop_oneof![
            Just("id"), Just("source"), Just("type"), Just("specversion"),
            Just("datacontenttype"), Just("data"), Just("data_base64"), Just("subject"),
            Just("time"), Just("traceparent"), Just("tracestate"), Just("topic"),
            Just("pubsubname"), Just("expiration"), Just("traceid"), Just(""),
        ]
        .prop_map(str::to_owned),
        1 => "[a-z]{1,8}",
    ]
}

/// A CloudEvent whose attributes may be missing, of the wrong type or out of range.
fn cloudevent() -> impl Strategy<Value = Value> {
    let attr = |name: &'static str, good: &'static str| {
        prop_oneof![
            2 => Just(Some(Value::String(good.to_owned()))),
            1 => Just(None),
            1 => json().prop_map(Some),
        ]
        .prop_map(move |v| v.map(|v| (name.to_owned(), v)))
    };
    (
        attr("specversion", "1.0"),
        attr("id", "e-1"),
        attr("source", "tck"),
        attr("type", "com.example"),
        attr("datacontenttype", "application/json"),
        prop_oneof![
            Just(None),
            json().prop_map(|v| Some(("data".to_owned(), v))),
            prop_oneof![Just("aGk="), Just("!!"), Just(""), Just("=")]
                .prop_map(|s| Some(("data_base64".to_owned(), Value::String(s.to_owned())))),
        ],
        vec((key(), json()), 0..3),
    )
        .prop_map(|(a, b, c, d, e, data, extra)| {
            let mut o = serde_json::Map::new();
            for (k, v) in [a, b, c, d, e, data].into_iter().flatten().chain(extra) {
                o.insert(k, v);
            }
            Value::Object(o)
        })
}

/// A bulk publish body: entries with missing, duplicate and wrongly typed fields.
fn bulk_body() -> impl Strategy<Value = Value> {
    let entry = (
        prop_oneof![
            Just(Some(Value::from("1"))),
            Just(Some(Value::from("2"))),
            Just(None),
            Just(Some(Value::from(""))),
            json().prop_map(Some)
        ],
        prop_oneof![json(), cloudevent()],
        prop_oneof![
            Just(Value::from("application/json")),
            Just(Value::from("application/cloudevents+json")),
            Just(Value::from("text/plain")),
            json()
        ],
        prop_oneof![Just(None), json().prop_map(Some)],
    )
        .prop_map(|(id, event, ct, md)| {
            let mut o = serde_json::Map::new();
            if let Some(id) = id {
                o.insert("entryId".into(), id);
            }
            o.insert("event".into(), event);
            o.insert("contentType".into(), ct);
            if let Some(md) = md {
                o.insert("metadata".into(), md);
            }
            Value::Object(o)
        });
    prop_oneof![
        4 => vec(entry, 0..8).prop_map(Value::Array),
        1 => (1usize..600).prop_map(|n| {
            Value::Array((0..n).map(|i| serde_json::json!({"entryId": i.to_string(), "event": i, "contentType": "application/json"})).collect())
        }),
        1 => json(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{TestRng, TestRunner};

    fn ctx() -> HttpContext {
        HttpContext {
            pubsub: "pubsub".into(),
            topic: "orders".into(),
            app_id: "app".into(),
            body_limit: 4 << 20,
        }
    }

    #[test]
    fn requests_are_framed_by_their_length() {
        let mut runner = TestRunner::new_with_rng(
            proptest::test_runner::Config::default(),
            TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[7; 32]),
        );
        let s = probes(&ctx());
        for _ in 0..500 {
            let p = s.new_tree(&mut runner).unwrap().current();
            let req = p.request("127.0.0.1:1", None);
            let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert_eq!(req.len() - head_end, p.body.len(), "{}", p.summary());
            let head = &req[..head_end - 4];
            // Lines of the head are separated only by CRLF: no bare CR or LF inside one.
            for line in head.split(|b| *b == b'\n') {
                assert!(!line[..line.len().saturating_sub(1)].contains(&b'\r'));
            }
        }
    }

    #[test]
    fn printf_escape_round_trips_through_the_shell() {
        let bytes = b"a'b\\c%d\x00\xff\n";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '{}'", printf_escape(bytes)))
            .output()
            .unwrap();
        assert_eq!(out.stdout, bytes);
    }

    #[test]
    fn large_bodies_are_written_as_described() {
        for (body, shell) in [
            (Body::Filler { len: 5, byte: b'q' }, "qqqqq"),
            (
                Body::Deep {
                    depth: 3,
                    object: false,
                },
                "[[[",
            ),
            (Body::Wide { n: 3 }, "[0,0,0]"),
        ] {
            let mut out = Vec::new();
            body.write(&mut out);
            assert_eq!(out, shell.as_bytes());
            assert_eq!(body.len(), out.len());
            let sh = std::process::Command::new("bash")
                .arg("-c")
                .arg(body.shell())
                .output()
                .unwrap();
            assert_eq!(sh.stdout, shell.as_bytes(), "{}", body.shell());
        }
    }
}

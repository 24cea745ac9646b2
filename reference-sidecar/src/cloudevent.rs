//! CloudEvents 1.0 envelopes as daprd builds and reads them.
//!
//! Publish side: the content-type rules (§1.4 of the spec notes), attribute overrides, the
//! passthrough of a publisher's own CloudEvent, TTL → `expiration`. Delivery side: the few
//! attributes the pipeline needs (id, expiration, trace), read without decoding `data`, and the
//! synthetic CloudEvent of raw-payload subscriptions. The envelope is written by hand in Go's
//! sorted key order; a JSON `data` is embedded verbatim, so numbers survive exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// Attribute overrides from `metadata.cloudevent.*` (keys matched case-insensitively).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `cloudevent.id`.
    pub id: Option<String>,
    /// `cloudevent.source`.
    pub source: Option<String>,
    /// `cloudevent.type`.
    pub type_: Option<String>,
    /// `cloudevent.subject`.
    pub subject: Option<String>,
    /// `cloudevent.traceid`.
    pub traceid: Option<String>,
    /// `cloudevent.traceparent` (wins over traceid for both fields).
    pub traceparent: Option<String>,
    /// `cloudevent.tracestate`.
    pub tracestate: Option<String>,
}

impl Overrides {
    /// Picks the overrides out of publish metadata; an empty value counts as unset.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Overrides {
        let mut o = Overrides::default();
        for (k, v) in metadata {
            if v.is_empty() {
                continue;
            }
            let Some(attr) = k
                .get(..11)
                .filter(|p| p.eq_ignore_ascii_case("cloudevent."))
                .map(|_| &k[11..])
            else {
                continue;
            };
            let slot = match attr.to_ascii_lowercase().as_str() {
                "id" => &mut o.id,
                "source" => &mut o.source,
                "type" => &mut o.type_,
                "subject" => &mut o.subject,
                "traceid" => &mut o.traceid,
                "traceparent" => &mut o.traceparent,
                "tracestate" => &mut o.tracestate,
                _ => continue,
            };
            *slot = Some(v.clone());
        }
        o
    }
}

/// What the envelope needs besides the body.
#[derive(Debug, Clone)]
pub struct PublishContext<'a> {
    /// Component name → `pubsubname`.
    pub pubsub: &'a str,
    /// Topic → `topic`.
    pub topic: &'a str,
    /// The publisher's app-id → default `source` (`Dapr` when empty).
    pub app_id: &'a str,
    /// The request's W3C traceparent, or "".
    pub traceparent: &'a str,
    /// The request's W3C tracestate, or "".
    pub tracestate: &'a str,
    /// TTL to turn into `expiration`, when the component has no native TTL.
    pub ttl: Option<Duration>,
    /// `metadata.cloudevent.*`.
    pub overrides: Overrides,
    /// Publish time.
    pub now: OffsetDateTime,
}

/// A body that cannot be turned into a CloudEvent.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// `application/cloudevents+json` with a body that is not a JSON object.
    #[error("cannot create cloudevent: the body is not a JSON object")]
    NotAnObject(#[source] Option<serde_json::Error>),
}

/// How the publish body lands in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// `data` is the JSON body, embedded verbatim.
    Json,
    /// `data` is the body as a string.
    Text,
    /// `data_base64` is the body.
    Base64,
    /// The body is the publisher's own CloudEvent.
    Passthrough,
}

/// The data mode for a publish Content-Type (absent = `text/plain`). Only the media type before
/// `;` counts, case-insensitively.
pub fn data_mode(content_type: Option<&str>) -> DataMode {
    let Some(ct) = content_type else {
        return DataMode::Text;
    };
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        DataMode::Json
    } else if media.eq_ignore_ascii_case("application/octet-stream")
        || media.eq_ignore_ascii_case("application/cloudevents+protobuf")
    {
        DataMode::Base64
    } else if media.eq_ignore_ascii_case("application/cloudevents+json") {
        DataMode::Passthrough
    } else {
        DataMode::Text
    }
}

/// About how long an envelope of `len` body bytes gets (the attributes take a few hundred): the
/// initial capacity of its buffer, which saves reallocations and never changes the bytes.
fn capacity_hint(mode: DataMode, len: usize) -> usize {
    let data = match mode {
        DataMode::Base64 => len.div_ceil(3).saturating_mul(4),
        _ => len,
    };
    data.saturating_add(420)
}

/// Builds the envelope daprd would put on the broker for this publish.
pub fn envelope(
    ctx: &PublishContext<'_>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mode = data_mode(content_type);
    if mode == DataMode::Passthrough {
        return passthrough(ctx, body);
    }
    let mut out = Vec::with_capacity(capacity_hint(mode, body.len()));
    out.push(b'{');
    match mode {
        DataMode::Json if !body.is_empty() && serde_json::from_slice::<&RawValue>(body).is_ok() => {
            out.extend_from_slice(b"\"data\":");
            out.extend_from_slice(trim_ascii(body));
        }
        DataMode::Base64 => {
            out.extend_from_slice(b"\"data_base64\":\"");
            push_base64(&mut out, body);
            out.push(b'"');
        }
        _ => {
            out.extend_from_slice(b"\"data\":");
            push_str(&mut out, &String::from_utf8_lossy(body));
        }
    }
    let o = &ctx.overrides;
    field(
        &mut out,
        "datacontenttype",
        content_type.unwrap_or("text/plain"),
    );
    if let Some(at) = expiration(ctx) {
        field(&mut out, "expiration", &at);
    }
    let mut uuid_buf = uuid::Uuid::encode_buffer();
    let id = match &o.id {
        Some(v) => v.as_str(),
        None => uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut uuid_buf),
    };
    field(&mut out, "id", id);
    field(&mut out, "pubsubname", ctx.pubsub);
    let default_source = if ctx.app_id.is_empty() {
        "Dapr"
    } else {
        ctx.app_id
    };
    field(
        &mut out,
        "source",
        o.source.as_deref().unwrap_or(default_source),
    );
    field(&mut out, "specversion", "1.0");
    if let Some(subject) = &o.subject {
        field(&mut out, "subject", subject);
    }
    out.extend_from_slice(b",\"time\":\"");
    push_rfc3339_seconds(&mut out, ctx.now);
    out.push(b'"');
    field(&mut out, "topic", ctx.topic);
    let trace = o
        .traceparent
        .as_deref()
        .or(o.traceid.as_deref())
        .unwrap_or(ctx.traceparent);
    field(&mut out, "traceid", trace);
    field(&mut out, "traceparent", trace);
    field(
        &mut out,
        "tracestate",
        o.tracestate.as_deref().unwrap_or(ctx.tracestate),
    );
    field(
        &mut out,
        "type",
        o.type_.as_deref().unwrap_or("com.dapr.event.sent"),
    );
    out.push(b'}');
    Ok(out)
}

fn passthrough(ctx: &PublishContext<'_>, body: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let trimmed = trim_ascii(body);
    if trimmed.first() != Some(&b'{') {
        return Err(EnvelopeError::NotAnObject(None));
    }
    let mut map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(trimmed).map_err(|e| EnvelopeError::NotAnObject(Some(e)))?;
    let raw_str = |s: &str| -> Box<RawValue> {
        // A JSON string literal is always valid raw JSON.
        RawValue::from_string(serde_json::Value::String(s.to_owned()).to_string())
            .unwrap_or_else(|_| RawValue::NULL.to_owned())
    };
    let is_absent =
        |m: &BTreeMap<String, Box<RawValue>>, k: &str| m.get(k).is_none_or(|v| v.get() == "null");
    map.insert("topic".into(), raw_str(ctx.topic));
    map.insert("pubsubname".into(), raw_str(ctx.pubsub));
    if !map.contains_key("time") {
        map.insert("time".into(), raw_str(&rfc3339_seconds(ctx.now)));
    }
    if !map.contains_key("traceid") {
        map.insert("traceid".into(), raw_str(ctx.traceparent));
        map.insert("traceparent".into(), raw_str(ctx.traceparent));
    }
    if !map.contains_key("tracestate") {
        map.insert("tracestate".into(), raw_str(ctx.tracestate));
    }
    for (k, default) in [
        ("source", "Dapr"),
        ("type", "com.dapr.event.sent"),
        ("specversion", "1.0"),
    ] {
        if is_absent(&map, k) {
            map.insert(k.into(), raw_str(default));
        }
    }
    if let Some(at) = expiration(ctx) {
        map.insert("expiration".into(), raw_str(&at));
    }
    serde_json::to_vec(&map).map_err(|e| EnvelopeError::NotAnObject(Some(e)))
}

/// `now + ttl` in RFC 3339; none when the sum leaves the representable range (a TTL is at most
/// about 292 years, so only a clock near year 9999 gets there).
fn expiration(ctx: &PublishContext<'_>) -> Option<String> {
    let ttl = time::Duration::try_from(ctx.ttl?).ok()?;
    ctx.now.checked_add(ttl).map(rfc3339_seconds)
}

fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    push_str(out, value);
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// RFC 3339 with second precision in UTC (`2026-01-02T10:11:12Z`), as daprd writes `time`.
pub fn rfc3339_seconds(t: OffsetDateTime) -> String {
    let mut out = Vec::with_capacity(20);
    push_rfc3339_seconds(&mut out, t);
    // Only ASCII digits, `-`, `T`, `:` and `Z` were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`rfc3339_seconds`] without a `format!` (it is on every publish). Years outside
/// 0..=9999 are written as `format!("{:04}")` would.
fn push_rfc3339_seconds(out: &mut Vec<u8>, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    if (0..=9999).contains(&year) {
        push_digits(out, year as u32, 4);
    } else {
        out.extend_from_slice(format!("{year:04}").as_bytes());
    }
    for (sep, v) in [
        (b'-', u8::from(t.month())),
        (b'-', t.day()),
        (b'T', t.hour()),
        (b':', t.minute()),
        (b':', t.second()),
    ] {
        out.push(sep);
        push_digits(out, u32::from(v), 2);
    }
    out.push(b'Z');
}

/// `v` in decimal, zero-padded to `width` digits (`v` must fit).
fn push_digits(out: &mut Vec<u8>, v: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(b'0' + (v / 10u32.pow(i) % 10) as u8);
    }
}

/// Appends `bytes` in standard base64 (with padding), with no intermediate `String`.
fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

/// The attributes delivery needs, read without decoding `data`.
#[derive(Debug, Default, Deserialize)]
pub struct Head {
    /// `id`, when it is a string.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    /// `expiration`, when present.
    #[serde(default)]
    pub expiration: Option<serde_json::Value>,
    /// `traceparent`.
    #[serde(default)]
    pub traceparent: Option<serde_json::Value>,
    /// `traceid`.
    #[serde(default)]
    pub traceid: Option<serde_json::Value>,
}

impl Head {
    /// Reads the head of a CloudEvent; the bytes must be a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<Head, String> {
        if trim_ascii(bytes).first() != Some(&b'{') {
            return Err("not a JSON object".into());
        }
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The id as a string, or "" (a CloudEvent may travel without one).
    pub fn id(&self) -> &str {
        self.id.as_ref().and_then(|v| v.as_str()).unwrap_or("")
    }

    /// Whether `expiration` parses as RFC 3339 and lies before `now`. An unparsable value means
    /// "not expired", as in daprd.
    pub fn expired_at(&self, now: OffsetDateTime) -> Option<String> {
        let s = self.expiration.as_ref()?.as_str()?;
        let at = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        (at < now).then(|| s.to_owned())
    }

    /// The traceparent to send to the app: CE `traceparent`, else `traceid` (non-strings ignored).
    pub fn trace(&self) -> Option<&str> {
        fn pick(v: &Option<serde_json::Value>) -> Option<&str> {
            v.as_ref()
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        }
        pick(&self.traceparent).or_else(|| pick(&self.traceid))
    }
}

/// The synthetic CloudEvent a raw-payload subscription delivers: a fresh id on every delivery,
/// `data_base64` = the exact broker bytes.
pub fn synthetic_raw(
    pubsub: &str,
    topic: &str,
    bytes: &[u8],
    trace: (&str, &str, &str),
) -> Vec<u8> {
    let mut out = Vec::with_capacity((bytes.len() / 3).saturating_mul(4).saturating_add(364));
    out.extend_from_slice(b"{\"data_base64\":\"");
    push_base64(&mut out, bytes);
    out.push(b'"');
    field(&mut out, "datacontenttype", "application/octet-stream");
    field(&mut out, "id", &uuid::Uuid::new_v4().to_string());
    field(&mut out, "pubsubname", pubsub);
    field(&mut out, "source", "Dapr");
    field(&mut out, "specversion", "1.0");
    field(&mut out, "topic", topic);
    field(&mut out, "traceid", trace.0);
    field(&mut out, "traceparent", trace.1);
    field(&mut out, "tracestate", trace.2);
    field(&mut out, "type", "com.dapr.event.sent");
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ctx() -> PublishContext<'static> {
        PublishContext {
            pubsub: "pubsub",
            topic: "orders",
            app_id: "checkout",
            traceparent: "",
            tracestate: "",
            ttl: None,
            overrides: Overrides::default(),
            now: OffsetDateTime::from_unix_timestamp(1_767_348_672).unwrap(),
        }
    }

    fn check(ct: Option<&str>, body: &[u8]) -> Value {
        let bytes = envelope(&ctx(), ct, body).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn json_body_is_embedded() {
        let ce = check(
            Some("application/json"),
            br#"{"orderId":1,"big":123456789012345678901}"#,
        );
        assert_eq!(ce["data"]["orderId"], 1);
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["type"], "com.dapr.event.sent");
        assert_eq!(ce["source"], "checkout");
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["pubsubname"], "pubsub");
        assert_eq!(ce["time"], "2026-01-02T10:11:12Z");
        assert_eq!(ce["traceid"], "");
        assert!(uuid::Uuid::parse_str(ce["id"].as_str().unwrap()).is_ok());
        let raw = envelope(
            &ctx(),
            Some("application/json"),
            br#"{"big":123456789012345678901}"#,
        )
        .unwrap();
        assert!(
            String::from_utf8(raw)
                .unwrap()
                .contains("123456789012345678901"),
            "numbers survive exactly"
        );
    }

    #[test]
    fn content_type_rules() {
        let ce = check(None, br#"{"a":1}"#);
        assert_eq!(ce["data"], r#"{"a":1}"#);
        assert_eq!(ce["datacontenttype"], "text/plain");
        let ce = check(Some("application/json"), b"not json");
        assert_eq!(ce["data"], "not json");
        let ce = check(Some("application/json; charset=utf-8"), b"[1,2]");
        assert_eq!(ce["data"], json!([1, 2]));
        assert_eq!(ce["datacontenttype"], "application/json; charset=utf-8");
        let ce = check(Some("application/octet-stream"), &[0, 1, 2, 255]);
        assert_eq!(ce["data_base64"], "AAEC/w==");
        assert!(ce.get("data").is_none());
        let ce = check(Some("application/xml"), b"<a/>");
        assert_eq!(ce["data"], "<a/>");
        let ce = check(Some("application/json"), b"");
        assert_eq!(ce["data"], "");
        let ce = check(Some("text/json"), b"{}");
        assert_eq!(ce["data"], "{}");
    }

    #[test]
    fn overrides_and_ttl() {
        let mut c = ctx();
        let md: BTreeMap<String, String> = [
            ("cloudevent.id", "my-id"),
            ("CloudEvent.Type", "my.type"),
            ("cloudevent.source", ""),
            ("cloudevent.traceparent", "00-abc-def-01"),
            ("cloudevent.topic", "ignored"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        c.overrides = Overrides::from_metadata(&md);
        c.ttl = Some(Duration::from_secs(30));
        let ce: Value = serde_json::from_slice(&envelope(&c, None, b"x").unwrap()).unwrap();
        assert_eq!(ce["id"], "my-id");
        assert_eq!(ce["type"], "my.type");
        assert_eq!(ce["source"], "checkout", "empty override is unset");
        assert_eq!(ce["traceid"], "00-abc-def-01");
        assert_eq!(ce["traceparent"], "00-abc-def-01");
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["expiration"], "2026-01-02T10:11:42Z");
    }

    #[test]
    fn passthrough_keeps_id_and_extensions_overwrites_topic() {
        let body = br#"{"id":"abc","source":"me","specversion":"1.0","type":"t","topic":"wrong","myext":"x","data":{"a":1}}"#;
        let ce = check(Some("application/cloudevents+json"), body);
        assert_eq!(ce["id"], "abc");
        assert_eq!(ce["myext"], "x");
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["pubsubname"], "pubsub");
        assert_eq!(ce["data"]["a"], 1);
        let ce = check(Some("application/cloudevents+json"), br#"{"data":1}"#);
        assert_eq!(ce["source"], "Dapr");
        assert_eq!(ce["type"], "com.dapr.event.sent");
        assert_eq!(ce["specversion"], "1.0");
        assert!(ce.get("id").is_none(), "id is not defaulted");
        for bad in [&b"[1]"[..], b"nope", b"", b"\"s\"", b"{broken"] {
            assert!(envelope(&ctx(), Some("application/cloudevents+json"), bad).is_err());
        }
    }

    #[test]
    fn head_and_expiry() {
        let h = Head::parse(br#"{"id":"x","expiration":"2020-01-01T00:00:00Z","traceid":"t","data":{"huge":[1,2,3]}}"#).unwrap();
        assert_eq!(h.id(), "x");
        assert!(h.expired_at(OffsetDateTime::now_utc()).is_some());
        assert_eq!(h.trace(), Some("t"));
        let h = Head::parse(br#"{"expiration":"garbage","traceparent":5}"#).unwrap();
        assert!(h.expired_at(OffsetDateTime::now_utc()).is_none());
        assert_eq!(h.trace(), None);
        assert!(Head::parse(b"[1,2]").is_err());
        assert!(Head::parse(b"xx").is_err());
    }

    #[test]
    fn time_is_written_like_format() {
        for secs in [
            0,
            1_767_348_672,
            253_402_300_799,
            -62_135_596_800,
            951_782_400,
        ] {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let expect = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            assert_eq!(rfc3339_seconds(t), expect);
        }
        let mut out = Vec::new();
        push_base64(&mut out, &[0, 1, 2, 255, 7]);
        assert_eq!(out, b"AAEC/wc=");
    }

    #[test]
    fn synthetic_raw_event() {
        let ce: Value =
            serde_json::from_slice(&synthetic_raw("ps", "t", b"\x00hi", ("", "", ""))).unwrap();
        assert_eq!(ce["data_base64"], "AGhp");
        assert_eq!(ce["datacontenttype"], "application/octet-stream");
        assert_eq!(ce["source"], "Dapr");
    }
}

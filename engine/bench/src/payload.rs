//! Message payloads: a small JSON object that carries the phase and sequence number of a
//! message, padded with seeded random letters to the requested size.
//!
//! ```text
//! {"tckb":"0003-0000000042","pad":"Xq3k..."}
//! ```
//!
//! The marker has a fixed width, so the receiver finds it with one substring search and no
//! JSON parsing, wherever the sidecar put the data (a CloudEvent's `data`, a stream field).

/// The bytes before the marker.
const PREFIX: &[u8] = b"{\"tckb\":\"";
/// Phase (4 digits), `-`, sequence number (10 digits).
const MARKER_LEN: usize = 15;
/// Between the marker and the padding.
const MIDDLE: &[u8] = b"\",\"pad\":\"";
/// After the padding.
const SUFFIX: &[u8] = b"\"}";

/// The smallest payload: the marker with empty padding.
pub const MIN_SIZE: usize = PREFIX.len() + MARKER_LEN + MIDDLE.len() + SUFFIX.len();

/// The largest phase number a marker holds.
pub const MAX_PHASE: u16 = 9999;

/// Builds the payloads of a run: the padding is drawn once from the seed.
#[derive(Debug, Clone)]
pub struct PayloadMaker {
    pad: Vec<u8>,
}

impl PayloadMaker {
    /// Payloads of `size` bytes (at least [`MIN_SIZE`]) with padding drawn from `seed`.
    pub fn new(size: usize, seed: u64) -> PayloadMaker {
        let mut rng = fastrand::Rng::with_seed(seed);
        let pad = (0..size.saturating_sub(MIN_SIZE))
            .map(|_| rng.alphanumeric() as u8)
            .collect();
        PayloadMaker { pad }
    }

    /// The size of every payload.
    pub fn size(&self) -> usize {
        MIN_SIZE + self.pad.len()
    }

    /// The payload of message `seq` in phase `phase`.
    pub fn make(&self, phase: u16, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(PREFIX);
        let marker = format!("{:04}-{:010}", phase.min(MAX_PHASE), seq % 10_000_000_000);
        out.extend_from_slice(marker.as_bytes());
        out.extend_from_slice(MIDDLE);
        out.extend_from_slice(&self.pad);
        out.extend_from_slice(SUFFIX);
        out
    }
}

/// The marker's key, as it appears in any JSON serialisation of a payload.
const KEY: &[u8] = b"\"tckb\"";

/// Finds the first marker in `body` (a payload, or a JSON document that embeds one, such as a
/// CloudEvent whose `data` it is) and returns its phase and sequence number. The payload may
/// have been serialised again on the way: keys reordered (daprd's Go maps sort them, so `pad`
/// comes first), whitespace around the colon.
pub fn parse_marker(body: &[u8]) -> Option<(u16, u64)> {
    let mut at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let mut expect = |want: u8| {
        while body.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        let ok = body.get(at) == Some(&want);
        at += 1;
        ok
    };
    if !(expect(b':') && expect(b'"')) {
        return None;
    }
    let marker = body.get(at..at + MARKER_LEN)?;
    if marker[4] != b'-' {
        return None;
    }
    let phase = digits(&marker[..4])?;
    let seq = digits(&marker[5..])?;
    Some((u16::try_from(phase).ok()?, seq))
}

fn digits(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_requested_size_and_round_trip() {
        let m = PayloadMaker::new(100, 7);
        let p = m.make(3, 42);
        assert_eq!(p.len(), 100);
        assert_eq!(m.size(), 100);
        assert!(p.starts_with(b"{\"tckb\":\"0003-0000000042\",\"pad\":\""));
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["tckb"], "0003-0000000042");
        assert_eq!(parse_marker(&p), Some((3, 42)));
    }

    #[test]
    fn a_payload_serialised_again_still_names_its_phase() {
        let p = PayloadMaker::new(80, 7).make(12, 345);
        // As daprd delivers it: inside a CloudEvent, keys sorted (`pad` before `tckb`).
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        let sorted: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_value(v.clone()).unwrap();
        let ce = serde_json::json!({"data": sorted, "id": "x", "specversion": "1.0"});
        let text = ce.to_string();
        assert!(text.find("\"pad\"") < text.find("\"tckb\""), "{text}");
        assert_eq!(parse_marker(text.as_bytes()), Some((12, 345)));
        let spaced = serde_json::to_string_pretty(&ce).unwrap();
        assert_eq!(parse_marker(spaced.as_bytes()), Some((12, 345)));
        assert_eq!(parse_marker(br#"{"tckb": 5}"#), None);
        assert_eq!(parse_marker(br#"{"tckb":"12"}"#), None);
    }

    #[test]
    fn small_sizes_are_raised_to_the_minimum() {
        let m = PayloadMaker::new(1, 7);
        assert_eq!(m.make(0, 0).len(), MIN_SIZE);
        assert_eq!(MIN_SIZE, 35);
    }

    #[test]
    fn padding_comes_from_the_seed() {
        assert_eq!(
            PayloadMaker::new(64, 1).make(0, 0),
            PayloadMaker::new(64, 1).make(0, 0)
        );
        assert_ne!(
            PayloadMaker::new(64, 1).make(0, 0),
            PayloadMaker::new(64, 2).make(0, 0)
        );
    }

    #[test]
    fn markers_are_found_inside_a_cloudevent() {
        let data = PayloadMaker::new(50, 1).make(12, 9_876_543_210);
        let mut ce = br#"{"specversion":"1.0","id":"x","data":"#.to_vec();
        ce.extend_from_slice(&data);
        ce.extend_from_slice(b"}");
        assert_eq!(parse_marker(&ce), Some((12, 9_876_543_210)));
    }

    #[test]
    fn malformed_markers_are_rejected() {
        assert_eq!(parse_marker(b""), None);
        assert_eq!(parse_marker(b"{\"tckb\":\"0003-00000"), None);
        assert_eq!(parse_marker(b"{\"tckb\":\"0003x0000000042\"}"), None);
        assert_eq!(parse_marker(b"{\"tckb\":\"00a3-0000000042\"}"), None);
    }
}

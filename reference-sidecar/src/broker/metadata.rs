//! Reading a component's metadata the way contrib does: keys case-insensitive, an empty value
//! as absent, Go's spellings of numbers, booleans and durations; shared by `pubsub.redis` and
//! `pubsub.kafka`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::BrokerError;
use crate::duration::parse_go_duration;

/// Case-insensitive access to metadata; an empty value counts as absent, as in contrib.
pub(crate) struct Lookup<'a>(pub(crate) &'a BTreeMap<String, String>);

impl Lookup<'_> {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn bool(&self, key: &'static str) -> Result<bool, BrokerError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => parse_go_bool(v).ok_or_else(|| bad(key, v, "expected true or false")),
        }
    }

    /// A Go duration, or a bare number of milliseconds.
    pub(crate) fn duration(&self, key: &'static str) -> Result<Option<Duration>, BrokerError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_duration_ms(v).map(Some).ok_or_else(|| {
                bad(
                    key,
                    v,
                    "expected a duration such as 500ms or 1m30s, or a number of milliseconds",
                )
            }),
        }
    }

    pub(crate) fn positive(&self, key: &'static str) -> Result<Option<usize>, BrokerError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match parse_digits::<usize>(v) {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(bad(key, v, "expected a positive integer")),
            },
        }
    }
}

pub(crate) fn bad(key: &'static str, value: &str, reason: &'static str) -> BrokerError {
    BrokerError::BadMetadata {
        key,
        value: value.to_owned(),
        reason,
    }
}

/// Unsigned decimal digits only, like Go's `strconv.ParseUint(s, 10, _)` (no sign, no spaces).
pub(crate) fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// contrib's rule for Redis durations: a bare number is milliseconds, otherwise a Go duration.
fn parse_duration_ms(s: &str) -> Option<Duration> {
    match parse_digits::<u64>(s) {
        Some(ms) => Some(Duration::from_millis(ms)),
        None => parse_go_duration(s).ok(),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

//! Reading a component's metadata the way contrib does: keys case-insensitive, an empty value
//! as absent, Go's spellings of numbers, booleans and durations; shared by `pubsub.redis`,
//! `pubsub.kafka` and `state.redis`. Also which keys a pubsub component ignores (every broker
//! warns about them).

use std::collections::BTreeMap;
use std::time::Duration;

use super::BrokerError;
use crate::duration::parse_go_duration;

/// Keys any component may carry: scoping and consumer identity.
const GENERIC_KEYS: &[&str] = &[
    "publishingScopes",
    "subscriptionScopes",
    "allowedTopics",
    "protectedTopics",
    "consumerID",
];

/// Whether `key` is one of `keys`, case-insensitively (as contrib decodes metadata).
pub(crate) fn is_one_of(key: &str, keys: &[&str]) -> bool {
    keys.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// The keys of `md` a component reads neither among its own (`supported`) nor among those any
/// component may carry: the ones start-up warns about.
pub(crate) fn unsupported_keys<'a>(
    md: &'a BTreeMap<String, String>,
    supported: &'a [&str],
) -> impl Iterator<Item = &'a String> {
    md.keys()
        .filter(move |k| !is_one_of(k, supported) && !is_one_of(k, GENERIC_KEYS))
}

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

    /// An error unless `key` is absent or `allowed` (case-insensitively): for a setting of which
    /// refsidecar supports one value only.
    pub(crate) fn only(
        &self,
        key: &'static str,
        allowed: &str,
        reason: &'static str,
    ) -> Result<(), BrokerError> {
        match self.get(key) {
            Some(v) if !v.eq_ignore_ascii_case(allowed) => Err(bad(key, v, reason)),
            _ => Ok(()),
        }
    }

    /// An error when `key` is true: for a feature refsidecar does not support.
    pub(crate) fn refuse_true(
        &self,
        key: &'static str,
        reason: &'static str,
    ) -> Result<(), BrokerError> {
        if self.bool(key)? {
            return Err(bad(key, "true", reason));
        }
        Ok(())
    }

    /// The value parsed with `FromStr`; `reason` names what was expected when it does not parse.
    pub(crate) fn parsed<T: std::str::FromStr>(
        &self,
        key: &'static str,
        reason: &'static str,
    ) -> Result<Option<T>, BrokerError> {
        self.get(key)
            .map(|v| v.parse().map_err(|_| bad(key, v, reason)))
            .transpose()
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

//! Secrets held in configuration (`DAPR_API_TOKEN`, `APP_API_TOKEN`): a newtype whose `Debug`
//! never shows the value, and the constant-time comparison the API token checks use.
//!
//! Owns the representation and the comparison; where a token is required is the APIs' business.

use std::fmt;

/// A secret string. `Debug` prints `Secret(***)`, so a struct holding one can derive `Debug`
/// without leaking it; there is deliberately no `Display` and no `PartialEq` (which would not be
/// constant-time): use [`Secret::matches`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (a header to the app).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is exactly this secret, in time that depends only on the lengths.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

/// Byte equality whose running time does not depend on where the inputs first differ (a plain
/// `==` stops at the first differing byte, which lets a caller guess a token byte by byte from
/// response times). Only the lengths are revealed, as with every common implementation.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(***))");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn comparison_is_exact() {
        let s = Secret::from("token-123");
        assert!(s.matches(b"token-123"));
        for other in [
            &b""[..],
            b"token-12",
            b"token-1234",
            b"token-124",
            b"TOKEN-123",
        ] {
            assert!(!s.matches(other), "{:?}", String::from_utf8_lossy(other));
        }
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
    }
}

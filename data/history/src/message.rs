//! Message identity: the harness-assigned id carried in every payload.
//!
//! Owns [`MessageId`] only; how the id is embedded in a payload and parsed
//! back out is up to the test app.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The harness-assigned id carried in a message payload, such as `m-17`.
///
/// Ids are compared as strings, so `m-10` sorts before `m-9`; callers that
/// want numeric order should zero-pad.
/// Serialized as a bare string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub String);

impl MessageId {
    /// Wraps any string-like id.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<String> for MessageId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

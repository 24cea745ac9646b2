//! State stores: the subset of daprd's state API that apps next to a pub/sub flow use (save,
//! get and delete of single keys, with ETags). Components of type `state.*` become a
//! [`StateStore`]; the HTTP API in `api/http/state.rs` maps store errors to daprd's codes.
//!
//! The set of stores is a closed enum, like the brokers. Not here: transactions, bulk get,
//! queries, TTL and consistency options.

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::resources::ComponentDef;

/// The state component types this build supports.
pub const SUPPORTED_TYPES: &str = "state.in-memory, state.redis";

/// One stored value and its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The stored bytes (normally JSON).
    pub value: Bytes,
    /// The ETag; `None` for values written outside daprd's format (a plain Redis string).
    pub etag: Option<String>,
}

/// A state component we cannot run.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// `spec.type` is not a supported state type.
    #[error("unknown component type {type_:?} (supported: {supported})")]
    UnknownType {
        /// What the file said.
        type_: String,
        /// What we support.
        supported: &'static str,
    },
    /// A metadata value is missing or unusable.
    #[error("{message}")]
    Metadata {
        /// The metadata name.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The store cannot be reached at start-up.
    #[error("connecting to redis at {addr}")]
    Connect {
        /// `redisHost`.
        addr: String,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
}

impl StateError {
    /// The YAML key the error is about, for the start-up message.
    pub fn key_path(&self) -> String {
        match self {
            StateError::UnknownType { .. } => "spec.type".into(),
            StateError::Metadata { key, .. } => format!("spec.metadata.{key}"),
            StateError::Connect { .. } => "spec.metadata.redisHost".into(),
        }
    }
}

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ETag does not match the stored one (daprd: 409).
    #[error("possible etag mismatch. error from state store: {0}")]
    EtagMismatch(String),
    /// The ETag cannot be an ETag of this store (daprd: 400).
    #[error("invalid etag value: {0}")]
    EtagInvalid(String),
    /// The store failed.
    #[error("redis command failed")]
    Redis(#[source] ::redis::RedisError),
}

/// How daprd prefixes keys (`keyPrefix` metadata): by default `{app-id}||{key}`, so apps do not
/// see each other's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `appid` (the default): the app id.
    AppId,
    /// `name`: the store name.
    StoreName,
    /// `none`: keys as given.
    None,
    /// Anything else: that literal prefix.
    Custom(String),
}

impl KeyPrefix {
    /// Reads `keyPrefix` (key matched case-insensitively, as Go's metadata decoder does).
    /// `namespace` means `{namespace}.{app-id}` in daprd; standalone has no namespace, so it is
    /// the app id.
    pub fn from_metadata(md: &BTreeMap<String, String>) -> KeyPrefix {
        let v = md
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("keyPrefix"))
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        match v.to_ascii_lowercase().as_str() {
            "" | "appid" | "namespace" => KeyPrefix::AppId,
            "name" => KeyPrefix::StoreName,
            "none" => KeyPrefix::None,
            _ => KeyPrefix::Custom(v.to_owned()),
        }
    }

    /// The key as stored, or the daprd message when the app's key cannot be used.
    pub fn apply(&self, app_id: &str, store: &str, key: &str) -> Result<String, String> {
        let prefix = match self {
            KeyPrefix::None => return Ok(key.to_owned()),
            KeyPrefix::AppId => app_id,
            KeyPrefix::StoreName => store,
            KeyPrefix::Custom(p) => p,
        };
        if key.contains("||") {
            return Err(format!("input key/keyPrefix '{key}' can't contain '||'"));
        }
        if prefix.is_empty() {
            return Ok(key.to_owned());
        }
        Ok(format!("{prefix}||{key}"))
    }
}

/// A running state store.
#[derive(Debug, Clone)]
pub enum StateStore {
    /// `state.in-memory`.
    InMemory(memory::InMemory),
    /// `state.redis`.
    Redis(redis::RedisStore),
}

impl StateStore {
    /// Builds (and, for Redis, connects) the store a component names. Unknown metadata keys are
    /// returned as warnings.
    pub async fn from_component(
        def: &ComponentDef,
    ) -> Result<(StateStore, Vec<String>), StateError> {
        let known: &[&str] = match def.type_.as_str() {
            "state.in-memory" => &[],
            "state.redis" => redis::METADATA_KEYS,
            other => {
                return Err(StateError::UnknownType {
                    type_: other.to_owned(),
                    supported: SUPPORTED_TYPES,
                });
            }
        };
        let warnings = def
            .metadata
            .keys()
            .filter(|k| {
                !k.eq_ignore_ascii_case("keyPrefix")
                    && !known.iter().any(|n| n.eq_ignore_ascii_case(k))
            })
            .map(|k| format!("spec.metadata {k} is ignored by {}", def.type_))
            .collect();
        let store = if def.type_ == "state.redis" {
            StateStore::Redis(redis::RedisStore::connect(&def.metadata).await?)
        } else {
            StateStore::InMemory(memory::InMemory::default())
        };
        Ok((store, warnings))
    }

    /// The value under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Item>, StoreError> {
        match self {
            StateStore::InMemory(s) => Ok(s.get(key)),
            StateStore::Redis(s) => s.get(key).await,
        }
    }

    /// Stores `value` under `key`; with an ETag, only if it matches.
    pub async fn set(&self, key: &str, value: Bytes, etag: Option<&str>) -> Result<(), StoreError> {
        match self {
            StateStore::InMemory(s) => s.set(key, value, etag),
            StateStore::Redis(s) => s.set(key, value, etag).await,
        }
    }

    /// Deletes `key`; with an ETag, only if it matches.
    pub async fn delete(&self, key: &str, etag: Option<&str>) -> Result<(), StoreError> {
        match self {
            StateStore::InMemory(s) => s.delete(key, etag),
            StateStore::Redis(s) => s.delete(key, etag).await,
        }
    }

    /// Feature names for the metadata API: only what this build implements.
    pub fn capabilities(&self) -> &'static [&'static str] {
        &["ETAG"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(prefix: &str, key: &str, expect: &str) {
        let md = if prefix.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([("keyPrefix".to_owned(), prefix.to_owned())])
        };
        let got = KeyPrefix::from_metadata(&md)
            .apply("app", "store", key)
            .unwrap_or_else(|e| format!("error: {e}"));
        assert_eq!(got, expect, "{prefix:?} {key:?}");
    }

    #[test]
    fn key_prefixes() {
        check("", "k", "app||k");
        check("appid", "k", "app||k");
        check("name", "k", "store||k");
        check("none", "k", "k");
        check("none", "a||b", "a||b");
        check("team", "k", "team||k");
        check(
            "",
            "a||b",
            "error: input key/keyPrefix 'a||b' can't contain '||'",
        );
    }
}

//! `state.redis`: values in Redis hashes as components-contrib stores them (`data` and an
//! integer `version` that is the ETag), so a daprd and this sidecar can share a database.
//!
//! Writes and deletes run as Lua scripts with contrib's check-and-set rules: an ETag must equal
//! the stored `version`, except that a key without a version (missing, or a plain string) always
//! accepts the write. A plain string value is read with no ETag.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Item, StateError, StoreError};
use crate::broker::metadata::Lookup;

/// Metadata names `state.redis` reads.
pub const METADATA_KEYS: &[&str] = &["redisHost", "redisPassword", "redisUsername", "redisDB"];

const SET: &str = r#"local var1 = redis.pcall("HGET", KEYS[1], "version");
if type(var1) == "table" then redis.call("UNLINK", KEYS[1]); end;
if not var1 or type(var1) == "table" or var1 == "" or var1 == ARGV[1] or ARGV[1] == "0" then
  redis.call("HSET", KEYS[1], "data", ARGV[2]);
  return redis.call("HINCRBY", KEYS[1], "version", 1)
else
  return redis.error_reply("ETAGMISMATCH failed to set key " .. KEYS[1])
end"#;

const DELETE: &str = r#"local var1 = redis.pcall("HGET", KEYS[1], "version");
if not var1 or type(var1) == "table" or var1 == ARGV[1] or var1 == "" or ARGV[1] == "0" then
  return redis.call("DEL", KEYS[1])
else
  return redis.error_reply("ETAGMISMATCH failed to delete " .. KEYS[1])
end"#;

/// A connected store; clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// The connection URL for the component's metadata (credentials percent-encoded).
pub fn url(md: &BTreeMap<String, String>) -> Result<String, StateError> {
    let m = Lookup(md);
    let get = |k: &str| m.get(k);
    let host = get("redisHost").ok_or(StateError::Metadata {
        key: "redisHost",
        message: "required (host:port)".into(),
    })?;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let auth = match (get("redisUsername"), get("redisPassword")) {
        (None, None) => String::new(),
        (user, pass) => format!("{}:{}@", enc(user.unwrap_or("")), enc(pass.unwrap_or(""))),
    };
    let db = match get("redisDB") {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| StateError::Metadata {
            key: "redisDB",
            message: format!("{v:?} is not a database number"),
        })?,
    };
    Ok(format!("redis://{auth}{host}/{db}"))
}

impl RedisStore {
    /// Connects as daprd does at component init: an unreachable server fails start-up.
    pub async fn connect(md: &BTreeMap<String, String>) -> Result<RedisStore, StateError> {
        let url = url(md)?;
        let addr = Lookup(md).get("redisHost").unwrap_or("").to_owned();
        let connect = |source| StateError::Connect {
            addr: addr.clone(),
            source,
        };
        let client = redis::Client::open(url.as_str()).map_err(connect)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(connect)?;
        Ok(RedisStore { conn })
    }

    /// `HGETALL`; a plain string value (WRONGTYPE) is read with `GET` and has no ETag.
    pub async fn get(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let mut conn = self.conn.clone();
        let hash: Result<HashMap<String, Vec<u8>>, _> =
            redis::cmd("HGETALL").arg(key).query_async(&mut conn).await;
        match hash {
            Ok(mut h) => {
                let Some(data) = h.remove("data") else {
                    return Ok(None);
                };
                let etag = h
                    .remove("version")
                    .map(|v| String::from_utf8_lossy(&v).into_owned());
                Ok(Some(Item {
                    value: Bytes::from(data),
                    etag,
                }))
            }
            Err(e) if e.code() == Some("WRONGTYPE") => {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .map_err(StoreError::Redis)?;
                Ok(v.map(|v| Item {
                    value: Bytes::from(v),
                    etag: None,
                }))
            }
            Err(e) => Err(StoreError::Redis(e)),
        }
    }

    /// Writes `data` and bumps `version`, under contrib's ETag rule.
    pub async fn set(&self, key: &str, value: Bytes, etag: Option<&str>) -> Result<(), StoreError> {
        self.run_script(SET, key, etag, Some(value.as_ref())).await
    }

    /// Deletes the key under contrib's ETag rule.
    pub async fn delete(&self, key: &str, etag: Option<&str>) -> Result<(), StoreError> {
        self.run_script(DELETE, key, etag, None).await
    }

    /// Runs `script` on `key` with the version `etag` names (and `value`, for a write).
    async fn run_script(
        &self,
        script: &str,
        key: &str,
        etag: Option<&str>,
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let version = parse_etag(etag)?;
        let mut conn = self.conn.clone();
        // Plain EVAL: scripts are small, and EVALSHA caching needs the crate's `script` feature.
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(1).arg(key).arg(version);
        if let Some(value) = value {
            cmd.arg(value);
        }
        let result: Result<i64, _> = cmd.query_async(&mut conn).await;
        script_result(result.map(drop), key)
    }
}

/// contrib's `parseETag`: no ETag is version 0 (write unconditionally); otherwise an integer.
fn parse_etag(etag: Option<&str>) -> Result<i64, StoreError> {
    match etag.filter(|e| !e.is_empty()) {
        None => Ok(0),
        Some(e) => e
            .parse::<i64>()
            .map_err(|err| StoreError::EtagInvalid(format!("{e:?}: {err}"))),
    }
}

fn script_result(result: Result<(), redis::RedisError>, key: &str) -> Result<(), StoreError> {
    match result {
        Ok(()) => Ok(()),
        // The scripts refuse only on a version mismatch, with this error code.
        Err(e) if e.code() == Some("ETAGMISMATCH") => Err(StoreError::EtagMismatch(format!(
            "failed to set or delete key {key}"
        ))),
        Err(e) => Err(StoreError::Redis(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)], expect: &str) {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let got = url(&md).unwrap_or_else(|e| format!("error: {e}"));
        assert_eq!(got, expect);
    }

    #[test]
    fn urls() {
        check(
            &[("redisHost", "localhost:6379")],
            "redis://localhost:6379/0",
        );
        check(
            &[
                ("redisHost", "h:1"),
                ("redisPassword", "p@ss"),
                ("redisDB", "2"),
            ],
            "redis://:p%40ss@h:1/2",
        );
        check(&[], "error: required (host:port)");
        check(
            &[("redisHost", "h:1"), ("redisDB", "x")],
            "error: \"x\" is not a database number",
        );
    }

    #[test]
    fn etags() {
        assert_eq!(parse_etag(None).unwrap(), 0);
        assert_eq!(parse_etag(Some("")).unwrap(), 0);
        assert_eq!(parse_etag(Some("7")).unwrap(), 7);
        assert!(matches!(
            parse_etag(Some("abc")),
            Err(StoreError::EtagInvalid(_))
        ));
    }
}

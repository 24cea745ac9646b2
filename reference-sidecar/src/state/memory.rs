//! `state.in-memory`: a map from key to value and ETag, as components-contrib's in-memory store
//! (a fresh UUID ETag on every write; an ETag on a missing key is a mismatch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{Item, StoreError};

/// The store; clones share the map.
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    items: Arc<Mutex<HashMap<String, (Bytes, String)>>>,
}

impl InMemory {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Item> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.get(key).map(|(v, e)| Item {
            value: v.clone(),
            etag: Some(e.clone()),
        })
    }

    /// Stores `value`; with an ETag, only if it is the current one.
    pub fn set(&self, key: &str, value: Bytes, etag: Option<&str>) -> Result<(), StoreError> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        check_etag(items.get(key), key, etag)?;
        items.insert(key.to_owned(), (value, uuid::Uuid::new_v4().to_string()));
        Ok(())
    }

    /// Deletes `key`; with an ETag, only if it is the current one.
    pub fn delete(&self, key: &str, etag: Option<&str>) -> Result<(), StoreError> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        check_etag(items.get(key), key, etag)?;
        items.remove(key);
        Ok(())
    }
}

fn check_etag(
    current: Option<&(Bytes, String)>,
    key: &str,
    etag: Option<&str>,
) -> Result<(), StoreError> {
    match (etag.filter(|e| !e.is_empty()), current) {
        (None, _) => Ok(()),
        (Some(want), Some((_, have))) if want == have => Ok(()),
        (Some(_), _) => Err(StoreError::EtagMismatch(format!(
            "etag does not match for key {key}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        let s = InMemory::default();
        assert!(s.get("k").is_none());
        assert!(matches!(
            s.set("k", Bytes::from_static(b"1"), Some("x")),
            Err(StoreError::EtagMismatch(_))
        ));
        s.set("k", Bytes::from_static(b"1"), None).unwrap();
        let first = s.get("k").unwrap();
        assert_eq!(first.value, Bytes::from_static(b"1"));
        let etag = first.etag.unwrap();
        s.set("k", Bytes::from_static(b"2"), Some(&etag)).unwrap();
        let second = s.get("k").unwrap().etag.unwrap();
        assert_ne!(etag, second);
        assert!(matches!(
            s.set("k", Bytes::from_static(b"3"), Some(&etag)),
            Err(StoreError::EtagMismatch(_))
        ));
        assert!(matches!(
            s.delete("k", Some(&etag)),
            Err(StoreError::EtagMismatch(_))
        ));
        s.delete("k", Some(&second)).unwrap();
        assert!(s.get("k").is_none());
        s.delete("k", None).unwrap();
    }
}

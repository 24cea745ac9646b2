//! `pubsub.redis`: Redis Streams with consumer groups, as components-contrib does it (spec §5.6,
//! §7, §8.2).
//!
//! Owns the component metadata (parsed and validated in [`Settings::parse`]), the connections,
//! and per subscription the consumer: a reader doing `XREADGROUP`, `concurrency` workers that run
//! the handler and `XACK`, and a reclaimer that `XCLAIM`s entries left pending longer than
//! `processingTimeout`. It does not own what a delivery does (that is `delivery.rs`), nor retries
//! under resiliency policies.
//!
//! Wire format: a topic is a stream; a message is the entry `data <bytes> metadata <json>`; the
//! consumer group and the consumer name are both `consumerID` (the app-id by default), so apps
//! with different ids each get every message and replicas of one app compete.
//!
//! Acknowledgement follows contrib ≥1.17: an entry is `XACK`ed once the handler's outcome is
//! final, including after a handler error (resiliency is the only retry), unless the handling ran
//! past `processingTimeout` or the broker is closing. Only then does it stay pending for the
//! reclaimer of this or a later sidecar with the same consumer id.
//!
//! Connection loss never ends a consumer: every loop logs, backs off exponentially and tries
//! again, and a group lost with the data (`NOGROUP`) is recreated. A publish fails while Redis is
//! unreachable; it succeeds only once `XADD` has returned the entry id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::metadata::{Lookup, bad, is_one_of, parse_digits, unsupported_keys};
use super::{BrokerError, Closing, Handler, Message, PublishError};

mod consumer;
mod settings;

pub use settings::Settings;

/// A running `pubsub.redis` component; clones share the connection.
#[derive(Clone)]
pub struct RedisStreams {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreams")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: Settings,
    client: Client,
    /// One multiplexed connection for everything that does not block: XADD, XACK, XGROUP,
    /// XPENDING, XCLAIM. It reconnects by itself after an IO error.
    conn: ConnectionManager,
    /// Flips to true once on close; every loop of every subscription watches it.
    closing: watch::Sender<bool>,
}

impl RedisStreams {
    /// Connects and pings, as contrib's `Init` does: an unreachable Redis fails start-up.
    pub async fn connect(settings: Settings) -> Result<RedisStreams, BrokerError> {
        let connect_err = |source| BrokerError::Connect {
            address: settings.address(),
            source,
        };
        let client = settings.client().map_err(connect_err)?;
        let config = settings.manager_config(settings.read_timeout);
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(connect_err)?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(connect_err)?;
        let (closing, _) = watch::channel(false);
        Ok(RedisStreams {
            inner: Arc::new(Inner {
                settings,
                client,
                conn,
                closing,
            }),
        })
    }

    /// `XADD <topic> [MAXLEN ~ n] * data <bytes> metadata <json>`. Succeeds only once Redis has
    /// stored the entry.
    ///
    /// Publishing still works after [`close`](Self::close): the runtime stops the API first, so
    /// what comes later are dead-letter copies from draining handlers, which daprd also lets
    /// through because it closes components only after the subscriptions.
    pub(crate) async fn publish(&self, topic: &str, msg: Message) -> Result<(), PublishError> {
        let metadata = serde_json::to_string(&*msg.metadata).map_err(PublishError::Encode)?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(topic);
        if let Some(n) = self.inner.settings.max_len_approx {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg("*")
            .arg("data")
            .arg(&msg.data[..])
            .arg("metadata")
            .arg(metadata);
        let mut conn = self.inner.conn.clone();
        cmd.query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(PublishError::Redis)
    }

    /// Starts the consumer of one subscription. The task ends after close, once in-flight
    /// handlers have finished; aborting it aborts the reader, reclaimer and workers with it.
    pub(crate) fn subscribe<H: Handler>(&self, topic: &str, handler: Arc<H>) -> JoinHandle<()> {
        consumer::start(self.inner.clone(), topic, handler)
    }

    /// Stops reading and reclaiming; in-flight handlers finish; un-acked entries stay pending.
    pub(crate) fn close(&self) {
        self.inner.closing.send_replace(true);
    }
}

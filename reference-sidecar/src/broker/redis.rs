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

use super::{BrokerError, Handler, Message, PublishError, is_generic_key};
use crate::duration::parse_go_duration;

const DEFAULT_PORT: u16 = 6379;

/// Keys we read. Lookups are case-insensitive, as daprd's metadata decoding is.
const SUPPORTED_KEYS: &[&str] = &[
    "redisHost",
    "redisPort",
    "redisPassword",
    "redisUsername",
    "redisDB",
    "redisType",
    "enableTLS",
    "failover",
    "consumerID",
    "processingTimeout",
    "redeliverInterval",
    "queueDepth",
    "concurrency",
    "maxLenApprox",
    "dialTimeout",
    "readTimeout",
    "redisMaxRetries",
    "redisMinRetryInterval",
    "redisMaxRetryInterval",
];

/// Keys daprd knows that change nothing observable here; they get a softer warning.
const TUNING_KEYS: &[&str] = &[
    "writeTimeout",
    "poolSize",
    "poolTimeout",
    "idleTimeout",
    "idleCheckFrequency",
    "maxConnAge",
    "minIdleConns",
    "sentinelMasterName",
    "sentinelUsername",
    "sentinelPassword",
    "clientCert",
    "clientKey",
    "insecureSkipTLSVerify",
    "streamTTL",
];

/// The validated metadata of one `pubsub.redis` component.
#[derive(Clone)]
pub struct Settings {
    /// Host name or address from `redisHost`.
    pub host: String,
    /// Port from `redisHost` or `redisPort` (default 6379).
    pub port: u16,
    /// `redisUsername` (ACL, Redis ≥ 6).
    pub username: Option<String>,
    /// `redisPassword`.
    pub password: Option<String>,
    /// `redisDB`.
    pub db: i64,
    /// `consumerID`: both the consumer group and the consumer name.
    pub consumer_id: String,
    /// `processingTimeout`: idle time before a pending entry is reclaimed; zero disables reclaim.
    pub processing_timeout: Duration,
    /// `redeliverInterval`: how often to look for entries to reclaim; zero disables reclaim.
    pub redeliver_interval: Duration,
    /// `queueDepth`: `XREADGROUP COUNT` and the size of the in-process queue.
    pub queue_depth: usize,
    /// `concurrency`: workers per subscription; 1 keeps FIFO.
    pub concurrency: usize,
    /// `maxLenApprox`: `XADD MAXLEN ~ n` when positive.
    pub max_len_approx: Option<u64>,
    /// `dialTimeout`.
    pub dial_timeout: Duration,
    /// `readTimeout`: per-command timeout, and the `XREADGROUP BLOCK` time.
    pub read_timeout: Duration,
    /// `redisMaxRetries`: connection attempts after the first one fails.
    pub max_retries: usize,
    /// `redisMinRetryInterval`.
    pub min_retry_interval: Duration,
    /// `redisMaxRetryInterval`.
    pub max_retry_interval: Duration,
}

// Hand-written so that the password never reaches a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("consumer_id", &self.consumer_id)
            .field("processing_timeout", &self.processing_timeout)
            .field("redeliver_interval", &self.redeliver_interval)
            .field("queue_depth", &self.queue_depth)
            .field("concurrency", &self.concurrency)
            .field("max_len_approx", &self.max_len_approx)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Validates component metadata. `app_id` is the default `consumerID`. Unknown keys come back
    /// as warnings; a bad value is an error naming the key.
    pub fn parse(
        md: &BTreeMap<String, String>,
        app_id: &str,
    ) -> Result<(Settings, Vec<String>), BrokerError> {
        let m = Lookup(md);
        let mut warnings = Vec::new();
        for k in md.keys() {
            let known = |keys: &[&str]| keys.iter().any(|s| s.eq_ignore_ascii_case(k));
            if known(TUNING_KEYS) {
                warnings.push(format!(
                    "spec.metadata {k} is accepted but has no effect in refsidecar's pubsub.redis"
                ));
            } else if !known(SUPPORTED_KEYS) && !is_generic_key(k) {
                warnings.push(format!("spec.metadata {k} is ignored by pubsub.redis"));
            }
        }

        if m.bool("enableTLS")? {
            return Err(bad(
                "enableTLS",
                "true",
                "TLS connections to Redis are not supported by refsidecar",
            ));
        }
        if m.bool("failover")? {
            return Err(bad(
                "failover",
                "true",
                "Redis Sentinel is not supported by refsidecar",
            ));
        }
        if let Some(t) = m.get("redisType")
            && !t.eq_ignore_ascii_case("node")
        {
            return Err(bad(
                "redisType",
                t,
                "only `node` is supported by refsidecar (no cluster mode)",
            ));
        }
        let port: Option<u16> = match m.get("redisPort") {
            Some(p) => Some(
                parse_digits(p)
                    .ok_or_else(|| bad("redisPort", p, "expected a port number (0-65535)"))?,
            ),
            None => None,
        };
        let raw_host = m
            .get("redisHost")
            .ok_or(BrokerError::MissingMetadata { key: "redisHost" })?;
        let (host, port) = split_host(raw_host, port)?;

        let processing_timeout = m
            .duration("processingTimeout")?
            .unwrap_or(Duration::from_secs(60));
        // contrib reads redeliverInterval only as a whole number of milliseconds (the field has
        // no mapstructure name, so a duration string is never decoded): "500ms" leaves the 15 s
        // default (components-contrib common/component/redis/redis.go, settings.go).
        let redeliver_interval = match m.get("redeliverInterval") {
            Some(v) if !v.is_empty() => match parse_digits::<u64>(v) {
                Some(ms) => Duration::from_millis(ms),
                None => {
                    warnings.push(format!(
                        "spec.metadata redeliverInterval {v:?} is ignored: daprd reads it only as a number of milliseconds (such as \"500\"), so the 15s default applies"
                    ));
                    Duration::from_secs(15)
                }
            },
            _ => Duration::from_secs(15),
        };
        // daprd would start zero workers (or an unbuffered queue) and never deliver; refusing
        // the value at start-up is the useful reading of that.
        let queue_depth = m.positive("queueDepth")?.unwrap_or(100);
        let concurrency = m.positive("concurrency")?.unwrap_or(10);
        let max_len_approx = match m.get("maxLenApprox") {
            Some(v) => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| bad("maxLenApprox", v, "expected an integer"))?;
                u64::try_from(n).ok().filter(|n| *n > 0)
            }
            None => None,
        };
        let db = match m.get("redisDB") {
            Some(v) => v
                .parse()
                .map_err(|_| bad("redisDB", v, "expected a database number"))?,
            None => 0,
        };
        let max_retries = match m.get("redisMaxRetries") {
            Some(v) => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| bad("redisMaxRetries", v, "expected an integer"))?;
                // As in go-redis, -1 disables retries.
                usize::try_from(n).unwrap_or(0)
            }
            None => 3,
        };
        let consumer_id = match m.get("consumerID") {
            Some(c) if !c.trim().is_empty() => c.to_owned(),
            _ => app_id.to_owned(),
        };
        let settings = Settings {
            host,
            port,
            username: m.get("redisUsername").map(str::to_owned),
            password: m.get("redisPassword").map(str::to_owned),
            db,
            consumer_id,
            processing_timeout,
            redeliver_interval,
            queue_depth,
            concurrency,
            max_len_approx,
            dial_timeout: m
                .duration("dialTimeout")?
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(5)),
            read_timeout: m
                .duration("readTimeout")?
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(3)),
            max_retries,
            min_retry_interval: m
                .duration("redisMinRetryInterval")?
                .unwrap_or(Duration::from_millis(8)),
            max_retry_interval: m
                .duration("redisMaxRetryInterval")?
                .unwrap_or(Duration::from_millis(512)),
        };
        Ok((settings, warnings))
    }

    /// Reclaiming is off when either setting is zero (contrib's rule).
    fn reclaim_enabled(&self) -> bool {
        !self.processing_timeout.is_zero() && !self.redeliver_interval.is_zero()
    }

    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn client(&self) -> Result<Client, redis::RedisError> {
        let mut redis = RedisConnectionInfo::default().set_db(self.db);
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            redis = redis.set_password(p);
            if let Some(u) = self.username.as_deref().filter(|u| !u.is_empty()) {
                redis = redis.set_username(u);
            }
        }
        let info = ConnectionAddr::Tcp(self.host.clone(), self.port)
            .into_connection_info()?
            .set_redis_settings(redis);
        Client::open(info)
    }

    /// Connection settings; `response` bounds each command (longer for blocking reads).
    fn manager_config(&self, response: Duration) -> ConnectionManagerConfig {
        // backon's exponential builder takes the factor as f32; 2 matches go-redis's doubling.
        ConnectionManagerConfig::new()
            .set_number_of_retries(self.max_retries)
            .set_min_delay(self.min_retry_interval)
            .set_max_delay(self.max_retry_interval.max(self.min_retry_interval))
            .set_exponent_base(2.0)
            .set_connection_timeout(Some(self.dial_timeout))
            .set_response_timeout(Some(response))
    }
}

/// Case-insensitive access to metadata; an empty value counts as absent, as in contrib.
pub(super) struct Lookup<'a>(pub(super) &'a BTreeMap<String, String>);

impl Lookup<'_> {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn bool(&self, key: &'static str) -> Result<bool, BrokerError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => parse_go_bool(v).ok_or_else(|| bad(key, v, "expected true or false")),
        }
    }

    /// A Go duration, or a bare number of milliseconds.
    pub(super) fn duration(&self, key: &'static str) -> Result<Option<Duration>, BrokerError> {
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

    pub(super) fn positive(&self, key: &'static str) -> Result<Option<usize>, BrokerError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match parse_digits::<usize>(v) {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(bad(key, v, "expected a positive integer")),
            },
        }
    }
}

pub(super) fn bad(key: &'static str, value: &str, reason: &'static str) -> BrokerError {
    BrokerError::BadMetadata {
        key,
        value: value.to_owned(),
        reason,
    }
}

/// Unsigned decimal digits only, like Go's `strconv.ParseUint(s, 10, _)` (no sign, no spaces).
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
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

/// Splits `redisHost` into host and port the way contrib's `resolveHost` does.
fn split_host(raw: &str, port: Option<u16>) -> Result<(String, u16), BrokerError> {
    let host_err = |reason| bad("redisHost", raw, reason);
    if raw.contains(',') {
        return Err(host_err(
            "several hosts need redisType: cluster, which refsidecar does not support",
        ));
    }
    let (host, own_port) = if let Some(rest) = raw.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| host_err("unbalanced brackets"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(host_err("expected host:port")),
        }
    } else {
        match raw.split_once(':') {
            // A second colon without brackets is a bare IPv6 address.
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            _ => (raw, None),
        }
    };
    if host.is_empty() {
        return Err(host_err("the host is empty"));
    }
    let own_port = match own_port {
        Some(p) => Some(parse_digits::<u16>(p).ok_or_else(|| host_err("bad port"))?),
        None => None,
    };
    let port = match (own_port, port) {
        (Some(a), Some(b)) if b != 0 && a != b => {
            return Err(host_err(
                "redisHost already has a port that differs from redisPort",
            ));
        }
        (Some(a), _) => a,
        (None, Some(b)) if b != 0 => b,
        (None, _) => DEFAULT_PORT,
    };
    Ok((host.to_owned(), port))
}

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
        let sub = Subscription {
            inner: self.inner.clone(),
            topic: topic.to_owned(),
            closing: self.inner.closing.subscribe(),
        };
        tokio::spawn(sub.run(handler))
    }

    /// Stops reading and reclaiming; in-flight handlers finish; un-acked entries stay pending.
    pub(crate) fn close(&self) {
        self.inner.closing.send_replace(true);
    }
}

/// One stream entry handed to a worker.
struct Entry {
    id: String,
    msg: Message,
}

/// The consumer of one topic.
#[derive(Clone)]
struct Subscription {
    inner: Arc<Inner>,
    topic: String,
    closing: watch::Receiver<bool>,
}

/// Exponential backoff for the consumer loops: 100 ms doubling up to 5 s.
struct Backoff {
    next: Duration,
    failures: u32,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Backoff {
        Backoff {
            next: Self::MIN,
            failures: 0,
        }
    }

    fn step(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        self.failures += 1;
        wait
    }

    /// Back to the start after a success; true if there had been failures.
    fn reset(&mut self) -> bool {
        let recovered = self.failures > 0;
        self.next = Self::MIN;
        self.failures = 0;
        recovered
    }
}

impl Subscription {
    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Resolves when the broker starts closing.
    async fn closed(&self) {
        let mut closing = self.closing.clone();
        let _ = closing.wait_for(|c| *c).await;
    }

    /// Sleeps; false if the broker started closing meanwhile.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.closed() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    async fn run<H: Handler>(self, handler: Arc<H>) {
        if !self.create_group_until_done().await {
            return;
        }
        let depth = self.settings().queue_depth;
        let (tx, rx) = mpsc::channel::<Entry>(depth);
        // Workers share one receiver; the tokio mutex is fair, so with one worker the queue order
        // (the stream order) is the delivery order.
        let rx = Arc::new(Mutex::new(rx));
        // Dropping the set (when this task is aborted at the end of the grace period) aborts every
        // child: no worker outlives the subscription.
        let mut tasks = JoinSet::new();
        for _ in 0..self.settings().concurrency {
            tasks.spawn(self.clone().worker(rx.clone(), handler.clone()));
        }
        if self.settings().reclaim_enabled() {
            tasks.spawn(self.clone().reclaimer(tx.clone()));
        }
        tasks.spawn(self.clone().reader(tx));
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(topic = %self.topic, "redis consumer task failed: {e}");
            }
        }
    }

    /// `XGROUP CREATE <topic> <group> 0 MKSTREAM`; an existing group is fine.
    async fn create_group(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.inner.conn.clone();
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.topic)
            .arg(&self.settings().consumer_id)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Creates the group, retrying while Redis is unreachable; false if closed first.
    async fn create_group_until_done(&self) -> bool {
        let mut backoff = Backoff::new();
        loop {
            if self.is_closing() {
                return false;
            }
            match self.create_group().await {
                Ok(()) => return true,
                Err(e) => {
                    let wait = backoff.step();
                    tracing::warn!(topic = %self.topic, group = %self.settings().consumer_id, "redis streams: cannot create the consumer group, retrying in {wait:?}: {e}");
                    if !self.sleep(wait).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Reads new entries with `XREADGROUP ... >` and queues them for the workers.
    async fn reader(self, tx: mpsc::Sender<Entry>) {
        let s = self.settings();
        // Its own connection: a blocking read would hold up every command pipelined behind it
        // on the shared one. The response timeout leaves room for the BLOCK time.
        let config = s.manager_config(s.read_timeout.saturating_mul(2));
        let mut conn = match ConnectionManager::new_lazy_with_config(
            self.inner.client.clone(),
            config,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(topic = %self.topic, "redis streams: cannot set up the read connection: {e}");
                return;
            }
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&s.consumer_id)
            .arg(&s.consumer_id)
            .arg("COUNT")
            .arg(s.queue_depth)
            .arg("BLOCK")
            .arg(u64::try_from(s.read_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.topic)
            .arg(">");
        let mut backoff = Backoff::new();
        loop {
            // Dropping an in-flight read on close may leave the entries it fetched pending; they
            // are reclaimed later, never lost.
            let read = tokio::select! {
                biased;
                _ = self.closed() => return,
                r = cmd.query_async::<Value>(&mut conn) => r,
            };
            match read {
                Ok(reply) => {
                    if backoff.reset() {
                        tracing::info!(topic = %self.topic, "redis streams: reading again");
                    }
                    for entry in self.entries_of_read(reply) {
                        if !self.enqueue(&tx, entry).await {
                            return;
                        }
                    }
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // The group went away with the data (a restart without persistence, or a
                    // deleted stream): recreate it from 0 so nothing published since is missed.
                    tracing::warn!(topic = %self.topic, group = %s.consumer_id, "redis streams: consumer group does not exist; recreating it");
                    if let Err(e) = self.create_group().await {
                        let wait = backoff.step();
                        tracing::warn!(topic = %self.topic, "redis streams: cannot recreate the consumer group, retrying in {wait:?}: {e}");
                        if !self.sleep(wait).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let wait = backoff.step();
                    tracing::warn!(topic = %self.topic, attempt = backoff.failures, "redis streams: error reading from stream, retrying in {wait:?}: {e}");
                    if !self.sleep(wait).await {
                        return;
                    }
                }
            }
        }
    }

    /// Queues one entry, waiting while the queue is full; false if closed first.
    async fn enqueue(&self, tx: &mpsc::Sender<Entry>, entry: Entry) -> bool {
        tokio::select! {
            biased;
            _ = self.closed() => false,
            sent = tx.send(entry) => sent.is_ok(),
        }
    }

    /// Every `redeliverInterval`, claims entries pending longer than `processingTimeout` (read
    /// but never acked: a crashed sidecar, a handler past its deadline, a shutdown) and queues
    /// them again.
    async fn reclaimer(self, tx: mpsc::Sender<Entry>) {
        let mut tick = tokio::time::interval(self.settings().redeliver_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The first tick is immediate: entries left by a previous run are picked up at once.
            tokio::select! {
                biased;
                _ = self.closed() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.reclaim(&tx).await {
                tracing::warn!(topic = %self.topic, "redis streams: error reclaiming pending entries: {e}");
            }
        }
    }

    async fn reclaim(&self, tx: &mpsc::Sender<Entry>) -> Result<(), redis::RedisError> {
        let s = self.settings();
        let min_idle = u64::try_from(s.processing_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.inner.conn.clone();
        loop {
            if self.is_closing() {
                return Ok(());
            }
            // Like contrib, look at the oldest `queueDepth` pending entries only.
            let pending: Value = redis::cmd("XPENDING")
                .arg(&self.topic)
                .arg(&s.consumer_id)
                .arg("-")
                .arg("+")
                .arg(s.queue_depth)
                .query_async(&mut conn)
                .await?;
            let ids: Vec<String> = pending_idle_ids(&pending, min_idle);
            if ids.is_empty() {
                return Ok(());
            }
            // XCLAIM re-checks the idle time on the server, so an entry another replica (or our
            // own reader) touched since XPENDING is skipped rather than delivered twice. A claim
            // resets the idle time, which is what ends this loop.
            let claimed: Value = redis::cmd("XCLAIM")
                .arg(&self.topic)
                .arg(&s.consumer_id)
                .arg(&s.consumer_id)
                .arg(min_idle)
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
            let entries = self.entries_of_list(&claimed);
            // Entries deleted from the stream are dropped from the PEL by XCLAIM itself
            // (Redis ≥ 7); without progress, stop rather than spin.
            if entries.is_empty() {
                return Ok(());
            }
            tracing::info!(topic = %self.topic, count = entries.len(), "redis streams: redelivering pending entries");
            for entry in entries {
                if !self.enqueue(tx, entry).await {
                    return Ok(());
                }
            }
        }
    }

    /// Takes entries from the queue, runs the handler, acks when the outcome is final.
    async fn worker<H: Handler>(self, rx: Arc<Mutex<mpsc::Receiver<Entry>>>, handler: Arc<H>) {
        loop {
            // Once closing, queued entries are left alone: they are pending in Redis already and
            // a later run reclaims them, so shutdown waits only for what is in flight.
            let next = tokio::select! {
                biased;
                _ = self.closed() => None,
                e = async { rx.lock().await.recv().await } => e,
            };
            let Some(entry) = next else {
                return;
            };
            self.process(entry, handler.as_ref()).await;
        }
    }

    async fn process<H: Handler>(&self, entry: Entry, handler: &H) {
        let s = self.settings();
        let started = Instant::now();
        // As contrib's handler context: with reclaim on, the handling has `processingTimeout` to
        // finish; past it the delivery is abandoned and left for the reclaimer.
        let outcome = if s.reclaim_enabled() {
            tokio::time::timeout(s.processing_timeout, handler.handle(entry.msg))
                .await
                .ok()
        } else {
            Some(handler.handle(entry.msg).await)
        };
        let final_outcome = match outcome {
            Some(Ok(())) => true,
            Some(Err(_)) => {
                let expired = s.reclaim_enabled() && started.elapsed() >= s.processing_timeout;
                !expired && !self.is_closing()
            }
            None => false,
        };
        if !final_outcome {
            tracing::warn!(topic = %self.topic, id = %entry.id, "redis streams: message not processed; it stays pending for redelivery");
            return;
        }
        let mut conn = self.inner.conn.clone();
        let acked = redis::cmd("XACK")
            .arg(&self.topic)
            .arg(&s.consumer_id)
            .arg(&entry.id)
            .query_async::<i64>(&mut conn)
            .await;
        if let Err(e) = acked {
            // The entry stays pending and is redelivered after processingTimeout: a duplicate,
            // never a loss.
            tracing::error!(topic = %self.topic, id = %entry.id, "redis streams: error acknowledging message: {e}");
        }
    }

    /// Entries of an `XREADGROUP` reply: nil on timeout, else `[[stream, [entry...]]...]`.
    fn entries_of_read(&self, reply: Value) -> Vec<Entry> {
        let streams = match reply {
            Value::Array(streams) => streams,
            Value::Map(pairs) => pairs
                .into_iter()
                .map(|(k, v)| Value::Array(vec![k, v]))
                .collect(),
            _ => return Vec::new(),
        };
        streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(parts) if parts.len() == 2 => Some(self.entries_of_list(&parts[1])),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Entries of a list reply (`XREADGROUP` per stream, `XCLAIM`): `[[id, [field, value...]]...]`.
    fn entries_of_list(&self, list: &Value) -> Vec<Entry> {
        let Value::Array(items) = list else {
            return Vec::new();
        };
        items.iter().filter_map(|i| self.entry(i)).collect()
    }

    fn entry(&self, item: &Value) -> Option<Entry> {
        let Value::Array(parts) = item else {
            return None;
        };
        let id = text(parts.first()?)?;
        let mut data = Bytes::new();
        let mut metadata = BTreeMap::new();
        // Fields are nil for an entry deleted from the stream while pending; it is then
        // delivered empty, as contrib does.
        if let Some(Value::Array(fields)) = parts.get(1) {
            for pair in fields.chunks(2) {
                let [k, v] = pair else { continue };
                match text(k).as_deref() {
                    Some("data") => data = Bytes::from(bytes_of(v).unwrap_or_default()),
                    Some("metadata") => {
                        let raw = bytes_of(v).unwrap_or_default();
                        match serde_json::from_slice::<BTreeMap<String, String>>(&raw) {
                            Ok(m) => metadata = m,
                            Err(e) => {
                                tracing::warn!(topic = %self.topic, %id, "redis streams: could not read the metadata of message: {e}");
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(Entry {
            id,
            msg: Message {
                data,
                metadata: Arc::new(metadata),
            },
        })
    }
}

/// Ids of an extended `XPENDING` reply (`[[id, consumer, idle-ms, deliveries]...]`) idle at least
/// `min_idle` milliseconds.
fn pending_idle_ids(reply: &Value, min_idle: u64) -> Vec<String> {
    let Value::Array(rows) = reply else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| match row {
            Value::Array(cols) if cols.len() >= 3 => {
                let idle = match &cols[2] {
                    Value::Int(n) => u64::try_from(*n).ok()?,
                    other => text(other)?.parse().ok()?,
                };
                (idle >= min_idle).then(|| text(&cols[0])).flatten()
            }
            _ => None,
        })
        .collect()
}

fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    bytes_of(v).and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<(Settings, Vec<String>), BrokerError> {
        let mut all = vec![("redisHost", "localhost:6379")];
        all.extend_from_slice(pairs);
        Settings::parse(&md(&all), "checkout")
    }

    /// `expect` is the Debug of the one field the pair sets, or the error text.
    fn check(pair: (&str, &str), field: fn(&Settings) -> String, expect: &str) {
        let got = match parse(&[pair]) {
            Ok((s, _)) => field(&s),
            Err(e) => format!("error: {e} [{}]", e.key_path()),
        };
        assert_eq!(got, expect, "{pair:?}");
    }

    #[test]
    fn defaults_as_contrib() {
        let (s, warnings) = parse(&[]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.host, "localhost");
        assert_eq!(s.port, 6379);
        assert_eq!(s.consumer_id, "checkout");
        assert_eq!(s.processing_timeout, Duration::from_secs(60));
        assert_eq!(s.redeliver_interval, Duration::from_secs(15));
        assert_eq!(s.queue_depth, 100);
        assert_eq!(s.concurrency, 10);
        assert_eq!(s.max_len_approx, None);
        assert_eq!(s.db, 0);
        assert_eq!(s.read_timeout, Duration::from_secs(3));
        assert!(s.reclaim_enabled());
    }

    #[test]
    fn durations_with_units_or_bare_milliseconds() {
        let pt = |s: &Settings| format!("{:?}", s.processing_timeout);
        let ri = |s: &Settings| format!("{:?}", s.redeliver_interval);
        check(("processingTimeout", "30000"), pt, "30s");
        check(("processingTimeout", "1s"), pt, "1s");
        check(("processingTimeout", "1m30s"), pt, "90s");
        check(("processingTimeout", "0"), pt, "0ns");
        check(("processingTimeout", ""), pt, "60s");
        check(("redeliverInterval", "200ms"), ri, "15s");
        check(("redeliverInterval", "250"), ri, "250ms");
        check(
            ("processingTimeout", "5 lots"),
            pt,
            "error: invalid value \"5 lots\" for processingTimeout: expected a duration such as \
             500ms or 1m30s, or a number of milliseconds [spec.metadata.processingTimeout]",
        );
        check(("redeliverInterval", "-1s"), ri, "15s");
        let (_, warnings) = parse(&[("redeliverInterval", "500ms")]).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("redeliverInterval \"500ms\" is ignored")),
            "{warnings:?}"
        );
        let (s, _) = parse(&[("redeliverInterval", "0")]).unwrap();
        assert!(!s.reclaim_enabled());
    }

    #[test]
    fn numbers_and_flags() {
        let c = |s: &Settings| s.concurrency.to_string();
        check(("concurrency", "1"), c, "1");
        check(
            ("concurrency", "abc"),
            c,
            "error: invalid value \"abc\" for concurrency: expected a positive integer \
             [spec.metadata.concurrency]",
        );
        check(
            ("concurrency", "0"),
            c,
            "error: invalid value \"0\" for concurrency: expected a positive integer \
             [spec.metadata.concurrency]",
        );
        check(
            ("queueDepth", "-5"),
            |s| s.queue_depth.to_string(),
            "error: invalid value \"-5\" for queueDepth: expected a positive integer \
             [spec.metadata.queueDepth]",
        );
        let ml = |s: &Settings| format!("{:?}", s.max_len_approx);
        check(("maxLenApprox", "1000"), ml, "Some(1000)");
        check(("maxLenApprox", "0"), ml, "None");
        check(("maxLenApprox", "-1"), ml, "None");
        check(("redisDB", "3"), |s| s.db.to_string(), "3");
        check(("enableTLS", "false"), |s| s.host.clone(), "localhost");
        check(
            ("enableTLS", "true"),
            |s| s.host.clone(),
            "error: invalid value \"true\" for enableTLS: TLS connections to Redis are not \
             supported by refsidecar [spec.metadata.enableTLS]",
        );
        check(
            ("enableTLS", "yes please"),
            |s| s.host.clone(),
            "error: invalid value \"yes please\" for enableTLS: expected true or false \
             [spec.metadata.enableTLS]",
        );
        check(
            ("redisType", "cluster"),
            |s| s.host.clone(),
            "error: invalid value \"cluster\" for redisType: only `node` is supported by \
             refsidecar (no cluster mode) [spec.metadata.redisType]",
        );
        check(("redisType", "node"), |s| s.host.clone(), "localhost");
        check(
            ("consumerID", "group-a"),
            |s| s.consumer_id.clone(),
            "group-a",
        );
        check(("consumerID", "  "), |s| s.consumer_id.clone(), "checkout");
        check(("CONCURRENCY", "2"), c, "2");
    }

    #[test]
    fn hosts_and_ports() {
        let hp = |raw: &str, port: Option<&str>| {
            let mut pairs = vec![("redisHost", raw)];
            if let Some(p) = port {
                pairs.push(("redisPort", p));
            }
            match Settings::parse(&md(&pairs), "a") {
                Ok((s, _)) => format!("{}:{}", s.host, s.port),
                Err(e) => format!("error [{}]", e.key_path()),
            }
        };
        assert_eq!(hp("localhost:6380", None), "localhost:6380");
        assert_eq!(hp("localhost", None), "localhost:6379");
        assert_eq!(hp("localhost", Some("7000")), "localhost:7000");
        assert_eq!(hp("localhost:7000", Some("7000")), "localhost:7000");
        assert_eq!(
            hp("localhost:7000", Some("7001")),
            "error [spec.metadata.redisHost]"
        );
        assert_eq!(hp("[::1]:7000", None), "::1:7000");
        assert_eq!(hp("a:1,b:2", None), "error [spec.metadata.redisHost]");
        assert_eq!(hp("localhost:x", None), "error [spec.metadata.redisHost]");
        let err = Settings::parse(&md(&[("concurrency", "1")]), "a").unwrap_err();
        assert_eq!(err.to_string(), "required metadata redisHost is missing");
        assert_eq!(err.key_path(), "spec.metadata.redisHost");
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let (_, warnings) = parse(&[
            ("redisPassword", "secret"),
            ("poolSize", "20"),
            ("colour", "blue"),
            ("subscriptionScopes", "a=b"),
        ])
        .unwrap();
        assert_eq!(
            warnings,
            [
                "spec.metadata colour is ignored by pubsub.redis",
                "spec.metadata poolSize is accepted but has no effect in refsidecar's pubsub.redis",
            ]
        );
    }

    #[test]
    fn password_is_not_in_debug() {
        let (s, _) = parse(&[("redisPassword", "hunter2")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn pending_reply_filtering() {
        let row = |id: &str, idle: i64| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::BulkString(b"c".to_vec()),
                Value::Int(idle),
                Value::Int(1),
            ])
        };
        let reply = Value::Array(vec![row("1-0", 5000), row("2-0", 10), row("3-0", 1000)]);
        assert_eq!(pending_idle_ids(&reply, 1000), ["1-0", "3-0"]);
        assert!(pending_idle_ids(&Value::Nil, 0).is_empty());
    }
}

//! The component's metadata, validated into [`Settings`] with every key contrib reads and the
//! errors and warnings daprd would give.

use super::*;
use crate::secret::Secret;

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

/// The validated metadata of one `pubsub.redis` component. Its derived `Debug` is safe to log:
/// the password is a [`Secret`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Host name or address from `redisHost`.
    pub host: String,
    /// Port from `redisHost` or `redisPort` (default 6379).
    pub port: u16,
    /// `redisUsername` (ACL, Redis ≥ 6).
    pub username: Option<String>,
    /// `redisPassword` (redacted in `Debug`).
    pub password: Option<Secret>,
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

impl Settings {
    /// Validates component metadata. `app_id` is the default `consumerID`. Unknown keys come back
    /// as warnings; a bad value is an error naming the key.
    pub fn parse(
        md: &BTreeMap<String, String>,
        app_id: &str,
    ) -> Result<(Settings, Vec<String>), BrokerError> {
        let m = Lookup(md);
        let mut warnings: Vec<String> = unsupported_keys(md, SUPPORTED_KEYS)
            .map(|k| {
                if is_one_of(k, TUNING_KEYS) {
                    format!(
                        "spec.metadata {k} is accepted but has no effect in refsidecar's pubsub.redis"
                    )
                } else {
                    format!("spec.metadata {k} is ignored by pubsub.redis")
                }
            })
            .collect();

        m.refuse_true(
            "enableTLS",
            "TLS connections to Redis are not supported by refsidecar",
        )?;
        m.refuse_true("failover", "Redis Sentinel is not supported by refsidecar")?;
        m.only(
            "redisType",
            "node",
            "only `node` is supported by refsidecar (no cluster mode)",
        )?;
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
        let max_len_approx = m
            .parsed::<i64>("maxLenApprox", "expected an integer")?
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0);
        let db = m
            .parsed("redisDB", "expected a database number")?
            .unwrap_or(0);
        // As in go-redis, -1 disables retries.
        let max_retries = m
            .parsed::<i64>("redisMaxRetries", "expected an integer")?
            .map_or(3, |n| usize::try_from(n).unwrap_or(0));
        let consumer_id = match m.get("consumerID") {
            Some(c) if !c.trim().is_empty() => c.to_owned(),
            _ => app_id.to_owned(),
        };
        let settings = Settings {
            host,
            port,
            username: m.get("redisUsername").map(str::to_owned),
            password: m.get("redisPassword").map(Secret::from),
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
    pub(super) fn reclaim_enabled(&self) -> bool {
        !self.processing_timeout.is_zero() && !self.redeliver_interval.is_zero()
    }

    pub(super) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub(super) fn client(&self) -> Result<Client, redis::RedisError> {
        let mut redis = RedisConnectionInfo::default().set_db(self.db);
        if let Some(p) = self
            .password
            .as_ref()
            .map(Secret::expose)
            .filter(|p| !p.is_empty())
        {
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
    pub(super) fn manager_config(&self, response: Duration) -> ConnectionManagerConfig {
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
}

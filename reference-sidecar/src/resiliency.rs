//! Resiliency policies as daprd applies them to pub/sub: retry arithmetic, status matching,
//! per-attempt timeouts, and the policy lookup for a component's inbound and outbound side.
//!
//! Loading the YAML lives in `resources`; running a delivery under a policy lives in `delivery`.

use std::collections::BTreeMap;
use std::time::Duration;

/// How long to wait between attempts.
#[derive(Debug, Clone, PartialEq)]
pub enum Backoff {
    /// The same wait every time (daprd default: 5 s).
    Constant(Duration),
    /// Starts at 500 ms, grows by 1.5, ±50 % jitter, capped at `max_interval` (default 60 s).
    Exponential {
        /// The cap on one wait.
        max_interval: Duration,
    },
}

/// Exponential backoff constants fixed by daprd (not configurable in the Resiliency CRD).
pub const EXP_INITIAL: Duration = Duration::from_millis(500);
/// Growth factor between exponential waits.
pub const EXP_MULTIPLIER: f64 = 1.5;
/// Jitter fraction applied to each exponential wait.
pub const EXP_JITTER: f64 = 0.5;
/// The hidden total-elapsed limit of exponential retries, even with `maxRetries: -1`.
pub const EXP_MAX_ELAPSED: Duration = Duration::from_secs(15 * 60);

/// Status-code allow-lists: a code outside a non-empty list makes the error permanent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matching {
    http: Vec<(u16, u16)>,
    grpc: Vec<(u16, u16)>,
}

impl Matching {
    /// Parses `"429,500-599"` style lists for HTTP and gRPC codes.
    pub fn parse(http: Option<&str>, grpc: Option<&str>) -> Result<Matching, String> {
        Ok(Matching {
            http: parse_code_list(http, 100, 599)?,
            grpc: parse_code_list(grpc, 0, 16)?,
        })
    }

    /// Whether an error with this code may be retried: 0–16 is a gRPC status code, 100–599
    /// an HTTP status (daprd tells them apart by range); any other code never is.
    pub fn allows(&self, code: u16) -> bool {
        let list = match code {
            0..=16 => &self.grpc,
            100..=599 => &self.http,
            _ => return false,
        };
        list.is_empty() || list.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

fn parse_code_list(list: Option<&str>, min: u16, max: u16) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in list
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u16 = lo
            .parse()
            .map_err(|_| format!("{part:?} is not a status code or range"))?;
        let hi: u16 = hi
            .parse()
            .map_err(|_| format!("{part:?} is not a status code or range"))?;
        if lo > hi || lo < min || hi > max {
            return Err(format!("{part:?} is outside {min}-{max}"));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// A named retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The policy's name in the Resiliency resource.
    pub name: String,
    /// Spacing between attempts.
    pub backoff: Backoff,
    /// `None` = unlimited (`maxRetries: -1` or omitted).
    pub max_retries: Option<u32>,
    /// Which coded errors may be retried.
    pub matching: Matching,
}

impl RetryPolicy {
    /// Total attempts allowed, `None` when unlimited: `maxRetries: N` gives N+1.
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_retries.map(|n| n.saturating_add(1))
    }

    /// The wait before attempt `next_attempt` (2 for the first retry), or `None` when the policy is spent.
    /// `elapsed` is the time since the first attempt started.
    pub fn next_wait(&self, next_attempt: u32, elapsed: Duration, jitter: f64) -> Option<Duration> {
        if let Some(max) = self.max_attempts()
            && next_attempt > max
        {
            return None;
        }
        match &self.backoff {
            Backoff::Constant(d) => Some(*d),
            Backoff::Exponential { max_interval } => {
                if elapsed >= EXP_MAX_ELAPSED {
                    return None;
                }
                Some(exponential_wait(next_attempt, *max_interval, jitter))
            }
        }
    }
}

/// The exponential wait before `next_attempt`; `jitter` in [0, 1) picks a point in the ±50 % band.
pub fn exponential_wait(next_attempt: u32, max_interval: Duration, jitter: f64) -> Duration {
    // `as i32` would wrap past i32::MAX into a negative exponent.
    let retries_so_far = i32::try_from(next_attempt.saturating_sub(2)).unwrap_or(i32::MAX);
    let base = (EXP_INITIAL.as_secs_f64() * EXP_MULTIPLIER.powi(retries_so_far))
        .min(max_interval.as_secs_f64());
    let delta = EXP_JITTER * base;
    let lo = base - delta;
    let wait = lo + jitter.clamp(0.0, 1.0) * (2.0 * delta);
    // The float round trip of a `max_interval` near `Duration::MAX` can land just above it;
    // the cap itself is then the wait (`from_secs_f64` would panic).
    Duration::try_from_secs_f64(wait.min(max_interval.as_secs_f64()).max(0.0))
        .unwrap_or(max_interval)
}

/// The policies that apply to one direction of one component.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectionPolicy {
    /// Retries; `None` = a single attempt.
    pub retry: Option<RetryPolicy>,
    /// Per-attempt timeout; `None` = no timeout.
    pub timeout: Option<Duration>,
}

/// Everything loaded from all Resiliency resources in scope.
#[derive(Debug, Clone, Default)]
pub struct Resiliency {
    pub(crate) retries: BTreeMap<String, RetryPolicy>,
    pub(crate) timeouts: BTreeMap<String, Duration>,
    pub(crate) components: BTreeMap<String, ComponentTargets>,
}

/// Policy names a Resiliency resource attaches to one component.
#[derive(Debug, Clone, Default)]
pub(crate) struct ComponentTargets {
    pub(crate) inbound: Option<Names>,
    pub(crate) outbound: Option<Names>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    pub(crate) retry: Option<String>,
    pub(crate) timeout: Option<String>,
}

/// Delivery (sidecar → app) or publish (sidecar → broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Deliveries to the app.
    Inbound,
    /// Publishes to the broker.
    Outbound,
}

impl Resiliency {
    /// The policy for `component` in `direction`, resolved as daprd does: a named target wins
    /// outright (an empty side means no policy); otherwise the built-in default names are tried.
    pub fn resolve(&self, component: &str, direction: Direction) -> DirectionPolicy {
        if let Some(target) = self.components.get(component) {
            let names = match direction {
                Direction::Inbound => target.inbound.as_ref(),
                Direction::Outbound => target.outbound.as_ref(),
            };
            return DirectionPolicy {
                retry: names
                    .and_then(|n| n.retry.as_ref())
                    .and_then(|n| self.retries.get(n))
                    .cloned(),
                timeout: names
                    .and_then(|n| n.timeout.as_ref())
                    .and_then(|n| self.timeouts.get(n))
                    .copied(),
            };
        }
        let side = match direction {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        };
        let chain = |kind: &str| {
            [
                format!("DefaultPubsubComponent{side}{kind}Policy"),
                format!("DefaultComponent{side}{kind}Policy"),
                format!("DefaultComponent{kind}Policy"),
                format!("Default{kind}Policy"),
            ]
        };
        DirectionPolicy {
            retry: chain("Retry")
                .iter()
                .find_map(|n| self.retries.get(n))
                .cloned(),
            timeout: chain("Timeout")
                .iter()
                .find_map(|n| self.timeouts.get(n))
                .copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(ms: u64, max_retries: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            name: "p".into(),
            backoff: Backoff::Constant(Duration::from_millis(ms)),
            max_retries,
            matching: Matching::default(),
        }
    }

    #[test]
    fn max_retries_n_gives_n_plus_one_attempts() {
        let p = constant(10, Some(2));
        assert_eq!(p.max_attempts(), Some(3));
        assert!(p.next_wait(2, Duration::ZERO, 0.5).is_some());
        assert!(p.next_wait(3, Duration::ZERO, 0.5).is_some());
        assert!(p.next_wait(4, Duration::ZERO, 0.5).is_none());
        let zero = constant(10, Some(0));
        assert!(zero.next_wait(2, Duration::ZERO, 0.5).is_none());
        let unlimited = constant(10, None);
        assert!(
            unlimited
                .next_wait(1000, Duration::from_secs(3600), 0.5)
                .is_some()
        );
    }

    #[test]
    fn exponential_grows_with_jitter_and_cap() {
        let max = Duration::from_secs(2);
        assert_eq!(exponential_wait(2, max, 0.5), Duration::from_millis(500));
        assert_eq!(exponential_wait(3, max, 0.5), Duration::from_millis(750));
        assert_eq!(exponential_wait(2, max, 0.0), Duration::from_millis(250));
        assert_eq!(exponential_wait(2, max, 1.0), Duration::from_millis(750));
        assert!(exponential_wait(20, max, 1.0) <= max);
        // Extreme inputs saturate instead of panicking.
        assert_eq!(
            exponential_wait(u32::MAX, Duration::MAX, 0.5),
            Duration::MAX
        );
        assert_eq!(exponential_wait(u32::MAX, max, f64::NAN), max);
        assert_eq!(exponential_wait(0, Duration::ZERO, 1.0), Duration::ZERO);
        let p = RetryPolicy {
            name: "e".into(),
            backoff: Backoff::Exponential { max_interval: max },
            max_retries: None,
            matching: Matching::default(),
        };
        assert!(
            p.next_wait(2, EXP_MAX_ELAPSED, 0.5).is_none(),
            "15 minute cap"
        );
    }

    #[test]
    fn matching_lists() {
        let m = Matching::parse(Some("429, 500-503"), None).unwrap();
        assert!(m.allows(429) && m.allows(502) && !m.allows(504) && !m.allows(400));
        // gRPC codes are judged against the gRPC list, which is empty here.
        assert!(m.allows(4) && m.allows(14));
        assert!(Matching::default().allows(418));
        assert!(Matching::parse(Some("abc"), None).is_err());
        assert!(Matching::parse(Some("600"), None).is_err());
        let g = Matching::parse(Some("500"), Some("1-4,8")).unwrap();
        assert!(g.allows(4) && g.allows(8) && !g.allows(14) && !g.allows(503));
    }

    #[test]
    fn resolution_prefers_named_target_then_defaults() {
        let mut r = Resiliency::default();
        r.retries.insert("named".into(), constant(1, Some(1)));
        r.retries
            .insert("DefaultRetryPolicy".into(), constant(2, Some(2)));
        r.components.insert(
            "ps".into(),
            ComponentTargets {
                inbound: Some(Names {
                    retry: Some("named".into()),
                    timeout: None,
                }),
                outbound: None,
            },
        );
        assert_eq!(r.resolve("ps", Direction::Inbound).retry.unwrap().name, "p");
        assert!(
            r.resolve("ps", Direction::Outbound).retry.is_none(),
            "present target, empty side"
        );
        assert_eq!(
            r.resolve("other", Direction::Inbound)
                .retry
                .unwrap()
                .max_retries,
            Some(2)
        );
    }
}

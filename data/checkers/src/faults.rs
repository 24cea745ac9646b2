//! What faults did to delivery: fault windows, per-window metrics and a timeline.
//!
//! Owns pairing fault starts with their stops ([`windows`]), measuring each window
//! ([`window_metrics`]: time to recover, backlog drain, redelivery delay, duplicates, messages
//! lost that were acknowledged in or before it) and bucketing a run into a [`Timeline`] of
//! publish and delivery rates and end-to-end latency. It does not judge: loss and order are
//! judged by [`delivery`](crate::delivery) and [`ordering`](crate::ordering); this module
//! tells the reader *where* in the run things went wrong.
//!
//! Definitions, per window `[start, stop]` (times are microseconds since trial start):
//! - *backlog*: messages acknowledged before `stop` and not yet delivered at `stop`.
//! - *backlog drain*: from `stop` until the last backlog message was first delivered (`None`
//!   while some backlog message was never delivered).
//! - *time to recover*: from `stop` until the first delivery of a message published after
//!   `stop` (`None` when there is none).
//! - *redelivery delay*: for messages delivered in the window or after it (up to the next
//!   window) more than once, the largest gap between two consecutive deliveries.
//! - *lost*: acknowledged, never delivered, and acknowledged after the previous window's stop
//!   and before this window's next one; such a message is blamed on the nearest window.

use std::collections::BTreeMap;

use harness_history::{FaultPhase, History, MessageId, Phase};

/// One fault from its start to its stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    /// The fault kind, such as `latency` or `kill-sidecar`.
    pub kind: String,
    /// What it hit (a proxy, a process), if recorded.
    pub detail: Option<String>,
    /// When it took effect.
    pub start: u64,
    /// When it was healed; `None` when the history ends first.
    pub stop: Option<u64>,
}

/// Pairs every fault start with the next stop of the same kind and detail, in time order.
#[must_use]
pub fn windows(history: &History) -> Vec<FaultWindow> {
    let mut open: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
    let mut out: Vec<FaultWindow> = Vec::new();
    let mut faults: Vec<_> = history.faults().collect();
    faults.sort_by_key(|(at, _)| *at);
    for (at, f) in faults {
        let key = (f.kind.clone(), f.detail.clone());
        match f.phase {
            FaultPhase::Start => {
                open.entry(key).or_default().push(out.len());
                out.push(FaultWindow {
                    kind: f.kind.clone(),
                    detail: f.detail.clone(),
                    start: at,
                    stop: None,
                });
            }
            FaultPhase::Stop => {
                if let Some(i) = open.get_mut(&key).and_then(|v| {
                    if v.is_empty() {
                        None
                    } else {
                        Some(v.remove(0))
                    }
                }) && let Some(w) = out.get_mut(i)
                {
                    w.stop = Some(at);
                }
            }
        }
    }
    out
}

/// What one window did to delivery. See the module docs for definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowMetrics {
    /// The window.
    pub window: FaultWindow,
    /// Publishes acknowledged inside the window.
    pub acknowledged: usize,
    /// Publishes inside the window that failed or whose outcome is unknown.
    pub failed_publishes: usize,
    /// First deliveries inside the window.
    pub delivered: usize,
    /// Messages acknowledged before the stop and not yet delivered at the stop.
    pub backlog: usize,
    /// Microseconds from the stop until the backlog was delivered.
    pub backlog_drain: Option<u64>,
    /// Microseconds from the stop until a message published after it was delivered.
    pub time_to_recover: Option<u64>,
    /// Messages delivered more than once in or after the window (up to the next window).
    pub duplicated: usize,
    /// Messages first delivered in or after the window (up to the next window).
    pub delivered_after: usize,
    /// The largest gap between two deliveries of one message in or after the window.
    pub max_redelivery_delay: Option<u64>,
    /// Acknowledged messages never delivered, blamed on this window.
    pub lost: Vec<MessageId>,
}

impl WindowMetrics {
    /// Duplicated over delivered, in or after the window; 0 when nothing was delivered.
    #[must_use]
    pub fn duplicate_rate(&self) -> f64 {
        if self.delivered_after == 0 {
            0.0
        } else {
            self.duplicated as f64 / self.delivered_after as f64
        }
    }
}

/// When the last event of `history` happened (0 for an empty history).
fn last_event(history: &History) -> u64 {
    history
        .events()
        .iter()
        .map(|e| e.at_micros)
        .max()
        .unwrap_or(0)
}

/// Per message: when its publish was acknowledged (or first invoked), and when it arrived.
struct Messages {
    acked: BTreeMap<MessageId, u64>,
    invoked: BTreeMap<MessageId, u64>,
    failed: Vec<u64>,
    arrivals: BTreeMap<MessageId, Vec<u64>>,
}

fn messages(history: &History, routes: &[String]) -> Messages {
    let mut acked = BTreeMap::new();
    let mut invoked = BTreeMap::new();
    let mut failed = Vec::new();
    for (at, p) in history.publishes() {
        match p.phase {
            Phase::Invoke => {
                invoked.entry(p.msg.clone()).or_insert(at);
            }
            Phase::Ok => {
                acked.entry(p.msg.clone()).or_insert(at);
            }
            Phase::Fail | Phase::Info => failed.push(at),
        }
    }
    let mut arrivals: BTreeMap<MessageId, Vec<u64>> = BTreeMap::new();
    for (at, d) in history.deliveries() {
        if !routes.contains(&d.route) {
            continue;
        }
        if let Some(m) = &d.msg {
            arrivals.entry(m.clone()).or_default().push(at);
        }
    }
    for v in arrivals.values_mut() {
        v.sort_unstable();
    }
    Messages {
        acked,
        invoked,
        failed,
        arrivals,
    }
}

/// Measures every window of `history` on the subscription's `routes`.
#[must_use]
pub fn window_metrics(history: &History, routes: &[String]) -> Vec<WindowMetrics> {
    let ws = windows(history);
    let m = messages(history, routes);
    let end = last_event(history);
    let first = |id: &MessageId| m.arrivals.get(id).and_then(|v| v.first().copied());
    let mut out = Vec::with_capacity(ws.len());
    for (i, w) in ws.iter().enumerate() {
        let stop = w.stop.unwrap_or(end);
        let prev_stop = if i == 0 {
            0
        } else {
            ws.get(i - 1).map_or(0, |p| p.stop.unwrap_or(p.start))
        };
        let next_start = ws.get(i + 1).map_or(u64::MAX, |n| n.start);
        let inside = |t: u64| t >= w.start && t <= stop;
        let acknowledged = m.acked.values().filter(|&&t| inside(t)).count();
        let failed_publishes = m.failed.iter().filter(|&&t| inside(t)).count();
        let delivered = m
            .arrivals
            .values()
            .filter_map(|v| v.first())
            .filter(|&&t| inside(t))
            .count();
        let backlog: Vec<&MessageId> = m
            .acked
            .iter()
            .filter(|&(id, &t)| t <= stop && first(id).is_none_or(|d| d > stop))
            .map(|(id, _)| id)
            .collect();
        let backlog_drain = backlog
            .iter()
            .map(|id| first(id))
            .try_fold(stop, |acc, d| d.map(|d| acc.max(d)))
            .map(|last| last - stop);
        let time_to_recover = m
            .invoked
            .iter()
            .filter(|&(_, &t)| t >= stop)
            .filter_map(|(id, _)| first(id))
            .min()
            .map(|d| d.saturating_sub(stop));
        let mut duplicated = 0;
        let mut delivered_after = 0;
        let mut max_gap: Option<u64> = None;
        for times in m.arrivals.values() {
            let Some(&t0) = times.first() else { continue };
            if t0 < w.start || t0 >= next_start {
                continue;
            }
            delivered_after += 1;
            if times.len() > 1 {
                duplicated += 1;
                let gap = times.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
                max_gap = Some(max_gap.map_or(gap, |g: u64| g.max(gap)));
            }
        }
        let lost = m
            .acked
            .iter()
            .filter(|&(id, &t)| t > prev_stop && t < next_start && !m.arrivals.contains_key(id))
            .map(|(id, _)| id.clone())
            .collect();
        out.push(WindowMetrics {
            window: w.clone(),
            acknowledged,
            failed_publishes,
            delivered,
            backlog: backlog.len(),
            backlog_drain,
            time_to_recover,
            duplicated,
            delivered_after,
            max_redelivery_delay: max_gap,
            lost,
        });
    }
    out
}

/// One bucket of a [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    /// Bucket start, microseconds since trial start.
    pub start: u64,
    /// Publishes acknowledged in the bucket.
    pub acknowledged: u32,
    /// Publishes that failed or timed out in the bucket.
    pub failed: u32,
    /// First deliveries in the bucket.
    pub delivered: u32,
    /// Deliveries after the first (redeliveries, duplicates) in the bucket.
    pub redelivered: u32,
    /// Largest end-to-end latency (publish invoked → first delivery) of the messages first
    /// delivered in the bucket, in microseconds.
    pub max_latency: Option<u64>,
    /// Median of the same.
    pub p50_latency: Option<u64>,
}

/// A run cut into equal buckets, with the fault windows, for plotting.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Bucket width in microseconds.
    pub bucket: u64,
    /// The buckets, from time 0 to the last event.
    pub buckets: Vec<Bucket>,
    /// The fault windows.
    pub windows: Vec<FaultWindow>,
}

/// Buckets `history` (deliveries on `routes`) into `bucket`-wide slices. A zero width is
/// treated as one millisecond.
#[must_use]
pub fn timeline(history: &History, routes: &[String], bucket: u64) -> Timeline {
    let bucket = bucket.max(1_000);
    let m = messages(history, routes);
    let end = last_event(history);
    let n = usize::try_from(end / bucket + 1)
        .unwrap_or(usize::MAX)
        .min(100_000);
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start: i as u64 * bucket,
            ..Bucket::default()
        })
        .collect();
    let slot = |t: u64| usize::try_from(t / bucket).ok().filter(|&i| i < n);
    for &t in m.acked.values() {
        if let Some(b) = slot(t).and_then(|i| buckets.get_mut(i)) {
            b.acknowledged += 1;
        }
    }
    for &t in &m.failed {
        if let Some(b) = slot(t).and_then(|i| buckets.get_mut(i)) {
            b.failed += 1;
        }
    }
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
    for (id, times) in &m.arrivals {
        for (k, &t) in times.iter().enumerate() {
            let Some(i) = slot(t) else { continue };
            let Some(b) = buckets.get_mut(i) else {
                continue;
            };
            if k == 0 {
                b.delivered += 1;
                if let (Some(&sent), Some(l)) = (m.invoked.get(id), latencies.get_mut(i)) {
                    l.push(t.saturating_sub(sent));
                }
            } else {
                b.redelivered += 1;
            }
        }
    }
    for (b, mut l) in buckets.iter_mut().zip(latencies) {
        if l.is_empty() {
            continue;
        }
        l.sort_unstable();
        b.max_latency = l.last().copied();
        b.p50_latency = l.get(l.len() / 2).copied();
    }
    Timeline {
        bucket,
        buckets,
        windows: windows(history),
    }
}

#[cfg(test)]
mod tests {
    use harness_history::{Delivery, FaultEvent, Publish};

    use super::*;

    fn fault(h: &mut History, at: u64, kind: &str, phase: FaultPhase) {
        h.record(
            at,
            FaultEvent {
                kind: kind.to_owned(),
                phase,
                detail: Some("proxy-a".to_owned()),
            },
        );
    }

    fn publish(h: &mut History, at: u64, msg: &str, phase: Phase) {
        h.record(at, Publish::new(msg, "orders", Phase::Invoke));
        h.record(at + 100, Publish::new(msg, "orders", phase));
    }

    fn deliver(h: &mut History, at: u64, msg: &str) {
        h.record(at, Delivery::new(msg, "/orders", 1, "SUCCESS"));
    }

    fn routes() -> Vec<String> {
        vec!["/orders".to_owned()]
    }

    #[test]
    fn windows_pair_starts_with_stops() {
        let mut h = History::new();
        fault(&mut h, 10, "latency", FaultPhase::Start);
        fault(&mut h, 20, "down", FaultPhase::Start);
        fault(&mut h, 30, "latency", FaultPhase::Stop);
        fault(&mut h, 40, "latency", FaultPhase::Start);
        let w = windows(&h);
        let shape: Vec<_> = w
            .iter()
            .map(|w| (w.kind.as_str(), w.start, w.stop))
            .collect();
        assert_eq!(
            shape,
            [
                ("latency", 10, Some(30)),
                ("down", 20, None),
                ("latency", 40, None)
            ]
        );
    }

    #[test]
    fn metrics_measure_backlog_recovery_duplicates_and_loss() {
        let mut h = History::new();
        publish(&mut h, 0, "m1", Phase::Ok);
        deliver(&mut h, 500, "m1");
        fault(&mut h, 1_000, "kill-sidecar", FaultPhase::Start);
        publish(&mut h, 1_100, "m2", Phase::Ok);
        publish(&mut h, 1_200, "m3", Phase::Fail);
        publish(&mut h, 1_300, "m4", Phase::Ok);
        fault(&mut h, 2_000, "kill-sidecar", FaultPhase::Stop);
        publish(&mut h, 2_100, "m5", Phase::Ok);
        deliver(&mut h, 2_500, "m2");
        deliver(&mut h, 2_600, "m5");
        deliver(&mut h, 2_900, "m2");
        let all = window_metrics(&h, &routes());
        let [m] = all.as_slice() else {
            panic!("one window expected, got {all:?}")
        };
        assert_eq!(m.acknowledged, 2);
        assert_eq!(m.failed_publishes, 1);
        assert_eq!(m.delivered, 0);
        assert_eq!(m.backlog, 2, "m2 and m4");
        assert_eq!(m.backlog_drain, None, "m4 never arrived");
        assert_eq!(m.time_to_recover, Some(600), "m5 at 2600");
        assert_eq!(m.duplicated, 1);
        assert_eq!(m.delivered_after, 2);
        assert_eq!(m.max_redelivery_delay, Some(400));
        assert_eq!(m.lost, [MessageId::new("m4")]);
        assert!((m.duplicate_rate() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn backlog_drain_is_the_last_backlog_arrival() {
        let mut h = History::new();
        fault(&mut h, 0, "latency", FaultPhase::Start);
        publish(&mut h, 100, "m1", Phase::Ok);
        publish(&mut h, 200, "m2", Phase::Ok);
        fault(&mut h, 1_000, "latency", FaultPhase::Stop);
        deliver(&mut h, 1_200, "m2");
        deliver(&mut h, 1_700, "m1");
        let all = window_metrics(&h, &routes());
        assert_eq!(all.first().and_then(|m| m.backlog_drain), Some(700));
        assert!(all.first().is_some_and(|m| m.lost.is_empty()));
    }

    #[test]
    fn timeline_buckets_rates_and_latency() {
        let mut h = History::new();
        publish(&mut h, 0, "m1", Phase::Ok);
        publish(&mut h, 1_500, "m2", Phase::Ok);
        publish(&mut h, 1_600, "m3", Phase::Fail);
        deliver(&mut h, 800, "m1");
        deliver(&mut h, 2_500, "m2");
        deliver(&mut h, 2_600, "m2");
        let t = timeline(&h, &routes(), 1_000);
        let shape: Vec<_> = t
            .buckets
            .iter()
            .map(|b| {
                (
                    b.acknowledged,
                    b.failed,
                    b.delivered,
                    b.redelivered,
                    b.max_latency,
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (1, 0, 1, 0, Some(800)),
                (1, 1, 0, 0, None),
                (0, 0, 1, 1, Some(1_000))
            ]
        );
    }
}

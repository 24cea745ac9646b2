//! What one phase recorded about each of its messages, and the snapshot the statistics read.
//!
//! [`PhaseRecorder`] is shared by the workers (send and answer times, outcome) and the
//! receiving app (first receive time, receive count). Every slot is an atomic written without
//! locks; times are nanoseconds since the phase's `t0`, stored plus one so that zero means
//! "not yet". [`PhaseRecorder::snapshot`] turns it into plain [`PhaseData`], which is what
//! [`crate::stats`] analyses.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How a publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No answer recorded (the phase ended first).
    Pending,
    /// Accepted: HTTP 204, gRPC OK, or the broker's acknowledgement.
    Ok,
    /// Another HTTP status.
    Status(u16),
    /// A gRPC status other than OK.
    Grpc(i32),
    /// No answer within the request timeout.
    Timeout,
    /// The connection failed, or the broker client returned an error.
    Transport,
}

impl Outcome {
    fn encode(self) -> u32 {
        match self {
            Outcome::Pending => 0,
            Outcome::Ok => 1,
            Outcome::Timeout => 2,
            Outcome::Transport => 3,
            Outcome::Status(s) => 1000 + u32::from(s),
            Outcome::Grpc(c) => 2000 + c.clamp(0, 999) as u32,
        }
    }

    fn decode(v: u32) -> Outcome {
        match v {
            0 => Outcome::Pending,
            1 => Outcome::Ok,
            2 => Outcome::Timeout,
            1000..=1999 => Outcome::Status((v - 1000) as u16),
            2000..=2999 => Outcome::Grpc((v - 2000) as i32),
            _ => Outcome::Transport,
        }
    }

    /// The label errors are counted under in reports (`http 500`, `grpc 14`, `timeout`, ...).
    pub fn label(self) -> String {
        match self {
            Outcome::Pending => "no answer".to_owned(),
            Outcome::Ok => "ok".to_owned(),
            Outcome::Status(s) => format!("http {s}"),
            Outcome::Grpc(c) => format!("grpc {c}"),
            Outcome::Timeout => "timeout".to_owned(),
            Outcome::Transport => "transport".to_owned(),
        }
    }
}

/// The shared record of one phase.
#[derive(Debug)]
pub struct PhaseRecorder {
    t0: Instant,
    issued: Vec<AtomicU64>,
    answered: Vec<AtomicU64>,
    outcome: Vec<AtomicU32>,
    received: Vec<AtomicU64>,
    receive_count: Vec<AtomicU32>,
    /// Answers so far (any outcome), for progress.
    completed: AtomicU64,
    /// Messages received at least once.
    unique_received: AtomicU64,
    /// Deliveries whose marker names this phase but a sequence number out of range.
    unexpected: AtomicU64,
    /// Set by [`PhaseRecorder::wait_received`]: how many unique receives end the wait.
    want: AtomicU64,
    /// Wakes the drain wait when `unique_received` reaches `want`.
    reached: Notify,
}

fn stamp(t0: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(t0).as_nanos() as u64 + 1
}

impl PhaseRecorder {
    /// A recorder for `count` messages whose schedule starts at `t0`.
    pub fn new(t0: Instant, count: u64) -> PhaseRecorder {
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        let zeros64 = |n| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        let zeros32 = |n| (0..n).map(|_| AtomicU32::new(0)).collect::<Vec<_>>();
        PhaseRecorder {
            t0,
            issued: zeros64(n),
            answered: zeros64(n),
            outcome: zeros32(n),
            received: zeros64(n),
            receive_count: zeros32(n),
            completed: AtomicU64::new(0),
            unique_received: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            want: AtomicU64::new(u64::MAX),
            reached: Notify::new(),
        }
    }

    /// The phase's `t0`.
    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// How many messages the phase has.
    pub fn len(&self) -> u64 {
        self.issued.len() as u64
    }

    /// Whether the phase has no messages.
    pub fn is_empty(&self) -> bool {
        self.issued.is_empty()
    }

    /// Message `i` left a worker at `at`.
    pub fn issued(&self, i: u64, at: Instant) {
        if let Some(slot) = self.issued.get(i as usize) {
            slot.store(stamp(self.t0, at), Ordering::Relaxed);
        }
    }

    /// Message `i` was answered at `at` with `outcome`.
    pub fn answered(&self, i: u64, at: Instant, outcome: Outcome) {
        let i = i as usize;
        if let (Some(t), Some(o)) = (self.answered.get(i), self.outcome.get(i)) {
            t.store(stamp(self.t0, at), Ordering::Relaxed);
            o.store(outcome.encode(), Ordering::Relaxed);
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Message `seq` reached the subscriber at `at`.
    pub fn received(&self, seq: u64, at: Instant) {
        let i = seq as usize;
        let (Some(t), Some(n)) = (self.received.get(i), self.receive_count.get(i)) else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if n.fetch_add(1, Ordering::AcqRel) == 0 {
            t.store(stamp(self.t0, at), Ordering::Relaxed);
            let unique = self.unique_received.fetch_add(1, Ordering::SeqCst) + 1;
            if unique >= self.want.load(Ordering::SeqCst) {
                self.reached.notify_one();
            }
        }
    }

    /// Answers recorded so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Messages received at least once so far.
    pub fn unique_received(&self) -> u64 {
        self.unique_received.load(Ordering::SeqCst)
    }

    /// Waits until `n` distinct messages were received, or `deadline` passed; returns whether
    /// they all arrived.
    pub async fn wait_received(&self, n: u64, deadline: Duration) -> bool {
        self.want.store(n, Ordering::SeqCst);
        let wait = async {
            // Checked after `want` is stored: a receive that raced with the store either saw
            // the new `want` (and notified) or is already counted here.
            while self.unique_received() < n {
                self.reached.notified().await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }

    /// A plain copy of everything recorded.
    pub fn snapshot(&self) -> PhaseData {
        let load = |v: &[AtomicU64]| {
            v.iter()
                .map(|a| a.load(Ordering::Relaxed).checked_sub(1))
                .collect()
        };
        PhaseData {
            issued: load(&self.issued),
            answered: load(&self.answered),
            outcome: self
                .outcome
                .iter()
                .map(|o| Outcome::decode(o.load(Ordering::Relaxed)))
                .collect(),
            received: load(&self.received),
            receive_count: self
                .receive_count
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect(),
            unexpected: self.unexpected.load(Ordering::Relaxed),
        }
    }
}

/// Everything one phase recorded, per message index; times are nanoseconds since `t0`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseData {
    /// When a worker sent the message.
    pub issued: Vec<Option<u64>>,
    /// When the answer came.
    pub answered: Vec<Option<u64>>,
    /// How the publish ended.
    pub outcome: Vec<Outcome>,
    /// When the subscriber first received it.
    pub received: Vec<Option<u64>>,
    /// How many times the subscriber received it.
    pub receive_count: Vec<u32>,
    /// Deliveries that named this phase with an unknown sequence number.
    pub unexpected: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        for o in [
            Outcome::Pending,
            Outcome::Ok,
            Outcome::Status(500),
            Outcome::Grpc(14),
            Outcome::Timeout,
            Outcome::Transport,
        ] {
            assert_eq!(Outcome::decode(o.encode()), o);
        }
        assert_eq!(Outcome::Status(429).label(), "http 429");
    }

    #[tokio::test]
    async fn records_and_snapshots() {
        let t0 = Instant::now();
        let r = PhaseRecorder::new(t0, 3);
        r.issued(0, t0 + Duration::from_micros(5));
        r.answered(0, t0 + Duration::from_micros(50), Outcome::Ok);
        r.answered(1, t0 + Duration::from_micros(70), Outcome::Status(500));
        r.received(0, t0 + Duration::from_micros(90));
        r.received(0, t0 + Duration::from_micros(95));
        r.received(7, t0);
        assert!(r.wait_received(1, Duration::from_millis(10)).await);
        assert!(!r.wait_received(2, Duration::from_millis(10)).await);
        let d = r.snapshot();
        assert_eq!(d.issued, vec![Some(5_000), None, None]);
        assert_eq!(d.answered, vec![Some(50_000), Some(70_000), None]);
        assert_eq!(
            d.outcome,
            vec![Outcome::Ok, Outcome::Status(500), Outcome::Pending]
        );
        assert_eq!(d.received, vec![Some(90_000), None, None]);
        assert_eq!(d.receive_count, vec![2, 0, 0]);
        assert_eq!(d.unexpected, 1);
        assert_eq!(r.completed(), 2);
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_last_message_arrives() {
        let t0 = Instant::now();
        let r = std::sync::Arc::new(PhaseRecorder::new(t0, 2));
        r.received(0, t0);
        let r2 = r.clone();
        let waiter =
            tokio::spawn(async move { r2.wait_received(2, Duration::from_secs(10)).await });
        tokio::task::yield_now().await;
        r.received(1, t0);
        assert!(waiter.await.unwrap());
    }
}

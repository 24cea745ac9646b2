//! The open-loop schedule: when each message of a phase is meant to be sent, and by which
//! publisher.
//!
//! Message `i` of a phase at `rate` messages per second is intended for `t0 + i / rate`.
//! The schedule is fixed before the phase starts; nothing that happens during the phase moves
//! it (see the crate docs on coordinated omission).

use std::time::Duration;

/// The intended send times of one phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    count: u64,
}

impl Schedule {
    /// `rate` messages per second for `duration`: `floor(rate × seconds)` messages, at least one.
    pub fn new(rate: f64, duration: Duration) -> Schedule {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let count = ((rate * duration.as_secs_f64()).floor() as u64).max(1);
        Schedule { rate, count }
    }

    /// `count` messages at `rate` (a schedule made of several equal rounds back to back).
    pub fn with_count(rate: f64, count: u64) -> Schedule {
        let one = Schedule::new(rate, Duration::ZERO);
        Schedule {
            rate: one.rate,
            count: count.max(1),
        }
    }

    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How many messages the phase sends.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The intended send time of message `i`, relative to `t0`.
    pub fn intended(&self, i: u64) -> Duration {
        Duration::from_nanos(self.intended_nanos(i))
    }

    /// [`Schedule::intended`] in nanoseconds.
    pub fn intended_nanos(&self, i: u64) -> u64 {
        (i as f64 * 1e9 / self.rate).round() as u64
    }

    /// The span the schedule covers: the intended time of one message past the last.
    pub fn span(&self) -> Duration {
        self.intended(self.count)
    }
}

/// Which of `publishers` sends message `i`: round robin, starting at a seeded `offset`.
pub fn publisher_of(i: u64, publishers: usize, offset: u64) -> usize {
    let n = publishers.max(1) as u64;
    ((i.wrapping_add(offset)) % n) as usize
}

/// Publish latency under coordinated-omission-safe accounting: from the intended send time to
/// the answer, whenever the request was actually sent. Both are offsets from the same `t0`.
pub fn latency_nanos(intended: u64, answered: u64) -> u64 {
    answered.saturating_sub(intended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced() {
        let s = Schedule::new(1000.0, Duration::from_secs(2));
        assert_eq!(s.count(), 2000);
        assert_eq!(s.intended(0), Duration::ZERO);
        assert_eq!(s.intended(1), Duration::from_millis(1));
        assert_eq!(s.intended(1999), Duration::from_millis(1999));
        assert_eq!(s.span(), Duration::from_secs(2));
        let s = Schedule::new(3.0, Duration::from_secs(1));
        assert_eq!(s.intended_nanos(1), 333_333_333);
        assert_eq!(s.intended_nanos(2), 666_666_667);
    }

    #[test]
    fn degenerate_rates_send_one_message() {
        assert_eq!(Schedule::new(0.0, Duration::from_secs(1)).count(), 1);
        assert_eq!(Schedule::new(f64::NAN, Duration::from_secs(1)).rate(), 1.0);
        assert_eq!(Schedule::new(10.0, Duration::ZERO).count(), 1);
    }

    #[test]
    fn publishers_share_messages_round_robin() {
        let counts = (0..100).fold([0; 4], |mut c, i| {
            c[publisher_of(i, 4, 7)] += 1;
            c
        });
        assert_eq!(counts, [25; 4]);
        assert_eq!(publisher_of(0, 4, 7), 3);
        assert_eq!(publisher_of(1, 4, 7), 0);
        assert_eq!(publisher_of(5, 0, 0), 0);
    }

    #[test]
    fn latency_counts_from_the_intended_time() {
        // Intended at 10 ms; the connection was busy until 30 ms, the answer came at 31 ms:
        // the sample is 21 ms, not the 1 ms of the request itself.
        assert_eq!(latency_nanos(10_000_000, 31_000_000), 21_000_000);
        // An answer can never precede its intended time, but the arithmetic must not wrap.
        assert_eq!(latency_nanos(5, 3), 0);
    }
}

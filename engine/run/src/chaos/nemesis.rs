//! The nemesis: a seeded schedule of fault windows for `pubsub-tck chaos`.
//!
//! Owns when each fault starts and stops and what its parameters are, drawn from one seed so
//! that the same seed, duration and fault list replay the same schedule. It does not apply
//! faults. Windows never overlap: one fault at a time keeps every window's metrics about that
//! fault, and leaves a quiet gap after each so recovery can be seen.

use std::time::Duration;

use harness::fault::{Fault, FaultKind, Hop, Proc, Stream, ToxicKind as Toxic};

/// What the nemesis may use.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// The run's length; the last window heals before its final quiet tail.
    pub duration: Duration,
    /// Fault kinds to draw from.
    pub kinds: Vec<FaultKind>,
    /// Hops that have a proxy (network faults pick one).
    pub hops: Vec<Hop>,
    /// Processes that can be killed or paused.
    pub procs: Vec<Proc>,
}

/// One planned fault: `fault` at `start`, its inverse at `stop`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Offset from the start of the load.
    pub start: Duration,
    /// Offset of the heal.
    pub stop: Duration,
    /// The starting action.
    pub fault: Fault,
}

/// Quiet time before the first fault, so the run has a healthy baseline.
const WARM_UP: Duration = Duration::from_secs(2);
/// Quiet time after the last heal, so recovery fits in the run.
const TAIL: Duration = Duration::from_secs(3);

/// The kinds of `kinds` that `config` can apply (a hop or process to act on exists).
pub fn applicable(config: &NemesisConfig) -> Vec<FaultKind> {
    config
        .kinds
        .iter()
        .copied()
        .filter(|k| match k {
            FaultKind::Kill(p) | FaultKind::Pause(p) => config.procs.contains(p),
            _ => !config.hops.is_empty(),
        })
        .collect()
}

/// Draws the schedule. Empty when no kind applies or the run is too short for one window.
pub fn schedule(seed: u64, config: &NemesisConfig) -> Vec<Window> {
    let kinds = applicable(config);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    if kinds.is_empty() {
        return out;
    }
    let end = config.duration.saturating_sub(TAIL);
    let mut t = WARM_UP;
    loop {
        let hold = Duration::from_millis(rng.u64(1_000..=4_000));
        if t + hold > end {
            break;
        }
        let Some(&kind) = kinds.get(rng.usize(..kinds.len())) else {
            break;
        };
        let fault = draw(&mut rng, kind, &config.hops);
        out.push(Window {
            start: t,
            stop: t + hold,
            fault,
        });
        t += hold + Duration::from_millis(rng.u64(1_000..=3_000));
    }
    out
}

/// Parameters for one fault of `kind`.
fn draw(rng: &mut fastrand::Rng, kind: FaultKind, hops: &[Hop]) -> Fault {
    let hop = hops
        .get(rng.usize(..hops.len().max(1)))
        .copied()
        .unwrap_or(Hop::SidecarToApp);
    let stream = if rng.bool() {
        Stream::Upstream
    } else {
        Stream::Downstream
    };
    let ms = |rng: &mut fastrand::Rng, lo: u64, hi: u64| Duration::from_millis(rng.u64(lo..=hi));
    let toxic = match kind {
        FaultKind::Latency => Toxic::Latency {
            latency: ms(rng, 50, 300),
            jitter: ms(rng, 0, 50),
        },
        FaultKind::Bandwidth => Toxic::Bandwidth {
            rate: rng.u64(1..=20),
        },
        FaultKind::SlowClose => Toxic::SlowClose {
            delay: ms(rng, 200, 1_000),
        },
        FaultKind::Timeout => Toxic::Timeout {
            timeout: ms(rng, 500, 2_000),
        },
        FaultKind::ResetPeer => Toxic::ResetPeer {
            timeout: ms(rng, 0, 500),
        },
        FaultKind::Slicer => Toxic::Slicer {
            average_size: rng.u64(8..=64),
            size_variation: 4,
            delay: Duration::from_micros(rng.u64(10..=200)),
        },
        FaultKind::LimitData => Toxic::LimitData {
            bytes: rng.u64(100..=2_000),
        },
        FaultKind::Down => return Fault::ProxyDown(hop),
        FaultKind::Kill(p) => return Fault::Kill(p),
        FaultKind::Pause(p) => return Fault::Pause(p),
    };
    Fault::AddToxic { hop, stream, toxic }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secs: u64) -> NemesisConfig {
        NemesisConfig {
            duration: Duration::from_secs(secs),
            kinds: FaultKind::ALL.to_vec(),
            hops: Hop::ALL.to_vec(),
            procs: vec![Proc::Sidecar, Proc::App, Proc::Broker],
        }
    }

    #[test]
    fn same_seed_same_schedule() {
        let a = schedule(7, &config(60));
        assert_eq!(a, schedule(7, &config(60)));
        assert_ne!(a, schedule(8, &config(60)));
        assert!(a.len() >= 6, "{} windows in 60 s", a.len());
    }

    #[test]
    fn windows_are_ordered_disjoint_and_inside_the_run() {
        for seed in 0..50 {
            let w = schedule(seed, &config(30));
            for pair in w.windows(2) {
                assert!(pair[0].stop < pair[1].start, "seed {seed}: {pair:?}");
            }
            for x in &w {
                assert!(x.start >= WARM_UP && x.stop + TAIL <= Duration::from_secs(30));
                assert!(x.fault.is_start());
            }
        }
    }

    #[test]
    fn only_applicable_kinds_are_drawn() {
        let c = NemesisConfig {
            hops: vec![],
            procs: vec![Proc::Sidecar],
            ..config(60)
        };
        assert_eq!(
            applicable(&c),
            [
                FaultKind::Kill(Proc::Sidecar),
                FaultKind::Pause(Proc::Sidecar)
            ]
        );
        for w in schedule(3, &c) {
            assert_eq!(w.fault.proc(), Some(Proc::Sidecar));
        }
        assert!(schedule(3, &config(4)).is_empty(), "too short for a window");
    }
}

//! The sidecar's CPU and memory, read from `/proc/<pid>/stat` and `/proc/<pid>/status`.
//!
//! CPU is `utime + stime` (fields 14 and 15 of `stat`, in clock ticks of `USER_HZ`, which the
//! kernel fixes at 100 for everything it reports in `/proc`), memory is `VmRSS`. Only the
//! launched process is counted, not its children. Parsing and the arithmetic are pure; the
//! [`Sampler`] reads the files on a fixed interval while a phase is measured.

use std::time::{Duration, Instant};

use harness_report::bench::model::Resources;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// How often the sampler reads `/proc`.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub at_s: f64,
    /// `utime + stime`, in ticks.
    pub cpu_ticks: u64,
    /// `VmRSS` in kB.
    pub rss_kb: u64,
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in kB from the text of `/proc/<pid>/status`.
pub fn parse_status_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU and memory over a series of samples; `None` with fewer than two.
pub fn summarize(samples: &[Sample]) -> Option<Resources> {
    let (first, last) = (samples.first()?, samples.last()?);
    let span = last.at_s - first.at_s;
    if samples.len() < 2 || span <= 0.0 {
        return None;
    }
    let mcpu = |ticks: u64, secs: f64| ticks as f64 / TICKS_PER_SECOND / secs * 1000.0;
    let mcpu_mean = mcpu(last.cpu_ticks.saturating_sub(first.cpu_ticks), span);
    let mcpu_max = samples
        .windows(2)
        .filter(|w| w[1].at_s > w[0].at_s)
        .map(|w| {
            mcpu(
                w[1].cpu_ticks.saturating_sub(w[0].cpu_ticks),
                w[1].at_s - w[0].at_s,
            )
        })
        .fold(0.0, f64::max);
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    let rss_mb_mean = samples.iter().map(|s| mb(s.rss_kb)).sum::<f64>() / samples.len() as f64;
    let rss_mb_max = samples.iter().map(|s| mb(s.rss_kb)).fold(0.0, f64::max);
    Some(Resources {
        mcpu_mean,
        mcpu_max,
        rss_mb_mean,
        rss_mb_max,
        samples: samples.len(),
    })
}

/// Reads one sample of `pid`; `None` when the process is gone or `/proc` is not there.
pub fn read(pid: u32, started: Instant) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Sample {
        at_s: started.elapsed().as_secs_f64(),
        cpu_ticks: parse_stat_ticks(&stat)?,
        rss_kb: parse_status_rss_kb(&status)?,
    })
}

/// Samples a process on a background task until stopped.
#[derive(Debug)]
pub struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling `pid` now and every [`SAMPLE_INTERVAL`].
    pub fn start(pid: u32) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => samples.extend(read(pid, started)),
                    _ = &mut stopped => {
                        // A last reading closes the window when the phase ended, not at the
                        // previous tick.
                        samples.extend(read(pid, started));
                        break;
                    }
                }
            }
            samples
        });
        Sampler { stop, task }
    }

    /// Stops sampling and summarizes the window.
    pub async fn finish(self) -> Option<Resources> {
        let _ = self.stop.send(());
        let samples = self.task.await.ok()?;
        summarize(&samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (ref sidecar (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 50 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_stat_and_status() {
        assert_eq!(parse_stat_ticks(STAT), Some(200));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
        let status = "Name:\trefsidecar\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss_kb(status), Some(12345));
        assert_eq!(parse_status_rss_kb("Name:\tx\n"), None);
    }

    #[test]
    fn summarizes_cpu_and_memory() {
        let s = |at_s, cpu_ticks, rss_kb| Sample {
            at_s,
            cpu_ticks,
            rss_kb,
        };
        // 10 ticks (0.1 s of CPU) per 0.5 s is 200 mCPU; one interval burns 25 ticks.
        let samples = [
            s(0.0, 100, 10_000),
            s(0.5, 110, 20_000),
            s(1.0, 135, 30_000),
            s(1.5, 140, 20_000),
        ];
        let r = summarize(&samples).unwrap();
        assert!((r.mcpu_mean - 266.67).abs() < 0.1, "{r:?}");
        assert!((r.mcpu_max - 500.0).abs() < 0.1, "{r:?}");
        assert!((r.rss_mb_max - 30.72).abs() < 0.01, "{r:?}");
        assert!((r.rss_mb_mean - 20.48).abs() < 0.01, "{r:?}");
        assert_eq!(r.samples, 4);
        assert!(summarize(&samples[..1]).is_none());
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn reads_this_process() {
        let s = read(std::process::id(), Instant::now()).unwrap();
        assert!(s.rss_kb > 0);
    }
}

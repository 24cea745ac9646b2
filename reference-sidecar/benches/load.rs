//! Load test of the `refsidecar` binary with the in-memory broker and a minimal app (`support`)
//! in this process. Not criterion: it reports latency percentiles and the sidecar process's CPU,
//! RSS and thread count, which criterion's per-iteration means cannot.
//!
//! Phases, each a fixed-rate schedule of 1 KB JSON bodies over 16 keep-alive connections (one
//! request in flight per connection; a late connection sends at once):
//! 1. `noop`: POSTs to the app's no-op endpoint at `--rate` (the baseline round trip);
//! 2. `publish`: publishes at `--rate` to the subscribed topic; publish latency (send → 204),
//!    end-to-end latency (send → arrival at the app), sidecar CPU (mCPU) and RSS;
//! 3. `saturation`: publishes at `--saturation-rate` for a shorter time; delivered msg/s and
//!    end-to-end percentiles.
//!
//! Latencies count from the moment a request is sent, not from its scheduled time (tokio's
//! timer has millisecond resolution, which would swamp sub-millisecond overheads).
//!
//! `cargo bench -p reference-sidecar --bench load -- --seconds 10 --rate 1000`; `--wrap CMD` runs
//! the sidecar under a command (such as `valgrind --tool=callgrind`, to count instructions per
//! message from two runs of different lengths); `--sidecar PATH` measures another `refsidecar`
//! build instead of this one (before/after comparisons).

// clippy's allow-unwrap-in-tests does not cover bench targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{App, ms, quantile, setup};

struct Args {
    seconds: f64,
    rate: f64,
    saturation_rate: f64,
    saturation_seconds: f64,
    /// A command the sidecar runs under, e.g. `valgrind --tool=callgrind` (split on spaces).
    wrap: Vec<String>,
    /// Another `refsidecar` binary to measure (an older build, for a before/after comparison).
    sidecar: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 5.0,
        rate: 1000.0,
        saturation_rate: 20_000.0,
        saturation_seconds: 3.0,
        wrap: Vec::new(),
        sidecar: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--wrap" {
            let cmd = argv.get(i + 1).expect("--wrap needs a command");
            a.wrap = cmd.split_whitespace().map(str::to_owned).collect();
            i += 2;
            continue;
        }
        if argv[i] == "--sidecar" {
            a.sidecar = Some(argv.get(i + 1).expect("--sidecar needs a path").clone());
            i += 2;
            continue;
        }
        let value = argv.get(i + 1).and_then(|v| v.parse::<f64>().ok());
        let slot = match argv[i].as_str() {
            "--seconds" => &mut a.seconds,
            "--rate" => &mut a.rate,
            "--saturation-rate" => &mut a.saturation_rate,
            "--saturation-seconds" => &mut a.saturation_seconds,
            // `cargo bench` passes `--bench`; other flags are criterion's and do not apply.
            _ => {
                i += 1;
                continue;
            }
        };
        *slot = value.unwrap_or_else(|| panic!("{} needs a number", argv[i]));
        i += 2;
    }
    a
}

/// Concurrent connections of the load generator (Dapr's publish perf test uses 16).
const CONNECTIONS: u64 = 16;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// CPU time (user + system) of a process, from `/proc/<pid>/stat` in clock ticks (USER_HZ = 100).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A line of `/proc/<pid>/status`, e.g. `VmRSS` or `Threads`.
fn status_field(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default()
}

struct Sidecar {
    child: Child,
    http_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sidecar {
    /// SIGTERM first, so that a wrapper such as valgrind writes its output, then SIGKILL.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_sidecar(app_port: u16, wrap: &[String], bin: Option<&str>) -> Sidecar {
    let dir = setup::resources(setup::IN_MEMORY);
    let http_port = free_port();
    let bin = bin.unwrap_or(env!("CARGO_BIN_EXE_refsidecar"));
    let mut cmd = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let child = cmd
        .args(["--app-id", "load", "--dapr-listen-addresses", "127.0.0.1"])
        .args(["--app-port", &app_port.to_string()])
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &free_port().to_string()])
        .arg("--resources-path")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Sidecar {
        child,
        http_port,
        _dir: dir,
    }
}

/// The outcome of one open-loop phase.
struct Phase {
    sent: u64,
    failed: u64,
    elapsed: Duration,
    /// Send → response, sorted.
    latency: Vec<Duration>,
    /// Send → arrival at the app, sorted (publish phases only).
    end_to_end: Vec<Duration>,
    delivered: u64,
}

/// Sends `rate` requests per second for `seconds` to `url` over `CONNECTIONS` keep-alive
/// connections (one request in flight on each, as Fortio's `-c`), each body carrying its
/// sequence number; then waits (up to 10 s) for the app to have seen every publish.
async fn open_loop(app: &Arc<App>, url: &str, rate: f64, seconds: f64, deliver: bool) -> Phase {
    let total = (rate * seconds) as u64;
    let url: Arc<str> = url.into();
    let base = Instant::now();
    // Nanoseconds after `base` at which request `seq` was sent.
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let failed = Arc::new(AtomicU64::new(0));
    let before = app.delivered();
    if deliver {
        app.record();
    }
    let mut tasks = Vec::with_capacity(CONNECTIONS as usize);
    for lane in 0..CONNECTIONS {
        let (url, sent_at, failed) = (url.clone(), sent_at.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            // One client per lane: its pool holds the lane's one connection.
            let client = support::client();
            let mut latency = Vec::with_capacity((total / CONNECTIONS + 1) as usize);
            for seq in (lane..total).step_by(CONNECTIONS as usize) {
                let due = base + Duration::from_secs_f64(seq as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let body = support::payload(seq, 1024);
                let started = Instant::now();
                sent_at[seq as usize].store((started - base).as_nanos() as u64, Ordering::Relaxed);
                let status = support::post(&client, &url, body).await;
                if !status.is_success() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                latency.push(started.elapsed());
            }
            latency
        }));
    }
    let mut latency = Vec::with_capacity(total as usize);
    for t in tasks {
        latency.extend(t.await.unwrap());
    }
    let ok = total - failed.load(Ordering::Relaxed);
    let delivered = if deliver {
        app.wait_delivered(before + ok, Duration::from_secs(10))
            .await
            - before
    } else {
        0
    };
    let elapsed = base.elapsed();
    latency.sort();
    let mut end_to_end: Vec<Duration> = app
        .take_arrivals()
        .into_iter()
        .filter_map(|(seq, at)| {
            let sent =
                base + Duration::from_nanos(sent_at.get(seq as usize)?.load(Ordering::Relaxed));
            Some(at.saturating_duration_since(sent))
        })
        .collect();
    end_to_end.sort();
    Phase {
        sent: total,
        failed: failed.load(Ordering::Relaxed),
        elapsed,
        latency,
        end_to_end,
        delivered,
    }
}

fn report(name: &str, p: &Phase) {
    let pct = |v: &[Duration]| {
        format!(
            "p50 {} p90 {} p99 {} max {}",
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.9)),
            ms(quantile(v, 0.99)),
            ms(quantile(v, 1.0))
        )
    };
    println!(
        "{name}: sent {} failed {} in {:.2} s; response ms: {}",
        p.sent,
        p.failed,
        p.elapsed.as_secs_f64(),
        pct(&p.latency)
    );
    if !p.end_to_end.is_empty() {
        println!(
            "{name}: delivered {} ({:.0} msg/s); end-to-end ms: {}",
            p.delivered,
            p.delivered as f64 / p.elapsed.as_secs_f64(),
            pct(&p.end_to_end)
        );
    }
}

fn main() {
    let args = args();
    let rt = support::runtime();
    rt.block_on(async {
        let (app, app_port) = support::start_app().await;
        let sidecar = spawn_sidecar(app_port, &args.wrap, args.sidecar.as_deref());
        let pid = sidecar.child.id();
        let publish = format!(
            "http://127.0.0.1:{}/v1.0/publish/pubsub/{}",
            sidecar.http_port,
            support::TOPIC
        );
        let noop = format!("http://127.0.0.1:{app_port}/noop");
        support::wait_healthy(
            &support::client(),
            ([127, 0, 0, 1], sidecar.http_port).into(),
        )
        .await;
        println!(
            "refsidecar pid {pid}: idle RSS {}, threads {}",
            status_field(pid, "VmRSS"),
            status_field(pid, "Threads")
        );

        // Warm-up: connections, allocator, lazily initialised state.
        open_loop(&app, &publish, args.rate, 1.0, true).await;

        let own0 = cpu_time(std::process::id());
        let t0 = Instant::now();
        let base = open_loop(&app, &noop, args.rate, args.seconds, false).await;
        let own = cpu_time(std::process::id()).saturating_sub(own0);
        report("noop", &base);
        // The floor a sidecar's two HTTP exchanges per message are measured against: this
        // process serving and sending one no-op request per message.
        println!(
            "noop: load generator and app together {:.1} mCPU at {:.0} req/s",
            own.as_secs_f64() / t0.elapsed().as_secs_f64() * 1e3,
            args.rate
        );

        let cpu0 = cpu_time(pid);
        let t0 = Instant::now();
        let load = open_loop(&app, &publish, args.rate, args.seconds, true).await;
        let cpu = cpu_time(pid).saturating_sub(cpu0);
        let wall = t0.elapsed();
        report("publish", &load);
        println!(
            "publish: overhead vs noop ms: p50 {} p99 {}",
            ms(quantile(&load.latency, 0.5).saturating_sub(quantile(&base.latency, 0.5))),
            ms(quantile(&load.latency, 0.99).saturating_sub(quantile(&base.latency, 0.99)))
        );
        println!(
            "publish: sidecar {:.1} mCPU at {:.0} msg/s; RSS {} (peak {}), threads {}",
            cpu.as_secs_f64() / wall.as_secs_f64() * 1e3,
            args.rate,
            status_field(pid, "VmRSS"),
            status_field(pid, "VmHWM"),
            status_field(pid, "Threads")
        );

        let cpu0 = cpu_time(pid);
        let t0 = Instant::now();
        let sat = open_loop(
            &app,
            &publish,
            args.saturation_rate,
            args.saturation_seconds,
            true,
        )
        .await;
        let cpu = cpu_time(pid).saturating_sub(cpu0);
        let wall = t0.elapsed();
        report(&format!("saturation@{:.0}", args.saturation_rate), &sat);
        println!(
            "saturation: sidecar {:.0} mCPU ({:.1} µs per delivered message); RSS {} (peak {})",
            cpu.as_secs_f64() / wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e6 / sat.delivered.max(1) as f64,
            status_field(pid, "VmRSS"),
            status_field(pid, "VmHWM")
        );
        assert_eq!(
            load.failed + sat.failed,
            0,
            "publishes failed (see the counts above)"
        );
    });
}

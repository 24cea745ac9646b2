//! Child-process supervision: spawn, readiness, the shutdown ladder, pause and restart.
//!
//! A [`ProcessSpec`] describes a process; [`ProcessSpec::spawn`] starts it as the leader of
//! its own process group with stdout and stderr appended to `<log_dir>/<name>.log`, and
//! returns a [`Child`].
//! Signals always go to the whole group, so helpers the child forks go down with it.
//! Dropping a [`Child`] kills its group (best effort, never panics).
//! This module knows nothing about sidecars; [`crate::sidecar`] builds on it.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::ports::PortLease;

/// The process groups of every child alive in this process, for [`stop_children_on_interrupt`].
static LIVE_GROUPS: std::sync::Mutex<std::collections::BTreeSet<u32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn track_group(pid: u32, live: bool) {
    if pid == 0 {
        return;
    }
    if let Ok(mut groups) = LIVE_GROUPS.lock() {
        if live {
            groups.insert(pid);
        } else {
            groups.remove(&pid);
        }
    }
}

/// SIGKILLs the process group of every child still alive; returns how many it signalled.
pub fn kill_live_groups() -> usize {
    let groups: Vec<u32> = LIVE_GROUPS
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    groups
        .iter()
        .filter(|pgid| signal_group(**pgid, Sig::Kill).is_ok())
        .count()
}

/// Makes SIGINT and SIGTERM stop every child before the process exits (128 + the signal):
/// children lead process groups of their own, so a terminal's Ctrl-C does not reach them, and
/// without this an interrupted run would leave brokers and sidecars behind. A thread of its own
/// runs a small runtime that waits for either signal. Handlers, unlike a blocked signal mask,
/// are not inherited by children (exec resets them), so children still die of SIGTERM.
pub fn stop_children_on_interrupt() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered here, before the caller goes on, so no signal falls between.
    let (mut term, mut int) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            let (name, number) = rt.block_on(async {
                tokio::select! {
                    _ = term.recv() => ("SIGTERM", 15),
                    _ = int.recv() => ("SIGINT", 2),
                }
            });
            let n = kill_live_groups();
            eprintln!("pubsub-tck: {name}: stopped {n} child process groups; exiting");
            std::process::exit(128 + number);
        })?;
    Ok(())
}
use crate::unix::{Sig, signal_group};

/// How often readiness probes are repeated.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The most of a log file read to compute its tail.
const TAIL_BYTES: u64 = 64 * 1024;

/// Why a process could not be spawned.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The log directory or file could not be created or opened.
    #[error("cannot open log file {}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
    /// The OS refused to start the program (not found, not executable, ...).
    #[error("cannot spawn `{name}` ({})", program.display())]
    Spawn {
        /// The spec's log name.
        name: String,
        /// The program.
        program: PathBuf,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
}

/// Why a process did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    /// The process exited while the harness waited for it.
    #[error("`{name}` exited ({status}) while waiting for {awaited}; last log lines:\n{log_tail}")]
    Exited {
        /// The process's log name.
        name: String,
        /// What was awaited, such as `http://127.0.0.1:4000/v1.0/healthz to answer 2xx`.
        awaited: String,
        /// How it exited.
        status: ExitStatus,
        /// The tail of its log.
        log_tail: String,
    },
    /// The deadline passed first.
    #[error(
        "waited {waited:?} for {awaited} (`{name}`), last attempt: {last}; last log lines:\n{log_tail}"
    )]
    Timeout {
        /// The process's (or attached target's) name.
        name: String,
        /// What was awaited.
        awaited: String,
        /// How long the harness waited.
        waited: Duration,
        /// What the last probe saw: a status code, a transport error, or nothing.
        last: String,
        /// The tail of its log; empty when there is no process.
        log_tail: String,
    },
}

/// A process group did not reach the state a signal should have put it in.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{name}` (process group {pid}) was not {wanted} {waited:?} after the signal (pid:state of each member: {states})"
)]
pub struct StateError {
    name: String,
    pid: u32,
    wanted: &'static str,
    waited: Duration,
    states: String,
}

/// `(pid, state)` of every process whose process group is `pgid`, read from `/proc`.
/// How long a killed group's members may take to exit after SIGKILL (an uninterruptible wait
/// delays it).
const GROUP_EXIT_DEADLINE: Duration = Duration::from_secs(5);

fn group_states(pgid: u32) -> Vec<(u32, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command in parentheses: state, ppid, pgrp.
            let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
            let state = rest.next()?.chars().next()?;
            let group = rest.nth(1)?.parse::<u32>().ok()?;
            (group == pgid).then_some((pid, state))
        })
        .collect()
}

/// Why a signal could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("cannot send {signal} to the process group of `{name}` (pid {pid})")]
pub struct SignalError {
    /// The process's log name.
    pub name: String,
    /// The group leader's pid.
    pub pid: u32,
    /// The signal's name, such as `SIGSTOP`.
    pub signal: &'static str,
    /// The OS cause.
    #[source]
    pub source: nix::Error,
}

/// Which step of the shutdown ladder ended the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownStep {
    /// It had already exited before the ladder started.
    AlreadyExited,
    /// It exited within the grace period after SIGTERM.
    Sigterm,
    /// It ignored SIGTERM for the whole grace period and was SIGKILLed.
    Sigkill,
}

/// How to start a child process.
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessSpec {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    name: String,
    log_dir: PathBuf,
    /// The ports this process binds: out of every other reservation while any clone of the
    /// spec (and so the child, across restarts) lives.
    ports: Option<Arc<PortLease>>,
}

impl ProcessSpec {
    /// A spec for `program` with no arguments, the parent's environment and working
    /// directory, a log name derived from the program plus a random suffix, and logs in
    /// `<temp dir>/pubsub-tck/logs`.
    pub fn new(program: impl Into<PathBuf>) -> ProcessSpec {
        let program = program.into();
        let stem = program
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "proc".to_owned());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        ProcessSpec {
            name: format!("{stem}-{}", &suffix[..8]),
            program,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            log_dir: std::env::temp_dir().join("pubsub-tck").join("logs"),
            ports: None,
        }
    }

    /// Keeps `lease` (the ports this process will bind) for as long as the child lives, so no
    /// other reservation of this harness is handed them, restarts included.
    pub fn hold_ports(mut self, lease: PortLease) -> ProcessSpec {
        self.ports = Some(Arc::new(lease));
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> ProcessSpec {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> ProcessSpec {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one environment variable on top of the inherited environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ProcessSpec {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets environment variables on top of the inherited environment.
    pub fn envs<I: IntoIterator<Item = (K, V)>, K: Into<String>, V: Into<String>>(
        mut self,
        vars: I,
    ) -> ProcessSpec {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> ProcessSpec {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the log name: the log file is `<log_dir>/<name>.log`.
    pub fn name(mut self, name: impl Into<String>) -> ProcessSpec {
        self.name = name.into();
        self
    }

    /// Sets the directory of the log file; it is created on spawn.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> ProcessSpec {
        self.log_dir = dir.into();
        self
    }

    /// The log name.
    pub fn log_name(&self) -> &str {
        &self.name
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.name))
    }

    /// Starts the process. Must be called inside a tokio runtime.
    pub fn spawn(self) -> Result<Child, SpawnError> {
        let (inner, log_start) = self.start()?;
        track_group(inner.id().unwrap_or(0), true);
        Ok(Child::new(self, inner, log_start))
    }

    /// Starts the process; also returns the log length at that point, so that log waits
    /// only see what this incarnation wrote.
    fn start(&self) -> Result<(tokio::process::Child, u64), SpawnError> {
        let log_path = self.log_path();
        let log_err = |source| SpawnError::Log {
            path: log_path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.log_dir).map_err(log_err)?;
        // Both streams share one append-mode file: O_APPEND keeps concurrent writes from
        // overwriting each other, and restarts add to the same log.
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let banner = format!(
            "--- spawning {} {}\n",
            self.program.display(),
            self.args.join(" ")
        );
        out.write_all(banner.as_bytes()).map_err(log_err)?;
        let log_start = out.metadata().map_err(log_err)?.len();

        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|source| SpawnError::Spawn {
            name: self.name.clone(),
            program: self.program.clone(),
            source,
        })?;
        Ok((child, log_start))
    }
}

/// A running (or exited) child process and its process group.
#[derive(Debug)]
pub struct Child {
    spec: ProcessSpec,
    inner: tokio::process::Child,
    pid: u32,
    log_path: PathBuf,
    /// Where the current incarnation's output starts in the log.
    log_start: u64,
    exit: Option<ExitStatus>,
    paused: bool,
    /// Whether the harness asked the current incarnation to stop (kill or the shutdown
    /// ladder): only then is its exit expected.
    stopping: bool,
}

impl Child {
    fn new(spec: ProcessSpec, inner: tokio::process::Child, log_start: u64) -> Child {
        // `id()` is only `None` after the child has been reaped, which cannot have happened
        // yet; 0 is never signalled (see `signal`).
        let pid = inner.id().unwrap_or(0);
        tracing::info!(name = %spec.name, pid, "spawned");
        Child {
            log_path: spec.log_path(),
            log_start,
            spec,
            inner,
            pid,
            exit: None,
            paused: false,
            stopping: false,
        }
    }

    /// The spec this child was started from.
    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// The log name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The pid, which is also the process-group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `n_lines` lines of the log; empty if it cannot be read.
    pub fn log_tail(&self, n_lines: usize) -> String {
        read_tail(&self.log_path, n_lines).unwrap_or_default()
    }

    /// Appends `--- <line>` to the log, as the spawn banner is written, and makes the log waits
    /// see only what follows it: a process that serves one trial after another marks where
    /// each one's part begins.
    pub fn mark_log(&mut self, line: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path)
            && writeln!(f, "--- {line}").is_ok()
            && let Ok(m) = f.metadata()
        {
            self.log_start = m.len();
        }
    }

    /// The exit status, if the process has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            // `try_wait` only fails if the child was already reaped, which this handle
            // records in `exit`; treat such a failure as "still unknown".
            if let Ok(Some(status)) = self.inner.try_wait() {
                self.record_exit(status);
            }
        }
        self.exit
    }

    /// Whether the harness asked the current incarnation to stop (a kill or a termination).
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// The exit status and the end of the log, if the current incarnation exited although the
    /// harness never asked it to stop: a crash, or a process that could not bind its port.
    pub fn unexpected_exit(&mut self) -> Option<(ExitStatus, String)> {
        match self.try_exit_status() {
            Some(status) if !self.stopping => Some((status, self.log_tail(20))),
            _ => None,
        }
    }

    /// Waits up to `deadline` for the process to exit on its own.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.try_exit_status() {
            return Some(s);
        }
        // `wait` is cancel safe, so the timeout may drop it.
        match tokio::time::timeout(deadline, self.inner.wait()).await {
            Ok(Ok(status)) => {
                self.record_exit(status);
                Some(status)
            }
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Polls `url` with a plain GET every 20 ms until it answers 2xx or `deadline` passes.
    /// Fails early, with the log tail, if the process exits.
    pub async fn wait_http_ready(
        &mut self,
        url: &str,
        deadline: Duration,
    ) -> Result<(), ReadyError> {
        let outcome = poll_until_2xx(url, deadline, || self.try_exit_status()).await;
        self.ready_result(outcome, format!("{url} to answer 2xx"), deadline)
    }

    /// Polls the log every 20 ms until a line written by the current incarnation (since
    /// the last spawn or restart) contains `needle`, or `deadline` passes.
    /// Fails early if the process exits.
    pub async fn wait_log_line(
        &mut self,
        needle: &str,
        deadline: Duration,
    ) -> Result<(), ReadyError> {
        let until = Instant::now() + deadline;
        let mut tick = tokio::time::interval(READY_POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tick.tick().await;
            // Read the log before checking for exit, so a line written just before exiting
            // still counts.
            let found = read_from(&self.log_path, self.log_start)
                .is_ok_and(|log| log.lines().any(|l| l.contains(needle)));
            if found {
                break PollOutcome::Ready;
            }
            if let Some(status) = self.try_exit_status() {
                break PollOutcome::Exited(status);
            }
            if Instant::now() >= until {
                break PollOutcome::TimedOut {
                    last: "no matching line".to_owned(),
                };
            }
        };
        self.ready_result(
            outcome,
            format!("a log line containing `{needle}`"),
            deadline,
        )
    }

    fn ready_result(
        &self,
        outcome: PollOutcome,
        awaited: String,
        deadline: Duration,
    ) -> Result<(), ReadyError> {
        match outcome {
            PollOutcome::Ready => Ok(()),
            PollOutcome::Exited(status) => Err(ReadyError::Exited {
                name: self.name().to_owned(),
                awaited,
                status,
                log_tail: self.log_tail(30),
            }),
            PollOutcome::TimedOut { last } => Err(ReadyError::Timeout {
                name: self.name().to_owned(),
                awaited,
                waited: deadline,
                last,
                log_tail: self.log_tail(30),
            }),
        }
    }

    /// The shutdown ladder: SIGTERM to the group, up to `grace` for it to exit, then
    /// SIGKILL. Returns the step that ended it.
    pub async fn terminate(&mut self, grace: Duration) -> ShutdownStep {
        self.stopping = true;
        if self.try_exit_status().is_some() {
            self.reap_group();
            return ShutdownStep::AlreadyExited;
        }
        let _ = self.signal(Sig::Term);
        if self.paused {
            // A stopped process keeps SIGTERM pending until it is continued. A process caught
            // mid-fork when the group stopped may have missed the first SIGTERM: send it again.
            let _ = self.signal(Sig::Cont);
            self.paused = false;
            let _ = self.signal(Sig::Term);
        }
        if self.wait_exit(grace).await.is_some() {
            self.reap_group();
            self.wait_group_gone(GROUP_EXIT_DEADLINE).await;
            tracing::info!(name = %self.spec.name, pid = self.pid, "exited after SIGTERM");
            return ShutdownStep::Sigterm;
        }
        self.kill().await;
        tracing::info!(name = %self.spec.name, pid = self.pid, "SIGKILLed after {grace:?} grace");
        ShutdownStep::Sigkill
    }

    /// SIGKILLs the group and waits for the leader to be reaped and for every other member
    /// to be gone.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        self.stopping = true;
        let _ = self.signal(Sig::Kill);
        self.paused = false;
        if self.exit.is_none()
            && let Ok(status) = self.inner.wait().await
        {
            self.record_exit(status);
        }
        self.wait_group_gone(GROUP_EXIT_DEADLINE).await;
        self.exit
    }

    /// Waits until no member of the group is alive (a zombie has closed its files), polling
    /// against `deadline`. The leader's exit does not mean its children's: a wrapper's child
    /// still exiting holds its listening ports, and a restart on the same ports would race it.
    /// Past the deadline the restart goes ahead and its own error names the port.
    async fn wait_group_gone(&self, deadline: Duration) {
        if self.pid == 0 {
            return;
        }
        let started = Instant::now();
        loop {
            let alive: Vec<u32> = group_states(self.pid)
                .into_iter()
                .filter(|(_, st)| !matches!(st, 'Z' | 'X'))
                .map(|(pid, _)| pid)
                .collect();
            if alive.is_empty() {
                return;
            }
            if started.elapsed() >= deadline {
                tracing::warn!(name = %self.spec.name, pgid = self.pid, ?alive, "group members still alive {deadline:?} after SIGKILL");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Freezes the whole group (SIGSTOP).
    pub fn pause(&mut self) -> Result<(), SignalError> {
        self.signal(Sig::Stop)?;
        self.paused = true;
        Ok(())
    }

    /// Thaws the group (SIGCONT).
    pub fn resume(&mut self) -> Result<(), SignalError> {
        self.signal(Sig::Cont)?;
        self.paused = false;
        Ok(())
    }

    /// Waits until every process of the group is stopped (`stopped`: state `T` in
    /// `/proc/<pid>/stat`) or running again (no longer `T`), polling against `deadline`. A
    /// signal can be sent and yet not take effect at once: a process in an uninterruptible
    /// wait (state `D`, a parent mid-`vfork`) stops only when the wait ends. A fault counts
    /// as applied only once it took effect.
    pub async fn wait_group_state(
        &self,
        stopped: bool,
        deadline: Duration,
    ) -> Result<(), StateError> {
        let started = Instant::now();
        loop {
            let states = group_states(self.pid);
            let done = !states.is_empty()
                && states
                    .iter()
                    .all(|(_, st)| (*st == 'T' || *st == 't') == stopped);
            if done {
                return Ok(());
            }
            if started.elapsed() >= deadline {
                return Err(StateError {
                    name: self.spec.name.clone(),
                    pid: self.pid,
                    wanted: if stopped { "stopped" } else { "running" },
                    waited: deadline,
                    states: states
                        .iter()
                        .map(|(pid, st)| format!("{pid}:{st}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether [`Child::pause`] was called without a later resume.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Kills the process if it still runs, then spawns the same spec again; the log
    /// continues in the same file.
    pub async fn restart(&mut self) -> Result<(), SpawnError> {
        self.kill().await;
        track_group(self.pid, false);
        let (inner, log_start) = self.spec.start()?;
        let pid = inner.id().unwrap_or(0);
        track_group(pid, true);
        self.log_start = log_start;
        tracing::info!(name = %self.spec.name, pid, "restarted");
        self.inner = inner;
        self.pid = pid;
        self.exit = None;
        self.paused = false;
        self.stopping = false;
        Ok(())
    }

    fn signal(&self, sig: Sig) -> Result<(), SignalError> {
        if self.pid == 0 {
            // Signalling group 0 would hit the harness's own group.
            return Err(SignalError {
                name: self.spec.name.clone(),
                pid: self.pid,
                signal: sig.name(),
                source: nix::Error::ESRCH,
            });
        }
        signal_group(self.pid, sig).map_err(|source| SignalError {
            name: self.spec.name.clone(),
            pid: self.pid,
            signal: sig.name(),
            source,
        })
    }

    /// Kills any process the leader left behind in its group.
    fn reap_group(&self) {
        let _ = self.signal(Sig::Kill);
    }

    fn record_exit(&mut self, status: ExitStatus) {
        tracing::debug!(name = %self.spec.name, pid = self.pid, %status, "exited");
        self.exit = Some(status);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Best effort: the leader may be gone but group members may remain. Tokio reaps
        // the zombie in the background.
        let _ = self.signal(Sig::Kill);
        track_group(self.pid, false);
    }
}

/// What [`poll_until_2xx`] observed.
pub(crate) enum PollOutcome {
    Ready,
    Exited(ExitStatus),
    TimedOut { last: String },
}

/// Polls `url` every 20 ms until it answers 2xx, `exited` reports an exit, or `deadline`
/// passes.
pub(crate) async fn poll_until_2xx(
    url: &str,
    deadline: Duration,
    mut exited: impl FnMut() -> Option<ExitStatus>,
) -> PollOutcome {
    let until = Instant::now() + deadline;
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            return PollOutcome::TimedOut {
                last: format!("cannot build HTTP client: {e}"),
            };
        }
    };
    let mut last = "no attempt".to_owned();
    let mut tick = tokio::time::interval(READY_POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(status) = exited() {
            return PollOutcome::Exited(status);
        }
        let now = Instant::now();
        if now >= until {
            return PollOutcome::TimedOut { last };
        }
        let per_try = (until - now).min(Duration::from_secs(2));
        match client.get(url).timeout(per_try).send().await {
            Ok(resp) if resp.status().is_success() => return PollOutcome::Ready,
            Ok(resp) => last = format!("HTTP {}", resp.status().as_u16()),
            Err(e) => last = describe_reqwest_error(&e),
        }
    }
}

/// A one-line description of a transport error, including its causes.
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The log from byte `offset` to its end.
fn read_from(path: &Path, offset: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn read_tail(path: &Path, n_lines: usize) -> std::io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    let text = read_from(path, len.saturating_sub(TAIL_BYTES))?;
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n_lines);
    Ok(lines[from..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        let dir = std::env::temp_dir().join(format!("tail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.log");
        std::fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(read_tail(&p, 2).unwrap(), "c\nd");
        assert_eq!(read_tail(&p, 10).unwrap(), "a\nb\nc\nd");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

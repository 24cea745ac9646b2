//! Child-process supervision with `sh -c` children.

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::time::Duration;

use harness::{Child, ProcessSpec, ReadyError, ShutdownStep, TestApp, TestAppConfig};

const WAIT: Duration = Duration::from_secs(5);

fn log_dir() -> PathBuf {
    std::env::temp_dir()
        .join("pubsub-tck-proc-tests")
        .join(uuid_like())
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

fn sh(name: &str, script: &str) -> ProcessSpec {
    ProcessSpec::new("sh")
        .arg("-c")
        .arg(script)
        .name(name)
        .log_dir(log_dir())
}

/// `script` spawned as `name`, once its log has the line `line`.
async fn started(name: &str, script: &str, line: &str) -> Child {
    let mut child = sh(name, script).spawn().unwrap();
    child.wait_log_line(line, WAIT).await.unwrap();
    child
}

/// The state letter in `/proc/<pid>/stat` (`T` when stopped), `None` once gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Polls `cond` every 10 ms until it holds or `WAIT` passes.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while !cond() {
        assert!(
            tokio::time::Instant::now() < until,
            "waited {WAIT:?} for {what}"
        );
        tick.tick().await;
    }
}

#[tokio::test]
async fn readiness_fails_early_with_the_log_tail_when_the_process_exits() {
    let mut child = sh("dies", "echo starting; echo boom >&2; exit 3")
        .spawn()
        .unwrap();
    let err = child
        .wait_http_ready("http://127.0.0.1:9/v1.0/healthz/outbound", WAIT)
        .await
        .unwrap_err();
    let ReadyError::Exited {
        status, log_tail, ..
    } = &err
    else {
        panic!("expected Exited, got {err:?}");
    };
    assert_eq!(status.code(), Some(3));
    assert!(log_tail.ends_with("starting\nboom"), "{log_tail}");
    assert!(err.to_string().starts_with("`dies` exited (exit status: 3) while waiting for http://127.0.0.1:9/v1.0/healthz/outbound to answer 2xx"), "{err}");
    assert_eq!(child.try_exit_status().and_then(|s| s.code()), Some(3));
    assert!(child.log_path().ends_with("dies.log"));
}

#[tokio::test]
async fn readiness_times_out_naming_what_it_waited_for() {
    let mut child = sh("slow", "echo waiting; exec sleep 30").spawn().unwrap();
    let err = child
        .wait_http_ready("http://127.0.0.1:9/ready", Duration::from_millis(200))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "waited 200ms for http://127.0.0.1:9/ready to answer 2xx (`slow`), last attempt: "
        ),
        "{msg}"
    );
    assert!(msg.ends_with("\nwaiting"), "{msg}");
    assert_eq!(child.terminate(WAIT).await, ShutdownStep::Sigterm);
}

#[tokio::test]
async fn readiness_succeeds_on_2xx() {
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    let mut child = sh("ok", "exec sleep 30").spawn().unwrap();
    child
        .wait_http_ready(&format!("{}/ready", app.url()), WAIT)
        .await
        .unwrap();
    assert!(child.try_exit_status().is_none());
}

#[tokio::test]
async fn terminate_ladder_records_the_step_that_ended_the_process() {
    let mut polite = sh("polite", "exec sleep 30").spawn().unwrap();
    assert_eq!(polite.terminate(WAIT).await, ShutdownStep::Sigterm);
    assert_eq!(polite.try_exit_status().and_then(|s| s.signal()), Some(15));
    assert_eq!(polite.terminate(WAIT).await, ShutdownStep::AlreadyExited);

    // An ignored SIGTERM is inherited by the loop's `sleep`, so the whole group ignores it.
    let mut stubborn = started(
        "stubborn",
        "trap '' TERM; echo trapped; while :; do sleep 0.05; done",
        "trapped",
    )
    .await;
    assert_eq!(
        stubborn.terminate(Duration::from_millis(200)).await,
        ShutdownStep::Sigkill
    );
    assert_eq!(stubborn.try_exit_status().and_then(|s| s.signal()), Some(9));
}

/// A shell with two `sleep` children, spawned as `name` once it no longer forks, and the three
/// members of its process group (itself and the two sleeps).
async fn group_of_three(name: &str) -> (Child, Vec<u32>) {
    let child = started(name, "sleep 30 & sleep 30 & echo up; wait", "up").await;
    let members = group_members(child.pid());
    assert_eq!(
        members.len(),
        3,
        "the shell and its two sleeps: {members:?}"
    );
    (child, members)
}

/// The pids whose process group is `pgid`, read from `/proc`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // Fields after the command: state, ppid, pgrp.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<u32>().ok())
                    == Some(pgid)
            })
        })
        .collect()
}

#[tokio::test]
async fn pause_and_resume_stop_and_continue_the_group() {
    // The group has three members that no longer fork once `up` is printed: a shell that
    // forks in a loop can be caught mid-vfork, where the parent waits uninterruptibly (state
    // D, not T) for a child that the same SIGSTOP froze before its exec.
    let (mut child, members) = group_of_three("pausable").await;
    child.pause().unwrap();
    eventually("every member to stop", || {
        members.iter().all(|m| proc_state(*m) == Some('T'))
    })
    .await;
    assert!(child.is_paused());
    child.resume().unwrap();
    eventually("every member to continue", || {
        members.iter().all(|m| proc_state(*m) != Some('T'))
    })
    .await;
    // SIGTERM reaches a paused process too, because the ladder continues it.
    child.pause().unwrap();
    assert_eq!(child.terminate(WAIT).await, ShutdownStep::Sigterm);
}

#[tokio::test]
async fn restart_respawns_the_same_spec_and_appends_to_the_log() {
    let mut child = started("restartable", "echo up; exec sleep 30", "up").await;
    let first = child.pid();
    child.restart().await.unwrap();
    assert_ne!(child.pid(), first);
    assert!(child.try_exit_status().is_none());
    let log = child.log_path().to_owned();
    eventually("two `up` lines", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.lines().filter(|x| *x == "up").count() == 2)
    })
    .await;
    assert_eq!(child.kill().await.and_then(|s| s.signal()), Some(9));
}

#[tokio::test]
async fn kill_returns_once_every_member_of_the_group_is_gone() {
    // A wrapper's child holds its ports until it exits; a restart right after `kill` must not
    // find it alive.
    let (mut child, members) = group_of_three("wrapper").await;
    child.kill().await;
    for m in members {
        let state = proc_state(m);
        assert!(
            matches!(state, None | Some('Z') | Some('X')),
            "member {m} is still alive ({state:?}) after kill returned"
        );
    }
}

#[tokio::test]
async fn dropping_a_child_kills_its_whole_group() {
    let child = started(
        "family",
        "sleep 30 & echo \"grandchild $!\"; wait",
        "grandchild",
    )
    .await;
    let tail = child.log_tail(1);
    let grandchild: u32 = tail.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(matches!(proc_state(grandchild), Some(s) if s != 'Z'));
    drop(child);
    eventually("the grandchild to die", || {
        matches!(proc_state(grandchild), None | Some('Z'))
    })
    .await;
}

#[tokio::test]
async fn spawn_errors_name_the_program() {
    let err = ProcessSpec::new("/nonexistent/tck-bin")
        .name("ghost")
        .log_dir(log_dir())
        .spawn()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot spawn `ghost` (/nonexistent/tck-bin)"
    );
}

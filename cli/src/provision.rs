//! Finding or installing the brokers a run asks for, the way the README's test command does:
//! redis-server from the system's packages (apt-get), Apache Kafka fetched with Maven by the
//! same script as the test command's (built into this binary, so an installed `pubsub-tck`
//! needs no clone). Each install shows a spinner with the installer's last line; a part that is
//! already there costs a file check.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use harness_engine::Broker;
use harness_engine::env::{EnvSettings, broker_unavailable};
use indicatif::{ProgressBar, ProgressStyle};

/// scripts/kafka.sh, which prints the Kafka home as its last line (idempotent).
const KAFKA_SCRIPT: &str = include_str!("../../scripts/kafka.sh");

/// Makes every broker of `brokers` available, installing what is missing unless `install` is
/// false; fills `settings.broker_sources.kafka_home` when Kafka was found or fetched. Fails naming the broker
/// and why when one stays unavailable.
pub(crate) fn ensure(
    brokers: &[Broker],
    settings: &mut EnvSettings,
    install: bool,
) -> anyhow::Result<()> {
    for &broker in brokers {
        let Some(reason) = broker_unavailable(broker, settings) else {
            continue;
        };
        if !install {
            bail!(
                "broker `{broker}` is not available: {reason} (without --no-install, pubsub-tck installs it)"
            );
        }
        match broker {
            Broker::InMemory => {}
            Broker::Redis => {
                apt_install(&["redis-server"], "redis-server")?;
            }
            Broker::Kafka => {
                let mut missing = Vec::new();
                if !on_path("java") {
                    missing.push("openjdk-17-jre-headless");
                }
                if !on_path("mvn") {
                    missing.push("maven");
                }
                if !missing.is_empty() {
                    apt_install(
                        &missing,
                        "Java 17 and Maven (to fetch and run Apache Kafka)",
                    )?;
                }
                let home = run_with_spinner(
                    Command::new("bash").args(["-c", KAFKA_SCRIPT, "kafka.sh"]),
                    "Apache Kafka: fetching it with Maven (once; later runs reuse it)",
                )?;
                settings.broker_sources.kafka_home = Some(home.into());
            }
        }
        if let Some(reason) = broker_unavailable(broker, settings) {
            bail!("broker `{broker}` is not available after installing it: {reason}");
        }
    }
    Ok(())
}

/// Installs Debian packages with apt-get (through sudo unless root).
fn apt_install(packages: &[&str], what: &str) -> anyhow::Result<()> {
    if !on_path("apt-get") {
        bail!(
            "{what} is missing and apt-get is not available: install {} yourself",
            packages.join(" ")
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut prefix: Vec<&str> = Vec::new();
    if !root {
        if !on_path("sudo") {
            bail!(
                "{what} is missing; install {} (as root)",
                packages.join(" ")
            );
        }
        prefix.extend(["sudo", "-n"]);
    }
    let sh = |args: &[&str]| {
        let mut all = prefix.clone();
        all.extend_from_slice(args);
        let (program, rest) = all
            .split_first()
            .map_or(("apt-get", &[][..]), |(p, r)| (*p, r));
        let mut cmd = Command::new(program);
        cmd.args(rest).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run_with_spinner(
        &mut sh(&["apt-get", "update", "-q"]),
        &format!("{what}: apt-get update"),
    )?;
    let mut install = vec!["apt-get", "install", "-y", "-q"];
    install.extend_from_slice(packages);
    run_with_spinner(
        &mut sh(&install),
        &format!("{what}: apt-get install {}", packages.join(" ")),
    )?;
    Ok(())
}

/// Runs `cmd`, showing `what` and the last line it wrote (either stream) on a spinner; returns
/// the last line of its standard output. A failure names the command and its last lines.
fn run_with_spinner(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: starting {:?}", cmd.get_program()))?;
    let stderr = child.stderr.take().context("a piped stderr")?;
    let stdout = child.stdout.take().context("a piped stdout")?;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let follow = |stream: Box<dyn std::io::Read + Send>, keep_last: bool| {
        let bar = bar.clone();
        let tail = tail.clone();
        let what = what.to_owned();
        std::thread::spawn(move || {
            let mut last = String::new();
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let line = line.trim().to_owned();
                if line.is_empty() {
                    continue;
                }
                bar.set_message(format!("{what} · {line}"));
                if let Ok(mut t) = tail.lock() {
                    t.push(line.clone());
                    let excess = t.len().saturating_sub(10);
                    t.drain(..excess);
                }
                if keep_last {
                    last = line;
                }
            }
            last
        })
    };
    let err_reader = follow(Box::new(stderr), false);
    let out_reader = follow(Box::new(stdout), true);
    let status = child.wait().with_context(|| format!("{what}: waiting"))?;
    let last = out_reader.join().unwrap_or_default();
    let _ = err_reader.join();
    bar.finish_and_clear();
    if !status.success() {
        let tail = tail.lock().map(|t| t.join("\n")).unwrap_or_default();
        bail!("{what}: failed ({status}):\n{tail}");
    }
    eprintln!("pubsub-tck: {what}: done");
    Ok(last)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

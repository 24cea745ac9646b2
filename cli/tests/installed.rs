//! A new user's first steps with an installed `pubsub-tck`: the binary alone in a prefix of its
//! own (as `cargo install --root PREFIX` leaves it), run from an empty directory outside any
//! clone of this repository. It must find its own data (component templates, the CloudEvents
//! schema: built in), scaffold a target file for the user's sidecar (here refsidecar, as the
//! README's test command builds it), run the core profile against it and write the reports
//! there, prove with `selfcheck` that the checks catch a broken version of that sidecar, then
//! find or fetch every broker the user asks for (`--broker all`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure

mod common;

use common::workspace;
use std::path::Path;
use std::process::{Command, Output};

#[test]
fn the_installed_binary_runs_from_an_empty_directory_on_every_broker() {
    let sidecar = workspace().join("target/release/refsidecar");
    assert!(
        sidecar.exists(),
        "{} is missing: build it first (cargo build --release -p reference-sidecar)",
        sidecar.display()
    );
    let base = std::env::temp_dir().join(format!("pubsub-tck-installed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let bin = base.join("prefix/bin");
    let dir = base.join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let tck = bin.join("pubsub-tck");
    std::fs::copy(env!("CARGO_BIN_EXE_pubsub-tck"), &tck).unwrap();
    assert!(
        !dir.ancestors().any(|d| d.join("fixtures").exists()),
        "the working directory must be outside any clone"
    );

    let (init, out) = output(
        tck_in(&dir, &tck)
            .args(["init", "--name", "mine", "--flags", "minimal", "--command"])
            .arg(&sidecar),
    );
    assert!(init.status.success(), "{out}");
    // As the user would: claim the brokers the sidecar supports.
    let file = dir.join("mine.toml");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("\ncapabilities = []\n"), "{written}");
    std::fs::write(
        &file,
        written.replace(
            "\ncapabilities = []\n",
            "\ncapabilities = [\"bulk\", \"pubsub.redis\", \"pubsub.kafka\"]\n",
        ),
    )
    .unwrap();

    // The core profile on the in-memory broker, reports in the working directory.
    let (run, out) = run_tck(&dir, &tck, "run --target mine.toml --profile core --seed 1");
    assert_eq!(run.status.code(), Some(0), "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(dir.join("reports/latest/results.json").exists(), "{out}");

    // What this environment can run, part by part.
    let (doctor, out) = run_tck(&dir, &tck, "doctor");
    assert_eq!(doctor.status.code(), Some(0), "{out}");
    for part in [
        "redis-server",
        "Apache Kafka",
        "Toxiproxy",
        "daprd",
        "Python apps",
    ] {
        assert!(out.contains(part), "doctor does not name {part}:\n{out}");
    }
    assert!(out.contains("pubsub-tck doctor: "), "{out}");

    // The self-check around the user's own sidecar: the wrapper is the installed binary
    // itself. A sidecar that drops every third delivery is caught, the pass-through control
    // passes, and the gRPC-app cases are skipped (the target claims no `app.grpc`).
    let (selfcheck, out) = run_tck(
        &dir,
        &tck,
        "selfcheck --target mine.toml --seed 1 --mode drop-every-3rd,none --filter no_loss_no_duplicates",
    );
    assert_eq!(selfcheck.status.code(), Some(0), "{out}");
    assert!(
        out.contains("1 mutants caught, 1 controls passed, 2 skipped, 0 not as required"),
        "{out}"
    );
    // The same mutant in a plain run fails it.
    let (broken, out) = run_tck(
        &dir,
        &tck,
        "run --target mine.toml --seed 1 --mutant drop-every-3rd --filter core::delivery::no_loss_no_duplicates",
    );
    assert_eq!(broken.status.code(), Some(1), "{out}");

    // Every broker: found (redis-server on PATH, Kafka in the cache) or installed.
    let (run, out) = run_tck(
        &dir,
        &tck,
        "run --target mine.toml --broker all --seed 1 --filter core::publish::json_accepted",
    );
    assert_eq!(run.status.code(), Some(0), "{out}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reports/latest/results.json")).unwrap())
            .unwrap();
    let brokers: Vec<&str> = results["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "core::publish::json_accepted")
        .filter_map(|c| c["broker"].as_str())
        .collect();
    assert_eq!(brokers, ["in-memory", "redis", "kafka"], "{out}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
    let _ = std::fs::remove_dir_all(&base);
}

/// The installed binary, started in `dir` with nothing of this repository in its environment.
fn tck_in(dir: &Path, tck: &Path) -> Command {
    let mut cmd = Command::new(tck);
    cmd.current_dir(dir);
    for var in [
        "PUBSUB_TCK_TARGET",
        "PUBSUB_TCK_REPORT_DIR",
        "PUBSUB_TCK_BROKERS",
        "PUBSUB_TCK_KAFKA_HOME",
        "PUBSUB_TCK_SEED",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs the installed binary in `dir` with the words of `line` as arguments: its output, and
/// its stdout and stderr as one text.
fn run_tck(dir: &Path, tck: &Path, line: &str) -> (Output, String) {
    output(tck_in(dir, tck).args(line.split_whitespace()))
}

/// Runs `cmd`: its output, and its stdout and stderr as one text.
fn output(cmd: &mut Command) -> (Output, String) {
    let output = cmd.output().unwrap();
    let out = text(&output);
    (output, out)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

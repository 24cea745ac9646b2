//! Repository invariants, checked as tests: the catalog is well formed, every fixture loads,
//! library code has no `unwrap()`, and the README's test command is what CI runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("suites/ has a parent")
        .to_owned()
}

#[test]
fn catalog_is_well_formed() {
    let checks = suites::all();
    assert!(
        checks.len() >= 60,
        "at least 60 checks, found {}",
        checks.len()
    );
    let mut ids = BTreeSet::new();
    for c in &checks {
        assert!(ids.insert(c.id), "duplicate id {}", c.id);
        let mut parts: Vec<&str> = c.id.split("::").collect();
        // A check's run over a gRPC app is the same id with `::grpc` after it.
        if parts.len() == 4 && parts[3] == "grpc" {
            assert_eq!(
                c.app,
                suites::AppProtocol::Grpc,
                "{}: a ::grpc id runs a gRPC app",
                c.id
            );
            parts.pop();
        }
        assert_eq!(parts.len(), 3, "{}: ids read profile::area::check", c.id);
        for p in parts {
            assert!(
                !p.is_empty()
                    && p.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                "{}: segments are lower_snake_case",
                c.id
            );
        }
        assert!(
            !c.title.is_empty() && !c.clause.is_empty(),
            "{}: title and clause are required",
            c.id
        );
        if let Some(url) = c.clause_url {
            assert!(url.starts_with("https://"), "{}: clause URL {url}", c.id);
        }
    }
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files_under(&p, ext, out);
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

#[test]
fn every_target_file_loads() {
    let mut files = Vec::new();
    files_under(&root().join("fixtures/targets"), "toml", &mut files);
    // `*.expect.toml` are expectations files, loaded through the target that names them.
    files.retain(|f| !f.to_string_lossy().ends_with(".expect.toml"));
    assert!(files.len() >= 3);
    for f in files {
        harness::TargetFile::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn every_expectations_file_is_named_by_a_target_and_names_real_checks() {
    let mut files = Vec::new();
    files_under(&root().join("fixtures/targets"), "toml", &mut files);
    let (expect, targets): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| f.to_string_lossy().ends_with(".expect.toml"));
    let named: Vec<std::path::PathBuf> = targets
        .iter()
        .filter_map(|t| harness::TargetFile::load(t).ok())
        .filter_map(|t| t.expectations().map(|e| e.path().canonicalize().unwrap()))
        .collect();
    let ids: Vec<&str> = suites::all().iter().map(|c| c.id).collect();
    for f in expect {
        assert!(
            named.contains(&f.canonicalize().unwrap()),
            "{} is named by no target file",
            f.display()
        );
        let file = harness::Expectations::load(&f).unwrap();
        for e in file.entries() {
            assert!(
                ids.contains(&e.check.as_str()),
                "{}: no check {}",
                f.display(),
                e.check
            );
        }
    }
}

#[test]
fn component_templates_render() {
    let mut files = Vec::new();
    files_under(&root().join("fixtures/components"), "yaml", &mut files);
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.contains("{{name}}") && text.contains("{{metadata}}"),
            "{}: needs both placeholders",
            f.display()
        );
    }
}

#[test]
fn cloudevents_schema_loads() {
    suites::schema::CloudEventSchema::load(&root()).unwrap();
}

/// `.unwrap()` in library code (before any `#[cfg(test)]`) is a panic path on bad input.
#[test]
fn no_unwrap_in_library_code() {
    let mut offenders = Vec::new();
    for dir in [
        "reference-sidecar/src",
        "harness/history/src",
        "harness/check/src",
        "harness/report/src",
        "harness/core/src",
        "harness/toxiproxy/src",
        "harness/bench/src",
    ] {
        let mut files = Vec::new();
        files_under(&root().join(dir), "rs", &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                if line.contains(".unwrap()") && !line.trim_start().starts_with("//") {
                    offenders.push(format!("{}:{}", f.display(), i + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unwrap() in library code: {offenders:?}"
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let command = "bash scripts/test.sh";
    assert!(
        readme.contains(command),
        "README.md gives the test command `{command}`"
    );
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run runs `{command}` exactly"
    );
}

/// ARCHITECTURE.md's invariant: the harness and the suites know a target only through its wire
/// API and its target file, never through the reference sidecar's code.
#[test]
fn harness_and_suites_never_depend_on_the_reference_sidecar() {
    let root = root();
    let mut manifests = vec![root.join("suites/Cargo.toml")];
    for entry in std::fs::read_dir(root.join("harness")).expect("harness/ is readable") {
        let dir = entry.expect("a directory entry").path();
        if dir.join("Cargo.toml").is_file() {
            manifests.push(dir.join("Cargo.toml"));
        }
    }
    let mut sources = Vec::new();
    files_under(&root.join("suites"), "rs", &mut sources);
    files_under(&root.join("harness"), "rs", &mut sources);
    let offenders: Vec<String> = manifests
        .iter()
        .filter(|m| {
            std::fs::read_to_string(m)
                .expect("a readable manifest")
                .lines()
                .any(|l| l.trim_start().starts_with("reference-sidecar"))
        })
        .chain(sources.iter().filter(|f| {
            std::fs::read_to_string(f)
                .expect("a readable source file")
                .contains(concat!("reference", "_sidecar::"))
        }))
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "these depend on reference-sidecar: {offenders:?}"
    );
}

/// No sleep stands for a synchronisation in a check: the only sleep a check body may take is
/// the named observation window `QUIET` (asserting that nothing more arrives); everything else
/// waits for an observable condition with a deadline.
#[test]
fn checks_sleep_only_for_the_observation_window() {
    let mut files = Vec::new();
    files_under(&root().join("suites/src/checks"), "rs", &mut files);
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("a readable source file");
        for (i, line) in text.lines().enumerate() {
            if line.contains("sleep(") && !line.contains("sleep(QUIET)") {
                offenders.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "sleeps in checks: {offenders:#?}");
}

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
    harness_engine::schema::CloudEventSchema::load(&root()).unwrap();
}

/// `.unwrap()` in library code (before any `#[cfg(test)]`) is a panic path on bad input.
#[test]
fn no_unwrap_in_library_code() {
    let mut offenders = Vec::new();
    for dir in [
        "reference-sidecar/src",
        "data/history/src",
        "data/checkers/src",
        "data/report/src",
        "blocks/harness/src",
        "blocks/toxiproxy/src",
        "engine/bench/src",
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

/// The kit's crates, top to bottom: each tier's folder and the crates in it. A crate may depend
/// on crates of its own tier or of tiers below, never above (ARCHITECTURE.md, "Layout").
const TIERS: &[&str] = &["cli", "suites", "engine", "blocks", "data"];

/// Every manifest of the kit (not refsidecar's), with the index of its tier in [`TIERS`].
fn kit_manifests() -> Vec<(usize, PathBuf)> {
    let root = root();
    let mut manifests = Vec::new();
    for (tier, folder) in TIERS.iter().enumerate() {
        let dir = root.join(folder);
        if dir.join("Cargo.toml").is_file() {
            manifests.push((tier, dir.join("Cargo.toml")));
            continue;
        }
        for entry in std::fs::read_dir(&dir).expect("a tier's folder is readable") {
            let crate_dir = entry.expect("a directory entry").path();
            if crate_dir.join("Cargo.toml").is_file() {
                manifests.push((tier, crate_dir.join("Cargo.toml")));
            }
        }
    }
    manifests
}

/// The package name a manifest declares.
fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .expect("a manifest names its package")
        .trim_matches('"')
        .to_owned()
}

/// The dependencies a manifest names in its `[dependencies]` table (not dev- or build-).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps
            && let Some((name, _)) = line.split_once('=')
            && !name.trim().starts_with('#')
        {
            deps.push(name.trim().to_owned());
        }
    }
    deps
}

/// The folders show the dependency graph: the binary, the checks, the engines, the building
/// blocks, pure data, and no crate depends on one in a folder above its own.
#[test]
fn no_crate_depends_on_a_crate_above_it() {
    let manifests: Vec<(usize, String)> = kit_manifests()
        .into_iter()
        .map(|(tier, m)| {
            (
                tier,
                std::fs::read_to_string(m).expect("a readable manifest"),
            )
        })
        .collect();
    assert!(manifests.len() >= 10, "every crate of the kit is found");
    let tier_of: std::collections::BTreeMap<String, usize> = manifests
        .iter()
        .map(|(tier, text)| (package_name(text), *tier))
        .collect();
    let mut offenders = Vec::new();
    for (tier, text) in &manifests {
        for dep in dependencies(text) {
            if let Some(dep_tier) = tier_of.get(&dep)
                && dep_tier < tier
            {
                offenders.push(format!(
                    "{} ({}) depends on {dep} ({})",
                    package_name(text),
                    TIERS[*tier],
                    TIERS[*dep_tier]
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "upward dependencies: {offenders:?}");
}

/// Every crate uses every dependency it names: its name (with `_` for `-`) appears in the
/// crate's sources or build script.
#[test]
fn every_dependency_is_used() {
    let root = root();
    let mut manifests: Vec<PathBuf> = kit_manifests().into_iter().map(|(_, m)| m).collect();
    manifests.push(root.join("reference-sidecar/Cargo.toml"));
    let mut unused = Vec::new();
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).expect("a readable manifest");
        let dir = manifest.parent().expect("a manifest has a folder");
        let mut sources = Vec::new();
        files_under(&dir.join("src"), "rs", &mut sources);
        sources.push(dir.join("build.rs"));
        let code: String = sources
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect();
        for dep in dependencies(&text) {
            if !names_crate(&code, &dep.replace('-', "_")) {
                unused.push(format!("{}: {dep}", manifest.display()));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "dependencies no source names: {unused:?}"
    );
}

/// Whether `code` names crate `name` as a path root (`name::…`, `use name`): not as a segment of
/// another path, so `std::time::Duration` does not count as a use of the `time` crate.
fn names_crate(code: &str, name: &str) -> bool {
    let path = format!("{name}::");
    code.contains(&format!("use {name}"))
        || code.match_indices(&path).any(|(at, _)| {
            let before = &code[..at];
            !before.ends_with("::")
                && !before
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
}

#[test]
fn a_crate_named_only_inside_another_path_is_unused() {
    assert!(!names_crate("let d = std::time::Duration::ZERO;", "time"));
    assert!(!names_crate("tokio::time::sleep", "time"));
    assert!(!names_crate("my_time::now()", "time"));
    assert!(names_crate(
        "let t = time::OffsetDateTime::now_utc();",
        "time"
    ));
    assert!(names_crate("(time::Duration::ZERO)", "time"));
    assert!(names_crate("use time::OffsetDateTime;", "time"));
}

/// ARCHITECTURE.md's invariant: the harness and the suites know a target only through its wire
/// API and its target file, never through the reference sidecar's code.
#[test]
fn harness_and_suites_never_depend_on_the_reference_sidecar() {
    let root = root();
    let manifests: Vec<PathBuf> = kit_manifests().into_iter().map(|(_, m)| m).collect();
    let mut sources = Vec::new();
    for folder in TIERS {
        files_under(&root.join(folder), "rs", &mut sources);
    }
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

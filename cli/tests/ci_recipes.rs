//! The CI recipes of the README ("Use it in your CI", files in examples/ci/) run here as an
//! implementer's CI would run them: each YAML file is parsed, and every shell step of every job
//! runs in a scratch copy of an implementer's repository (a target file for refsidecar, as the
//! README's test command builds it). The kit is installed by the recipes' own step, `cargo
//! install --git`, from this repository's own git history. Steps that use a hosted action
//! (checkout, uploads) cannot run here; what they upload must exist once the shell steps ran.
//!
//! The test changes only the recipes' variables: the kit's repository URL (this repository),
//! the chaos duration (20 s instead of 30 min), and where `cargo install` puts the binary (a
//! prefix of the test's own, first on PATH).
//!
//! The recipes of both CI systems run in one scratch directory, one job after the other. A step
//! that an earlier job ran with the same variables, in a repository holding the same files,
//! runs once: the later job gets a copy of the files it left. GitHub's and GitLab's jobs run the
//! same commands, so each command runs once and each job's uploads are still checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: a panic is its failure

mod common;

use common::workspace;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The variables the test sets, and the only ones it changes.
fn overrides() -> BTreeMap<String, String> {
    let git = format!("file://{}", workspace().display());
    BTreeMap::from([
        ("PUBSUB_TCK_GIT".to_owned(), git),
        ("CHAOS_DURATION".to_owned(), "20s".to_owned()),
    ])
}

#[test]
fn the_readme_shows_every_recipe_verbatim() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    for file in recipe_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            readme.contains(&format!("```yaml\n{text}```")),
            "README.md does not show {} verbatim in a ```yaml block",
            file.display()
        );
    }
}

#[test]
fn every_recipe_runs_its_steps_against_refsidecar() {
    let mut scratch = Scratch::new();
    github_workflows(&mut scratch);
    gitlab_jobs(&mut scratch);
}

fn github_workflows(scratch: &mut Scratch) {
    for name in ["pubsub-conformance.yml", "pubsub-chaos-nightly.yml"] {
        let file = workspace().join("examples/ci/github").join(name);
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut vars = string_map(&doc["env"]);
        assert!(
            vars.contains_key("PUBSUB_TCK_GIT"),
            "{name}: no PUBSUB_TCK_GIT"
        );
        let jobs = doc["jobs"].as_mapping().expect("jobs");
        assert!(!jobs.is_empty(), "{name}: no jobs");
        for (job, spec) in jobs {
            let job = format!("{name}: {}", job.as_str().unwrap());
            vars.extend(string_map(&spec["env"]));
            let repo = scratch.repository(&format!("github {job}"));
            let mut uploads = Vec::new();
            for step in spec["steps"].as_sequence().expect("steps") {
                if let Some(script) = step["run"].as_str() {
                    scratch.run(&job, &repo, script, &vars);
                } else if let Some(action) = step["uses"].as_str() {
                    for key in ["path", "report_paths"] {
                        if let Some(p) = step["with"][key].as_str() {
                            uploads.push((action.to_owned(), p.to_owned()));
                        }
                    }
                }
            }
            assert!(!uploads.is_empty(), "{job}: uploads nothing");
            for (action, path) in uploads {
                assert!(
                    repo.join(&path).exists(),
                    "{job}: {action} uploads {path}, which the steps did not write"
                );
            }
        }
    }
}

fn gitlab_jobs(scratch: &mut Scratch) {
    let file = workspace().join("examples/ci/gitlab-ci.yml");
    let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let vars = string_map(&doc["variables"]);
    assert!(vars.contains_key("PUBSUB_TCK_GIT"), "no PUBSUB_TCK_GIT");
    let jobs: Vec<(&str, &Value)> = doc
        .as_mapping()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
        .filter(|(k, v)| !k.starts_with('.') && v.get("script").is_some())
        .collect();
    assert_eq!(jobs.len(), 2, "a conformance job and a nightly chaos job");
    for (job, spec) in jobs {
        // `extends`: the template's keys, then the job's own.
        let template = spec["extends"].as_str().map(|t| &doc[t]);
        let key = |k: &str| spec.get(k).or_else(|| template.and_then(|t| t.get(k)));
        let repo = scratch.repository(&format!("gitlab {job}"));
        for k in ["before_script", "script"] {
            for line in key(k).and_then(Value::as_sequence).into_iter().flatten() {
                scratch.run(job, &repo, line.as_str().unwrap(), &vars);
            }
        }
        let artifacts = &spec["artifacts"];
        let mut paths: Vec<&str> = artifacts["paths"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        paths.extend(artifacts["reports"]["junit"].as_str());
        for p in paths {
            assert!(
                repo.join(p).exists(),
                "{job}: the artifact {p} was not written"
            );
        }
    }
}

fn recipe_files() -> Vec<PathBuf> {
    let ci = workspace().join("examples/ci");
    vec![
        ci.join("github/pubsub-conformance.yml"),
        ci.join("github/pubsub-chaos-nightly.yml"),
        ci.join("gitlab-ci.yml"),
    ]
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

/// A temporary directory with the install prefix shared by every job, and the steps already run.
struct Scratch {
    base: PathBuf,
    /// For each step run (its script, variables and the repository's files before it): the job
    /// that ran it and a copy of its repository after it.
    ran: BTreeMap<String, (String, PathBuf)>,
}

impl Scratch {
    fn new() -> Scratch {
        assert!(
            workspace().join(".git").exists(),
            "the recipes install the kit with `cargo install --git`: this must be a git clone"
        );
        let base = std::env::temp_dir().join(format!("pubsub-tck-ci-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("prefix/bin")).unwrap();
        std::fs::create_dir_all(base.join("steps")).unwrap();
        Scratch {
            base,
            ran: BTreeMap::new(),
        }
    }

    /// A fresh implementer's repository: their target file (for refsidecar) and its
    /// expectations file, from examples/implementer/.
    fn repository(&self, job: &str) -> PathBuf {
        let sidecar = workspace().join("target/release/refsidecar");
        assert!(
            sidecar.exists(),
            "{} is missing: build it first",
            sidecar.display()
        );
        let dir = self.base.join(job.replace([' ', ':', '/', '.'], "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let example = workspace().join("examples/implementer");
        let target = std::fs::read_to_string(example.join("my-sidecar.toml")).unwrap();
        let target: String = target
            .lines()
            .filter(|l| !l.starts_with("root ="))
            .map(|l| {
                if l.starts_with("command =") {
                    format!("command = {:?}", sidecar.display().to_string())
                } else if l.starts_with("capabilities =") {
                    l.replace('[', "[\"pubsub.redis\", ")
                } else {
                    l.to_owned()
                }
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(dir.join("my-sidecar.toml"), target).unwrap();
        std::fs::copy(
            example.join("my-sidecar.expect.toml"),
            dir.join("my-sidecar.expect.toml"),
        )
        .unwrap();
        dir
    }

    /// Runs one shell step in `repo` with the recipe's variables (and the test's overrides),
    /// as CI runners do: `bash -eo pipefail`; or, when an earlier job ran the same step from
    /// the same files, copies the files that run left into `repo`.
    fn run(&mut self, job: &str, repo: &Path, script: &str, vars: &BTreeMap<String, String>) {
        let mut vars = vars.clone();
        vars.extend(overrides());
        let key = format!("{script}\n{vars:?}\n{}", files(repo).join("\n"));
        if let Some((first, after)) = self.ran.get(&key) {
            eprintln!(
                "{job}: `{script}` ran in {first} with the same variables and files; its files are reused"
            );
            copy_dir(after, repo);
            return;
        }
        self.run_step(job, repo, script, &vars);
        let after = self.base.join("steps").join(self.ran.len().to_string());
        std::fs::create_dir_all(&after).unwrap();
        copy_dir(repo, &after);
        self.ran.insert(key, (job.to_owned(), after));
    }

    fn run_step(&self, job: &str, repo: &Path, script: &str, vars: &BTreeMap<String, String>) {
        let prefix = self.base.join("prefix");
        let path = format!(
            "{}:{}",
            prefix.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let target_dir = workspace().join("target/recipe-install");
        forget_the_kits_own_crates(&target_dir);
        let mut cmd = Command::new("bash");
        cmd.args(["-eo", "pipefail", "-c", script])
            .current_dir(repo)
            .env("PATH", path)
            .env("CARGO_INSTALL_ROOT", &prefix)
            // Later installs reuse the dependencies the first one built.
            .env("CARGO_TARGET_DIR", &target_dir);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PUBSUB_TCK_")) {
            cmd.env_remove(k);
        }
        cmd.envs(vars);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{job}: `{script}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// Every file under `dir` (relative path, size and a hash of its contents), sorted.
fn files(dir: &Path) -> Vec<String> {
    use std::hash::{Hash as _, Hasher as _};
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            out.push(format!("{rel} {} {:x}", bytes.len(), h.finish()));
        }
    }
    out.sort();
    out
}

/// Copies what `from` holds into `to` (`cp -a`).
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// Cargo takes the kit's crates at a new commit of this repository for the ones it built from
/// an older commit (a git dependency's fingerprint names its source and version, not the commit)
/// and would link them: an install then mixes two commits and fails to compile, or runs stale
/// code. The fingerprints of the workspace's own packages go before the first install of a test
/// process, so they are built again; their dependencies stay built. `.kit-commit` in the target
/// directory names the commit they were last built from: at that same commit they stay.
fn forget_the_kits_own_crates(target_dir: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let head = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(workspace())
            .output()
            .unwrap();
        assert!(head.status.success(), "git rev-parse HEAD failed: {head:?}");
        let marker = target_dir.join(".kit-commit");
        if std::fs::read(&marker).is_ok_and(|built| built == head.stdout) {
            return;
        }
        let out = Command::new("cargo")
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(workspace().join("Cargo.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo metadata failed: {out:?}");
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: Vec<&str> = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"pubsub-tck"), "{names:?}");
        let entries = std::fs::read_dir(target_dir.join("release/.fingerprint"));
        for entry in entries.into_iter().flatten().flatten() {
            let file = entry.file_name();
            let name = file.to_string_lossy();
            if name
                .rsplit_once('-')
                .is_some_and(|(package, _hash)| names.contains(&package))
            {
                std::fs::remove_dir_all(entry.path()).unwrap();
            }
        }
        std::fs::create_dir_all(target_dir).unwrap();
        std::fs::write(&marker, &head.stdout).unwrap();
    });
}

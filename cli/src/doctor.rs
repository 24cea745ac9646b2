//! `pubsub-tck doctor`: what this environment can run, and how to get what it lacks.
//!
//! Each part is probed the way the suites find it (the same environment variables and cache
//! directories), and reported with what a missing part makes the suites skip. Probing starts
//! nothing but `--version` commands. How to get a missing part depends on where the kit runs:
//! in a clone of this repository the hints name its scripts; an installed kit has no scripts,
//! so its hints name the commands themselves and the kit's own copy of `fixtures/apps`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One part of the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// What it is, such as `redis-server`.
    pub name: &'static str,
    /// `Some(detail)` (version or path) when found.
    pub found: Option<String>,
    /// What the suites do without it.
    pub without: &'static str,
    /// How to get it.
    pub get: String,
}

/// The first line a `--version`-style command prints (stdout, else stderr), if it runs.
fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let line = String::from_utf8_lossy(&text)
        .lines()
        .next()?
        .trim()
        .to_owned();
    (!line.is_empty()).then_some(line)
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `${XDG_CACHE_HOME:-~/.cache}/pubsub-tck`, where the scripts install what they fetch.
fn cache_dir() -> Option<PathBuf> {
    env_path("XDG_CACHE_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("pubsub-tck"))
}

fn existing(path: PathBuf) -> Option<String> {
    path.exists().then(|| path.display().to_string())
}

/// Probes every part; `root` is the kit's root (a clone, or the unpacked kit of an installed
/// binary), which the hints point into.
pub(crate) fn probe(root: &Path) -> Vec<Part> {
    let clone = root.join("scripts").join("test.sh").is_file();
    let apps = root.join("fixtures").join("apps");
    let apps = apps.display();
    let hint = |in_clone: &str, installed: String| {
        if clone {
            in_clone.to_owned()
        } else {
            installed
        }
    };
    let cache = cache_dir();
    let in_cache = |rel: &str| cache.as_ref().and_then(|c| existing(c.join(rel)));
    let kafka = env_path("PUBSUB_TCK_KAFKA")
        .map(|a| format!("external broker {}", a.display()))
        .or_else(|| {
            env_path("PUBSUB_TCK_KAFKA_HOME")
                .and_then(|h| existing(h.join("lib")))
                .map(|p| format!("PUBSUB_TCK_KAFKA_HOME: {p}"))
        })
        .or_else(|| in_cache("kafka/apache-3.9.2/lib/.complete").map(|p| format!("fetched: {p}")));
    let daprd = env_path("PUBSUB_TCK_DAPRD")
        .and_then(existing)
        .or_else(|| in_cache("daprd/1.18.3/daprd"));
    let python = env_path("PUBSUB_TCK_PYTHON").and_then(existing);
    let node = env_path("PUBSUB_TCK_NODE_PREFIX").and_then(|p| existing(p.join("node_modules")));
    let go_apps = env_path("PUBSUB_TCK_GO_APPS").and_then(existing);
    let toxiproxy = env_path("TOXIPROXY_URL")
        .map(|u| format!("TOXIPROXY_URL={}", u.display()))
        .or_else(|| in_cache("toxiproxy").map(|p| format!("bundled in use; real one built in {p}")))
        .or_else(|| Some("bundled tck-toxiproxy (in-process)".to_owned()));
    vec![
        Part {
            name: "redis-server",
            found: version_of("redis-server", &["--version"]),
            without: "every check on the `redis` broker is skipped (unless PUBSUB_TCK_REDIS names a server)",
            get: "apt-get install redis-server   (`pubsub-tck run --broker redis` does it when it can)".into(),
        },
        Part {
            name: "java",
            found: version_of("java", &["-version"]),
            without: "no private Kafka brokers",
            get: "apt-get install openjdk-17-jre-headless".into(),
        },
        Part {
            name: "Apache Kafka",
            found: kafka,
            without: "every check on the `kafka` broker is skipped",
            get: hint(
                "`pubsub-tck run --broker kafka` fetches it with Maven once (needs java 17 and maven), as does scripts/kafka.sh",
                "`pubsub-tck run --broker kafka` fetches it with Maven once (needs java 17 and maven)".into(),
            ),
        },
        Part {
            name: "Toxiproxy",
            found: toxiproxy,
            without: "nothing: the bundled server is always there",
            get: hint(
                "$(bash scripts/toxiproxy.sh) -port 8474 & export TOXIPROXY_URL=http://127.0.0.1:8474",
                "GOBIN=$HOME/bin go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0 && $HOME/bin/server -port 8474 & export TOXIPROXY_URL=http://127.0.0.1:8474".into(),
            ),
        },
        Part {
            name: "go",
            found: version_of("go", &["version"]),
            without: "daprd cannot be built (the daprd targets cannot run)",
            get: "install Go 1.26 from go.dev".into(),
        },
        Part {
            name: "daprd",
            found: daprd,
            without: "the daprd targets cannot run",
            get: hint(
                "bash scripts/daprd.sh   (or PUBSUB_TCK_DAPRD=/path/to/daprd)",
                "export PUBSUB_TCK_DAPRD=/path/to/daprd (a clone of pubsub-tck builds daprd 1.18.3 from dapr's Go modules with its daprd script)".into(),
            ),
        },
        Part {
            name: "Python apps",
            found: python,
            without: "`apps::fastapi::*`, `apps::orders::*` and `apps::pygrpc::*` are skipped; `bench apps` cannot run the Python apps",
            get: hint(
                "PUBSUB_TCK_PYTHON=<venv>/bin/python with fixtures/apps/python/requirements.txt installed (scripts/test.sh makes one)",
                format!("python3 -m venv VENV && VENV/bin/pip install -r {apps}/python/requirements.txt && export PUBSUB_TCK_PYTHON=VENV/bin/python"),
            ),
        },
        Part {
            name: "Node apps",
            found: node,
            without: "`apps::daprserver::*` and `apps::orders::*` are skipped; `bench apps` cannot run the express app",
            get: hint(
                "PUBSUB_TCK_NODE_PREFIX=<prefix> with fixtures/apps/node/package-lock.json installed (scripts/test.sh makes one)",
                format!("mkdir -p PREFIX && cp {apps}/node/package.json {apps}/node/package-lock.json PREFIX/ && (cd PREFIX && npm ci) && export PUBSUB_TCK_NODE_PREFIX=PREFIX"),
            ),
        },
        Part {
            name: "Go apps",
            found: go_apps,
            without: "`apps::go::*` is skipped; `bench apps` cannot run the Go SDK app",
            get: hint(
                "export PUBSUB_TCK_GO_APPS=$(bash scripts/go-apps.sh)   (needs go; a rerun is a build-cache check)",
                format!("(cd {apps}/go && go build -o $HOME/bin/tckapps .) && export PUBSUB_TCK_GO_APPS=$HOME/bin/tckapps"),
            ),
        },
    ]
}

/// The report: one block per part.
pub(crate) fn render(parts: &[Part]) -> String {
    let mut out = String::new();
    for p in parts {
        match &p.found {
            Some(detail) => out.push_str(&format!("ok       {:<13} {detail}\n", p.name)),
            None => out.push_str(&format!(
                "missing  {:<13} without it: {}\n         {:<13} get it: {}\n",
                p.name, p.without, "", p.get
            )),
        }
    }
    let missing = parts.iter().filter(|p| p.found.is_none()).count();
    out.push_str(&format!(
        "pubsub-tck doctor: {} of {} parts found{}\n",
        parts.len() - missing,
        parts.len(),
        if missing == 0 {
            String::new()
        } else {
            format!("; {missing} missing (the in-memory broker needs none of them)")
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_what_is_missing_and_how_to_get_it() {
        let parts = [
            Part {
                name: "redis-server",
                found: Some("Redis server v=7.0.15".into()),
                without: "w1",
                get: "g1".into(),
            },
            Part {
                name: "go",
                found: None,
                without: "daprd cannot be built",
                get: "install Go".into(),
            },
        ];
        let text = render(&parts);
        assert!(
            text.contains("ok       redis-server  Redis server v=7.0.15"),
            "{text}"
        );
        assert!(
            text.contains("missing  go            without it: daprd cannot be built"),
            "{text}"
        );
        assert!(text.contains("get it: install Go"), "{text}");
        assert!(text.ends_with("pubsub-tck doctor: 1 of 2 parts found; 1 missing (the in-memory broker needs none of them)\n"), "{text}");
    }

    #[test]
    fn probe_lists_every_part_once() {
        let parts = probe(Path::new("/nonexistent"));
        let mut names: Vec<&str> = parts.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), parts.len());
        assert!(
            parts
                .iter()
                .all(|p| !p.without.is_empty() && !p.get.is_empty())
        );
        // The bundled Toxiproxy is always available.
        assert!(
            parts
                .iter()
                .any(|p| p.name == "Toxiproxy" && p.found.is_some())
        );
        assert!(cache_dir().is_none_or(|c| c.ends_with("pubsub-tck")));
    }

    #[test]
    fn hints_name_scripts_in_a_clone_and_the_kits_files_elsewhere() {
        let clone = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let go = |parts: Vec<Part>| {
            parts
                .into_iter()
                .find(|p| p.name == "Go apps")
                .map(|p| p.get)
                .unwrap_or_default()
        };
        assert!(go(probe(&clone)).contains("scripts/go-apps.sh"));
        let kit = Path::new("/opt/kit");
        let installed = probe(kit);
        assert!(
            installed.iter().all(|p| !p.get.contains("scripts/")),
            "{installed:?}"
        );
        assert!(go(installed).contains("/opt/kit/fixtures/apps/go"));
    }
}

//! `pubsub-tck doctor`: what this environment can run, and how to get what it lacks.
//!
//! Each part is probed the way the suites find it (the same environment variables and cache
//! directories), and reported with what a missing part makes the suites skip. Probing starts
//! nothing but `--version` commands.

use std::path::PathBuf;
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
    pub get: &'static str,
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

/// Probes every part.
pub(crate) fn probe() -> Vec<Part> {
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
            get: "apt-get install redis-server   (`pubsub-tck run --broker redis` does it when it can)",
        },
        Part {
            name: "java",
            found: version_of("java", &["-version"]),
            without: "no private Kafka brokers",
            get: "apt-get install openjdk-17-jre-headless",
        },
        Part {
            name: "Apache Kafka",
            found: kafka,
            without: "every check on the `kafka` broker is skipped",
            get: "`pubsub-tck run --broker kafka` fetches it with Maven once (needs java 17 and maven), as does scripts/kafka.sh",
        },
        Part {
            name: "Toxiproxy",
            found: toxiproxy,
            without: "nothing: the bundled server is always there",
            get: "$(bash scripts/toxiproxy.sh) -port 8474 & export TOXIPROXY_URL=http://127.0.0.1:8474",
        },
        Part {
            name: "go",
            found: version_of("go", &["version"]),
            without: "daprd cannot be built (the daprd targets cannot run)",
            get: "install Go 1.26 from go.dev",
        },
        Part {
            name: "daprd",
            found: daprd,
            without: "the daprd targets cannot run",
            get: "bash scripts/daprd.sh   (or PUBSUB_TCK_DAPRD=/path/to/daprd)",
        },
        Part {
            name: "Python apps",
            found: python,
            without: "`apps::fastapi::*` and `apps::orders::*` are skipped",
            get: "PUBSUB_TCK_PYTHON=<venv>/bin/python with fixtures/apps/python/requirements.txt installed (scripts/test.sh makes one)",
        },
        Part {
            name: "Node apps",
            found: node,
            without: "`apps::daprserver::*` and `apps::orders::*` are skipped",
            get: "PUBSUB_TCK_NODE_PREFIX=<prefix> with fixtures/apps/node/package-lock.json installed (scripts/test.sh makes one)",
        },
        Part {
            name: "Go apps",
            found: go_apps,
            without: "`apps::go::*` is skipped",
            get: "export PUBSUB_TCK_GO_APPS=$(bash scripts/go-apps.sh)   (needs go; a rerun is a build-cache check)",
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
                get: "g1",
            },
            Part {
                name: "go",
                found: None,
                without: "daprd cannot be built",
                get: "install Go",
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
        let parts = probe();
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
}

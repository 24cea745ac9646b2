//! Expectations files: the checks a target is known not to pass, each with its reason and the
//! upstream reference that decides it.
//!
//! A target file names its expectations file with `expectations = "FILE"` (relative to the
//! target file). The runner turns a failure the file names into an *expected failure*, which
//! does not fail a run, and a pass of a check the file names into an *unexpected pass*, which
//! does: the file must stay true. A check that errors (the harness broke) stays an error.
//!
//! ```toml
//! [[fail]]
//! check = "core::lifecycle::unknown_component_type"   # a check id
//! brokers = ["kafka"]                                 # optional: only on these brokers
//! reason = "why the target fails it"
//! upstream = "dapr/dapr v1.18.3 pkg/runtime/...go:123"
//! intermittent = true                                 # optional: a race, it may pass
//! ```
//!
//! An `intermittent` entry is for a failure that depends on timing (a race in the target): a
//! failure is an expected failure, and a pass stays a pass with a note naming the entry, so
//! the run's result does not depend on the race.
//!
//! This module parses and looks up; it does not know the catalog (the suites check that every
//! id names a check).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why an expectations file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// The file could not be read.
    #[error("cannot read expectations file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("invalid expectations file {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML cause (it names the line and key).
        #[source]
        source: toml::de::Error,
    },
    /// An entry lacks a reason or a reference, or names one check twice for one broker.
    #[error("expectations file {}: entry {index} ({check}): {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based position of the entry.
        index: usize,
        /// Its check id.
        check: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    fail: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    check: String,
    #[serde(default)]
    brokers: Vec<String>,
    reason: String,
    upstream: String,
    #[serde(default)]
    intermittent: bool,
}

/// One check the target is expected to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The check id.
    pub check: String,
    /// The brokers it fails on; empty means every broker.
    pub brokers: Vec<String>,
    /// Why the target fails it.
    pub reason: String,
    /// The source (file and line of the target's code, an issue) that decides it.
    pub upstream: String,
    /// The failure depends on timing: a pass is not an unexpected pass.
    pub intermittent: bool,
}

impl Expectation {
    /// One line for reports: the reason and the reference.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.reason.trim(), self.upstream.trim())
    }
}

/// A loaded expectations file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    path: PathBuf,
    entries: Vec<Expectation>,
}

impl Expectations {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Expectations, ExpectError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExpectError::Read {
            path: path.to_owned(),
            source,
        })?;
        Expectations::parse(&text, path)
    }

    /// Validates the text of an expectations file; `path` is used in errors and reports.
    pub fn parse(text: &str, path: &Path) -> Result<Expectations, ExpectError> {
        let raw: RawFile = toml::from_str(text).map_err(|source| ExpectError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut entries: Vec<Expectation> = Vec::new();
        for (i, e) in raw.fail.into_iter().enumerate() {
            let invalid = |problem: &str| ExpectError::Invalid {
                path: path.to_owned(),
                index: i + 1,
                check: e.check.clone(),
                problem: problem.to_owned(),
            };
            if e.check.trim().is_empty() {
                return Err(invalid("`check` is empty"));
            }
            if e.reason.trim().is_empty() {
                return Err(invalid("`reason` is empty: say why the target fails"));
            }
            if e.upstream.trim().is_empty() {
                return Err(invalid(
                    "`upstream` is empty: name the source or issue that decides it",
                ));
            }
            let overlaps = |other: &Expectation| {
                other.check == e.check
                    && (other.brokers.is_empty()
                        || e.brokers.is_empty()
                        || other.brokers.iter().any(|b| e.brokers.contains(b)))
            };
            if entries.iter().any(overlaps) {
                return Err(invalid("named twice for the same broker"));
            }
            entries.push(Expectation {
                check: e.check,
                brokers: e.brokers,
                reason: e.reason,
                upstream: e.upstream,
                intermittent: e.intermittent,
            });
        }
        Ok(Expectations {
            path: path.to_owned(),
            entries,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[Expectation] {
        &self.entries
    }

    /// The expectation for check `id` on `broker`, if the file has one.
    pub fn lookup(&self, id: &str, broker: &str) -> Option<&Expectation> {
        self.entries.iter().find(|e| {
            e.check == id && (e.brokers.is_empty() || e.brokers.iter().any(|b| b == broker))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Expectations, String> {
        Expectations::parse(text, Path::new("t.expect.toml")).map_err(|e| {
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                s.push_str(&format!(": {c}"));
                cause = c.source();
            }
            s
        })
    }

    #[test]
    fn looks_up_by_check_and_broker() {
        let e = parse(
            "[[fail]]\ncheck = \"a::b\"\nreason = \"r\"\nupstream = \"u\"\n\n[[fail]]\ncheck = \"c::d\"\nbrokers = [\"kafka\"]\nreason = \"r2\"\nupstream = \"u2\"\n",
        )
        .unwrap();
        assert_eq!(
            e.lookup("a::b", "redis")
                .map(Expectation::describe)
                .as_deref(),
            Some("r (u)")
        );
        assert!(e.lookup("c::d", "redis").is_none());
        assert!(e.lookup("c::d", "kafka").is_some());
        assert!(e.lookup("x::y", "kafka").is_none());
        assert!(e.entries().iter().all(|x| !x.intermittent));
    }

    #[test]
    fn intermittent_is_read_and_must_be_a_bool() {
        let e = parse(
            "[[fail]]\ncheck = \"a::b\"\nreason = \"r\"\nupstream = \"u\"\nintermittent = true\n",
        )
        .unwrap();
        assert!(e.lookup("a::b", "redis").is_some_and(|x| x.intermittent));
        let err = parse(
            "[[fail]]\ncheck = \"a::b\"\nreason = \"r\"\nupstream = \"u\"\nintermittent = \"yes\"\n",
        )
        .unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn every_entry_needs_a_reason_and_a_reference() {
        let err =
            parse("[[fail]]\ncheck = \"a::b\"\nreason = \"\"\nupstream = \"u\"\n").unwrap_err();
        assert!(err.contains("entry 1 (a::b): `reason` is empty"), "{err}");
        let err = parse("[[fail]]\ncheck = \"a::b\"\nreason = \"r\"\n").unwrap_err();
        assert!(err.contains("missing field `upstream`"), "{err}");
        let err =
            parse("[[fail]]\ncheck = \"a::b\"\nreason = \"r\"\nupstream = \"u\"\nlevel = 1\n")
                .unwrap_err();
        assert!(err.contains("unknown field `level`"), "{err}");
        let twice = "[[fail]]\ncheck = \"a::b\"\nreason = \"r\"\nupstream = \"u\"\n";
        let err = parse(&format!("{twice}{twice}")).unwrap_err();
        assert!(err.contains("entry 2 (a::b): named twice"), "{err}");
    }
}

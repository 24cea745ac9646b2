//! Target files: the TOML description of how to launch (or attach to) a sidecar.
//!
//! A target file names a sidecar, the command line that starts it and the capabilities it
//! claims; placeholders such as `{http_port}` are expanded from [`LaunchVars`] at launch.
//! This module only parses, validates and expands; spawning lives in [`crate::sidecar`].
//!
//! ```toml
//! name = "reference"
//! root = "../.."                          # optional; default: this file's folder
//! command = "target/release/refsidecar"   # relative to `root`, absolute, or a bare name on PATH
//! args = ["--app-id", "{app_id}", "--dapr-http-port", "{http_port}"]
//! env = { }                               # optional
//! ready = "/v1.0/healthz/outbound"        # optional; this is the default
//! capabilities = ["bulk"]                 # optional
//! [promises]                              # optional; a broker not named makes its defaults
//! redis = ["survives-sidecar-crash", "backlog-for-new-subscriber"]
//! # attach mode instead of command/args:  url = "http://127.0.0.1:3500"
//! ```
//!
//! `root` is the directory a relative `command` resolves against, where the `build` command
//! runs (with `{brokers}` the run's brokers), and the launched sidecar's working directory. It is itself relative to the target
//! file's folder, so a target file and what it names travel together.
//!
//! A placeholder is `{` followed by letters, digits, `_` or `-`, then `}`.
//! Any other brace is literal, so JSON in an environment value needs no escaping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::broker::Broker;
use crate::expect::{ExpectError, Expectations};
use crate::promise::{self, Promise};

/// The default readiness path polled after spawning a sidecar (§8.7: publishing works).
pub const DEFAULT_READY_PATH: &str = "/v1.0/healthz/outbound";

/// The placeholders a `build` command may use: the run's brokers (see
/// [`TargetFile::build_command_for`]).
pub const BUILD_PLACEHOLDERS: &[&str] = &["brokers"];

/// Placeholder names accepted in `args` and `env` values.
pub const PLACEHOLDERS: &[&str] = &[
    "app_id",
    "app_port",
    "http_port",
    "grpc_port",
    "metrics_port",
    "internal_grpc_port",
    "wrapper_port",
    "app_protocol",
    "resources_dir",
    "config_file",
];

/// Top-level keys of a target file, checked before deserialising so the error can name
/// the offending key.
const KEYS: &[&str] = &[
    "name",
    "command",
    "args",
    "env",
    "ready",
    "capabilities",
    "url",
    "build",
    "expectations",
    "root",
    "promises",
];

/// Why a target file could not be loaded or expanded.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The file could not be read.
    #[error("cannot read target file {}", path.display())]
    Read {
        /// The target file.
        path: PathBuf,
        /// The IO cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value has the wrong type.
    #[error("invalid target file {}", path.display())]
    Parse {
        /// The target file.
        path: PathBuf,
        /// The TOML cause (it names the line and key).
        #[source]
        source: toml::de::Error,
    },
    /// The expectations file the target names could not be loaded.
    #[error("target file {}: cannot load its expectations file", path.display())]
    Expectations {
        /// The target file.
        path: PathBuf,
        /// Why (boxed: it is rare and large).
        #[source]
        source: Box<ExpectError>,
    },
    /// A top-level key is not part of the target file format.
    #[error("target file {}: unknown key `{key}` (expected one of {})", path.display(), KEYS.join(", "))]
    UnknownKey {
        /// The target file.
        path: PathBuf,
        /// The unknown key.
        key: String,
    },
    /// A placeholder name is not one of [`PLACEHOLDERS`].
    #[error("target file {}: unknown placeholder `{{{placeholder}}}` in `{key}`", path.display())]
    UnknownPlaceholder {
        /// The target file.
        path: PathBuf,
        /// Where it appears, such as `args[3]` or `env.DAPR_API_TOKEN`.
        key: String,
        /// The placeholder name, without braces.
        placeholder: String,
    },
    /// A placeholder has no value for this launch (only `{config_file}` can be unset).
    #[error("target file {}: `{key}` uses `{{{placeholder}}}` but no value was given for it", path.display())]
    MissingValue {
        /// The target file.
        path: PathBuf,
        /// Where it appears.
        key: String,
        /// The placeholder name, without braces.
        placeholder: String,
    },
    /// Neither `command` nor `url` is set.
    #[error("target file {}: one of `command` or `url` is required", path.display())]
    NoCommandOrUrl {
        /// The target file.
        path: PathBuf,
    },
    /// Two keys that exclude each other are both set.
    #[error("target file {}: `{first}` and `{second}` are mutually exclusive", path.display())]
    Conflict {
        /// The target file.
        path: PathBuf,
        /// The first key.
        first: &'static str,
        /// The second key.
        second: &'static str,
    },
    /// A value is malformed (empty name, a `ready` path without a leading `/`, a non-HTTP URL).
    #[error("target file {}: invalid `{key}`: {reason}", path.display())]
    InvalidValue {
        /// The target file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `[promises]` names a broker or a promise that does not exist.
    #[error("target file {}: {problem}", path.display())]
    Promises {
        /// The target file.
        path: PathBuf,
        /// The unknown name, and the names that exist.
        problem: String,
    },
    /// [`TargetFile::command_line`] was called on an attach-mode target.
    #[error("target `{name}` attaches to a running sidecar and has no command line")]
    Attached {
        /// The target's name.
        name: String,
    },
}

/// The TOML shape, exactly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    command: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    env: Option<BTreeMap<String, String>>,
    ready: Option<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    url: Option<String>,
    #[serde(default)]
    build: Option<Vec<String>>,
    expectations: Option<String>,
    root: Option<String>,
    #[serde(default)]
    promises: BTreeMap<String, Vec<String>>,
}

/// How the sidecar is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// The harness starts the process.
    Launch {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// The sidecar already runs at this base URL (no trailing slash).
    Attach { url: String },
}

/// A validated target file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFile {
    path: PathBuf,
    root: PathBuf,
    name: String,
    mode: Mode,
    ready: String,
    capabilities: Vec<String>,
    build: Option<Vec<String>>,
    expectations: Option<Expectations>,
    /// The promises the file declares, per broker; a broker it does not name makes its
    /// defaults ([`crate::promise::defaults`]).
    promises: BTreeMap<Broker, Vec<Promise>>,
}

/// An expanded command line: the program, its arguments and the extra environment.
pub type CommandLine = (PathBuf, Vec<String>, BTreeMap<String, String>);

/// Values substituted for placeholders when a target is launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchVars {
    /// `{app_id}`.
    pub app_id: String,
    /// `{app_port}`: where the sidecar finds the app.
    pub app_port: u16,
    /// `{http_port}`: the sidecar's HTTP API.
    pub http_port: u16,
    /// `{grpc_port}`: the sidecar's gRPC API.
    pub grpc_port: u16,
    /// `{metrics_port}`.
    pub metrics_port: u16,
    /// `{internal_grpc_port}`: daprd's sidecar-to-sidecar gRPC listener (it picks a port of its
    /// own without the flag, outside the harness's control).
    pub internal_grpc_port: u16,
    /// `{wrapper_port}`: one more leased port for a wrapper that sits in front of the sidecar's
    /// HTTP API (the wrapper listens on `{http_port}` and runs the sidecar on this one).
    pub wrapper_port: u16,
    /// `{app_protocol}`: `http`, or `grpc` for the checks of a gRPC app (a target that declares
    /// the capability `app.grpc` passes it to its `--app-protocol` flag).
    pub app_protocol: &'static str,
    /// `{resources_dir}`: components, subscriptions, resiliency.
    pub resources_dir: PathBuf,
    /// `{config_file}`: a Configuration YAML; using the placeholder without one is an error.
    pub config_file: Option<PathBuf>,
}

impl TargetFile {
    /// Reads and validates a target file; a relative `command` resolves against its `root`
    /// (see [`TargetFile::root`]).
    pub fn load(path: &Path) -> Result<TargetFile, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
            path: path.to_owned(),
            source,
        })?;
        TargetFile::parse(&text, path)
    }

    /// Validates target-file text; `path` is used in errors only.
    pub fn parse(text: &str, path: &Path) -> Result<TargetFile, TargetError> {
        let parse_err = |source| TargetError::Parse {
            path: path.to_owned(),
            source,
        };
        // Checking the keys first gives an error that names the key in its own message;
        // `deny_unknown_fields` stays as a backstop.
        let table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(TargetError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
            });
        }
        let raw: RawTarget = toml::from_str(text).map_err(parse_err)?;
        validate(raw, path)
    }

    /// The file this target was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The target's root, absolute: `root` (default `.`) against the target file's folder. A
    /// relative `command` resolves against it, the `build` command runs in it, and it is the
    /// launched sidecar's working directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The target's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for `url = ...` targets: the harness attaches and starts no process.
    pub fn is_attach(&self) -> bool {
        matches!(self.mode, Mode::Attach { .. })
    }

    /// The base URL of an attach-mode target, without a trailing slash.
    pub fn url(&self) -> Option<&str> {
        match &self.mode {
            Mode::Attach { url } => Some(url),
            Mode::Launch { .. } => None,
        }
    }

    /// The unexpanded arguments of a launched target (`None` for an attach target).
    pub fn launch_args(&self) -> Option<&[String]> {
        match &self.mode {
            Mode::Launch { args, .. } => Some(args),
            Mode::Attach { .. } => None,
        }
    }

    /// The readiness path polled after launch (default [`DEFAULT_READY_PATH`]).
    pub fn ready_path(&self) -> &str {
        &self.ready
    }

    /// The capabilities the target claims, such as `bulk` or `grpc`.
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// The optional `build` command (program and arguments) that produces the target's binary;
    /// `pubsub-tck run` runs it in the workspace root before launching.
    pub fn build_command(&self) -> Option<&[String]> {
        self.build.as_deref()
    }

    /// The `build` command for a run on `brokers`: `{brokers}` in its arguments becomes their
    /// names, comma-separated (`in-memory,redis`), so that a build can leave out what the run
    /// does not need.
    pub fn build_command_for(&self, brokers: &[&str]) -> Option<Vec<String>> {
        let names = brokers.join(",");
        self.build
            .as_ref()
            .map(|cmd| cmd.iter().map(|a| a.replace("{brokers}", &names)).collect())
    }

    /// The target's expectations file (checks it is known to fail, and why), if it names one.
    pub fn expectations(&self) -> Option<&Expectations> {
        self.expectations.as_ref()
    }

    /// Whether the target claims `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// What the target promises on `broker`: its `[promises]` list for it, else the broker's
    /// defaults.
    pub fn promises(&self, broker: Broker) -> &[Promise] {
        self.promises
            .get(&broker)
            .map_or_else(|| promise::defaults(broker), Vec::as_slice)
    }

    /// Whether the target makes `promise` on `broker`.
    pub fn keeps(&self, broker: Broker, promise: Promise) -> bool {
        self.promises(broker).contains(&promise)
    }

    /// This target behind a wrapper program: the wrapped target launches
    /// `wrapper... -- <this target's program> <its arguments>`, with the same environment, root,
    /// build and readiness path, the given name and capabilities, and no expectations (they
    /// describe this target, not the wrapped one). `rename` swaps one placeholder for another
    /// in this target's arguments and environment, so a wrapper can take a port the sidecar
    /// had (`{http_port}` becomes `{wrapper_port}`). Errors for an attach target: there is no
    /// process to wrap.
    pub fn wrapped(
        &self,
        name: &str,
        wrapper: &[String],
        rename: Option<(&str, &str)>,
        capabilities: Vec<String>,
    ) -> Result<TargetFile, TargetError> {
        let Mode::Launch { command, args, env } = &self.mode else {
            return Err(TargetError::Attached {
                name: self.name.clone(),
            });
        };
        let Some((program, leading)) = wrapper.split_first() else {
            return Err(TargetError::InvalidValue {
                path: self.path.clone(),
                key: "command",
                reason: "a wrapper needs a program",
            });
        };
        let swap = |value: &str| match rename {
            Some((from, to)) => value.replace(&format!("{{{from}}}"), &format!("{{{to}}}")),
            None => value.to_owned(),
        };
        let sidecar = resolve_program(command, &self.root).display().to_string();
        let args = leading
            .iter()
            .cloned()
            .chain(["--".to_owned(), sidecar])
            .chain(args.iter().map(|a| swap(a)))
            .collect();
        let env = env.iter().map(|(k, v)| (k.clone(), swap(v))).collect();
        Ok(TargetFile {
            name: name.to_owned(),
            mode: Mode::Launch {
                command: program.clone(),
                args,
                env,
            },
            capabilities,
            expectations: None,
            ..self.clone()
        })
    }

    /// Expands placeholders: returns the program, its arguments and extra environment.
    ///
    /// The program is absolute when `command` contains a `/`; a bare name is returned as
    /// is so that spawning looks it up on `PATH`.
    pub fn command_line(&self, vars: &LaunchVars) -> Result<CommandLine, TargetError> {
        let Mode::Launch { command, args, env } = &self.mode else {
            return Err(TargetError::Attached {
                name: self.name.clone(),
            });
        };
        let program = resolve_program(command, &self.root);
        let args = args
            .iter()
            .enumerate()
            .map(|(i, a)| self.expand_value(a, &format!("args[{i}]"), vars))
            .collect::<Result<Vec<_>, _>>()?;
        let env = env
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.expand_value(v, &format!("env.{k}"), vars)?)))
            .collect::<Result<BTreeMap<_, _>, TargetError>>()?;
        Ok((program, args, env))
    }

    fn expand_value(
        &self,
        value: &str,
        key: &str,
        vars: &LaunchVars,
    ) -> Result<String, TargetError> {
        let expanded = expand(value, |name| match name {
            "app_id" => Some(Ok(vars.app_id.clone())),
            "app_port" => Some(Ok(vars.app_port.to_string())),
            "http_port" => Some(Ok(vars.http_port.to_string())),
            "grpc_port" => Some(Ok(vars.grpc_port.to_string())),
            "metrics_port" => Some(Ok(vars.metrics_port.to_string())),
            "internal_grpc_port" => Some(Ok(vars.internal_grpc_port.to_string())),
            "wrapper_port" => Some(Ok(vars.wrapper_port.to_string())),
            "app_protocol" => Some(Ok(vars.app_protocol.to_owned())),
            "resources_dir" => Some(Ok(vars.resources_dir.display().to_string())),
            "config_file" => Some(match &vars.config_file {
                Some(p) => Ok(p.display().to_string()),
                None => Err(TargetError::MissingValue {
                    path: self.path.clone(),
                    key: key.to_owned(),
                    placeholder: name.to_owned(),
                }),
            }),
            _ => None,
        });
        match expanded {
            Ok(result) => result,
            Err(placeholder) => Err(TargetError::UnknownPlaceholder {
                path: self.path.clone(),
                key: key.to_owned(),
                placeholder,
            }),
        }
    }
}

fn validate(raw: RawTarget, path: &Path) -> Result<TargetFile, TargetError> {
    let invalid = |key, reason| TargetError::InvalidValue {
        path: path.to_owned(),
        key,
        reason,
    };
    if raw.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    let mode = match (raw.command, raw.url) {
        (Some(_), Some(_)) => {
            return Err(TargetError::Conflict {
                path: path.to_owned(),
                first: "command",
                second: "url",
            });
        }
        (None, None) => {
            return Err(TargetError::NoCommandOrUrl {
                path: path.to_owned(),
            });
        }
        (Some(command), None) => {
            if command.trim().is_empty() {
                return Err(invalid("command", "must not be empty"));
            }
            let args = raw.args.unwrap_or_default();
            let env = raw.env.unwrap_or_default();
            // Reject unknown placeholders at load time so a typo fails before any launch.
            let values = args
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("args[{i}]"), a.as_str()))
                .chain(env.iter().map(|(k, v)| (format!("env.{k}"), v.as_str())));
            for (key, value) in values {
                if let Some(placeholder) = placeholders(value).find(|p| !PLACEHOLDERS.contains(p)) {
                    return Err(TargetError::UnknownPlaceholder {
                        path: path.to_owned(),
                        key,
                        placeholder: placeholder.to_owned(),
                    });
                }
            }
            Mode::Launch { command, args, env }
        }
        (None, Some(url)) => {
            if raw.args.is_some() {
                return Err(TargetError::Conflict {
                    path: path.to_owned(),
                    first: "url",
                    second: "args",
                });
            }
            if raw.env.is_some() {
                return Err(TargetError::Conflict {
                    path: path.to_owned(),
                    first: "url",
                    second: "env",
                });
            }
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.parse::<http::Uri>().is_err()
            {
                return Err(invalid("url", "must be an http:// or https:// URL"));
            }
            Mode::Attach {
                url: url.trim_end_matches('/').to_owned(),
            }
        }
    };
    if raw.root.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(invalid(
            "root",
            "must not be empty (leave it out for the file's folder)",
        ));
    }
    let root = target_root(path, raw.root.as_deref());
    let ready = raw.ready.unwrap_or_else(|| DEFAULT_READY_PATH.to_owned());
    if !ready.starts_with('/') {
        return Err(invalid("ready", "must be a path starting with `/`"));
    }
    // Relative to the target file, so a target and its expectations travel together.
    let expectations = match raw.expectations {
        Some(file) if file.trim().is_empty() => {
            return Err(invalid("expectations", "must not be empty"));
        }
        Some(file) => {
            let full = path.parent().unwrap_or(Path::new(".")).join(file);
            Some(
                Expectations::load(&full).map_err(|source| TargetError::Expectations {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?,
            )
        }
        None => None,
    };
    let build = raw.build.filter(|b| !b.is_empty());
    for (i, arg) in build.iter().flatten().enumerate() {
        if let Some(placeholder) = placeholders(arg).find(|p| !BUILD_PLACEHOLDERS.contains(p)) {
            return Err(TargetError::UnknownPlaceholder {
                path: path.to_owned(),
                key: format!("build[{i}]"),
                placeholder: placeholder.to_owned(),
            });
        }
    }
    let promises = promises_of(raw.promises, path)?;
    Ok(TargetFile {
        path: path.to_owned(),
        root,
        name: raw.name,
        mode,
        ready,
        capabilities: raw.capabilities,
        build,
        expectations,
        promises,
    })
}

/// The `[promises]` table, every broker and promise name checked.
fn promises_of(
    raw: BTreeMap<String, Vec<String>>,
    path: &Path,
) -> Result<BTreeMap<Broker, Vec<Promise>>, TargetError> {
    let err = |problem: String| TargetError::Promises {
        path: path.to_owned(),
        problem,
    };
    let mut promises = BTreeMap::new();
    for (broker, names) in raw {
        let Some(b) = Broker::parse(&broker) else {
            let known: Vec<_> = Broker::ALL.iter().map(|b| b.name()).collect();
            return Err(err(format!(
                "`promises.{broker}`: no such broker (expected one of {})",
                known.join(", ")
            )));
        };
        let mut list = Vec::new();
        for name in names {
            let Some(p) = Promise::parse(&name) else {
                let known: Vec<_> = Promise::ALL.iter().map(|p| p.name()).collect();
                return Err(err(format!(
                    "`promises.{broker}`: unknown promise {name:?} (expected any of {})",
                    known.join(", ")
                )));
            };
            list.push(p);
        }
        promises.insert(b, list);
    }
    Ok(promises)
}

fn resolve_program(command: &str, root: &Path) -> PathBuf {
    let p = Path::new(command);
    if p.is_absolute() || !command.contains('/') {
        p.to_owned()
    } else {
        root.join(p)
    }
}

/// The absolute root of the target file at `path`: `root` against the file's folder, which is
/// made absolute against the current directory (a relative program with another working
/// directory would resolve differently on each platform). Kept as written when it does not
/// exist, so the launch error names it.
fn target_root(path: &Path, root: Option<&str>) -> PathBuf {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let joined = match root {
        Some(r) => folder.join(r),
        None => folder,
    };
    let absolute = if joined.is_absolute() {
        joined
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&joined))
            .unwrap_or(joined)
    };
    absolute.canonicalize().unwrap_or(absolute)
}

/// Finds the span of the next placeholder at or after `from`: `(start, end)` with `end`
/// one past the closing brace.
fn next_placeholder(s: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut i = from;
    while let Some(off) = s.get(i..)?.find('{') {
        let start = i + off;
        let mut j = start + 1;
        while j < bytes.len()
            && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b'-')
        {
            j += 1;
        }
        if j > start + 1 && j < bytes.len() && bytes[j] == b'}' {
            return Some((start, j + 1));
        }
        i = start + 1;
    }
    None
}

/// The placeholder names in `s`, in order.
fn placeholders(s: &str) -> impl Iterator<Item = &str> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let (start, end) = next_placeholder(s, from)?;
        from = end;
        Some(&s[start + 1..end - 1])
    })
}

/// Expands every placeholder with `lookup`; `Err(name)` for the first unknown one, and
/// the lookup's own error passes through inside `Ok`.
fn expand<E>(
    s: &str,
    mut lookup: impl FnMut(&str) -> Option<Result<String, E>>,
) -> Result<Result<String, E>, String> {
    let mut out = String::with_capacity(s.len());
    let mut from = 0;
    while let Some((start, end)) = next_placeholder(s, from) {
        out.push_str(&s[from..start]);
        let name = &s[start + 1..end - 1];
        match lookup(name) {
            Some(Ok(v)) => out.push_str(&v),
            Some(Err(e)) => return Ok(Err(e)),
            None => return Err(name.to_owned()),
        }
        from = end;
    }
    out.push_str(&s[from..]);
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> LaunchVars {
        LaunchVars {
            app_id: "app1".into(),
            app_port: 3000,
            http_port: 3500,
            grpc_port: 50001,
            metrics_port: 9090,
            internal_grpc_port: 9091,
            wrapper_port: 9092,
            app_protocol: "http",
            resources_dir: PathBuf::from("/res"),
            config_file: None,
        }
    }

    fn load(text: &str) -> Result<TargetFile, TargetError> {
        TargetFile::parse(text, Path::new("/ws/t.toml"))
    }

    /// Loads `text` and renders either the expanded command line or the error message.
    fn check(text: &str, expect: &str) {
        let got = match load(text).and_then(|t| t.command_line(&vars())) {
            Ok((program, args, env)) => format!("{} {:?} {:?}", program.display(), args, env),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn expands_placeholders_in_args_and_env() {
        check(
            r#"name = "r"
command = "target/release/refsidecar"
args = ["--app-id", "{app_id}", "--app-port", "{app_port}", "--dapr-http-port", "{http_port}",
        "--dapr-grpc-port", "{grpc_port}", "-m={metrics_port}", "{resources_dir}/x", "{not a placeholder}"]
env = { A = "{app_id}-{http_port}", J = '{"k":1}' }
"#,
            r#"/ws/target/release/refsidecar ["--app-id", "app1", "--app-port", "3000", "--dapr-http-port", "3500", "--dapr-grpc-port", "50001", "-m=9090", "/res/x", "{not a placeholder}"] {"A": "app1-3500", "J": "{\"k\":1}"}"#,
        );
    }

    #[test]
    fn build_takes_the_runs_brokers_and_no_launch_placeholder() {
        let t = load(
            "name = \"r\"\ncommand = \"s\"\nbuild = [\"bash\", \"b.sh\", \"{brokers}\", \"x{brokers}\"]",
        )
        .unwrap();
        assert_eq!(
            t.build_command_for(&["in-memory", "kafka"]).unwrap(),
            ["bash", "b.sh", "in-memory,kafka", "xin-memory,kafka"]
        );
        let err = load("name = \"r\"\ncommand = \"s\"\nbuild = [\"make\", \"{http_port}\"]")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "target file /ws/t.toml: unknown placeholder `{http_port}` in `build[1]`"
        );
        let t = load("name = \"r\"\ncommand = \"s\"").unwrap();
        assert!(t.build_command_for(&["redis"]).is_none());
    }

    #[test]
    fn resolves_programs() {
        check("name = \"d\"\ncommand = \"daprd\"", "daprd [] {}");
        check("name = \"d\"\ncommand = \"/usr/bin/x\"", "/usr/bin/x [] {}");
    }

    #[test]
    fn root_is_relative_to_the_target_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("fixtures/targets")).unwrap();
        let text = "name = \"r\"\nroot = \"../..\"\ncommand = \"target/release/s\"";
        let t = TargetFile::parse(text, &base.join("fixtures/targets/r.toml")).unwrap();
        assert_eq!(t.root(), base);
        let (program, _, _) = t.command_line(&vars()).unwrap();
        assert_eq!(program, base.join("target/release/s"));

        let text = "name = \"r\"\ncommand = \"bin/s\"";
        let t = TargetFile::parse(text, &base.join("fixtures/targets/r.toml")).unwrap();
        assert_eq!(
            t.root(),
            base.join("fixtures/targets"),
            "default: the file's folder"
        );

        let empty = "name = \"r\"\nroot = \" \"\ncommand = \"s\"";
        let err = TargetFile::parse(empty, &base.join("r.toml")).unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
    }

    #[test]
    fn rejects_bad_files() {
        check(
            "name = \"r\"\ncomand = \"x\"",
            "error: target file /ws/t.toml: unknown key `comand` (expected one of name, command, args, env, ready, capabilities, url, build, expectations, root, promises)",
        );
        check(
            "name = \"r\"\ncommand = \"x\"\nargs = [\"a\", \"{app-port}\"]",
            "error: target file /ws/t.toml: unknown placeholder `{app-port}` in `args[1]`",
        );
        check(
            "name = \"r\"\ncommand = \"x\"\nenv = { T = \"{tok}\" }",
            "error: target file /ws/t.toml: unknown placeholder `{tok}` in `env.T`",
        );
        check(
            "name = \"r\"\ncommand = \"x\"\nargs = [\"--config\", \"{config_file}\"]",
            "error: target file /ws/t.toml: `args[1]` uses `{config_file}` but no value was given for it",
        );
        check(
            "name = \"r\"\ncommand = \"x\"\nurl = \"http://127.0.0.1:1\"",
            "error: target file /ws/t.toml: `command` and `url` are mutually exclusive",
        );
        check(
            "name = \"r\"",
            "error: target file /ws/t.toml: one of `command` or `url` is required",
        );
        check(
            "name = \"r\"\ncommand = \"x\"\nready = \"healthz\"",
            "error: target file /ws/t.toml: invalid `ready`: must be a path starting with `/`",
        );
        check(
            "name = \"r\"\ncommand = 3",
            "error: invalid target file /ws/t.toml",
        );
    }

    #[test]
    fn promises_default_per_broker_and_are_checked() {
        let t =
            load("name = \"a\"\nurl = \"http://127.0.0.1:3500\"\n[promises]\nredis = [\"fifo\"]")
                .unwrap();
        assert_eq!(t.promises(Broker::Redis), &[Promise::Fifo]);
        assert!(!t.keeps(Broker::Redis, Promise::SurvivesSidecarCrash));
        assert_eq!(t.promises(Broker::Kafka), promise::defaults(Broker::Kafka));
        let e = load("name = \"a\"\nurl = \"http://x\"\n[promises]\nredis = [\"fast\"]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown promise \"fast\"") && e.contains("fifo"),
            "{e}"
        );
        let e = load("name = \"a\"\nurl = \"http://x\"\n[promises]\nrabbit = []")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`promises.rabbit`: no such broker"), "{e}");
    }

    #[test]
    fn attach_mode() {
        let t = load("name = \"a\"\nurl = \"http://127.0.0.1:3500/\"\ncapabilities = [\"bulk\"]")
            .unwrap();
        assert!(t.is_attach());
        assert_eq!(t.url(), Some("http://127.0.0.1:3500"));
        assert!(t.has_capability("bulk"));
        assert!(!t.has_capability("grpc"));
        assert_eq!(t.ready_path(), DEFAULT_READY_PATH);
        check(
            "name = \"a\"\nurl = \"http://x\"\nargs = []",
            "error: target file /ws/t.toml: `url` and `args` are mutually exclusive",
        );
        check(
            "name = \"a\"\nurl = \"ftp://x\"",
            "error: target file /ws/t.toml: invalid `url`: must be an http:// or https:// URL",
        );
        assert_eq!(
            t.command_line(&vars()).unwrap_err().to_string(),
            "target `a` attaches to a running sidecar and has no command line"
        );
    }

    #[test]
    fn config_file_expands_when_given() {
        let t = load("name = \"r\"\ncommand = \"x\"\nargs = [\"--config\", \"{config_file}\"]")
            .unwrap();
        let mut v = vars();
        v.config_file = Some(PathBuf::from("/c.yaml"));
        assert_eq!(t.command_line(&v).unwrap().1, vec!["--config", "/c.yaml"]);
    }
}

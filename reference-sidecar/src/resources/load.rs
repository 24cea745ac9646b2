//! Validation of resource documents into domain types.
//!
//! Errors name the file, the document and the key. Keys daprd would silently ignore are
//! accepted too, with a warning naming file and key, because a silently ignored key (such as
//! `deadLetterTopic` under a Resiliency retry policy) is a classic misconfiguration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_norway::Value;

use super::raw;
use crate::duration::parse_go_duration;
use crate::resiliency::{Backoff, ComponentTargets, Matching, Names, Resiliency, RetryPolicy};
use crate::subscription::{Bulk, Kind, Subscription};

/// A loaded Component resource (validation of its metadata belongs to the broker it names).
/// `Debug` lists the metadata keys without their values, which may be passwords.
#[derive(Clone)]
pub struct ComponentDef {
    /// `metadata.name`: the pubsub name apps use.
    pub name: String,
    /// `spec.type`, e.g. `pubsub.in-memory`.
    pub type_: String,
    /// `spec.version`, default `v1`.
    pub version: String,
    /// `spec.metadata` as name → value strings.
    pub metadata: BTreeMap<String, String>,
    /// The file it came from, for error messages.
    pub file: PathBuf,
}

impl std::fmt::Debug for ComponentDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentDef")
            .field("name", &self.name)
            .field("type_", &self.type_)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.keys().collect::<Vec<_>>())
            .field("file", &self.file)
            .finish()
    }
}

/// Everything loaded from the resources paths for one app-id.
#[derive(Debug, Default)]
pub struct Resources {
    /// Components in load order.
    pub components: Vec<ComponentDef>,
    /// Declarative subscriptions in load order (scopes already applied).
    pub subscriptions: Vec<Subscription>,
    /// All Resiliency resources in scope, merged.
    pub resiliency: Resiliency,
    /// Ignored keys and other non-fatal findings, one line each.
    pub warnings: Vec<String>,
}

/// A resource that cannot be loaded; start-up fails with this.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A resources path or file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A document is invalid.
    #[error("{file}: {what}: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Which document or resource, e.g. `Component pubsub` or `document 2`.
        what: String,
        /// The key path and the problem.
        message: String,
    },
}

/// Loads every resource in `paths` (directories, non-recursive, files sorted by name; a path
/// may also be a single file) that is in scope for `app_id`.
pub fn load(paths: &[PathBuf], app_id: &str) -> Result<Resources, LoadError> {
    let mut out = Resources::default();
    for dir in paths {
        for file in yaml_files(dir)? {
            let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
                path: file.clone(),
                source,
            })?;
            load_file(&file, &text, app_id, &mut out)?;
        }
    }
    Ok(out)
}

/// Loads the resources of one file's text as [`load`] would (`file` only names it in errors and
/// warnings): no filesystem access, so tests and fuzz targets can call it.
pub fn load_text(file: &Path, text: &str, app_id: &str) -> Result<Resources, LoadError> {
    let mut out = Resources::default();
    load_file(file, text, app_id, &mut out)?;
    Ok(out)
}

/// Reads a `--config` Configuration file: it must parse; its settings are not applied yet, and
/// each top-level `spec` key is reported as a warning.
pub fn load_configuration(path: &Path) -> Result<Vec<String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut warnings = Vec::new();
    for (i, doc) in documents(path, &text, &mut warnings)
        .into_iter()
        .enumerate()
    {
        let what = format!("document {}", i + 1);
        let conf: raw::Configuration = typed(path, &what, doc, &mut warnings)?;
        if let Value::Mapping(m) = &conf.spec {
            for k in m.keys() {
                if let Some(k) = k.as_str() {
                    warnings.push(format!(
                        "{}: Configuration {}: spec.{k} is accepted but not applied",
                        path.display(),
                        conf.metadata.name
                    ));
                }
            }
        }
    }
    Ok(warnings)
}

fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let is_yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if is_yaml && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// The documents of a file that parse as YAML. As daprd's loader does, a file is split into
/// documents at every line that starts with `---`, each parsed on its own, and a document that
/// is not valid YAML is skipped with a warning naming the file (dapr
/// pkg/internal/loader/disk/manifest.go: `loadManifestsFromFile`, `splitYamlDoc`); the other
/// documents still load.
fn documents(file: &Path, text: &str, warnings: &mut Vec<String>) -> Vec<Value> {
    let mut docs = Vec::new();
    for (i, chunk) in split_documents(text).into_iter().enumerate() {
        match serde_norway::from_str::<Value>(chunk) {
            Ok(value) => docs.push(value),
            Err(e) => warnings.push(format!(
                "{}: document {}: malformed YAML, skipped as daprd skips it: {e}",
                file.display(),
                i + 1
            )),
        }
    }
    docs
}

/// Splits at `\n---` up to the end of that line (daprd's `splitYamlDoc`).
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\n---") {
        docs.push(&rest[..i]);
        let after = &rest[i + 4..];
        rest = match after.find('\n') {
            Some(j) => &after[j + 1..],
            None => "",
        };
    }
    docs.push(rest);
    docs
}

fn load_file(file: &Path, text: &str, app_id: &str, out: &mut Resources) -> Result<(), LoadError> {
    for (i, doc) in documents(file, text, &mut out.warnings)
        .into_iter()
        .enumerate()
    {
        if doc.is_null() {
            continue;
        }
        let doc_label = format!("document {}", i + 1);
        let Value::Mapping(map) = &doc else {
            out.warnings.push(format!(
                "{}: {doc_label}: not a mapping, skipped as daprd skips it",
                file.display()
            ));
            continue;
        };
        let field = |name: &str| {
            map.iter()
                .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        let name = match map.get("metadata") {
            Some(Value::Mapping(m)) => m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            _ => String::new(),
        };
        let what = format!("{kind} {name:?} ({doc_label})");
        let invalid = |message: String| LoadError::Invalid {
            file: file.to_owned(),
            what: what.clone(),
            message,
        };
        match (kind.as_str(), api_version.as_str()) {
            ("Component", "dapr.io/v1alpha1") => {
                let c: raw::Component = typed(file, &what, doc, &mut out.warnings)?;
                if !in_scope(&c.scopes, app_id) {
                    continue;
                }
                let mut def = component(c).map_err(invalid)?;
                def.file = file.to_owned();
                out.components.push(def);
            }
            ("Subscription", "dapr.io/v1alpha1" | "dapr.io/v2alpha1") => {
                let s: raw::Subscription = typed(file, &what, doc, &mut out.warnings)?;
                if !in_scope(&s.scopes, app_id) {
                    continue;
                }
                if api_version == "dapr.io/v1alpha1" && s.spec.routes.is_some() {
                    out.warnings.push(format!(
                        "{}: {what}: spec.routes is a v2alpha1 key; v1alpha1 reads spec.route",
                        file.display()
                    ));
                }
                out.subscriptions.push(subscription(s).map_err(invalid)?);
            }
            ("Resiliency", "dapr.io/v1alpha1") => {
                let r: raw::Resiliency = typed(file, &what, doc, &mut out.warnings)?;
                if !in_scope(&r.scopes, app_id) {
                    continue;
                }
                resiliency(r, &mut out.resiliency, &mut out.warnings, file, &what)
                    .map_err(invalid)?;
            }
            // daprd loads each kind by its exact apiVersion and kind and passes over anything
            // else without a word; a warning is kinder and changes nothing.
            ("Component" | "Subscription" | "Resiliency", other) => {
                out.warnings.push(format!(
                    "{}: {what}: apiVersion {other:?} is not one daprd loads; skipped",
                    file.display()
                ));
            }
            ("", _) => out.warnings.push(format!(
                "{}: {doc_label}: no kind; skipped as daprd skips it",
                file.display()
            )),
            (other, _) => {
                tracing::debug!(file = %file.display(), kind = other, "skipping resource of a kind pub/sub does not use");
            }
        }
    }
    Ok(())
}

fn in_scope(scopes: &[String], app_id: &str) -> bool {
    scopes.is_empty() || scopes.iter().any(|s| s == app_id)
}

/// Deserializes one document, collecting keys the target type does not know as warnings.
fn typed<T: DeserializeOwned>(
    file: &Path,
    what: &str,
    doc: Value,
    warnings: &mut Vec<String>,
) -> Result<T, LoadError> {
    let mut ignored = Vec::new();
    let value =
        serde_ignored::deserialize(doc, |path| ignored.push(path.to_string())).map_err(|e| {
            LoadError::Invalid {
                file: file.to_owned(),
                what: what.to_owned(),
                message: e.to_string(),
            }
        })?;
    for key in ignored {
        let top = key.split('.').next().unwrap_or("");
        let is_envelope = top.eq_ignore_ascii_case("apiVersion")
            || top.eq_ignore_ascii_case("kind")
            || (top == "metadata" && key != "metadata");
        if is_envelope {
            continue;
        }
        let hint = if key.ends_with("deadLetterTopic") {
            " (a dead-letter topic belongs on the Subscription: spec.deadLetterTopic)"
        } else {
            ""
        };
        warnings.push(format!(
            "{}: {what}: unknown key {key} is ignored{hint}",
            file.display()
        ));
    }
    Ok(value)
}

fn component(c: raw::Component) -> Result<ComponentDef, String> {
    if !valid_name(&c.metadata.name) {
        return Err(format!(
            "metadata.name {:?} must be a non-empty path segment",
            c.metadata.name
        ));
    }
    if c.spec.type_.trim().is_empty() {
        return Err("spec.type is required".into());
    }
    let mut metadata = BTreeMap::new();
    for (i, item) in c.spec.metadata.unwrap_or_default().into_iter().enumerate() {
        if item.name.is_empty() {
            return Err(format!("spec.metadata[{i}].name is required"));
        }
        if item.secret_key_ref.is_some() {
            return Err(format!(
                "spec.metadata[{i}] ({}): secretKeyRef is not supported (no secret stores); give a value",
                item.name
            ));
        }
        let value = match item.value {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(format!(
                    "spec.metadata[{i}].value ({}) must be a scalar",
                    item.name
                ));
            }
        };
        metadata.insert(item.name, value);
    }
    Ok(ComponentDef {
        name: c.metadata.name,
        type_: c.spec.type_.trim().to_owned(),
        version: c.spec.version.unwrap_or_else(|| "v1".into()),
        metadata,
        file: PathBuf::new(),
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

fn subscription(s: raw::Subscription) -> Result<Subscription, String> {
    if s.spec.pubsubname.is_empty() {
        return Err("spec.pubsubname is required".into());
    }
    if s.spec.topic.is_empty() {
        return Err("spec.topic is required".into());
    }
    let routes = s.spec.routes.unwrap_or_default();
    let rules: Vec<(String, String)> = routes
        .rules
        .into_iter()
        .map(|r| (r.match_, r.path))
        .collect();
    let built =
        Subscription::build_rules(&rules, routes.default.as_deref(), s.spec.route.as_deref())
            .map_err(|e| format!("spec.routes.rules: {e}"))?;
    Ok(Subscription {
        pubsub: s.spec.pubsubname,
        topic: s.spec.topic,
        rules: built,
        dead_letter_topic: s.spec.dead_letter_topic.filter(|d| !d.is_empty()),
        metadata: s.spec.metadata,
        bulk: s.spec.bulk_subscribe.map(|b| Bulk {
            enabled: b.enabled,
            max_messages_count: b.max_messages_count,
            max_await_duration_ms: b.max_await_duration_ms,
        }),
        kind: Kind::Declarative,
    })
}

fn duration_field(key: &str, v: &str) -> Result<Duration, String> {
    parse_go_duration(v).map_err(|e| format!("{key}: {e}"))
}

fn resiliency(
    r: raw::Resiliency,
    into: &mut Resiliency,
    warnings: &mut Vec<String>,
    file: &Path,
    what: &str,
) -> Result<(), String> {
    let policies = r.spec.policies;
    for (name, t) in policies.timeouts {
        let d = duration_field(&format!("spec.policies.timeouts.{name}"), &t)?;
        into.timeouts.insert(name, d);
    }
    for (name, p) in policies.retries {
        let key = format!("spec.policies.retries.{name}");
        // A duration of this policy, or its default when unset.
        let duration_or = |field: &str, value: &Option<String>, default: Duration| match value {
            Some(d) => duration_field(&format!("{key}.{field}"), d),
            None => Ok(default),
        };
        let only_for = |field: &str, policy: &str| {
            format!(
                "{}: {what}: {key}.{field} only applies to {policy} policies",
                file.display()
            )
        };
        let backoff = match p.policy.as_deref().unwrap_or("constant") {
            "constant" | "" => {
                if p.max_interval.is_some() {
                    warnings.push(only_for("maxInterval", "exponential"));
                }
                Backoff::Constant(duration_or(
                    "duration",
                    &p.duration,
                    Duration::from_secs(5),
                )?)
            }
            "exponential" => {
                if p.duration.is_some() {
                    warnings.push(only_for("duration", "constant"));
                }
                let max_interval =
                    duration_or("maxInterval", &p.max_interval, Duration::from_secs(60))?;
                Backoff::Exponential { max_interval }
            }
            other => {
                return Err(format!(
                    "{key}.policy: {other:?} is not constant or exponential"
                ));
            }
        };
        let max_retries = match p.max_retries {
            None | Some(-1) => None,
            Some(n) if n >= 0 => {
                Some(u32::try_from(n).map_err(|_| format!("{key}.maxRetries: {n} is too large"))?)
            }
            Some(n) => return Err(format!("{key}.maxRetries: {n} is below -1")),
        };
        let matching = match &p.matching {
            Some(m) => Matching::parse(
                m.http_status_codes.as_deref(),
                m.grpc_status_codes.as_deref(),
            )
            .map_err(|e| format!("{key}.matching: {e}"))?,
            None => Matching::default(),
        };
        into.retries.insert(
            name.clone(),
            RetryPolicy {
                name,
                backoff,
                max_retries,
                matching,
            },
        );
    }
    for (name, cb) in policies.circuit_breakers {
        if let Some(i) = &cb.interval {
            duration_field(&format!("spec.policies.circuitBreakers.{name}.interval"), i)?;
        }
        if let Some(t) = &cb.timeout {
            duration_field(&format!("spec.policies.circuitBreakers.{name}.timeout"), t)?;
        }
        warnings.push(format!(
            "{}: {what}: circuit breaker {name} is accepted but not enforced by refsidecar",
            file.display()
        ));
    }
    for (component, target) in r.spec.targets.components {
        let key = format!("spec.targets.components.{component}");
        let names = |side: &str, n: Option<raw::PolicyNames>| -> Result<Option<Names>, String> {
            let Some(n) = n else { return Ok(None) };
            if let Some(retry) = &n.retry
                && !into.retries.contains_key(retry)
            {
                return Err(format!(
                    "{key}.{side}.retry: no retry policy named {retry:?}"
                ));
            }
            if let Some(timeout) = &n.timeout
                && !into.timeouts.contains_key(timeout)
            {
                return Err(format!(
                    "{key}.{side}.timeout: no timeout policy named {timeout:?}"
                ));
            }
            Ok(Some(Names {
                retry: n.retry,
                timeout: n.timeout,
            }))
        };
        let t = ComponentTargets {
            inbound: names("inbound", target.inbound)?,
            outbound: names("outbound", target.outbound)?,
        };
        into.components.insert(component, t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(yaml: &str) -> Result<Resources, LoadError> {
        load_text(Path::new("test.yaml"), yaml, "app")
    }

    #[test]
    fn debug_output_hides_metadata_values() {
        let yaml = format!("{COMPONENT}  metadata:\n  - name: redisPassword\n    value: hunter2\n");
        let r = load_str(&yaml).unwrap();
        let debug = format!("{r:?}");
        assert!(debug.contains("redisPassword"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    const COMPONENT: &str = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.in-memory\n  version: v1\n";

    #[test]
    fn multi_document_files() {
        let yaml = format!(
            "{COMPONENT}---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\nspec:\n  pubsubname: pubsub\n  topic: orders\n  routes:\n    rules:\n    - match: event.type == \"x\"\n      path: /x\n    default: /orders\n  deadLetterTopic: poison\n---\napiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: s1\nspec:\n  pubsubname: pubsub\n  topic: other\n  route: /other\nscopes: [nobody]\n"
        );
        let r = load_str(&yaml).unwrap();
        assert_eq!(r.components.len(), 1);
        assert_eq!(
            r.subscriptions.len(),
            1,
            "out-of-scope subscription skipped"
        );
        let s = &r.subscriptions[0];
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.dead_letter_topic.as_deref(), Some("poison"));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn documents_split_like_daprd() {
        assert_eq!(split_documents("a: 1\n---\nb: 2\n"), ["a: 1", "b: 2\n"]);
        assert_eq!(split_documents("---\na: 1"), ["---\na: 1"]);
        assert_eq!(split_documents("a: 1\n--- # x\nb: 2"), ["a: 1", "b: 2"]);
        assert_eq!(split_documents("a: 1\n---"), ["a: 1", ""]);
    }

    #[test]
    fn resiliency_and_misplaced_dead_letter_topic_warning() {
        let yaml = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\nspec:\n  policies:\n    retries:\n      pubsubRetry:\n        policy: constant\n        duration: 10ms\n        maxRetries: 2\n        deadLetterTopic: dlq\n  targets:\n    components:\n      pubsub:\n        inbound:\n          retry: pubsubRetry\n";
        let r = load_str(yaml).unwrap();
        let p = r
            .resiliency
            .resolve("pubsub", crate::resiliency::Direction::Inbound)
            .retry
            .unwrap();
        assert_eq!(p.max_attempts(), Some(3));
        assert_eq!(p.backoff, Backoff::Constant(Duration::from_millis(10)));
        assert_eq!(r.warnings.len(), 1);
        let w = &r.warnings[0];
        assert!(
            w.contains("test.yaml")
                && w.contains("spec.policies.retries.pubsubRetry.deadLetterTopic"),
            "{w}"
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = load_str("apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\nspec:\n  targets:\n    components:\n      pubsub:\n        inbound:\n          retry: missing\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test.yaml") && e.contains("spec.targets.components.pubsub.inbound.retry"),
            "{e}"
        );
        for (yaml, key) in [
            (
                "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\nspec:\n  policies:\n    retries:\n      p:\n        duration: 5 seconds\n",
                "spec.policies.retries.p.duration",
            ),
            (
                "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\nspec:\n  topic: t\n",
                "spec.pubsubname",
            ),
            (
                "kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: p}\nspec:\n  type: pubsub.in-memory\n  metadata:\n  - name: x\n    value: {a: 1}\n",
                "spec.metadata[0].value",
            ),
            (
                "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\nspec:\n  pubsubname: p\n  topic: t\n  routes:\n    rules:\n    - match: 'event.type =='\n      path: /a\n",
                "spec.routes.rules",
            ),
        ] {
            let e = load_str(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
        let r = load_str(&format!("a: [unclosed\n---\n{COMPONENT}")).unwrap();
        assert_eq!(r.components.len(), 1, "the valid document still loads");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("test.yaml: document 1: malformed YAML")),
            "{:?}",
            r.warnings
        );
    }
}

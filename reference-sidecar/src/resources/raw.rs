//! Serde mirrors of the resource YAML, field for field.
//!
//! These types accept exactly what daprd's decoder accepts and nothing is validated here;
//! `load.rs` turns them into domain types. Unknown keys are not errors (daprd ignores them);
//! the loader collects them with `serde_ignored` to warn about them. A missing key takes its
//! default (`#[serde(default)]` on the struct, or on each field where some field is required).

#![expect(
    dead_code,
    reason = "fields mirror the YAML so that they are accepted, not reported as unknown keys; not all are used"
)]

use std::collections::BTreeMap;

use serde::Deserialize;

/// `metadata:` of any resource.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ObjectMeta {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
}

/// A document of a scoped kind: its `metadata:`, its `spec:` (required) and its `scopes:`.
#[derive(Debug, Deserialize)]
pub(crate) struct Scoped<S> {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: S,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

/// A `kind: Component` document.
pub(crate) type Component = Scoped<ComponentSpec>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ComponentSpec {
    #[serde(rename = "type")]
    pub(crate) type_: String,
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) ignore_errors: bool,
    #[serde(default)]
    pub(crate) init_timeout: Option<String>,
    /// `metadata:` with no items is null in YAML; daprd accepts it.
    #[serde(default)]
    pub(crate) metadata: Option<Vec<MetadataItem>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct MetadataItem {
    pub(crate) name: String,
    pub(crate) value: Option<serde_norway::Value>,
    pub(crate) secret_key_ref: Option<serde_norway::Value>,
}

/// A `kind: Subscription` document, v1alpha1 or v2alpha1 (the union of both specs).
pub(crate) type Subscription = Scoped<SubscriptionSpec>;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SubscriptionSpec {
    pub(crate) pubsubname: String,
    pub(crate) topic: String,
    /// v1alpha1 only.
    pub(crate) route: Option<String>,
    /// v2alpha1 only.
    pub(crate) routes: Option<Routes>,
    pub(crate) dead_letter_topic: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) bulk_subscribe: Option<BulkSubscribe>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Routes {
    pub(crate) rules: Vec<Rule>,
    pub(crate) default: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Rule {
    #[serde(rename = "match")]
    pub(crate) match_: String,
    pub(crate) path: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct BulkSubscribe {
    pub(crate) enabled: bool,
    pub(crate) max_messages_count: Option<i64>,
    pub(crate) max_await_duration_ms: Option<i64>,
}

/// A `kind: Resiliency` document.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Resiliency {
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: ResiliencySpec,
    pub(crate) scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResiliencySpec {
    pub(crate) policies: Policies,
    pub(crate) targets: Targets,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Policies {
    pub(crate) timeouts: BTreeMap<String, String>,
    pub(crate) retries: BTreeMap<String, Retry>,
    pub(crate) circuit_breakers: BTreeMap<String, CircuitBreaker>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Retry {
    pub(crate) policy: Option<String>,
    pub(crate) duration: Option<String>,
    pub(crate) max_interval: Option<String>,
    pub(crate) max_retries: Option<i64>,
    pub(crate) matching: Option<Matching>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Matching {
    #[serde(rename = "httpStatusCodes")]
    pub(crate) http_status_codes: Option<String>,
    #[serde(rename = "gRPCStatusCodes")]
    pub(crate) grpc_status_codes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct CircuitBreaker {
    pub(crate) max_requests: Option<i64>,
    pub(crate) interval: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) trip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Targets {
    pub(crate) components: BTreeMap<String, ComponentTarget>,
    pub(crate) apps: BTreeMap<String, serde_norway::Value>,
    pub(crate) actors: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ComponentTarget {
    pub(crate) inbound: Option<PolicyNames>,
    pub(crate) outbound: Option<PolicyNames>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PolicyNames {
    pub(crate) retry: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) circuit_breaker: Option<String>,
}

/// A `kind: Configuration` document: only what we read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Configuration {
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: serde_norway::Value,
}

//! Serde mirrors of the resource YAML, field for field.
//!
//! These types accept exactly what daprd's decoder accepts and nothing is validated here;
//! `load.rs` turns them into domain types. Unknown keys are not errors (daprd ignores them);
//! the loader collects them with `serde_ignored` to warn about them.

#![expect(
    dead_code,
    reason = "fields mirror the YAML so that they are accepted, not reported as unknown keys; not all are used"
)]

use std::collections::BTreeMap;

use serde::Deserialize;

/// `metadata:` of any resource.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ObjectMeta {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}

/// A `kind: Component` document.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Component {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: ComponentSpec,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetadataItem {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value: Option<serde_norway::Value>,
    #[serde(default)]
    pub(crate) secret_key_ref: Option<serde_norway::Value>,
}

/// A `kind: Subscription` document, v1alpha1 or v2alpha1 (the union of both specs).
#[derive(Debug, Deserialize)]
pub(crate) struct Subscription {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: SubscriptionSpec,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscriptionSpec {
    #[serde(default)]
    pub(crate) pubsubname: String,
    #[serde(default)]
    pub(crate) topic: String,
    /// v1alpha1 only.
    #[serde(default)]
    pub(crate) route: Option<String>,
    /// v2alpha1 only.
    #[serde(default)]
    pub(crate) routes: Option<Routes>,
    #[serde(default)]
    pub(crate) dead_letter_topic: Option<String>,
    #[serde(default)]
    pub(crate) metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) bulk_subscribe: Option<BulkSubscribe>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Routes {
    #[serde(default)]
    pub(crate) rules: Vec<Rule>,
    #[serde(default)]
    pub(crate) default: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Rule {
    #[serde(default, rename = "match")]
    pub(crate) match_: String,
    #[serde(default)]
    pub(crate) path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BulkSubscribe {
    #[serde(default)]
    pub(crate) enabled: bool,
    #[serde(default)]
    pub(crate) max_messages_count: Option<i64>,
    #[serde(default)]
    pub(crate) max_await_duration_ms: Option<i64>,
}

/// A `kind: Resiliency` document.
#[derive(Debug, Deserialize)]
pub(crate) struct Resiliency {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) spec: ResiliencySpec,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResiliencySpec {
    #[serde(default)]
    pub(crate) policies: Policies,
    #[serde(default)]
    pub(crate) targets: Targets,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Policies {
    #[serde(default)]
    pub(crate) timeouts: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) retries: BTreeMap<String, Retry>,
    #[serde(default)]
    pub(crate) circuit_breakers: BTreeMap<String, CircuitBreaker>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Retry {
    #[serde(default)]
    pub(crate) policy: Option<String>,
    #[serde(default)]
    pub(crate) duration: Option<String>,
    #[serde(default)]
    pub(crate) max_interval: Option<String>,
    #[serde(default)]
    pub(crate) max_retries: Option<i64>,
    #[serde(default)]
    pub(crate) matching: Option<Matching>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Matching {
    #[serde(default, rename = "httpStatusCodes")]
    pub(crate) http_status_codes: Option<String>,
    #[serde(default, rename = "gRPCStatusCodes")]
    pub(crate) grpc_status_codes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CircuitBreaker {
    #[serde(default)]
    pub(crate) max_requests: Option<i64>,
    #[serde(default)]
    pub(crate) interval: Option<String>,
    #[serde(default)]
    pub(crate) timeout: Option<String>,
    #[serde(default)]
    pub(crate) trip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Targets {
    #[serde(default)]
    pub(crate) components: BTreeMap<String, ComponentTarget>,
    #[serde(default)]
    pub(crate) apps: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    pub(crate) actors: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ComponentTarget {
    #[serde(default)]
    pub(crate) inbound: Option<PolicyNames>,
    #[serde(default)]
    pub(crate) outbound: Option<PolicyNames>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyNames {
    #[serde(default)]
    pub(crate) retry: Option<String>,
    #[serde(default)]
    pub(crate) timeout: Option<String>,
    #[serde(default)]
    pub(crate) circuit_breaker: Option<String>,
}

/// A `kind: Configuration` document: only what we read.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Configuration {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) spec: serde_norway::Value,
}

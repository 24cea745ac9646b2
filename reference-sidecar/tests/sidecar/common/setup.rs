//! What a sidecar under test starts from: its configuration and a resources directory with its
//! component YAML. The in-process tests and the benches share it (the benches include this file).

use std::path::Path;
use std::time::Duration;

use reference_sidecar::Config;

/// One in-memory pubsub component, `pubsub`.
pub(crate) const IN_MEMORY: &str = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
";

/// A second YAML document: a resiliency policy under which `pubsub`'s deliveries are retried
/// twice, 10 ms apart.
pub(crate) const RETRY_POLICY: &str = "\
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: retries
spec:
  policies:
    retries:
      pubsubRetry:
        policy: constant
        duration: 10ms
        maxRetries: 2
  targets:
    components:
      pubsub:
        inbound:
          retry: pubsubRetry
";

/// A pubsub component named `pubsub` of type `type_` with `metadata`, in order.
pub(crate) fn pubsub_component(type_: &str, metadata: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  \
         type: {type_}\n  version: v1\n"
    );
    if !metadata.is_empty() {
        yaml.push_str("  metadata:\n");
    }
    for (k, v) in metadata {
        yaml.push_str(&format!("  - name: {k}\n    value: \"{v}\"\n"));
    }
    yaml
}

/// A temp dir holding `yaml` as `resources.yaml`.
pub(crate) fn resources(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resources.yaml"), yaml).unwrap();
    dir
}

/// A sidecar configuration for tests: loopback only, one resources directory.
pub(crate) fn config(app_id: &str, app_port: Option<u16>, resources: &Path) -> Config {
    Config {
        app_id: app_id.into(),
        app_port,
        app_channel_address: "127.0.0.1".into(),
        app_protocol: "http".into(),
        resources_paths: vec![resources.to_owned()],
        config_file: None,
        app_max_concurrency: -1,
        max_body_size: 1 << 20,
        graceful_shutdown: Duration::from_secs(2),
        api_token: None,
        app_api_token: None,
        listen_addresses: vec!["127.0.0.1".parse().unwrap()],
        http_port: 0,
        grpc_port: 0,
        limits: reference_sidecar::Limits::default(),
    }
}

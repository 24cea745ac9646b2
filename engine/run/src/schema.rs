//! CloudEvents validation: the JSON Schema in `fixtures/schema/cloudevents-1.0.2.schema.json`
//! (written here from the CloudEvents 1.0.2 spec) plus what a schema cannot say.

use std::path::Path;

use serde_json::Value;

/// A loaded schema validator.
pub struct CloudEventSchema {
    validator: jsonschema::Validator,
}

impl CloudEventSchema {
    /// Loads the schema from the workspace's fixtures.
    pub fn load(workspace_root: &Path) -> Result<CloudEventSchema, String> {
        let path = workspace_root.join("fixtures/schema/cloudevents-1.0.2.schema.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let schema: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("{}: invalid schema: {e}", path.display()))?;
        Ok(CloudEventSchema { validator })
    }

    /// Every violation, one line each (`/path: message`); empty when valid.
    pub fn violations(&self, event: &Value) -> Vec<String> {
        self.validator
            .iter_errors(event)
            .map(|e| format!("{}: {}", e.instance_path(), e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> CloudEventSchema {
        CloudEventSchema::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap()
    }

    fn check(event: Value, valid: bool) {
        let v = schema().violations(&event);
        assert_eq!(v.is_empty(), valid, "{event}: {v:?}");
    }

    #[test]
    fn accepts_daprd_envelopes_and_rejects_broken_ones() {
        let ok = json!({"id":"5929aaac-a5e2-4ca1-859c-edfe73f11565","source":"checkout","specversion":"1.0",
            "type":"com.dapr.event.sent","datacontenttype":"application/json","data":{"a":1},
            "pubsubname":"pubsub","topic":"orders","time":"2026-01-02T10:11:12Z","traceid":"","traceparent":"","tracestate":""});
        check(ok.clone(), true);
        let mut e = ok.clone();
        e.as_object_mut().unwrap().remove("specversion");
        check(e, false);
        // (attribute, value, valid with it)
        let cases = [
            ("specversion", json!("0.3"), false),
            ("id", json!(""), false),
            ("time", json!("yesterday"), false),
            ("data_base64", json!("AAEC"), false),
            ("BadName", json!("x"), false),
            ("ext", json!({"nested": true}), false),
            ("data", json!([1, {"deep": null}]), true),
        ];
        for (name, value, valid) in cases {
            let mut e = ok.clone();
            e[name] = value;
            check(e, valid);
        }
    }
}

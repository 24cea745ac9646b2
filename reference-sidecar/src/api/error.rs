//! The one place where API failures become HTTP responses: status, `errorCode`, `message` and
//! daprd's `details` (ResourceInfo, then ErrorInfo). Internal causes are logged, not sent.
//! Transport-neutral failures ([`PublishFailure`]) are mapped here for HTTP and in `grpc.rs`
//! for gRPC.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::publish::PublishFailure;

/// A publish-API failure as daprd reports it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The legacy `errorCode`, e.g. `ERR_PUBSUB_NOT_FOUND`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// ErrorInfo `reason`, e.g. `DAPR_PUBSUB_NOT_FOUND`; `None` for codes without details.
    pub reason: Option<&'static str>,
    /// ResourceInfo `(resource_type, resource_name)`, when daprd adds one.
    pub resource: Option<(&'static str, String)>,
    /// ErrorInfo metadata.
    pub info: BTreeMap<String, String>,
    /// Answer with `Connection: close` (the request body may not have been read to its end).
    pub close: bool,
}

impl ApiError {
    /// An error with only a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
            resource: None,
            info: BTreeMap::new(),
            close: false,
        }
    }

    /// Adds ErrorInfo with `reason` and metadata.
    pub fn reason(mut self, reason: &'static str, info: BTreeMap<String, String>) -> ApiError {
        self.reason = Some(reason);
        self.info = info;
        self
    }

    /// Adds ResourceInfo for a pubsub component.
    pub fn pubsub_resource(mut self, name: &str) -> ApiError {
        self.resource = Some(("pubsub", name.to_owned()));
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut details = Vec::new();
        if let Some((kind, name)) = &self.resource {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                "description": self.message,
                "owner": "",
                "resource_name": name,
                "resource_type": kind,
            }));
        }
        if let Some(reason) = self.reason {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "domain": "dapr.io",
                "metadata": self.info,
                "reason": reason,
            }));
        }
        let mut body = json!({"errorCode": self.code, "message": self.message});
        if !details.is_empty() {
            body["details"] = Value::Array(details);
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl From<PublishFailure> for ApiError {
    fn from(f: PublishFailure) -> ApiError {
        let message = f.to_string();
        match f {
            PublishFailure::PubsubEmpty { metadata } => {
                ApiError::new(StatusCode::NOT_FOUND, "ERR_PUBSUB_EMPTY", message)
                    .reason("DAPR_PUBSUB_NAME_EMPTY", metadata)
            }
            PublishFailure::NotFound { pubsub, metadata } => pubsub::not_found(&pubsub, &metadata),
            PublishFailure::TopicEmpty { pubsub, metadata } => {
                ApiError::new(StatusCode::NOT_FOUND, "ERR_TOPIC_NAME_EMPTY", message)
                    .reason("DAPR_PUBSUB_TOPIC_NAME_EMPTY", metadata)
                    .pubsub_resource(&pubsub)
            }
            PublishFailure::Metadata {
                pubsub,
                detail,
                metadata,
            } => pubsub::request_metadata(&pubsub, &detail, &metadata),
            PublishFailure::CloudEvent {
                pubsub,
                app_id,
                error,
            } => pubsub::cloud_event(&pubsub, &app_id, &error),
            PublishFailure::Forbidden {
                pubsub,
                topic,
                app_id,
            } => pubsub::forbidden(&pubsub, &topic, &app_id),
            PublishFailure::Publish {
                pubsub,
                topic,
                error,
            } => pubsub::publish_failed(&pubsub, &topic, &error),
        }
    }
}

/// The message of an error and its sources, joined as Go's wrapped errors print.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    anyhow::Chain::new(e)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The state API's errors (`pkg/messages/predefined.go` in daprd).
pub(crate) mod state {
    use super::*;
    use crate::state::StoreError;

    pub(crate) fn not_configured() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_STATE_STORES_NOT_CONFIGURED",
            "state store is not configured",
        )
    }

    pub(crate) fn not_found(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_STATE_STORE_NOT_FOUND",
            format!("state store {name} is not found"),
        )
    }

    pub(crate) fn malformed(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", message)
    }

    /// ETag mismatch → 409 and an invalid ETag → 400 under the operation's own code; anything
    /// else is a 500.
    fn store(code: &'static str, message: String, e: &StoreError) -> ApiError {
        let status = match e {
            StoreError::EtagMismatch(_) => StatusCode::CONFLICT,
            StoreError::EtagInvalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Redis(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, code, message)
    }

    pub(crate) fn save(store_name: &str, e: &StoreError) -> ApiError {
        let message = format!(
            "failed saving state in state store {store_name}: {}",
            chain(e)
        );
        store("ERR_STATE_SAVE", message, e)
    }

    pub(crate) fn get(store_name: &str, key: &str, e: &StoreError) -> ApiError {
        let message = format!(
            "fail to get {key} from state store {store_name}: {}",
            chain(e)
        );
        store("ERR_STATE_GET", message, e)
    }

    pub(crate) fn delete(key: &str, e: &StoreError) -> ApiError {
        let message = format!("failed deleting state with key {key}: {}", chain(e));
        store("ERR_STATE_DELETE", message, e)
    }
}

/// Service invocation errors.
pub(crate) mod invoke {
    use super::*;

    pub(crate) fn failed(app_id: &str, err: &str) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_DIRECT_INVOKE",
            format!("failed to invoke, id: {app_id}, err: {err}"),
        )
    }
}

/// Helpers for the pub/sub error builders of daprd (`pkg/api/errors/pubsub.go`).
pub(crate) mod pubsub {
    use super::*;

    pub(crate) fn md_info(md: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        md.clone()
    }

    pub(crate) fn not_found(name: &str, md: &BTreeMap<String, String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
            format!("pubsub {name} is not found"),
        )
        .reason("DAPR_PUBSUB_NOT_FOUND", md_info(md))
    }

    pub(crate) fn request_metadata(
        name: &str,
        detail: &str,
        md: &BTreeMap<String, String>,
    ) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_REQUEST_METADATA",
            format!("failed deserializing metadata. Error: {detail}"),
        )
        .reason("DAPR_PUBSUB_METADATA_DESERIALIZATION", md_info(md))
        .pubsub_resource(name)
    }

    /// The `info` of an error's reason from `(key, value)` pairs.
    fn info<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    pub(crate) fn cloud_event(name: &str, app_id: &str, err: &str) -> ApiError {
        let info = info([("appID", app_id), ("error", err)]);
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
            format!("cannot create cloudevent: {err}"),
        )
        .reason("DAPR_PUBSUB_CLOUD_EVENT_CREATION", info)
        .pubsub_resource(name)
    }

    pub(crate) fn forbidden(name: &str, topic: &str, app_id: &str) -> ApiError {
        let message = format!("topic {topic} is not allowed for app id {app_id}");
        let info = info([("topic", topic), ("error", &message)]);
        ApiError::new(StatusCode::FORBIDDEN, "ERR_PUBSUB_FORBIDDEN", message)
            .reason("DAPR_PUBSUB_FORBIDDEN", info)
            .pubsub_resource(name)
    }

    pub(crate) fn publish_failed(name: &str, topic: &str, err: &str) -> ApiError {
        let message = format!("error when publishing to topic {topic} in pubsub {name}: {err}");
        let info = info([("topic", topic), ("error", err)]);
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_PUBLISH_MESSAGE",
            message,
        )
        .reason("DAPR_PUBSUB_PUBLISH_MESSAGE", info)
        .pubsub_resource(name)
    }

    pub(crate) fn events_ser(
        name: &str,
        reason: &'static str,
        message: String,
        md: &BTreeMap<String, String>,
    ) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ERR_PUBSUB_EVENTS_SER", message)
            .reason(reason, md_info(md))
            .pubsub_resource(name)
    }

    pub(crate) fn unreadable_body(e: &dyn std::error::Error) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            format!("cannot read the request body: {e}"),
        )
    }

    pub(crate) fn too_large(limit: usize) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ERR_BODY_TOO_LARGE",
            format!("the request body exceeds the limit of {limit} bytes (--max-body-size)"),
        );
        e.close = true;
        e
    }
}

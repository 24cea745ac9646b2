//! The sidecar's non-HTTP-publish surfaces run in-process: the gRPC API through the `dapr`
//! crate's generated client, the state API (in-memory, and Redis against a private
//! `redis-server`), and self-invocation. Every wait is on an observable condition with a deadline.

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::common::{App, IN_MEMORY, assert_start_up_fails, error_code, orders, pubsub_component};

/// The state store of the tests, `statestore`, in memory (a second YAML document).
const STATE_STORE: &str = "\
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.in-memory
  version: v1
";

/// A sidecar with the in-memory pubsub and state store (and `extra_resources`), in front of an
/// echo app subscribed to `orders`.
struct Sidecar {
    app: App,
    inner: crate::common::Sidecar,
}

async fn start(extra_resources: &str, api_token: Option<&str>, app_token: Option<&str>) -> Sidecar {
    let (app, port) = App::start_echo(orders()).await;
    let yaml = format!("{IN_MEMORY}{STATE_STORE}{extra_resources}");
    let inner = crate::common::Sidecar::with_resources(Some(port), &yaml, |config| {
        config.api_token = api_token.map(reference_sidecar::Secret::from);
        config.app_api_token = app_token.map(reference_sidecar::Secret::from);
    })
    .await;
    Sidecar { app, inner }
}

impl Sidecar {
    async fn stop(self) {
        self.inner.stop().await;
    }
}

mod grpc {
    use dapr::dapr::proto::runtime::v1::{
        BulkPublishRequest, BulkPublishRequestEntry, GetMetadataRequest, GetStateRequest,
        PublishEventRequest,
    };
    use tonic::Code;

    use super::*;

    fn publish(pubsub: &str, data: &str, content_type: &str) -> PublishEventRequest {
        PublishEventRequest {
            pubsub_name: pubsub.into(),
            topic: "orders".into(),
            data: data.as_bytes().to_vec(),
            data_content_type: content_type.into(),
            metadata: Default::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publish_metadata_and_unimplemented() {
        let s = start("", None, None).await;
        let mut c = s.inner.grpc_client().await;

        // PublishEvent delivers a daprd-shaped CloudEvent.
        c.publish_event(publish("pubsub", r#"{"tag":"g1"}"#, "application/json"))
            .await
            .unwrap();
        let ce = s.app.wait_for("g1").await;
        assert_eq!(ce["source"], "checkout");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["pubsubname"], "pubsub");
        // An empty data_content_type is text/plain: data is a string.
        c.publish_event(publish("pubsub", "g2", "")).await.unwrap();
        let ce = s.app.wait_for("g2").await;
        assert_eq!(ce["datacontenttype"], "text/plain");

        // Unknown pubsub, empty topic → InvalidArgument.
        let err = c
            .publish_event(publish("nope", "{}", "application/json"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains("pubsub nope is not found"),
            "{err:?}"
        );
        let mut empty_topic = publish("pubsub", "{}", "");
        empty_topic.topic.clear();
        let err = c.publish_event(empty_topic).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        // A bad rawPayload → InvalidArgument.
        let mut bad_raw = publish("pubsub", "{}", "");
        bad_raw.metadata.insert("rawPayload".into(), "maybe".into());
        let err = c.publish_event(bad_raw).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        // Bulk publish: every entry delivered, nothing failed; a duplicated id is refused.
        let entry = |id: &str, tag: &str| BulkPublishRequestEntry {
            entry_id: id.into(),
            event: json!({"tag": tag}).to_string().into_bytes(),
            content_type: "application/json".into(),
            metadata: Default::default(),
        };
        let bulk = BulkPublishRequest {
            pubsub_name: "pubsub".into(),
            topic: "orders".into(),
            entries: vec![entry("1", "b1"), entry("2", "b2")],
            metadata: Default::default(),
        };
        let resp = c
            .bulk_publish_event(bulk.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(resp.failed_entries.is_empty());
        s.app.wait_for("b1").await;
        s.app.wait_for("b2").await;
        #[expect(
            deprecated,
            reason = "the Alpha1 method is still served for older SDKs"
        )]
        let resp = c.bulk_publish_event_alpha1(bulk.clone()).await.unwrap();
        assert!(resp.into_inner().failed_entries.is_empty());
        let mut dup = bulk;
        dup.entries.push(entry("1", "b3"));
        let err = c.bulk_publish_event(dup).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        // GetMetadata lists both components and the app's subscription.
        let md = c
            .get_metadata(GetMetadataRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(md.id, "checkout");
        let mut names: Vec<_> = md
            .registered_components
            .iter()
            .map(|c| format!("{}={}", c.name, c.r#type))
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["pubsub=pubsub.in-memory", "statestore=state.in-memory"]
        );
        assert_eq!(md.subscriptions.len(), 1);
        assert_eq!(md.subscriptions[0].pubsub_name, "pubsub");
        assert_eq!(md.subscriptions[0].topic, "orders");
        assert_eq!(md.subscriptions[0].r#type, 2, "PROGRAMMATIC");
        assert_eq!(md.app_connection_properties.unwrap().protocol, "http");

        // Anything else is UNIMPLEMENTED.
        let err = c
            .get_state(GetStateRequest {
                store_name: "statestore".into(),
                key: "k".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        s.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn api_token_is_enforced() {
        let s = start("", Some("secret"), None).await;
        let mut c = s.inner.grpc_client().await;
        let err = c
            .get_metadata(GetMetadataRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        let mut wrong = tonic::Request::new(GetMetadataRequest::default());
        wrong
            .metadata_mut()
            .insert("dapr-api-token", "nope".parse().unwrap());
        assert_eq!(
            c.get_metadata(wrong).await.unwrap_err().code(),
            Code::Unauthenticated
        );
        let mut req = tonic::Request::new(publish("pubsub", "t1", "text/plain"));
        req.metadata_mut()
            .insert("dapr-api-token", "secret".parse().unwrap());
        c.publish_event(req).await.unwrap();
        s.app.wait_for("t1").await;
        s.stop().await;
    }
}

mod state {
    use super::*;

    /// Save, read, conditional writes and deletes of one store.
    async fn round_trip(s: &Sidecar, store: &str, bad_etag: &str) {
        let base = format!("/v1.0/state/{store}");
        let ct = [("content-type", "application/json")];
        let (status, _, _) = s
            .inner
            .send("POST", &base, &ct, r#"[{"key":"k1","value":{"n":1}}]"#)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, headers, body) = s.inner.send("GET", &format!("{base}/k1"), &[], "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(&body[..], br#"{"n":1}"#);
        let etag = headers["etag"].to_str().unwrap().to_owned();

        // A stale ETag is a 409; the current one writes and moves the ETag on.
        let save = |etag: &str, n: u32| {
            json!([{"key": "k1", "value": {"n": n}, "etag": etag}]).to_string()
        };
        let (status, _, body) = s.inner.send("POST", &base, &ct, &save(bad_etag, 2)).await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(error_code(&body), "ERR_STATE_SAVE");
        let (status, _, _) = s.inner.send("POST", &base, &ct, &save(&etag, 3)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, headers, body) = s.inner.send("GET", &format!("{base}/k1"), &[], "").await;
        assert_eq!(&body[..], br#"{"n":3}"#);
        let etag2 = headers["etag"].to_str().unwrap().to_owned();
        assert_ne!(etag, etag2);

        // Deletes honour If-Match the same way; one that is not a string is a 400, never an
        // unconditional delete.
        let malformed = hyper::Request::builder()
            .method("DELETE")
            .uri(format!("{}{base}/k1", s.inner.http))
            .header(
                "if-match",
                http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
            )
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = s.inner.client.request(malformed).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let (status, _, _) = s.inner.send("GET", &format!("{base}/k1"), &[], "").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the malformed delete deleted nothing"
        );
        let (status, _, body) = s
            .inner
            .send("DELETE", &format!("{base}/k1"), &[("if-match", &etag)], "")
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(error_code(&body), "ERR_STATE_DELETE");
        let (status, _, _) = s
            .inner
            .send("DELETE", &format!("{base}/k1"), &[("if-match", &etag2)], "")
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, body) = s.inner.send("GET", &format!("{base}/k1"), &[], "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(body.is_empty());

        // A string value comes back as a JSON string; keys may contain slashes.
        let (status, _, _) = s
            .inner
            .send("POST", &base, &ct, r#"[{"key":"a/b","value":"text"}]"#)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, _, body) = s.inner.send("GET", &format!("{base}/a/b"), &[], "").await;
        assert_eq!(&body[..], br#""text""#);
        let (status, _, _) = s
            .inner
            .send("DELETE", &format!("{base}/a/b"), &[], "")
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory() {
        let s = start("", None, None).await;
        round_trip(&s, "statestore", "not-the-etag").await;

        let (status, _, body) = s.inner.send("GET", "/v1.0/state/nope/k", &[], "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&body), "ERR_STATE_STORE_NOT_FOUND");
        let (status, _, body) = s
            .inner
            .send("POST", "/v1.0/state/statestore", &[], "{")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&body), "ERR_MALFORMED_REQUEST");

        // The metadata API lists the state store.
        let (_, _, body) = s.inner.send("GET", "/v1.0/metadata", &[], "").await;
        let md: Value = serde_json::from_slice(&body).unwrap();
        let types: Vec<_> = md["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_owned())
            .collect();
        assert!(types.contains(&"state.in-memory".to_owned()), "{md}");
        s.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        let redis = crate::common::RedisServer::start().await;
        let component = format!(
            "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redisstore\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:{}\n",
            redis.port()
        );
        let s = start(&component, None, None).await;
        round_trip(&s, "redisstore", "999").await;
        // Redis ETags are versions: a non-number is an invalid ETag (400).
        let (status, _, body) = s
            .inner
            .send(
                "POST",
                "/v1.0/state/redisstore",
                &[],
                r#"[{"key":"k","value":1,"etag":"abc"}]"#,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&body), "ERR_STATE_SAVE");
        s.stop().await;
    }
}

/// Component loading dispatches on the type prefix; an unusable type names file and field.
#[tokio::test]
async fn unknown_component_types_name_file_and_field() {
    for (type_, field) in [
        ("bindings.cron", "spec.type"),
        ("state.nonsense", "spec.type"),
    ] {
        assert_start_up_fails(
            &pubsub_component(type_, &[]),
            &["resources.yaml", field, type_],
        )
        .await;
    }
}

mod invoke {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn self_invocation_round_trip() {
        let s = start("", Some("api-secret"), Some("app-secret")).await;
        let token = ("dapr-api-token", "api-secret");
        let (status, headers, body) = s
            .inner
            .send(
                "PUT",
                "/v1.0/invoke/checkout/method/echo/a?x=1",
                &[token, ("x-custom", "c1")],
                "hello",
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(headers["x-echo"], "yes");
        // The caller's API token is not forwarded; the app token is.
        assert_eq!(
            String::from_utf8_lossy(&body),
            "PUT /echo/a?x=1 hello token=app-secret custom=c1 caller=checkout"
        );
        // The app's 404 passes through.
        let (status, _, body) = s
            .inner
            .send("GET", "/v1.0/invoke/checkout/method/missing", &[token], "")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(&body[..], b"nope");
        // The dapr-app-id header form.
        let (status, _, body) = s
            .inner
            .send(
                "DELETE",
                "/things/7",
                &[token, ("dapr-app-id", "checkout")],
                "",
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(String::from_utf8_lossy(&body).starts_with("DELETE /things/7 "));

        // Another app id needs name resolution, which this sidecar does not have.
        let (status, _, body) = s
            .inner
            .send("POST", "/v1.0/invoke/inventory/method/x", &[token], "")
            .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let err: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(err["errorCode"], "ERR_DIRECT_INVOKE");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("inventory") && message.contains("name resolution"),
            "{message}"
        );
        // Without the API token: 401 before anything is forwarded.
        let (status, _, _) = s
            .inner
            .send("GET", "/v1.0/invoke/checkout/method/echo", &[], "")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Other unmatched paths keep daprd's 404.
        let (status, _, body) = s.inner.send("GET", "/v1.0/nothing", &[token], "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&body), "ERR_DIRECT_INVOKE");
        s.stop().await;
    }
}

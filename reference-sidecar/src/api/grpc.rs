//! The gRPC API: the `dapr.proto.runtime.v1.Dapr` service of the `dapr` crate's generated code,
//! served with tonic on `--dapr-grpc-port`.
//!
//! Implemented: `PublishEvent`, `BulkPublishEvent`, `BulkPublishEventAlpha1` (through
//! `publish.rs`, shared with HTTP) and `GetMetadata`. Every other method answers UNIMPLEMENTED.
//! Failures map to daprd's gRPC codes (spec §1.5); the `dapr-api-token` metadata entry is
//! checked by an interceptor when `DAPR_API_TOKEN` is set (spec §9).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1::dapr_server::{Dapr, DaprServer};
use dapr::dapr::proto::runtime::v1::*;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Response, Status};

use super::serve::Slots;
use crate::limits::{GRPC_KEEPALIVE_INTERVAL, GRPC_KEEPALIVE_TIMEOUT};
use crate::publish::{
    self, BulkEntry, BulkRequest, PublishFailure, PublishRequest, Trace, Transport,
};
use crate::runtime::Runtime;
use crate::secret::Secret;

/// Serves the `Dapr` service on each listener until `stop` turns true, under the connection
/// cap of `slots` and the limits of `limits` (HTTP/2 streams per connection, keep-alive pings as
/// daprd's gRPC API server sends them).
pub(crate) fn serve(
    rt: &Arc<Runtime>,
    listeners: Vec<TcpListener>,
    slots: &Slots,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<Result<(), tonic::transport::Error>>> {
    let limits = &rt.config.limits;
    listeners
        .into_iter()
        .map(|listener| {
            tracing::info!(addr = ?listener.local_addr().ok(), "gRPC API listening");
            let token = rt.config.api_token.clone();
            let service = DaprServer::new(GrpcApi {
                rt: rt.clone(),
                stop: stop.clone(),
            })
            .max_decoding_message_size(rt.config.max_body_size);
            let service =
                InterceptedService::new(service, move |req| check_token(token.as_ref(), req));
            // No Nagle delay on accepted connections, as on the HTTP API (`serve::accept`).
            let incoming =
                super::serve::grpc_incoming(listener, slots.clone(), limits, stop.clone());
            let server = tonic::transport::Server::builder()
                .max_concurrent_streams(limits.grpc_max_concurrent_streams)
                .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
                .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT));
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut server = server;
                server
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
            })
        })
        .collect()
}

/// `DAPR_API_TOKEN`: every call needs the exact token in `dapr-api-token`, which is then removed.
fn check_token(expected: Option<&Secret>, mut req: Request<()>) -> Result<Request<()>, Status> {
    let Some(expected) = expected else {
        return Ok(req);
    };
    match req.metadata().get("dapr-api-token") {
        None => Err(Status::unauthenticated(
            "missing api token in request metadata",
        )),
        Some(v) if !expected.matches(v.as_bytes()) => Err(Status::unauthenticated(
            "authentication error: api token mismatch",
        )),
        Some(_) => {
            req.metadata_mut().remove("dapr-api-token");
            Ok(req)
        }
    }
}

/// daprd's gRPC code for a publish failure (spec §1.5).
pub(crate) fn publish_status(f: &PublishFailure) -> Status {
    let code = match f {
        PublishFailure::PubsubEmpty { .. }
        | PublishFailure::NotFound { .. }
        | PublishFailure::TopicEmpty { .. }
        | PublishFailure::Metadata { .. }
        | PublishFailure::CloudEvent { .. } => Code::InvalidArgument,
        PublishFailure::Forbidden { .. } => Code::PermissionDenied,
        PublishFailure::Publish { .. } => Code::Internal,
    };
    Status::new(code, f.to_string())
}

fn trace(md: &MetadataMap) -> Trace {
    Trace::from_headers(|k| md.get(k).and_then(|v| v.to_str().ok()))
}

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented by this sidecar"))
}

/// The gRPC form of the metadata API.
fn metadata_response(rt: &Runtime) -> GetMetadataResponse {
    let registered_components = rt
        .registered()
        .map(|(c, capabilities)| RegisteredComponents {
            name: c.name.clone(),
            r#type: c.type_.clone(),
            version: c.version.clone(),
            capabilities: capabilities.iter().map(|s| (*s).to_owned()).collect(),
        })
        .collect();
    let subscriptions = rt
        .subscriptions()
        .into_iter()
        .map(|s| PubsubSubscription {
            r#type: PubsubSubscriptionType::from_str_name(s.kind.as_str())
                .unwrap_or(PubsubSubscriptionType::Unknown) as i32,
            rules: (!s.rules.is_empty()).then(|| PubsubSubscriptionRules {
                rules: s
                    .rules
                    .iter()
                    .map(|r| PubsubSubscriptionRule {
                        r#match: r.expr.clone(),
                        path: r.path.clone(),
                    })
                    .collect(),
            }),
            pubsub_name: s.pubsub,
            topic: s.topic,
            metadata: s.metadata.into_iter().collect(),
            dead_letter_topic: s.dead_letter_topic.unwrap_or_default(),
        })
        .collect();
    let version = concat!("refsidecar-", env!("CARGO_PKG_VERSION"));
    GetMetadataResponse {
        id: rt.config.app_id.clone(),
        registered_components,
        extended_metadata: [("daprRuntimeVersion".to_owned(), version.to_owned())].into(),
        subscriptions,
        app_connection_properties: rt.config.app_port.map(|port| AppConnectionProperties {
            port: i32::from(port),
            protocol: rt.config.app_protocol.clone(),
            channel_address: rt.config.app_channel_address.clone(),
            max_concurrency: i32::try_from(rt.config.app_max_concurrency.max(0)).unwrap_or(0),
            health: None,
        }),
        runtime_version: version.to_owned(),
        actor_runtime: Some(ActorRuntime {
            runtime_status: actor_runtime::ActorRuntimeStatus::Disabled as i32,
            placement: super::ACTORS_PLACEMENT.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The stream type of a streaming method this sidecar does not serve.
type Unserved<T> = futures::stream::Empty<Result<T, Status>>;

/// The `Dapr` service; methods not listed under `implemented` answer UNIMPLEMENTED.
struct GrpcApi {
    rt: Arc<Runtime>,
    /// Turns true when the sidecar stops: open streams end.
    stop: watch::Receiver<bool>,
}

impl GrpcApi {
    async fn bulk(
        &self,
        request: Request<BulkPublishRequest>,
    ) -> Result<Response<BulkPublishResponse>, Status> {
        let trace = trace(request.metadata());
        let r = request.into_inner();
        let metadata: BTreeMap<String, String> = r.metadata.into_iter().collect();
        let rt = &self.rt;
        let comp = publish::lookup(rt, &r.pubsub_name, &r.topic, &metadata)
            .map_err(|f| publish_status(&f))?;
        publish::raw_payload(&r.pubsub_name, &metadata).map_err(|f| publish_status(&f))?;
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(r.entries.len());
        for e in r.entries {
            if e.entry_id.is_empty() || !seen.insert(e.entry_id.clone()) {
                return Err(Status::invalid_argument(format!(
                    "error when marshalling events to bytes for topic {} pubsub {}: entryId is duplicated or not present for entry",
                    r.topic, r.pubsub_name
                )));
            }
            entries.push(BulkEntry {
                id: e.entry_id,
                data: Bytes::from(e.event),
                content_type: e.content_type,
                metadata: (!e.metadata.is_empty()).then(|| e.metadata.into_iter().collect()),
            });
        }
        let req = BulkRequest {
            pubsub: r.pubsub_name,
            topic: r.topic,
            metadata,
            entries,
            trace,
        };
        let failed = publish::publish_bulk(rt, comp, req)
            .await
            .map_err(|f| publish_status(&f))?;
        // daprd answers OK and lists the failed entries: the request is not atomic.
        Ok(Response::new(BulkPublishResponse {
            failed_entries: failed
                .into_iter()
                .map(|f| BulkPublishResponseFailedEntry {
                    entry_id: f.id,
                    error: f.error,
                })
                .collect(),
        }))
    }
}

/// Implements the generated trait: the stream types, the methods given as `implemented`, and
/// an UNIMPLEMENTED body for each method listed under `unimplemented`.
macro_rules! dapr_service {
    (
        streams { $( $stream:ident = $ty:ty; )* }
        implemented { $($implemented:tt)* }
        unimplemented { $( $name:ident($req:ty) -> $resp:ty; )* }
    ) => {
        #[tonic::async_trait]
        impl Dapr for GrpcApi {
            $( type $stream = $ty; )*
            $($implemented)*
            $(
                async fn $name(
                    &self,
                    _request: Request<$req>,
                ) -> Result<Response<$resp>, Status> {
                    Err(unimplemented(stringify!($name)))
                }
            )*
        }
    };
}

dapr_service! {
    streams {
        SubscribeTopicEventsAlpha1Stream = crate::streaming::EventStream;
        SubscribeConfigurationAlpha1Stream = Unserved<SubscribeConfigurationResponse>;
        SubscribeConfigurationStream = Unserved<SubscribeConfigurationResponse>;
        EncryptAlpha1Stream = Unserved<EncryptResponse>;
        DecryptAlpha1Stream = Unserved<DecryptResponse>;
    }
    implemented {
        async fn publish_event(
            &self,
            request: Request<PublishEventRequest>,
        ) -> Result<Response<()>, Status> {
            let trace = trace(request.metadata());
            let r = request.into_inner();
            let metadata: BTreeMap<String, String> = r.metadata.into_iter().collect();
            let comp = publish::lookup(&self.rt, &r.pubsub_name, &r.topic, &metadata)
                .map_err(|f| publish_status(&f))?;
            let req = PublishRequest {
                pubsub: r.pubsub_name,
                topic: r.topic,
                data: Bytes::from(r.data),
                // Empty means text/plain, as for an HTTP publish without Content-Type.
                content_type: Some(r.data_content_type).filter(|c| !c.is_empty()),
                metadata,
                trace,
                transport: Transport::Grpc,
            };
            publish::publish_one(&self.rt, comp, req)
                .await
                .map_err(|f| publish_status(&f))?;
            Ok(Response::new(()))
        }

        async fn bulk_publish_event(
            &self,
            request: Request<BulkPublishRequest>,
        ) -> Result<Response<BulkPublishResponse>, Status> {
            self.bulk(request).await
        }

        async fn bulk_publish_event_alpha1(
            &self,
            request: Request<BulkPublishRequest>,
        ) -> Result<Response<BulkPublishResponse>, Status> {
            self.bulk(request).await
        }

        async fn get_metadata(
            &self,
            _request: Request<GetMetadataRequest>,
        ) -> Result<Response<GetMetadataResponse>, Status> {
            Ok(Response::new(metadata_response(&self.rt)))
        }

        async fn subscribe_topic_events_alpha1(
            &self,
            request: Request<tonic::Streaming<SubscribeTopicEventsRequestAlpha1>>,
        ) -> Result<Response<Self::SubscribeTopicEventsAlpha1Stream>, Status> {
            crate::streaming::serve(&self.rt, request.into_inner(), self.stop.clone())
                .await
                .map(Response::new)
        }
    }
    unimplemented {
        invoke_service(InvokeServiceRequest) -> common::InvokeResponse;
        get_state(GetStateRequest) -> GetStateResponse;
        get_bulk_state(GetBulkStateRequest) -> GetBulkStateResponse;
        save_state(SaveStateRequest) -> ();
        query_state_alpha1(QueryStateRequest) -> QueryStateResponse;
        delete_state(DeleteStateRequest) -> ();
        delete_bulk_state(DeleteBulkStateRequest) -> ();
        execute_state_transaction(ExecuteStateTransactionRequest) -> ();
        invoke_binding(InvokeBindingRequest) -> InvokeBindingResponse;
        get_secret(GetSecretRequest) -> GetSecretResponse;
        get_bulk_secret(GetBulkSecretRequest) -> GetBulkSecretResponse;
        register_actor_timer(RegisterActorTimerRequest) -> ();
        unregister_actor_timer(UnregisterActorTimerRequest) -> ();
        register_actor_reminder(RegisterActorReminderRequest) -> ();
        unregister_actor_reminder(UnregisterActorReminderRequest) -> ();
        unregister_actor_reminders_by_type(UnregisterActorRemindersByTypeRequest) -> UnregisterActorRemindersByTypeResponse;
        list_actor_reminders(ListActorRemindersRequest) -> ListActorRemindersResponse;
        get_actor_state(GetActorStateRequest) -> GetActorStateResponse;
        get_actor_reminder(GetActorReminderRequest) -> GetActorReminderResponse;
        execute_actor_state_transaction(ExecuteActorStateTransactionRequest) -> ();
        invoke_actor(InvokeActorRequest) -> InvokeActorResponse;
        get_configuration_alpha1(GetConfigurationRequest) -> GetConfigurationResponse;
        get_configuration(GetConfigurationRequest) -> GetConfigurationResponse;
        subscribe_configuration_alpha1(SubscribeConfigurationRequest) -> Self::SubscribeConfigurationAlpha1Stream;
        subscribe_configuration(SubscribeConfigurationRequest) -> Self::SubscribeConfigurationStream;
        unsubscribe_configuration_alpha1(UnsubscribeConfigurationRequest) -> UnsubscribeConfigurationResponse;
        unsubscribe_configuration(UnsubscribeConfigurationRequest) -> UnsubscribeConfigurationResponse;
        try_lock_alpha1(TryLockRequest) -> TryLockResponse;
        unlock_alpha1(UnlockRequest) -> UnlockResponse;
        encrypt_alpha1(tonic::Streaming<EncryptRequest>) -> Self::EncryptAlpha1Stream;
        decrypt_alpha1(tonic::Streaming<DecryptRequest>) -> Self::DecryptAlpha1Stream;
        set_metadata(SetMetadataRequest) -> ();
        subtle_get_key_alpha1(SubtleGetKeyRequest) -> SubtleGetKeyResponse;
        subtle_encrypt_alpha1(SubtleEncryptRequest) -> SubtleEncryptResponse;
        subtle_decrypt_alpha1(SubtleDecryptRequest) -> SubtleDecryptResponse;
        subtle_wrap_key_alpha1(SubtleWrapKeyRequest) -> SubtleWrapKeyResponse;
        subtle_unwrap_key_alpha1(SubtleUnwrapKeyRequest) -> SubtleUnwrapKeyResponse;
        subtle_sign_alpha1(SubtleSignRequest) -> SubtleSignResponse;
        subtle_verify_alpha1(SubtleVerifyRequest) -> SubtleVerifyResponse;
        start_workflow_alpha1(StartWorkflowRequest) -> StartWorkflowResponse;
        get_workflow_alpha1(GetWorkflowRequest) -> GetWorkflowResponse;
        purge_workflow_alpha1(PurgeWorkflowRequest) -> ();
        terminate_workflow_alpha1(TerminateWorkflowRequest) -> ();
        pause_workflow_alpha1(PauseWorkflowRequest) -> ();
        resume_workflow_alpha1(ResumeWorkflowRequest) -> ();
        raise_event_workflow_alpha1(RaiseEventWorkflowRequest) -> ();
        start_workflow_beta1(StartWorkflowRequest) -> StartWorkflowResponse;
        get_workflow_beta1(GetWorkflowRequest) -> GetWorkflowResponse;
        purge_workflow_beta1(PurgeWorkflowRequest) -> ();
        terminate_workflow_beta1(TerminateWorkflowRequest) -> ();
        pause_workflow_beta1(PauseWorkflowRequest) -> ();
        resume_workflow_beta1(ResumeWorkflowRequest) -> ();
        raise_event_workflow_beta1(RaiseEventWorkflowRequest) -> ();
        shutdown(ShutdownRequest) -> ();
        schedule_job_alpha1(ScheduleJobRequest) -> ScheduleJobResponse;
        schedule_job(ScheduleJobRequest) -> ScheduleJobResponse;
        get_job_alpha1(GetJobRequest) -> GetJobResponse;
        get_job(GetJobRequest) -> GetJobResponse;
        delete_job_alpha1(DeleteJobRequest) -> DeleteJobResponse;
        delete_job(DeleteJobRequest) -> DeleteJobResponse;
        delete_jobs_by_prefix_alpha1(DeleteJobsByPrefixRequestAlpha1) -> DeleteJobsByPrefixResponseAlpha1;
        delete_jobs_by_prefix(DeleteJobsByPrefixRequest) -> DeleteJobsByPrefixResponse;
        list_jobs_alpha1(ListJobsRequestAlpha1) -> ListJobsResponseAlpha1;
        list_jobs(ListJobsRequest) -> ListJobsResponse;
        converse_alpha1(ConversationRequest) -> ConversationResponse;
        converse_alpha2(ConversationRequestAlpha2) -> ConversationResponseAlpha2;
        create_index_alpha1(CreateIndexRequestAlpha1) -> ();
        get_index_alpha1(GetIndexRequestAlpha1) -> GetIndexResponseAlpha1;
        list_indexes_alpha1(ListIndexesRequestAlpha1) -> ListIndexesResponseAlpha1;
        delete_index_alpha1(DeleteIndexRequestAlpha1) -> ();
        index_documents_alpha1(IndexDocumentsRequestAlpha1) -> IndexDocumentsResponseAlpha1;
        get_documents_alpha1(GetDocumentsRequestAlpha1) -> GetDocumentsResponseAlpha1;
        delete_documents_alpha1(DeleteDocumentsRequestAlpha1) -> DeleteDocumentsResponseAlpha1;
        search_alpha1(SearchRequestAlpha1) -> SearchResponseAlpha1;
        create_collection_alpha1(CreateCollectionRequestAlpha1) -> ();
        get_collection_alpha1(GetCollectionRequestAlpha1) -> GetCollectionResponseAlpha1;
        list_collections_alpha1(ListCollectionsRequestAlpha1) -> ListCollectionsResponseAlpha1;
        delete_collection_alpha1(DeleteCollectionRequestAlpha1) -> ();
        upsert_vectors_alpha1(UpsertVectorsRequestAlpha1) -> UpsertVectorsResponseAlpha1;
        delete_vectors_alpha1(DeleteVectorsRequestAlpha1) -> DeleteVectorsResponseAlpha1;
        get_vectors_alpha1(GetVectorsRequestAlpha1) -> GetVectorsResponseAlpha1;
        query_vectors_alpha1(QueryVectorsRequestAlpha1) -> QueryVectorsResponseAlpha1;
        batch_query_vectors_alpha1(BatchQueryVectorsRequestAlpha1) -> BatchQueryVectorsResponseAlpha1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: PublishFailure, code: Code) {
        let s = publish_status(&f);
        assert_eq!(s.code(), code, "{f}");
        assert_eq!(s.message(), f.to_string());
    }

    #[test]
    fn publish_codes() {
        let md = BTreeMap::new();
        let p = || "ps".to_owned();
        check(
            PublishFailure::PubsubEmpty {
                metadata: md.clone(),
            },
            Code::InvalidArgument,
        );
        check(
            PublishFailure::NotFound {
                pubsub: p(),
                metadata: md.clone(),
            },
            Code::InvalidArgument,
        );
        check(
            PublishFailure::TopicEmpty {
                pubsub: p(),
                metadata: md.clone(),
            },
            Code::InvalidArgument,
        );
        check(
            PublishFailure::Metadata {
                pubsub: p(),
                detail: "x".into(),
                metadata: md,
            },
            Code::InvalidArgument,
        );
        check(
            PublishFailure::CloudEvent {
                pubsub: p(),
                app_id: "a".into(),
                error: "x".into(),
            },
            Code::InvalidArgument,
        );
        check(
            PublishFailure::Forbidden {
                pubsub: p(),
                topic: "t".into(),
                app_id: "a".into(),
            },
            Code::PermissionDenied,
        );
        check(
            PublishFailure::Publish {
                pubsub: p(),
                topic: "t".into(),
                error: "x".into(),
            },
            Code::Internal,
        );
    }

    #[test]
    fn tokens() {
        let with = |v: Option<&'static str>| {
            let mut r = Request::new(());
            if let Some(v) = v {
                r.metadata_mut()
                    .insert("dapr-api-token", v.parse().unwrap());
            }
            r
        };
        let s = Secret::from("s");
        assert!(check_token(None, with(None)).is_ok());
        let ok = check_token(Some(&s), with(Some("s"))).unwrap();
        assert!(ok.metadata().get("dapr-api-token").is_none());
        for r in [with(None), with(Some("x")), with(Some("ss"))] {
            assert_eq!(
                check_token(Some(&s), r).unwrap_err().code(),
                Code::Unauthenticated
            );
        }
    }
}

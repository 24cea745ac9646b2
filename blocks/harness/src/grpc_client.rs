//! The sidecar's gRPC API client (`dapr.proto.runtime.v1.Dapr`, the `dapr` crate's generated
//! client on tonic), for the checks of the gRPC publish API and streaming subscriptions.
//!
//! It connects on first use and adds `dapr-api-token` to every call when it has a token;
//! answers are returned as they came (a `tonic::Status` is a result the checks judge, not a
//! harness error).

use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use dapr::dapr::proto::runtime::v1::{
    BulkPublishRequest, BulkPublishResponse, GetMetadataRequest, GetMetadataResponse,
    PublishEventRequest,
};
use tonic::Status;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

/// A gRPC API client for one sidecar.
#[derive(Clone, Debug)]
pub struct GrpcApiClient {
    client: DaprClient<Channel>,
    token: Option<AsciiMetadataValue>,
}

/// The client cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build a gRPC client for {target}: {reason}")]
pub struct GrpcClientError {
    target: String,
    reason: String,
}

impl GrpcApiClient {
    /// A client for the gRPC API at `host:port`, sending `token` (if any) with every call.
    pub fn new(addr: &str, token: Option<&str>) -> Result<GrpcApiClient, GrpcClientError> {
        let err = |reason: String| GrpcClientError {
            target: addr.to_owned(),
            reason,
        };
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| err(e.to_string()))?
            .tcp_nodelay(true)
            // Answers may echo long names back in `grpc-message`: accept up to 1 MiB of
            // headers rather than reset the stream on a status the target did send.
            .http2_max_header_list_size(1 << 20);
        let token = token
            .map(|t| {
                AsciiMetadataValue::try_from(t)
                    .map_err(|_| err("the API token is not a valid gRPC metadata value".into()))
            })
            .transpose()?;
        Ok(GrpcApiClient {
            client: DaprClient::new(endpoint.connect_lazy()),
            token,
        })
    }

    /// The same client without a token (to see that the sidecar refuses it).
    pub fn without_token(&self) -> GrpcApiClient {
        GrpcApiClient {
            client: self.client.clone(),
            token: None,
        }
    }

    /// The same client sending `token` instead.
    pub fn with_token(&self, token: &str) -> Result<GrpcApiClient, GrpcClientError> {
        let token = AsciiMetadataValue::try_from(token).map_err(|_| GrpcClientError {
            target: "the sidecar".into(),
            reason: "the API token is not a valid gRPC metadata value".into(),
        })?;
        Ok(GrpcApiClient {
            client: self.client.clone(),
            token: Some(token),
        })
    }

    /// A request carrying the token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(t) = &self.token {
            req.metadata_mut().insert("dapr-api-token", t.clone());
        }
        req
    }

    /// The generated client, for calls this type has no method for (streams).
    pub fn raw(&self) -> DaprClient<Channel> {
        self.client.clone()
    }

    /// `PublishEvent`.
    pub async fn publish(&self, req: PublishEventRequest) -> Result<(), Status> {
        self.client
            .clone()
            .publish_event(self.request(req))
            .await
            .map(|_| ())
    }

    /// `BulkPublishEvent`.
    pub async fn bulk_publish(
        &self,
        req: BulkPublishRequest,
    ) -> Result<BulkPublishResponse, Status> {
        self.client
            .clone()
            .bulk_publish_event(self.request(req))
            .await
            .map(tonic::Response::into_inner)
    }

    /// `GetMetadata`.
    pub async fn metadata(&self) -> Result<GetMetadataResponse, Status> {
        self.client
            .clone()
            .get_metadata(self.request(GetMetadataRequest::default()))
            .await
            .map(tonic::Response::into_inner)
    }
}

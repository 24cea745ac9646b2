//! The gRPC proxies of `tck-mutant`.
//!
//! - For a gRPC app (`--app-protocol grpc`): the `AppCallback` service on the wrapper's port,
//!   forwarding to the real app's and breaking the same rules as the HTTP proxy, in gRPC's terms
//!   (a RETRY status reported as SUCCESS, a `spec_version` cleared, ...). `content-type-json` has
//!   no gRPC meaning and passes everything through.
//! - For the gRPC API (`token-bypass-grpc`): an HTTP/2 pass-through of every call to the
//!   sidecar's gRPC port, which adds the API token to `PublishEvent` calls that lack it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dapr::dapr::proto::common::v1::{InvokeRequest, InvokeResponse};
use dapr::dapr::proto::runtime::v1::app_callback_client::AppCallbackClient;
use dapr::dapr::proto::runtime::v1::app_callback_server::{AppCallback, AppCallbackServer};
use dapr::dapr::proto::runtime::v1::{
    BindingEventRequest, BindingEventResponse, JobEventRequest, JobEventResponse,
    ListInputBindingsResponse, ListTopicSubscriptionsResponse, TopicEventBulkRequest,
    TopicEventBulkResponse, TopicEventRequest, TopicEventResponse,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::{Mode, ack_before_deliver_delay, stopping};

const SUCCESS: i32 = 0;
const RETRY: i32 = 1;

/// Serves the mutating `AppCallback` proxy on `listener`, forwarding to `127.0.0.1:app_port`,
/// until `stop` turns true.
pub(super) async fn serve_proxy(
    listener: TcpListener,
    mode: Mode,
    app_port: u16,
    stop: watch::Receiver<bool>,
) {
    let endpoint = match Endpoint::from_shared(format!("http://127.0.0.1:{app_port}")) {
        Ok(e) => e.tcp_nodelay(true),
        Err(e) => {
            tracing::error!("cannot address the app on port {app_port}: {e}");
            return;
        }
    };
    let proxy = Proxy {
        mode,
        app: AppCallbackClient::new(endpoint.connect_lazy()),
        deliveries: Arc::new(AtomicU64::new(0)),
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(AppCallbackServer::new(proxy))
        .serve_with_incoming_shutdown(incoming, stopping(stop))
        .await
    {
        tracing::error!("the gRPC proxy stopped: {e}");
    }
}

struct Proxy {
    mode: Mode,
    app: AppCallbackClient<Channel>,
    deliveries: Arc<AtomicU64>,
}

/// The same call to the app, with the sidecar's metadata (the app token among it).
fn onward<T>(req: &Request<T>, message: T) -> Request<T> {
    let mut out = Request::new(message);
    *out.metadata_mut() = req.metadata().clone();
    out
}

/// Implements `AppCallback` for `Proxy`: each listed method forwards the call to the app
/// unchanged (with the sidecar's metadata); the methods in braces are written out.
macro_rules! app_callback {
    ($($method:ident($req:ty) -> $resp:ty;)* { $($written:tt)* }) => {
        #[tonic::async_trait]
        impl AppCallback for Proxy {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let msg = request.get_ref().clone();
                    self.app.clone().$method(onward(&request, msg)).await
                }
            )*
            $($written)*
        }
    };
}

app_callback! {
    on_invoke(InvokeRequest) -> InvokeResponse;
    list_topic_subscriptions(()) -> ListTopicSubscriptionsResponse;
    list_input_bindings(()) -> ListInputBindingsResponse;
    on_binding_event(BindingEventRequest) -> BindingEventResponse;
    on_bulk_topic_event(TopicEventBulkRequest) -> TopicEventBulkResponse;
    on_job_event(JobEventRequest) -> JobEventResponse;
    {
        async fn on_topic_event(
            &self,
            request: Request<TopicEventRequest>,
        ) -> Result<Response<TopicEventResponse>, Status> {
            let n = self.deliveries.fetch_add(1, Ordering::SeqCst) + 1;
            let mut event = request.get_ref().clone();
            let success = || Ok(Response::new(TopicEventResponse { status: SUCCESS }));
            match self.mode {
                Mode::DropEvery3rd if n.is_multiple_of(3) => {
                    tracing::info!(n, path = %event.path, "dropping delivery without forwarding");
                    return success();
                }
                Mode::AckBeforeDeliver => {
                    let delay = ack_before_deliver_delay(n);
                    let out = onward(&request, event);
                    let mut app = self.app.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = app.on_topic_event(out).await;
                    });
                    return success();
                }
                Mode::StripSpecversion => event.spec_version.clear(),
                _ => {}
            }
            let copies = if self.mode == Mode::DeliverTwice {
                2
            } else {
                1
            };
            let mut last = None;
            for _ in 0..copies {
                last = Some(
                    self.app
                        .clone()
                        .on_topic_event(onward(&request, event.clone()))
                        .await,
                );
            }
            let answer = last.unwrap_or_else(|| Err(Status::internal("no copy was forwarded")))?;
            if self.mode == Mode::RetryToSuccess && answer.get_ref().status == RETRY {
                return success();
            }
            Ok(answer)
        }
    }
}

/// The one method `token-bypass-grpc` lets through without a token.
const BYPASSED: &str = "/dapr.proto.runtime.v1.Dapr/PublishEvent";

/// Serves an HTTP/2 pass-through of the gRPC API on `listener` to the sidecar's gRPC port,
/// adding `token` to `PublishEvent` calls without one, until `stop` turns true.
pub(super) async fn serve_api_proxy(
    listener: TcpListener,
    sidecar_port: u16,
    token: Option<String>,
    stop: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let client: hyper_util::client::legacy::Client<_, hyper::body::Incoming> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let token = token.and_then(|t| http::HeaderValue::from_str(&t).ok());
    harness::serve::until_stopped(listener, stop, move |stream| {
        let (client, token) = (client.clone(), token.clone());
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (client, token) = (client.clone(), token.clone());
                async move {
                    let (mut parts, body) = req.into_parts();
                    if parts.uri.path() == BYPASSED
                        && !parts.headers.contains_key("dapr-api-token")
                        && let Some(t) = token
                    {
                        parts.headers.insert("dapr-api-token", t);
                    }
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = format!("http://127.0.0.1:{sidecar_port}{path}")
                        .parse()
                        .unwrap_or_default();
                    client.request(http::Request::from_parts(parts, body)).await
                }
            });
        async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

//! A streaming subscriber: the harness as the client of a sidecar's `SubscribeTopicEventsAlpha1`
//! (what `client.Subscribe` of the Go SDK opens), recording and answering like the test app.
//!
//! Opening sends the initial request and waits for the sidecar's initial response. Every
//! `event_message` is recorded as a delivery on the route `stream:<topic>` (its body the
//! CloudEvent put back together, as for a gRPC app) and answered with `event_processed` after
//! the script's delay: the script's SUCCESS, RETRY or DROP (or an unknown status), no answer
//! for `Hang`; a script that answers an error, which a stream cannot send, answers RETRY.
//! [`StreamSubscriber::close`] ends the client's half of the stream, as an SDK's `Close` does.

use std::sync::Arc;
use std::time::Duration;

use dapr::dapr::proto::runtime::v1::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as RequestType;
use dapr::dapr::proto::runtime::v1::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as ResponseType;
use dapr::dapr::proto::runtime::v1::{
    SubscribeTopicEventsRequestAlpha1, SubscribeTopicEventsRequestInitialAlpha1,
    SubscribeTopicEventsRequestProcessedAlpha1, TopicEventResponse,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::grpc::{GrpcAnswer, cloud_event};
use super::recorder::{Incoming, RecordedDelivery, Recorder, WaitError};
use super::script::Script;
use crate::GrpcApiClient;

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The sidecar refused the call or ended it before its initial response.
    #[error("the sidecar refused the streaming subscription: {0:?}: {1}")]
    Refused(tonic::Code, String),
    /// The first answer was not `initial_response`.
    #[error("the sidecar's first answer was not initial_response: {0}")]
    NoInitialResponse(String),
    /// No initial response within the deadline.
    #[error("no initial_response within {0:?}")]
    Timeout(Duration),
}

/// What to subscribe to.
#[derive(Debug, Clone, Default)]
pub struct StreamRequest {
    /// The pubsub component.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The dead-letter topic, if any.
    pub dead_letter_topic: Option<String>,
    /// Subscription metadata.
    pub metadata: std::collections::HashMap<String, String>,
}

/// An open streaming subscription; dropping it closes the stream.
pub struct StreamSubscriber {
    recorder: Arc<Recorder>,
    route: String,
    outbound: Option<mpsc::Sender<SubscribeTopicEventsRequestAlpha1>>,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for StreamSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSubscriber")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

fn processed(id: String, status: i32) -> SubscribeTopicEventsRequestAlpha1 {
    SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(RequestType::EventProcessed(
            SubscribeTopicEventsRequestProcessedAlpha1 {
                id,
                status: Some(TopicEventResponse { status }),
            },
        )),
    }
}

impl StreamSubscriber {
    /// Opens the stream and waits up to `deadline` for the initial response.
    pub async fn open(
        client: &GrpcApiClient,
        req: StreamRequest,
        script: Script,
        deadline: Duration,
    ) -> Result<StreamSubscriber, StreamError> {
        let (tx, rx) = mpsc::channel::<SubscribeTopicEventsRequestAlpha1>(64);
        let initial = SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(RequestType::InitialRequest(
                SubscribeTopicEventsRequestInitialAlpha1 {
                    pubsub_name: req.pubsub.clone(),
                    topic: req.topic.clone(),
                    metadata: req.metadata.clone(),
                    dead_letter_topic: req.dead_letter_topic.clone(),
                },
            )),
        };
        // The channel has room: the initial request is queued before the call starts.
        let _ = tx.send(initial).await;
        let outbound =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let mut raw = client.raw();
        let request = client.request(outbound);
        let opened = async {
            let mut inbound = raw
                .subscribe_topic_events_alpha1(request)
                .await
                .map_err(|s| StreamError::Refused(s.code(), s.message().to_owned()))?
                .into_inner();
            match inbound.message().await {
                Ok(Some(m)) => match m.subscribe_topic_events_response_type {
                    Some(ResponseType::InitialResponse(_)) => Ok(inbound),
                    other => Err(StreamError::NoInitialResponse(format!("{other:?}"))),
                },
                Ok(None) => Err(StreamError::NoInitialResponse(
                    "the stream ended".to_owned(),
                )),
                Err(s) => Err(StreamError::Refused(s.code(), s.message().to_owned())),
            }
        };
        let mut inbound = tokio::time::timeout(deadline, opened)
            .await
            .map_err(|_| StreamError::Timeout(deadline))??;
        let recorder = Arc::new(Recorder::new());
        let route = format!("stream:{}", req.topic);
        let reader = {
            let (recorder, route, tx) = (recorder.clone(), route.clone(), tx.clone());
            tokio::spawn(async move {
                while let Ok(Some(m)) = inbound.message().await {
                    let Some(ResponseType::EventMessage(event)) =
                        m.subscribe_topic_events_response_type
                    else {
                        continue;
                    };
                    let incoming = Incoming {
                        method: "event_message".to_owned(),
                        path: route.clone(),
                        query: None,
                        headers: Vec::new(),
                        body: bytes::Bytes::from(cloud_event(&event).to_string()),
                    };
                    let action = recorder.record_delivery(incoming, 1, |attempt, tck_id| {
                        let action = script.plan(attempt, tck_id);
                        let answered = action.grpc_describe();
                        let answer = action.grpc_label();
                        (action, answered, answer)
                    });
                    let status = match action.grpc() {
                        GrpcAnswer::Status(n) => n,
                        GrpcAnswer::Error(..) => 1,
                        GrpcAnswer::Hang => continue,
                    };
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(action.delay).await;
                        let _ = tx.send(processed(event.id, status)).await;
                    });
                }
            })
        };
        Ok(StreamSubscriber {
            recorder,
            route,
            outbound: Some(tx),
            reader,
        })
    }

    /// The route its deliveries are recorded on: `stream:<topic>`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Every event received so far.
    pub fn deliveries(&self) -> Vec<RecordedDelivery> {
        self.recorder.deliveries(None)
    }

    /// Waits until at least `n` events arrived.
    pub async fn wait_deliveries(
        &self,
        n: usize,
        deadline: Duration,
    ) -> Result<Vec<RecordedDelivery>, WaitError> {
        self.recorder
            .wait_for(n, deadline, |r| r.deliveries(None))
            .await
            .map_err(|got| WaitError::Deliveries {
                waited: deadline,
                route: Some(self.route.clone()),
                wanted: n,
                saw: got.len(),
            })
    }

    /// Waits until message `tck_id` arrived at least `n` times, then returns its events.
    pub async fn wait_message(
        &self,
        tck_id: &str,
        n: usize,
        deadline: Duration,
    ) -> Result<Vec<RecordedDelivery>, WaitError> {
        self.recorder
            .wait_message(&self.route, tck_id, n, deadline)
            .await
    }

    /// Every event as history events, timed relative to `trial_start`.
    pub fn history_events(&self, trial_start: std::time::Instant) -> Vec<harness_history::Event> {
        self.deliveries()
            .iter()
            .map(|d| d.to_history(trial_start))
            .collect()
    }

    /// Ends the client's half of the stream (the sidecar then ends the subscription) and stops
    /// answering; events already recorded stay.
    pub fn close(&mut self) {
        self.outbound = None;
        self.reader.abort();
    }
}

impl Drop for StreamSubscriber {
    fn drop(&mut self) {
        self.close();
    }
}

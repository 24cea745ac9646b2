//! What a check body does with a running trial: publish (HTTP, gRPC, raw), wait for
//! deliveries with a deadline, observe a window in which nothing more may arrive, open
//! streaming subscriptions, and turn what was seen into evidence.

use super::*;

impl Trial {
    /// A fresh harness message id (`m-<n>`).
    pub fn next_id(&mut self) -> String {
        self.next_msg += 1;
        format!("m-{}", self.next_msg)
    }

    pub(super) fn at(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Stamps `data` (a JSON object) with a fresh `tck_id` and the trial's `tck_trial`, and
    /// records that its publish to `topic` is invoked. Returns the id and the publish event,
    /// which the caller records again with its outcome.
    fn invoke(&mut self, topic: &str, data: &mut Value) -> (String, Publish) {
        let id = self.next_id();
        if let Value::Object(o) = data {
            o.insert("tck_id".into(), Value::String(id.clone()));
            o.insert("tck_trial".into(), Value::String(self.nonce.clone()));
        }
        let mut p = Publish::new(MessageId::new(id.clone()), topic, Phase::Invoke);
        p.key = data
            .get("tck_key")
            .and_then(Value::as_str)
            .map(str::to_owned);
        p.seq = data.get("tck_seq").and_then(Value::as_u64);
        self.history
            .record(self.at(), EventKind::Publish(p.clone()));
        (id, p)
    }

    /// Publishes `data` (a JSON object; `tck_id` is added) as `application/json` to `topic` and
    /// requires 204. Returns the message id.
    pub async fn publish(&mut self, topic: &str, data: Value) -> Result<String, Problem> {
        self.publish_query(topic, data, &[]).await
    }

    /// [`Trial::publish`] with query parameters (`metadata.*`).
    pub async fn publish_query(
        &mut self,
        topic: &str,
        mut data: Value,
        query: &[(&str, &str)],
    ) -> Result<String, Problem> {
        let (id, mut p) = self.invoke(topic, &mut data);
        let result = self
            .client()
            .publish(
                PUBSUB,
                topic,
                Bytes::from(data.to_string()),
                Some("application/json"),
                query,
            )
            .await;
        let at = self.at();
        match result {
            Ok(r) if r.status == 204 => {
                p.phase = Phase::Ok;
                p.status = Some(204);
                self.history.record(at, EventKind::Publish(p));
                Ok(id)
            }
            Ok(r) => {
                p.phase = Phase::Fail;
                p.status = Some(r.status);
                self.history.record(at, EventKind::Publish(p));
                Err(Problem::fail(
                    format!("publish to {topic} answered {} instead of 204", r.status),
                    vec![
                        format!("message {id}"),
                        format!("response body: {}", String::from_utf8_lossy(&r.body)),
                    ],
                ))
            }
            Err(e) => {
                // The outcome is unknown: the message may or may not have been accepted.
                p.phase = Phase::Info;
                p.detail = Some(e.to_string());
                self.history.record(at, EventKind::Publish(p));
                Err(Problem::setup(&e))
            }
        }
    }

    /// A client for the sidecar's gRPC API (carrying the scenario's API token).
    pub fn grpc_api(&self) -> Result<harness::GrpcApiClient, Problem> {
        match self.cluster().sidecar.grpc_client() {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(Problem::setup(&e)),
            None => Err(Problem::Setup(
                "the target has no gRPC port (attached targets are reached over HTTP only)".into(),
            )),
        }
    }

    /// Publishes `data` (a JSON object; `tck_id` and `tck_trial` are added) with gRPC
    /// `PublishEvent` as `application/json` with `metadata`, and requires OK. Returns the
    /// message id.
    pub async fn publish_grpc(
        &mut self,
        topic: &str,
        mut data: Value,
        metadata: &[(&str, &str)],
    ) -> Result<String, Problem> {
        let (id, mut p) = self.invoke(topic, &mut data);
        let req = dapr::dapr::proto::runtime::v1::PublishEventRequest {
            pubsub_name: PUBSUB.into(),
            topic: topic.into(),
            data: data.to_string().into_bytes(),
            data_content_type: "application/json".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let result = self.grpc_api()?.publish(req).await;
        let at = self.at();
        match result {
            Ok(()) => {
                p.phase = Phase::Ok;
                self.history.record(at, EventKind::Publish(p));
                Ok(id)
            }
            Err(status) => {
                p.phase = Phase::Fail;
                p.detail = Some(format!("{:?}: {}", status.code(), status.message()));
                self.history.record(at, EventKind::Publish(p));
                Err(Problem::fail(
                    format!(
                        "gRPC PublishEvent to {topic} answered {:?} instead of OK",
                        status.code()
                    ),
                    vec![format!("message {id}"), status.message().to_owned()],
                ))
            }
        }
    }

    /// Any publish request; nothing is required of the answer.
    pub async fn publish_raw(
        &self,
        topic: &str,
        body: impl Into<Bytes>,
        content_type: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<ApiResponse, Problem> {
        Ok(self
            .client()
            .publish(PUBSUB, topic, body.into(), content_type, query)
            .await?)
    }

    /// Waits for at least `n` deliveries on `route`.
    pub async fn wait(&self, route: &str, n: usize) -> Result<Vec<RecordedDelivery>, Problem> {
        Ok(self.app().wait_deliveries(Some(route), n, DEADLINE).await?)
    }

    /// Waits until message `id` was delivered at least `n` times on `route`.
    pub async fn wait_msg(
        &self,
        route: &str,
        id: &str,
        n: usize,
    ) -> Result<Vec<RecordedDelivery>, Problem> {
        self.app()
            .wait_message(route, id, n, DEADLINE)
            .await
            .map_err(|e| Problem::fail(e.to_string(), delivery_lines(&self.app().deliveries())))
    }

    /// Deliveries of message `id` on `route` so far.
    pub fn deliveries_of(&self, route: &str, id: &str) -> Vec<RecordedDelivery> {
        self.app()
            .deliveries_on(route)
            .into_iter()
            .filter(|d| d.tck_id.as_deref() == Some(id))
            .collect()
    }

    /// Observation window: everything on `route` once [`QUIET`] has passed.
    pub async fn quiet(&self, route: &str) -> Vec<RecordedDelivery> {
        self.app().observe_quiet(Some(route), QUIET).await
    }

    /// Watches `route` for the observation window and fails with `what` when anything arrived
    /// there, naming what did.
    pub async fn nothing_on(&self, route: &str, what: impl Into<String>) -> Result<(), Problem> {
        let seen = self.quiet(route).await;
        if seen.is_empty() {
            return Ok(());
        }
        Err(Problem::fail(what, delivery_lines(&seen)))
    }

    /// Every recorded delivery (the app's, then each stream's), one line each, for evidence.
    pub fn evidence(&self) -> Vec<String> {
        let mut lines = self
            .cluster
            .as_ref()
            .and_then(|c| c.app.as_ref())
            .map(|a| delivery_lines(&a.deliveries()))
            .unwrap_or_default();
        for s in self.cluster.iter().flat_map(|c| c.streams.iter()) {
            lines.extend(delivery_lines(&s.deliveries()));
        }
        lines
    }

    /// Opens a streaming subscription to `topic` (with `dead_letter_topic`, if any) answered
    /// by `script`; returns its index for [`Trial::stream`].
    pub async fn open_stream(
        &mut self,
        topic: &str,
        dead_letter_topic: Option<&str>,
        script: Script,
    ) -> Result<usize, Problem> {
        let req = harness::StreamRequest {
            pubsub: PUBSUB.into(),
            topic: topic.into(),
            dead_letter_topic: dead_letter_topic.map(str::to_owned),
            metadata: Default::default(),
        };
        let stream = self.try_open_stream(req, script).await.map_err(|e| {
            Problem::fail(
                format!("cannot open a streaming subscription to {topic}: {e}"),
                vec![],
            )
        })?;
        #[allow(clippy::expect_used)] // calling it before `Trial::start` is a bug in the check body
        let c = self
            .cluster
            .as_mut()
            .expect("invariant: a check calls Trial::start first");
        c.streams.push(stream);
        Ok(c.streams.len() - 1)
    }

    /// Opens a streaming subscription as given, without keeping it: the sidecar's refusal is
    /// the result.
    pub async fn try_open_stream(
        &self,
        req: harness::StreamRequest,
        script: Script,
    ) -> Result<harness::StreamSubscriber, harness::StreamError> {
        let client = match self.grpc_api() {
            Ok(c) => c,
            Err(p) => {
                return Err(harness::StreamError::NoInitialResponse(format!(
                    "no gRPC client: {p:?}"
                )));
            }
        };
        harness::StreamSubscriber::open(&client, req, script, DEADLINE).await
    }

    /// The stream opened `i`-th.
    pub fn stream(&self, i: usize) -> &harness::StreamSubscriber {
        &self.cluster().streams[i]
    }

    /// Closes the stream opened `i`-th (its recordings stay).
    pub fn close_stream(&mut self, i: usize) {
        if let Some(c) = self.cluster.as_mut() {
            c.streams[i].close();
        }
    }

    /// Waits until message `id` arrived at least `n` times on stream `i`.
    pub async fn wait_stream_msg(
        &self,
        i: usize,
        id: &str,
        n: usize,
    ) -> Result<Vec<RecordedDelivery>, Problem> {
        self.stream(i)
            .wait_message(id, n, DEADLINE)
            .await
            .map_err(|e| Problem::fail(e.to_string(), self.evidence()))
    }
}

/// One evidence line per delivery: time, route, message, attempt, answer.
pub fn delivery_lines(ds: &[RecordedDelivery]) -> Vec<String> {
    ds.iter()
        .map(|d| {
            format!(
                "{:>8.1} ms {} {} msg={} ce_id={} attempt={} answered={}",
                d.request.at_micros as f64 / 1000.0,
                d.request.method,
                d.request.path,
                d.tck_id.as_deref().unwrap_or("-"),
                d.ce_id.as_deref().unwrap_or("-"),
                d.attempt,
                d.answered
            )
        })
        .collect()
}

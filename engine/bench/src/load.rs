//! The open-loop load generator (see the crate docs).
//!
//! One pacing thread walks the [`Schedule`] and, at each message's intended time, hands its
//! index to the queue of the message's publisher. Each publisher has `connections` workers,
//! each owning one connection; a free worker takes the next index from its publisher's queue,
//! sends, and records send time, answer time and outcome. When every worker of a publisher is
//! busy, indices wait in the queue: the wait is part of their latency, because latency counts
//! from the intended time.
//!
//! The pacing thread is a plain OS thread sleeping until each intended time: tokio's timer has
//! millisecond granularity, which would add up to a millisecond of schedule error to every
//! sample. It paces; it never waits for a result.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dapr::dapr::proto::runtime::v1::PublishEventRequest;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

use crate::payload::PayloadMaker;
use crate::receiver::PUBSUB;
use crate::record::{Outcome, PhaseRecorder};
use crate::schedule::{Schedule, publisher_of};
use harness_report::event::{RunEvent, RunEvents, emit};

/// How the generator publishes one message.
pub(crate) enum Transport {
    /// `POST path` with `application/json` on keep-alive HTTP/1.1 connections to `addr`.
    Http { addr: SocketAddr, path: String },
    /// Dapr gRPC `PublishEvent` to `topic` on `endpoint` (`http://127.0.0.1:port`).
    Grpc { endpoint: String, topic: String },
    /// Into a tokio channel (the in-memory baseline).
    Channel { tx: mpsc::UnboundedSender<Bytes> },
    /// `XADD stream * data <payload>`.
    Redis {
        client: redis::Client,
        stream: String,
    },
    /// Produce to `topic`.
    #[cfg(feature = "kafka")]
    Kafka {
        producer: rdkafka::producer::FutureProducer,
        topic: String,
    },
}

/// One worker's connection.
enum Conn {
    Http {
        addr: SocketAddr,
        path: Arc<str>,
        sender: Option<SendRequest<Full<Bytes>>>,
    },
    Grpc {
        client: DaprClient<tonic::transport::Channel>,
        topic: Arc<str>,
    },
    Channel(mpsc::UnboundedSender<Bytes>),
    Redis {
        con: redis::aio::MultiplexedConnection,
        stream: Arc<str>,
    },
    #[cfg(feature = "kafka")]
    Kafka {
        producer: rdkafka::producer::FutureProducer,
        topic: Arc<str>,
    },
}

async fn http_connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

impl Transport {
    async fn connect(&self) -> Result<Conn, String> {
        match self {
            Transport::Http { addr, path } => Ok(Conn::Http {
                addr: *addr,
                path: Arc::from(path.as_str()),
                sender: Some(http_connect(*addr).await?),
            }),
            Transport::Grpc { endpoint, topic } => DaprClient::connect(endpoint.clone())
                .await
                .map(|client| Conn::Grpc {
                    client,
                    topic: Arc::from(topic.as_str()),
                })
                .map_err(|e| format!("connecting to the gRPC API at {endpoint}: {e}")),
            Transport::Channel { tx } => Ok(Conn::Channel(tx.clone())),
            Transport::Redis { client, stream } => client
                .get_multiplexed_async_connection()
                .await
                .map(|con| Conn::Redis {
                    con,
                    stream: Arc::from(stream.as_str()),
                })
                .map_err(|e| format!("connecting to Redis: {e}")),
            #[cfg(feature = "kafka")]
            Transport::Kafka { producer, topic } => Ok(Conn::Kafka {
                producer: producer.clone(),
                topic: Arc::from(topic.as_str()),
            }),
        }
    }
}

impl Conn {
    async fn send(&mut self, payload: Vec<u8>) -> Outcome {
        match self {
            Conn::Http { addr, path, sender } => {
                let mut s = match sender.take() {
                    Some(s) if !s.is_closed() => s,
                    _ => match http_connect(*addr).await {
                        Ok(s) => s,
                        Err(_) => return Outcome::Transport,
                    },
                };
                if s.ready().await.is_err() {
                    return Outcome::Transport;
                }
                let req = http::Request::post(&**path)
                    .header(http::header::HOST, "127.0.0.1")
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(payload)));
                let Ok(req) = req else {
                    return Outcome::Transport;
                };
                let Ok(resp) = s.send_request(req).await else {
                    return Outcome::Transport;
                };
                let status = resp.status();
                if resp.into_body().collect().await.is_err() {
                    return Outcome::Transport;
                }
                // Kept only after a complete exchange, so a timeout drops the connection.
                *sender = Some(s);
                if status == http::StatusCode::NO_CONTENT {
                    Outcome::Ok
                } else {
                    Outcome::Status(status.as_u16())
                }
            }
            Conn::Grpc { client, topic } => {
                let req = PublishEventRequest {
                    pubsub_name: PUBSUB.to_owned(),
                    topic: topic.to_string(),
                    data: payload,
                    data_content_type: "application/json".to_owned(),
                    metadata: HashMap::new(),
                };
                match client.publish_event(req).await {
                    Ok(_) => Outcome::Ok,
                    Err(status) => Outcome::Grpc(status.code() as i32),
                }
            }
            Conn::Channel(tx) => match tx.send(Bytes::from(payload)) {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Transport,
            },
            Conn::Redis { con, stream } => {
                let r: redis::RedisResult<String> = redis::cmd("XADD")
                    .arg(&**stream)
                    .arg("*")
                    .arg("data")
                    .arg(payload)
                    .query_async(con)
                    .await;
                match r {
                    Ok(_) => Outcome::Ok,
                    Err(_) => Outcome::Transport,
                }
            }
            #[cfg(feature = "kafka")]
            Conn::Kafka { producer, topic } => {
                let record: rdkafka::producer::FutureRecord<'_, (), Vec<u8>> =
                    rdkafka::producer::FutureRecord::to(topic).payload(&payload);
                match producer
                    .send(
                        record,
                        rdkafka::util::Timeout::After(Duration::from_secs(10)),
                    )
                    .await
                {
                    Ok(_) => Outcome::Ok,
                    Err(_) => Outcome::Transport,
                }
            }
        }
    }
}

/// One phase of load.
pub(crate) struct Plan {
    /// The phase number payloads carry.
    pub(crate) phase: u16,
    pub(crate) schedule: Schedule,
    pub(crate) publishers: usize,
    pub(crate) connections: usize,
    /// Seeded start of the publishers' round robin.
    pub(crate) offset: u64,
    pub(crate) timeout: Duration,
}

/// How long after connecting the schedule starts, so every worker is waiting at `t0`.
const LEAD: Duration = Duration::from_millis(20);
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs one phase: connects every worker, makes the recorder (handed to `register` before the
/// first message leaves, so deliveries find it), sends the schedule and waits for every answer.
pub(crate) async fn drive(
    transport: &Transport,
    plan: &Plan,
    payloads: &Arc<PayloadMaker>,
    register: impl FnOnce(&Arc<PhaseRecorder>),
    events: &RunEvents,
) -> Result<Arc<PhaseRecorder>, String> {
    let publishers = plan.publishers.max(1);
    let mut conns = Vec::with_capacity(publishers * plan.connections.max(1));
    for _ in 0..publishers * plan.connections.max(1) {
        conns.push(transport.connect().await?);
    }
    let count = plan.schedule.count();
    let t0 = Instant::now() + LEAD;
    let rec = Arc::new(PhaseRecorder::new(t0, count));
    register(&rec);

    let mut senders = Vec::with_capacity(publishers);
    let mut workers = Vec::with_capacity(conns.len());
    let mut conns = conns.into_iter();
    for _ in 0..publishers {
        let (tx, rx) = mpsc::unbounded_channel::<u64>();
        senders.push(tx);
        let queue = Arc::new(Mutex::new(rx));
        for conn in conns.by_ref().take(plan.connections.max(1)) {
            workers.push(tokio::spawn(worker(
                queue.clone(),
                conn,
                rec.clone(),
                payloads.clone(),
                plan.phase,
                plan.timeout,
            )));
        }
    }

    let schedule = plan.schedule;
    let offset = plan.offset;
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".to_owned())
        .spawn(move || {
            for i in 0..count {
                let at = t0 + schedule.intended(i);
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if senders[publisher_of(i, publishers, offset)]
                    .send(i)
                    .is_err()
                {
                    break;
                }
            }
            // Dropping the senders ends the workers once their queues are empty.
        })
        .map_err(|e| format!("starting the pacing thread: {e}"))?;

    let progress = {
        let rec = rec.clone();
        let events = events.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            loop {
                tick.tick().await;
                emit(
                    &events,
                    RunEvent::Progress {
                        done: rec.completed(),
                        current: None,
                    },
                );
            }
        })
    };
    for w in workers {
        let _ = w.await;
    }
    progress.abort();
    emit(
        events,
        RunEvent::Progress {
            done: rec.completed(),
            current: None,
        },
    );
    // Every worker has ended, so every sender is gone and the thread has returned (or is
    // returning from its last, failed send).
    let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    Ok(rec)
}

async fn worker(
    queue: Arc<Mutex<mpsc::UnboundedReceiver<u64>>>,
    mut conn: Conn,
    rec: Arc<PhaseRecorder>,
    payloads: Arc<PayloadMaker>,
    phase: u16,
    timeout: Duration,
) {
    loop {
        // The lock is held while waiting for an index, so the publisher's free workers take
        // indices in turn.
        let next = queue.lock().await.recv().await;
        let Some(i) = next else { break };
        let payload = payloads.make(phase, i);
        rec.issued(i, Instant::now());
        let outcome = match tokio::time::timeout(timeout, conn.send(payload)).await {
            Ok(o) => o,
            Err(_) => Outcome::Timeout,
        };
        rec.answered(i, Instant::now(), outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::{Mode, Server};

    /// Drives phase 1 of `schedule` over HTTP to `addr` `path`: `publishers` publishers with as
    /// many connections, 100-byte payloads.
    async fn drive_http(
        addr: SocketAddr,
        path: &str,
        schedule: Schedule,
        publishers: usize,
        offset: u64,
        timeout: Duration,
    ) -> (Plan, Result<Arc<PhaseRecorder>, String>) {
        let transport = Transport::Http {
            addr,
            path: path.into(),
        };
        let plan = Plan {
            phase: 1,
            schedule,
            publishers,
            connections: publishers,
            offset,
            timeout,
        };
        let (tx, _rx) = std::sync::mpsc::channel();
        let payloads = Arc::new(PayloadMaker::new(100, 1));
        let rec = drive(&transport, &plan, &payloads, |_| {}, &tx).await;
        (plan, rec)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_noop_server_answers_every_scheduled_message() {
        let server = Server::start(Mode::Noop).await.unwrap();
        let (plan, rec) = drive_http(
            server.addr(),
            "/v1.0/publish/pubsub/bench",
            Schedule::new(500.0, Duration::from_millis(200)),
            2,
            1,
            Duration::from_secs(5),
        )
        .await;
        let rec = rec.unwrap();
        let d = rec.snapshot();
        assert_eq!(d.outcome.len(), 100);
        assert!(
            d.outcome.iter().all(|o| *o == Outcome::Ok),
            "{:?}",
            d.outcome
        );
        // Every answer comes after its intended time.
        for (i, at) in d.answered.iter().enumerate() {
            assert!(at.unwrap() >= plan.schedule.intended_nanos(i as u64));
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_a_connect_error() {
        let server = Server::start(Mode::Noop).await.unwrap();
        let addr = server.addr();
        server.stop().await;
        let (_, rec) = drive_http(
            addr,
            "/x",
            Schedule::new(10.0, Duration::from_millis(100)),
            1,
            0,
            Duration::from_secs(1),
        )
        .await;
        let err = rec.err().unwrap();
        assert!(err.contains("connecting to"), "{err}");
    }
}

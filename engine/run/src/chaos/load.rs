//! Steady publish load for chaos trials: tasks that publish at a fixed rate while faults come
//! and go, recording every publish in the trial's history.
//!
//! The load runs one lane per ordering key. A lane publishes its key's messages one at a time
//! (`tck_seq` 0, 1, 2, …, with the key as `metadata.partitionKey`) on a schedule of intended
//! times, so per-key publish order is well defined even when a fault stalls requests; the
//! lanes together give the configured rate. A lane that falls behind its schedule catches up
//! without pausing.
//!
//! A publish that times out or fails at the transport, or is answered 5xx, is recorded as
//! [`Phase::Info`]: the message may or may not have been stored (a reset on the broker hop can
//! lose the reply to a write that happened). Any other non-204 answer is [`Phase::Fail`]. This
//! module does not judge; the history goes through the usual checkers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use harness::SidecarClient;
use harness_history::{Event, EventKind, MessageId, Phase, Publish};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How a [`Load`] publishes.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The pubsub component name.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// Messages per second, over all keys.
    pub rate: u32,
    /// Ordering keys (`k0`, `k1`, …), one lane each.
    pub keys: u32,
    /// Message ids are `<prefix><key>-<seq>`.
    pub id_prefix: String,
    /// The trial's nonce, carried in every payload as `tck_trial`.
    pub trial: String,
    /// A publish still unanswered after this is recorded as indeterminate.
    pub request_timeout: Duration,
}

/// A running load; [`Load::stop`] ends it and returns what it recorded.
pub struct Load {
    stop: watch::Sender<bool>,
    invoked: watch::Receiver<u64>,
    lanes: JoinSet<()>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Load {
    /// Starts publishing through `client`; times are microseconds since `trial_start`.
    pub fn start(client: SidecarClient, config: LoadConfig, trial_start: Instant) -> Load {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let (count, invoked) = watch::channel(0u64);
        let count = Arc::new(count);
        let keys = config.keys.max(1);
        let interval = Duration::from_secs_f64(f64::from(keys) / f64::from(config.rate.max(1)));
        let began = Instant::now();
        let mut lanes = JoinSet::new();
        for k in 0..keys {
            let lane = Lane {
                client: client.clone(),
                config: config.clone(),
                key: format!("k{k}"),
                // Lanes are spread over one interval so the rate is smooth.
                first: began + interval.mul_f64(f64::from(k) / f64::from(keys)),
                interval,
                trial_start,
                events: events.clone(),
                count: count.clone(),
            };
            lanes.spawn(lane.run(stopped.clone()));
        }
        Load {
            stop,
            invoked,
            lanes,
            events,
        }
    }

    /// Publishes issued so far.
    pub fn invoked(&self) -> u64 {
        *self.invoked.borrow()
    }

    /// Waits until at least `n` publishes were issued in all, or `deadline` passes; returns
    /// whether they were.
    pub async fn wait_invoked(&mut self, n: u64, deadline: Duration) -> bool {
        tokio::time::timeout(deadline, self.invoked.wait_for(|&c| c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops issuing publishes, waits for those in flight (each bounded by the request
    /// timeout) and returns every recorded event.
    pub async fn stop(mut self) -> Vec<Event> {
        let _ = self.stop.send(true);
        while self.lanes.join_next().await.is_some() {}
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// One key's publishes, one at a time.
struct Lane {
    client: SidecarClient,
    config: LoadConfig,
    key: String,
    first: Instant,
    interval: Duration,
    trial_start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
    count: Arc<watch::Sender<u64>>,
}

impl Lane {
    fn record(&self, p: Publish) {
        let at = self.trial_start.elapsed().as_micros() as u64;
        if let Ok(mut e) = self.events.lock() {
            e.push(Event::new(at, EventKind::Publish(p)));
        }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        for seq in 0u64.. {
            let intended = self.first + self.interval.mul_f64(seq as f64);
            tokio::select! {
                () = tokio::time::sleep_until(intended.into()) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            if *stopped.borrow() {
                return;
            }
            self.publish(seq).await;
        }
    }

    async fn publish(&self, seq: u64) {
        let id = format!("{}{}-{seq}", self.config.id_prefix, self.key);
        let body = json!({"tck_id": id, "tck_key": self.key, "tck_seq": seq, "tck_trial": self.config.trial}).to_string();
        let mut p = Publish::new(MessageId::new(id), &self.config.topic, Phase::Invoke);
        p.key = Some(self.key.clone());
        p.seq = Some(seq);
        self.record(p.clone());
        self.count.send_modify(|c| *c += 1);
        let query = [("metadata.partitionKey", self.key.as_str())];
        let sent = self.client.publish(
            &self.config.pubsub,
            &self.config.topic,
            Bytes::from(body),
            Some("application/json"),
            &query,
        );
        match tokio::time::timeout(self.config.request_timeout, sent).await {
            Ok(Ok(r)) if r.status == 204 => {
                p.phase = Phase::Ok;
                p.status = Some(204);
            }
            Ok(Ok(r)) if r.status >= 500 => {
                p.phase = Phase::Info;
                p.status = Some(r.status);
            }
            Ok(Ok(r)) => {
                p.phase = Phase::Fail;
                p.status = Some(r.status);
            }
            Ok(Err(e)) => {
                p.phase = Phase::Info;
                p.detail = Some(e.to_string());
            }
            Err(_) => {
                p.phase = Phase::Info;
                p.detail = Some(format!(
                    "no answer within {:?}",
                    self.config.request_timeout
                ));
            }
        }
        self.record(p);
    }
}

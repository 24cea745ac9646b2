//! One subscription's consumer: a reader doing `XREADGROUP` into a bounded queue,
//! `concurrency` workers that run the handler and `XACK`, and a reclaimer that `XCLAIM`s
//! entries left pending past `processingTimeout`.

use super::*;

/// Starts the consumer of `topic` on a task of its own.
pub(super) fn start<H: Handler>(inner: Arc<Inner>, topic: &str, handler: Arc<H>) -> JoinHandle<()> {
    let sub = Subscription {
        closing: Closing::new(&inner.closing),
        inner,
        topic: topic.to_owned(),
    };
    tokio::spawn(sub.run(handler))
}

/// One stream entry handed to a worker.
struct Entry {
    id: String,
    msg: Message,
}

/// The consumer of one topic.
#[derive(Clone)]
struct Subscription {
    inner: Arc<Inner>,
    topic: String,
    closing: Closing,
}

/// Exponential backoff for the consumer loops: 100 ms doubling up to 5 s.
struct Backoff {
    next: Duration,
    failures: u32,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Backoff {
        Backoff {
            next: Self::MIN,
            failures: 0,
        }
    }

    fn step(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        self.failures += 1;
        wait
    }

    /// Back to the start after a success; true if there had been failures.
    fn reset(&mut self) -> bool {
        let recovered = self.failures > 0;
        self.next = Self::MIN;
        self.failures = 0;
        recovered
    }
}

impl Subscription {
    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    async fn run<H: Handler>(self, handler: Arc<H>) {
        if !self.create_group_until_done().await {
            return;
        }
        let depth = self.settings().queue_depth;
        let (tx, rx) = mpsc::channel::<Entry>(depth);
        // Workers share one receiver; the tokio mutex is fair, so with one worker the queue order
        // (the stream order) is the delivery order.
        let rx = Arc::new(Mutex::new(rx));
        // Dropping the set (when this task is aborted at the end of the grace period) aborts every
        // child: no worker outlives the subscription.
        let mut tasks = JoinSet::new();
        for _ in 0..self.settings().concurrency {
            tasks.spawn(self.clone().worker(rx.clone(), handler.clone()));
        }
        if self.settings().reclaim_enabled() {
            tasks.spawn(self.clone().reclaimer(tx.clone()));
        }
        tasks.spawn(self.clone().reader(tx));
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(topic = %self.topic, "redis consumer task failed: {e}");
            }
        }
    }

    /// `XGROUP CREATE <topic> <group> 0 MKSTREAM`; an existing group is fine.
    async fn create_group(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.inner.conn.clone();
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.topic)
            .arg(&self.settings().consumer_id)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Creates the group, retrying while Redis is unreachable; false if closed first.
    async fn create_group_until_done(&self) -> bool {
        let mut backoff = Backoff::new();
        loop {
            if self.closing.is_closing() {
                return false;
            }
            match self.create_group().await {
                Ok(()) => return true,
                Err(e) => {
                    let wait = backoff.step();
                    tracing::warn!(topic = %self.topic, group = %self.settings().consumer_id, "redis streams: cannot create the consumer group, retrying in {wait:?}: {e}");
                    if !self.closing.sleep(wait).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Reads new entries with `XREADGROUP ... >` and queues them for the workers.
    async fn reader(self, tx: mpsc::Sender<Entry>) {
        let s = self.settings();
        // Its own connection: a blocking read would hold up every command pipelined behind it
        // on the shared one. The response timeout leaves room for the BLOCK time.
        let config = s.manager_config(s.read_timeout.saturating_mul(2));
        let mut conn = match ConnectionManager::new_lazy_with_config(
            self.inner.client.clone(),
            config,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(topic = %self.topic, "redis streams: cannot set up the read connection: {e}");
                return;
            }
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&s.consumer_id)
            .arg(&s.consumer_id)
            .arg("COUNT")
            .arg(s.queue_depth)
            .arg("BLOCK")
            .arg(u64::try_from(s.read_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.topic)
            .arg(">");
        let mut backoff = Backoff::new();
        loop {
            // Dropping an in-flight read on close may leave the entries it fetched pending; they
            // are reclaimed later, never lost.
            let read = tokio::select! {
                biased;
                _ = self.closing.closed() => return,
                r = cmd.query_async::<Value>(&mut conn) => r,
            };
            match read {
                Ok(reply) => {
                    if backoff.reset() {
                        tracing::info!(topic = %self.topic, "redis streams: reading again");
                    }
                    for entry in self.entries_of_read(reply) {
                        if !self.enqueue(&tx, entry).await {
                            return;
                        }
                    }
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // The group went away with the data (a restart without persistence, or a
                    // deleted stream): recreate it from 0 so nothing published since is missed.
                    tracing::warn!(topic = %self.topic, group = %s.consumer_id, "redis streams: consumer group does not exist; recreating it");
                    if let Err(e) = self.create_group().await {
                        let wait = backoff.step();
                        tracing::warn!(topic = %self.topic, "redis streams: cannot recreate the consumer group, retrying in {wait:?}: {e}");
                        if !self.closing.sleep(wait).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let wait = backoff.step();
                    tracing::warn!(topic = %self.topic, attempt = backoff.failures, "redis streams: error reading from stream, retrying in {wait:?}: {e}");
                    if !self.closing.sleep(wait).await {
                        return;
                    }
                }
            }
        }
    }

    /// Queues one entry, waiting while the queue is full; false if closed first.
    async fn enqueue(&self, tx: &mpsc::Sender<Entry>, entry: Entry) -> bool {
        tokio::select! {
            biased;
            _ = self.closing.closed() => false,
            sent = tx.send(entry) => sent.is_ok(),
        }
    }

    /// Every `redeliverInterval`, claims entries pending longer than `processingTimeout` (read
    /// but never acked: a crashed sidecar, a handler past its deadline, a shutdown) and queues
    /// them again.
    async fn reclaimer(self, tx: mpsc::Sender<Entry>) {
        let mut tick = tokio::time::interval(self.settings().redeliver_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The first tick is immediate: entries left by a previous run are picked up at once.
            tokio::select! {
                biased;
                _ = self.closing.closed() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.reclaim(&tx).await {
                tracing::warn!(topic = %self.topic, "redis streams: error reclaiming pending entries: {e}");
            }
        }
    }

    async fn reclaim(&self, tx: &mpsc::Sender<Entry>) -> Result<(), redis::RedisError> {
        let s = self.settings();
        let min_idle = u64::try_from(s.processing_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.inner.conn.clone();
        loop {
            if self.closing.is_closing() {
                return Ok(());
            }
            // Like contrib, look at the oldest `queueDepth` pending entries only.
            let pending: Value = redis::cmd("XPENDING")
                .arg(&self.topic)
                .arg(&s.consumer_id)
                .arg("-")
                .arg("+")
                .arg(s.queue_depth)
                .query_async(&mut conn)
                .await?;
            let ids: Vec<String> = pending_idle_ids(&pending, min_idle);
            if ids.is_empty() {
                return Ok(());
            }
            // XCLAIM re-checks the idle time on the server, so an entry another replica (or our
            // own reader) touched since XPENDING is skipped rather than delivered twice. A claim
            // resets the idle time, which is what ends this loop.
            let claimed: Value = redis::cmd("XCLAIM")
                .arg(&self.topic)
                .arg(&s.consumer_id)
                .arg(&s.consumer_id)
                .arg(min_idle)
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
            let entries = self.entries_of_list(&claimed);
            // Entries deleted from the stream are dropped from the PEL by XCLAIM itself
            // (Redis ≥ 7); without progress, stop rather than spin.
            if entries.is_empty() {
                return Ok(());
            }
            tracing::info!(topic = %self.topic, count = entries.len(), "redis streams: redelivering pending entries");
            for entry in entries {
                if !self.enqueue(tx, entry).await {
                    return Ok(());
                }
            }
        }
    }

    /// Takes entries from the queue, runs the handler, acks when the outcome is final.
    async fn worker<H: Handler>(self, rx: Arc<Mutex<mpsc::Receiver<Entry>>>, handler: Arc<H>) {
        loop {
            // Once closing, queued entries are left alone: they are pending in Redis already and
            // a later run reclaims them, so shutdown waits only for what is in flight.
            let next = tokio::select! {
                biased;
                _ = self.closing.closed() => None,
                e = async { rx.lock().await.recv().await } => e,
            };
            let Some(entry) = next else {
                return;
            };
            self.process(entry, handler.as_ref()).await;
        }
    }

    async fn process<H: Handler>(&self, entry: Entry, handler: &H) {
        let s = self.settings();
        let started = Instant::now();
        // As contrib's handler context: with reclaim on, the handling has `processingTimeout` to
        // finish; past it the delivery is abandoned and left for the reclaimer.
        let outcome = if s.reclaim_enabled() {
            tokio::time::timeout(s.processing_timeout, handler.handle(entry.msg))
                .await
                .ok()
        } else {
            Some(handler.handle(entry.msg).await)
        };
        let final_outcome = match outcome {
            Some(Ok(())) => true,
            Some(Err(_)) => {
                let expired = s.reclaim_enabled() && started.elapsed() >= s.processing_timeout;
                !expired && !self.closing.is_closing()
            }
            None => false,
        };
        if !final_outcome {
            tracing::warn!(topic = %self.topic, id = %entry.id, "redis streams: message not processed; it stays pending for redelivery");
            return;
        }
        let mut conn = self.inner.conn.clone();
        let acked = redis::cmd("XACK")
            .arg(&self.topic)
            .arg(&s.consumer_id)
            .arg(&entry.id)
            .query_async::<i64>(&mut conn)
            .await;
        if let Err(e) = acked {
            // The entry stays pending and is redelivered after processingTimeout: a duplicate,
            // never a loss.
            tracing::error!(topic = %self.topic, id = %entry.id, "redis streams: error acknowledging message: {e}");
        }
    }

    /// Entries of an `XREADGROUP` reply: nil on timeout, else `[[stream, [entry...]]...]`.
    fn entries_of_read(&self, reply: Value) -> Vec<Entry> {
        let streams = match reply {
            Value::Array(streams) => streams,
            Value::Map(pairs) => pairs
                .into_iter()
                .map(|(k, v)| Value::Array(vec![k, v]))
                .collect(),
            _ => return Vec::new(),
        };
        streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(parts) if parts.len() == 2 => Some(self.entries_of_list(&parts[1])),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Entries of a list reply (`XREADGROUP` per stream, `XCLAIM`): `[[id, [field, value...]]...]`.
    fn entries_of_list(&self, list: &Value) -> Vec<Entry> {
        let Value::Array(items) = list else {
            return Vec::new();
        };
        items.iter().filter_map(|i| self.entry(i)).collect()
    }

    fn entry(&self, item: &Value) -> Option<Entry> {
        let Value::Array(parts) = item else {
            return None;
        };
        let id = text(parts.first()?)?;
        let mut data = Bytes::new();
        let mut metadata = BTreeMap::new();
        // Fields are nil for an entry deleted from the stream while pending; it is then
        // delivered empty, as contrib does.
        if let Some(Value::Array(fields)) = parts.get(1) {
            for pair in fields.chunks(2) {
                let [k, v] = pair else { continue };
                match text(k).as_deref() {
                    Some("data") => data = Bytes::from(bytes_of(v).unwrap_or_default()),
                    Some("metadata") => {
                        let raw = bytes_of(v).unwrap_or_default();
                        match serde_json::from_slice::<BTreeMap<String, String>>(&raw) {
                            Ok(m) => metadata = m,
                            Err(e) => {
                                tracing::warn!(topic = %self.topic, %id, "redis streams: could not read the metadata of message: {e}");
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(Entry {
            id,
            msg: Message {
                data,
                metadata: Arc::new(metadata),
            },
        })
    }
}

/// Ids of an extended `XPENDING` reply (`[[id, consumer, idle-ms, deliveries]...]`) idle at least
/// `min_idle` milliseconds.
fn pending_idle_ids(reply: &Value, min_idle: u64) -> Vec<String> {
    let Value::Array(rows) = reply else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| match row {
            Value::Array(cols) if cols.len() >= 3 => {
                let idle = match &cols[2] {
                    Value::Int(n) => u64::try_from(*n).ok()?,
                    other => text(other)?.parse().ok()?,
                };
                (idle >= min_idle).then(|| text(&cols[0])).flatten()
            }
            _ => None,
        })
        .collect()
}

fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    bytes_of(v).and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_reply_filtering() {
        let row = |id: &str, idle: i64| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::BulkString(b"c".to_vec()),
                Value::Int(idle),
                Value::Int(1),
            ])
        };
        let reply = Value::Array(vec![row("1-0", 5000), row("2-0", 10), row("3-0", 1000)]);
        assert_eq!(pending_idle_ids(&reply, 1000), ["1-0", "3-0"]);
        assert!(pending_idle_ids(&Value::Nil, 0).is_empty());
    }
}

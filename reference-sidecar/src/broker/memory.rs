//! `pubsub.in-memory`: per-process topics, per-subscription FIFO, every subscription gets every
//! message. A nacked message is gone (no redelivery), as in daprd.
//!
//! Unlike daprd's synchronous bus, publish does not wait for delivery: each subscription has a
//! queue and one consumer task, which keeps order and allows one in-flight delivery per
//! subscription. The queue is bounded twice, in messages and in body bytes, so a subscriber
//! that stops consuming holds at most [`QUEUE_BYTES`] of memory. A publish waits for room only
//! in the queues that are full, after handing the message to every other subscription, and only
//! while the subscriber makes progress: once nothing has left a full queue for
//! [`ENQUEUE_TIMEOUT`], publishes to it fail. A hung subscriber therefore slows publishes to its
//! own topic for that long at most, a burst of them (a bulk publish of 100 000 entries) included,
//! and never blocks other topics; a slow one gets back-pressure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use super::{Handler, Message, PublishError};

/// Messages a subscription may have queued before publishers wait.
const QUEUE_DEPTH: usize = 4096;
/// Body bytes a subscription may have queued (and in delivery) before publishers wait. One
/// message larger than this is admitted when the queue holds no other bytes.
pub const QUEUE_BYTES: usize = 64 << 20;
/// How long a full queue may go without its subscriber taking a message before publishes to it
/// fail. Shorter than the usual client timeouts (the harness waits 10 s), so the caller sees the
/// broker's error.
pub const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds of every subscription queue of one broker.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    depth: usize,
    bytes: usize,
    wait: Duration,
}

/// The in-memory broker; clones share the same topics.
#[derive(Debug, Clone)]
pub struct InMemory {
    inner: Arc<Inner>,
}

impl Default for InMemory {
    fn default() -> InMemory {
        InMemory::with_bounds(QUEUE_DEPTH, QUEUE_BYTES, ENQUEUE_TIMEOUT)
    }
}

#[derive(Debug)]
struct Inner {
    /// Exact-topic subscriptions and wildcard (`prefix*`) subscriptions.
    topics: RwLock<Topics>,
    closed: AtomicBool,
    bounds: Bounds,
}

#[derive(Debug, Default)]
struct Topics {
    exact: HashMap<String, Vec<Arc<Queue>>>,
    wildcard: Vec<(String, Arc<Queue>)>,
}

/// The publishing end of one subscription's queue.
#[derive(Debug)]
struct Queue {
    /// The subscribed topic (`orders`, `orders*`), for errors.
    topic: String,
    tx: mpsc::Sender<Queued>,
    /// One permit per body byte queued or in delivery.
    bytes: Arc<Semaphore>,
    /// When the subscriber last took a message (or the queue was made).
    last_taken: Arc<std::sync::Mutex<Instant>>,
}

/// A queued message with the byte permits it holds until its delivery is over.
struct Queued {
    msg: Message,
    _bytes: OwnedSemaphorePermit,
}

/// Why a message did not go into one queue at once.
enum Full {
    /// No room now.
    Wait,
    /// The subscription is gone.
    Closed,
}

impl Queue {
    /// Byte permits for a body of `len` bytes (capped, so that any message fits alone).
    fn cost(&self, len: usize, bounds: Bounds) -> u32 {
        u32::try_from(len.min(bounds.bytes)).unwrap_or(u32::MAX)
    }

    fn try_enqueue(&self, msg: &Message, bounds: Bounds) -> Result<(), Full> {
        let cost = self.cost(msg.data.len(), bounds);
        let permit = match self.bytes.clone().try_acquire_many_owned(cost) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(Full::Wait),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Full::Closed),
        };
        let queued = Queued {
            msg: msg.clone(),
            _bytes: permit,
        };
        match self.tx.try_send(queued) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Full::Wait),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Full::Closed),
        }
    }

    /// When the subscriber last took a message.
    fn last_taken(&self) -> Instant {
        *self.last_taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for room as long as the subscriber takes a message at least every `bounds.wait`;
    /// false when it did not (a hung subscriber). Every publish waiting on one queue shares that
    /// deadline, so a burst of publishes fails within one wait, not one wait each.
    async fn wait_for_room(&self, msg: Message, bounds: Bounds) -> bool {
        let enqueue = self.enqueue(msg, bounds);
        tokio::pin!(enqueue);
        loop {
            let deadline = self.last_taken() + bounds.wait;
            if tokio::time::timeout_at(deadline, &mut enqueue)
                .await
                .is_ok()
            {
                return true;
            }
            if self.last_taken() + bounds.wait <= Instant::now() {
                return false;
            }
        }
    }

    /// Waits for room; a closed queue counts as done.
    async fn enqueue(&self, msg: Message, bounds: Bounds) {
        let cost = self.cost(msg.data.len(), bounds);
        let Ok(permit) = self.bytes.clone().acquire_many_owned(cost).await else {
            return;
        };
        let _ = self
            .tx
            .send(Queued {
                msg,
                _bytes: permit,
            })
            .await;
    }
}

impl InMemory {
    /// An empty broker.
    pub fn new() -> InMemory {
        InMemory::default()
    }

    /// An empty broker whose subscription queues hold `depth` messages and `bytes` body bytes,
    /// and whose publishes wait at most `wait` for room.
    fn with_bounds(depth: usize, bytes: usize, wait: Duration) -> InMemory {
        InMemory {
            inner: Arc::new(Inner {
                topics: RwLock::default(),
                closed: AtomicBool::new(false),
                bounds: Bounds {
                    depth: depth.max(1),
                    bytes: bytes.clamp(1, u32::MAX as usize),
                    wait,
                },
            }),
        }
    }

    pub(crate) async fn publish(&self, topic: &str, msg: Message) -> Result<(), PublishError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PublishError::Closed);
        }
        let bounds = self.inner.bounds;
        // Queues are cloned out so that no lock is held across an await.
        let targets: Vec<Arc<Queue>> = {
            let topics = self.inner.topics.read().map_err(|_| PublishError::Closed)?;
            let mut t: Vec<_> = topics.exact.get(topic).cloned().unwrap_or_default();
            t.extend(
                topics
                    .wildcard
                    .iter()
                    .filter(|(p, _)| topic.starts_with(p.as_str()))
                    .map(|(_, q)| q.clone()),
            );
            t
        };
        // Every queue with room gets the message at once; only then does the publish wait, and
        // only for the full ones. A closed queue means that subscription is gone; the others
        // still get the message.
        let mut full = Vec::new();
        for q in targets {
            if let Err(Full::Wait) = q.try_enqueue(&msg, bounds) {
                full.push(q);
            }
        }
        if full.is_empty() {
            return Ok(());
        }
        for q in full {
            if !q.wait_for_room(msg.clone(), bounds).await {
                return Err(PublishError::QueueFull {
                    subscription: q.topic.clone(),
                    depth: bounds.depth,
                    bytes: bounds.bytes,
                    waited: bounds.wait,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn subscribe<H: Handler>(
        &self,
        topic: &str,
        handler: Arc<H>,
    ) -> tokio::task::JoinHandle<()> {
        let bounds = self.inner.bounds;
        let (tx, mut rx) = mpsc::channel::<Queued>(bounds.depth);
        let last_taken = Arc::new(std::sync::Mutex::new(Instant::now()));
        let queue = Arc::new(Queue {
            topic: topic.to_owned(),
            tx,
            bytes: Arc::new(Semaphore::new(bounds.bytes)),
            last_taken: last_taken.clone(),
        });
        if let Ok(mut topics) = self.inner.topics.write() {
            // Subscriptions that stopped (a closed streaming subscription) leave closed queues.
            topics.wildcard.retain(|(_, q)| !q.tx.is_closed());
            for subs in topics.exact.values_mut() {
                subs.retain(|q| !q.tx.is_closed());
            }
            match topic.strip_suffix('*') {
                Some(prefix) => topics.wildcard.push((prefix.to_owned(), queue)),
                None => topics
                    .exact
                    .entry(topic.to_owned())
                    .or_default()
                    .push(queue),
            }
        }
        tokio::spawn(async move {
            while let Some(Queued { msg, _bytes }) = rx.recv().await {
                *last_taken.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                if handler.handle(msg).await.is_err() {
                    tracing::debug!("in-memory: message nacked and discarded (no redelivery)");
                }
                // The message's bytes count until its delivery is over.
                drop(_bytes);
            }
        })
    }

    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        // Dropping the senders lets each consumer drain its queue and stop.
        if let Ok(mut topics) = self.inner.topics.write() {
            topics.exact.clear();
            topics.wildcard.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<String>>);
    impl Handler for Collect {
        async fn handle(&self, msg: Message) -> Result<(), super::super::Nack> {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&msg.data).into_owned());
            Ok(())
        }
    }

    fn msg(s: &str) -> Message {
        Message {
            data: bytes::Bytes::copy_from_slice(s.as_bytes()),
            metadata: Default::default(),
        }
    }

    /// A handler that never finishes, like a hung app.
    struct Hang;
    impl Handler for Hang {
        async fn handle(&self, _msg: Message) -> Result<(), super::super::Nack> {
            std::future::pending().await
        }
    }

    fn sized(n: usize) -> Message {
        Message {
            data: bytes::Bytes::from(vec![b'x'; n]),
            metadata: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_hung_subscriber_fails_publishes_after_the_wait_and_blocks_no_one_else() {
        let b = InMemory::with_bounds(2, 1 << 20, Duration::from_millis(200));
        let healthy = Arc::new(Collect(Mutex::new(vec![])));
        let _hung = b.subscribe("t", Arc::new(Hang));
        let _healthy = b.subscribe("t", healthy.clone());
        let other = Arc::new(Collect(Mutex::new(vec![])));
        let _other = b.subscribe("u", other.clone());
        // One message in delivery (hung) and two queued fill the hung subscription. Its
        // subscriber took the first message after `started`, and nothing since.
        let started = tokio::time::Instant::now();
        for i in 0..3 {
            b.publish("t", msg(&i.to_string())).await.unwrap();
        }
        let err = b.publish("t", msg("3")).await.unwrap_err().to_string();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(err.contains("queue of subscription t is full"), "{err}");
        // The healthy subscription got every message, the failed one included.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while healthy.0.lock().unwrap().len() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "healthy subscriber fed"
            );
            tokio::task::yield_now().await;
        }
        // Another topic is not held up at all.
        let started = tokio::time::Instant::now();
        b.publish("u", msg("x")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_burst_to_a_hung_subscriber_fails_within_one_wait() {
        // A bulk publish of many entries to a topic whose subscriber hangs: the entries share
        // one wait (it used to be one wait each, 1 000 waits of 5 s for a 4 MiB bulk).
        let wait = Duration::from_millis(300);
        let b = InMemory::with_bounds(1, 1 << 20, wait);
        let _hung = b.subscribe("t", Arc::new(Hang));
        let started = tokio::time::Instant::now();
        b.publish("t", msg("in delivery")).await.unwrap();
        b.publish("t", msg("queued")).await.unwrap();
        let burst = (0..20).map(|i| b.publish("t", msg(&i.to_string())));
        let failed = futures::future::join_all(burst)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count();
        assert_eq!(failed, 20);
        // One publish after another, too: each fails at once once the wait is over.
        for i in 0..20 {
            assert!(b.publish("t", msg(&i.to_string())).await.is_err());
        }
        let took = started.elapsed();
        assert!(
            took >= wait && took < wait * 5,
            "{took:?} for 40 publishes to a hung subscriber: they should share one {wait:?} wait"
        );
    }

    #[tokio::test]
    async fn a_slow_subscriber_gets_back_pressure_not_errors() {
        // It takes a message every 50 ms, well within the 300 ms wait: publishes to its full
        // queue wait for room and all succeed, however long the run.
        struct Slow(Mutex<usize>);
        impl Handler for Slow {
            async fn handle(&self, _msg: Message) -> Result<(), super::super::Nack> {
                tokio::time::sleep(Duration::from_millis(50)).await;
                *self.0.lock().unwrap() += 1;
                Ok(())
            }
        }
        let b = InMemory::with_bounds(1, 1 << 20, Duration::from_millis(300));
        let slow = Arc::new(Slow(Mutex::new(0)));
        let _slow = b.subscribe("t", slow.clone());
        for i in 0..12 {
            b.publish("t", msg(&i.to_string())).await.unwrap();
        }
    }

    #[tokio::test]
    async fn queues_are_bounded_in_bytes() {
        let b = InMemory::with_bounds(4096, 1000, Duration::from_millis(100));
        let _hung = b.subscribe("t", Arc::new(Hang));
        // 600 bytes in delivery, 300 queued: 100 left.
        b.publish("t", sized(600)).await.unwrap();
        b.publish("t", sized(300)).await.unwrap();
        let err = b.publish("t", sized(200)).await.unwrap_err().to_string();
        assert!(err.contains("1000 bytes"), "{err}");
        b.publish("t", sized(100)).await.unwrap();
        // A message larger than the whole budget still fits an empty queue, never a busy one.
        assert!(b.publish("t", sized(5000)).await.is_err());
        let empty = InMemory::with_bounds(4096, 1000, Duration::from_millis(100));
        let c = Arc::new(Collect(Mutex::new(vec![])));
        let _c = empty.subscribe("t", c.clone());
        empty.publish("t", sized(5000)).await.unwrap();
    }

    #[tokio::test]
    async fn fifo_fan_out_and_wildcards() {
        let b = InMemory::new();
        let a = Arc::new(Collect(Mutex::new(vec![])));
        let c = Arc::new(Collect(Mutex::new(vec![])));
        let w = Arc::new(Collect(Mutex::new(vec![])));
        let ha = b.subscribe("t", a.clone());
        let hc = b.subscribe("t", c.clone());
        let hw = b.subscribe("t*", w.clone());
        for i in 0..100 {
            b.publish("t", msg(&i.to_string())).await.unwrap();
        }
        b.publish("other", msg("x")).await.unwrap();
        b.publish("tx", msg("wild")).await.unwrap();
        b.close();
        for h in [ha, hc, hw] {
            h.await.unwrap();
        }
        let expect: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(*a.0.lock().unwrap(), expect);
        assert_eq!(*c.0.lock().unwrap(), expect);
        assert_eq!(w.0.lock().unwrap().len(), 101);
        assert!(b.publish("t", msg("late")).await.is_err());
    }
}

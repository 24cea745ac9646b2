//! `pubsub.in-memory`: per-process topics, per-subscription FIFO, every subscription gets every
//! message. A nacked message is gone (no redelivery), as in daprd.
//!
//! Unlike daprd's synchronous bus, publish does not wait for delivery: each subscription has a
//! bounded queue (publish waits only when it is full) and one consumer task, which keeps order
//! and allows one in-flight delivery per subscription.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use super::{Handler, Message, PublishError};

/// Messages a subscription may have queued before publishers wait.
const QUEUE_DEPTH: usize = 4096;

/// The in-memory broker; clones share the same topics.
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Exact-topic subscriptions and wildcard (`prefix*`) subscriptions.
    topics: RwLock<Topics>,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Topics {
    exact: HashMap<String, Vec<mpsc::Sender<Message>>>,
    wildcard: Vec<(String, mpsc::Sender<Message>)>,
}

impl InMemory {
    /// An empty broker.
    pub fn new() -> InMemory {
        InMemory::default()
    }

    pub(crate) async fn publish(&self, topic: &str, msg: Message) -> Result<(), PublishError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PublishError::Closed);
        }
        // Senders are cloned out so that no lock is held across an await.
        let targets: Vec<mpsc::Sender<Message>> = {
            let topics = self.inner.topics.read().map_err(|_| PublishError::Closed)?;
            let mut t: Vec<_> = topics.exact.get(topic).cloned().unwrap_or_default();
            t.extend(
                topics
                    .wildcard
                    .iter()
                    .filter(|(p, _)| topic.starts_with(p.as_str()))
                    .map(|(_, s)| s.clone()),
            );
            t
        };
        for tx in targets {
            // A closed queue means that subscription is gone; the others still get the message.
            let _ = tx.send(msg.clone()).await;
        }
        Ok(())
    }

    pub(crate) fn subscribe<H: Handler>(
        &self,
        topic: &str,
        handler: Arc<H>,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE_DEPTH);
        if let Ok(mut topics) = self.inner.topics.write() {
            // Subscriptions that stopped (a closed streaming subscription) leave closed queues.
            topics.wildcard.retain(|(_, s)| !s.is_closed());
            for subs in topics.exact.values_mut() {
                subs.retain(|s| !s.is_closed());
            }
            match topic.strip_suffix('*') {
                Some(prefix) => topics.wildcard.push((prefix.to_owned(), tx)),
                None => topics.exact.entry(topic.to_owned()).or_default().push(tx),
            }
        }
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if handler.handle(msg).await.is_err() {
                    tracing::debug!("in-memory: message nacked and discarded (no redelivery)");
                }
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

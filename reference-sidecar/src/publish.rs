//! Publishing to a broker under the component's outbound policy (retries and per-attempt timeout).

use std::future::Future;
use std::time::Instant;

use crate::broker::PublishError;
use crate::resiliency::DirectionPolicy;

/// Why a publish under policy failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyPublishError {
    /// The broker refused every attempt.
    #[error(transparent)]
    Broker(#[from] PublishError),
    /// The last attempt timed out.
    #[error("publish timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// Runs `op` until it succeeds or the outbound policy is spent.
pub async fn with_policy<F, Fut>(
    policy: &DirectionPolicy,
    mut op: F,
) -> Result<(), PolicyPublishError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), PublishError>>,
{
    let started = Instant::now();
    let mut attempt: u32 = 1;
    loop {
        let result = match policy.timeout {
            Some(t) => match tokio::time::timeout(t, op()).await {
                Ok(r) => r.map_err(PolicyPublishError::from),
                Err(_) => Err(PolicyPublishError::Timeout(t)),
            },
            None => op().await.map_err(PolicyPublishError::from),
        };
        let err = match result {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let closed = matches!(err, PolicyPublishError::Broker(PublishError::Closed));
        let wait = match &policy.retry {
            Some(p) if !closed => p.next_wait(attempt + 1, started.elapsed(), fastrand::f64()),
            _ => None,
        };
        match wait {
            Some(w) => tokio::time::sleep(w).await,
            None => return Err(err),
        }
        attempt += 1;
    }
}

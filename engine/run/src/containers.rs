//! Brokers in containers, for machines with a Docker engine (cargo feature `testcontainers`).
//!
//! Owns starting one Redis and one Kafka container per run and turning them into the same
//! external broker addresses that `PUBSUB_TCK_REDIS` and `PUBSUB_TCK_KAFKA` give, so that the
//! rest of the suites cannot tell the difference. It does not own per-trial brokers: trials
//! that kill or restart their broker need a private broker process and skip on an external
//! (or containerised) one, with that reason.
//!
//! Not the default: the README's test command starts brokers as local processes, which needs
//! no container engine. `PUBSUB_TCK_CONTAINERS=redis,kafka` asks for containers; without the
//! feature that setting is an error that says how to build with it.

use crate::broker::Broker;
use crate::env::EnvSettings;

/// Why containers could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The binary was built without the `testcontainers` feature.
    #[error(
        "PUBSUB_TCK_CONTAINERS is set but this binary was built without the `testcontainers` \
         feature (build with `--features suites/testcontainers`)"
    )]
    NotBuilt,
    /// No runtime to talk to the container engine.
    #[error("cannot start the runtime that talks to the container engine")]
    Runtime(#[source] std::sync::Arc<std::io::Error>),
    /// The container engine refused or the container did not become ready.
    #[error("cannot start the {broker} container")]
    Start {
        /// The broker.
        broker: Broker,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The running containers; dropping this stops and removes them.
#[derive(Default)]
pub struct Containers {
    #[cfg(feature = "testcontainers")]
    // Held only so that dropping the guard stops the containers.
    _running: Vec<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for Containers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Containers")
    }
}

/// Starts a container for each broker in `settings.containers` that has no external address
/// yet, and writes its address into `settings` (`redis` or `kafka`).
pub async fn start(settings: &mut EnvSettings) -> Result<Containers, ContainerError> {
    let wanted = settings.containers.clone().unwrap_or_default();
    if wanted.is_empty() {
        return Ok(Containers::default());
    }
    start_all(settings, &wanted).await
}

/// [`start`] for synchronous callers (the CLI, the libtest-mimic main): the containers and the
/// runtime that talks to the container engine live in the guard, which must be dropped outside
/// any async runtime.
pub fn start_blocking(settings: &mut EnvSettings) -> Result<ContainerGuard, ContainerError> {
    if settings.containers.as_ref().is_none_or(Vec::is_empty) {
        return Ok(ContainerGuard { inner: None });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| ContainerError::Runtime(std::sync::Arc::new(e)))?;
    let containers = rt.block_on(start(settings))?;
    Ok(ContainerGuard {
        inner: Some((rt, containers)),
    })
}

/// Keeps the run's containers alive; dropping it stops and removes them.
#[derive(Debug)]
pub struct ContainerGuard {
    inner: Option<(tokio::runtime::Runtime, Containers)>,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if let Some((rt, containers)) = self.inner.take() {
            // Removal talks to the engine, so it runs on the runtime that started them.
            #[allow(
                clippy::drop_non_drop,
                reason = "without the `testcontainers` feature there is nothing to drop"
            )]
            rt.block_on(async move { drop(containers) });
        }
    }
}

#[cfg(not(feature = "testcontainers"))]
async fn start_all(
    _settings: &mut EnvSettings,
    _wanted: &[Broker],
) -> Result<Containers, ContainerError> {
    Err(ContainerError::NotBuilt)
}

#[cfg(feature = "testcontainers")]
async fn start_all(
    settings: &mut EnvSettings,
    wanted: &[Broker],
) -> Result<Containers, ContainerError> {
    use testcontainers_modules::kafka::apache;
    use testcontainers_modules::redis::{REDIS_PORT, Redis};
    use testcontainers_modules::testcontainers::runners::AsyncRunner as _;

    fn start_error(
        broker: Broker,
    ) -> impl FnOnce(testcontainers_modules::testcontainers::TestcontainersError) -> ContainerError
    {
        move |e| ContainerError::Start {
            broker,
            source: Box::new(e),
        }
    }

    let mut running: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    for &broker in wanted {
        match broker {
            // The in-memory broker lives in the sidecar; there is nothing to start.
            Broker::InMemory => {}
            Broker::Redis if settings.broker_sources.redis.is_some() => {}
            Broker::Redis => {
                let c = Redis::default()
                    .start()
                    .await
                    .map_err(start_error(broker))?;
                let host = c.get_host().await.map_err(start_error(broker))?;
                let port = c
                    .get_host_port_ipv4(REDIS_PORT)
                    .await
                    .map_err(start_error(broker))?;
                settings.broker_sources.redis = Some(format!("{host}:{port}"));
                running.push(Box::new(c));
            }
            Broker::Kafka if settings.broker_sources.kafka.is_some() => {}
            Broker::Kafka => {
                let c = apache::Kafka::default()
                    .start()
                    .await
                    .map_err(start_error(broker))?;
                let host = c.get_host().await.map_err(start_error(broker))?;
                let port = c
                    .get_host_port_ipv4(apache::KAFKA_PORT)
                    .await
                    .map_err(start_error(broker))?;
                settings.broker_sources.kafka = Some(format!("{host}:{port}"));
                running.push(Box::new(c));
            }
        }
    }
    Ok(Containers { _running: running })
}

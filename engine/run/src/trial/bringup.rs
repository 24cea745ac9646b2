//! Bringing a scenario up: resources, the broker process, the scripted test app, the target
//! sidecar, in that order (the app may come later: [`Trial::start_app`]).

use super::*;

impl Trial {
    /// Writes the resources, starts the app (unless `app_later`) and launches the sidecar.
    pub async fn start(&mut self, s: Scenario) -> Result<(), Problem> {
        match self.launch(s).await? {
            Ok(()) => Ok(()),
            Err(e) => Err(Problem::setup(&e)),
        }
    }

    /// Like [`Trial::start`] for a scenario the target must refuse: succeeds with the tail of the
    /// sidecar's log when the sidecar exits during start-up, fails when it becomes ready.
    pub async fn start_expecting_exit(&mut self, s: Scenario) -> Result<String, Problem> {
        match self.launch(s).await? {
            Ok(()) => Err(Problem::fail(
                "the sidecar started although its resources are invalid",
                vec![],
            )),
            Err(harness::LaunchError::Ready {
                source:
                    harness::ReadyError::Exited {
                        status, log_tail, ..
                    },
                ..
            }) => Ok(format!("{status}; log:\n{log_tail}")),
            Err(e) => Err(Problem::setup(&e)),
        }
    }

    /// Brings up the scenario; the inner result is the sidecar launch.
    async fn launch(&mut self, s: Scenario) -> Result<Result<(), harness::LaunchError>, Problem> {
        let dir = self
            .env
            .run_dir
            .join("resources")
            .join(self.env.broker.name())
            .join(format!("{}-{}", self.safe_id(), self.next_msg));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let proxied = |hop: Hop| s.proxied.contains(&hop);
        let mut proxies = if s.proxied.is_empty() {
            None
        } else {
            let prefix = format!("{}-{}-{}", self.safe_id(), self.env.broker, self.next_msg);
            Some(Proxies::connect(self.env.toxiproxy_url.as_deref(), self.seed, prefix).await?)
        };
        // A Kafka client reconnects to the address the broker advertises, so a proxy in front
        // of the broker exists before the broker does (pointing nowhere yet) and is what the
        // broker advertises; it is pointed at the broker once that runs.
        let mut advertised = None;
        if proxied(Hop::SidecarToBroker) && self.env.broker == Broker::Kafka {
            if self.env.broker_sources.kafka.is_some() {
                return Err(Problem::Setup(
                    "a proxy in front of an external Kafka (PUBSUB_TCK_KAFKA) would be bypassed: clients reconnect to the address it advertises".into(),
                ));
            }
            if let Some(p) = proxies.as_mut() {
                advertised = Some(p.add(Hop::SidecarToBroker, "127.0.0.1:9").await?);
            }
        }
        let broker_reusable =
            self.env.reuse_kafka && self.env.broker == Broker::Kafka && advertised.is_none();
        let broker = self
            .start_broker(&dir, advertised.as_deref(), broker_reusable)
            .await?;
        let template_path = self.env.workspace_root.join(self.env.broker.template());
        let template = std::fs::read_to_string(&template_path)
            .map_err(|e| Problem::Setup(format!("cannot read {}: {e}", template_path.display())))?;
        let metadata: String = s
            .component_metadata
            .iter()
            .map(|(k, v)| {
                format!(
                    "  - name: {k}\n    value: {}\n",
                    serde_json::to_string(v).unwrap_or_default()
                )
            })
            .collect();
        let external = match self.env.broker {
            Broker::InMemory => None,
            Broker::Redis => self.env.broker_sources.redis.clone(),
            Broker::Kafka => self.env.broker_sources.kafka.clone(),
        };
        let mut broker_addr = broker
            .as_ref()
            .map(|r| r.addr().to_owned())
            .or(external)
            .unwrap_or_default();
        let broker_direct = broker_addr.clone();
        if let (true, Some(p)) = (proxied(Hop::SidecarToBroker), proxies.as_mut()) {
            match self.env.broker {
                Broker::InMemory => {
                    return Err(Problem::Setup(
                        "the in-memory broker lives inside the sidecar: there is no broker hop to proxy".into(),
                    ));
                }
                Broker::Redis => broker_addr = p.add(Hop::SidecarToBroker, &broker_addr).await?,
                Broker::Kafka => {
                    p.retarget(Hop::SidecarToBroker, &broker_addr).await?;
                    broker_addr = advertised.clone().unwrap_or(broker_addr);
                }
            }
        }
        let component = template
            .replace("{{name}}", PUBSUB)
            .replace("{{redis_host}}", &broker_addr)
            .replace("{{kafka_brokers}}", &broker_addr)
            .replace("{{metadata}}\n", &metadata)
            .replace("{{metadata}}", &metadata);
        std::fs::write(dir.join("00-component.yaml"), component)?;
        for (i, doc) in s.resources.iter().enumerate() {
            std::fs::write(dir.join(format!("{:02}-resource.yaml", i + 1)), doc)?;
        }
        let app_config = TestAppConfig {
            subscriptions: Value::Array(s.subscriptions.clone()),
            default_script: s.default_script.clone(),
            protocol: self.app_protocol,
        };
        let app = if s.app_at_start {
            let app = self
                .new_app(0, &app_config, &s.scripts, &s.subscribe_reply)
                .await?;
            app.set_subscribe_drops(s.subscribe_drops);
            Some(app)
        } else {
            None
        };
        let mut opts = SidecarOptions::new(&dir, self.env.run_dir.join("logs"));
        if let Some(id) = &s.app_id {
            opts.app_id = id.clone();
        }
        opts.app_port = app.as_ref().map(TestApp::port);
        if let (true, Some(p)) = (proxied(Hop::SidecarToApp), proxies.as_mut()) {
            let Some(app) = app.as_ref() else {
                return Err(Problem::Setup(
                    "a proxy in front of the app needs the app at start (not app_later)".into(),
                ));
            };
            let listen = p
                .add(Hop::SidecarToApp, &format!("127.0.0.1:{}", app.port()))
                .await?;
            opts.app_port = Some(port_of(&listen)?);
        }
        opts.api_token = s.api_token.clone();
        opts.app_protocol = self.app_protocol;
        if let Some(t) = &s.app_api_token {
            opts.extra_env.insert("APP_API_TOKEN".into(), t.clone());
        }
        let mut sidecar = match Sidecar::launch(&self.env.target, opts).await {
            Ok(sidecar) => sidecar,
            Err(e) => {
                self.unready_app = app;
                return Ok(Err(e));
            }
        };
        // A target may answer its outbound readiness before it has loaded its components and
        // exit afterwards (daprd does): an exit here is the launch failing, like one before.
        if app.is_some()
            && let Err(source) = sidecar.wait_healthz(DEADLINE).await
        {
            self.unready_app = app;
            return Ok(Err(harness::LaunchError::Ready {
                target: sidecar.target_name().to_owned(),
                source,
            }));
        }
        if self.env.broker == Broker::Kafka {
            let topics = s.subscriptions.iter().filter_map(|e| e["topic"].as_str());
            await_leaders(&broker_direct, topics).await;
        }
        if let (true, Some(p)) = (proxied(Hop::AppToSidecar), proxies.as_mut()) {
            let port = sidecar.http_port().ok_or_else(|| {
                Problem::Setup("the sidecar has no HTTP port to put a proxy in front of".into())
            })?;
            p.add(Hop::AppToSidecar, &format!("127.0.0.1:{port}"))
                .await?;
        }
        self.cluster = Some(Cluster {
            broker,
            broker_reusable,
            app,
            app_config,
            app_scripts: s.scripts,
            subscribe_reply: s.subscribe_reply,
            sidecar,
            resources: dir,
            proxies,
            streams: Vec::new(),
        });
        Ok(Ok(()))
    }

    /// Starts the trial's private broker process, if its broker has one; a `reusable` Kafka
    /// broker may be one an earlier trial handed back.
    async fn start_broker(
        &self,
        dir: &std::path::Path,
        advertised: Option<&str>,
        reusable: bool,
    ) -> Result<Option<BrokerServer>, Problem> {
        match self.env.broker {
            Broker::InMemory => Ok(None),
            Broker::Redis if self.env.broker_sources.redis.is_some() => Ok(None),
            Broker::Redis => {
                let name = format!("redis-{}", self.safe_id());
                let (dir, logs) = (dir.join("redis"), self.log_dir());
                let server = match self.env.broker_port {
                    Some(port) => RedisServer::start_on_port(port, &dir, &logs, &name).await,
                    None => RedisServer::start(&dir, &logs, &name).await,
                }
                .map_err(|e| Problem::setup(&e))?;
                Ok(Some(BrokerServer::Redis(server)))
            }
            Broker::Kafka if self.env.broker_sources.kafka.is_some() => Ok(None),
            Broker::Kafka => {
                let Some(home) = &self.env.broker_sources.kafka_home else {
                    return Err(Problem::Setup(
                        "no Kafka broker: set PUBSUB_TCK_KAFKA_HOME (scripts/kafka.sh) or PUBSUB_TCK_KAFKA"
                            .into(),
                    ));
                };
                let name = format!("kafka-{}", self.safe_id());
                let (dir, logs) = (dir.join("kafka"), self.log_dir());
                if reusable {
                    return KafkaServer::take(home, &dir, &logs, &name)
                        .await
                        .map(|k| Some(BrokerServer::Kafka(k)))
                        .map_err(|e| Problem::setup(&e));
                }
                KafkaServer::start_advertising(home, &dir, &logs, &name, advertised)
                    .await
                    .map(|k| Some(BrokerServer::Kafka(k)))
                    .map_err(|e| Problem::setup(&e))
            }
        }
    }

    /// `host:port` of the broker the trial's component talks to (its private server, or the
    /// external one), for looking at the broker's own state; `None` for in-memory.
    pub fn broker_addr(&self) -> Option<String> {
        let private = self
            .cluster
            .as_ref()
            .and_then(|c| c.broker.as_ref())
            .map(|b| b.addr().to_owned());
        private.or_else(|| match self.env.broker {
            Broker::InMemory => None,
            Broker::Redis => self.env.broker_sources.redis.clone(),
            Broker::Kafka => self.env.broker_sources.kafka.clone(),
        })
    }

    /// The trial's private broker, for faults (kill, restart); `None` for in-memory or an
    /// external broker.
    pub fn broker_server(&mut self) -> Option<&mut BrokerServer> {
        let c = self.cluster.as_mut()?;
        c.broker_reusable = false;
        c.broker.as_mut()
    }

    async fn new_app(
        &self,
        port: u16,
        config: &TestAppConfig,
        scripts: &[(String, Script)],
        reply: &Option<(u16, Bytes)>,
    ) -> Result<TestApp, Problem> {
        let app = TestApp::start_on(port, config.clone()).await?;
        for (route, script) in scripts {
            app.script(route, script.clone());
        }
        if let Some((status, body)) = reply {
            app.set_subscribe_response(*status, body.clone());
        }
        Ok(app)
    }

    /// Starts the app of an `app_later` scenario on the port the sidecar was given.
    pub async fn start_app(&mut self) -> Result<(), Problem> {
        let c = self.cluster();
        let port = c
            .sidecar
            .app_port()
            .ok_or_else(|| Problem::Setup("the sidecar has no app port".into()))?;
        let app = self
            .new_app(port, &c.app_config, &c.app_scripts, &c.subscribe_reply)
            .await?;
        if let Some(c) = self.cluster.as_mut() {
            c.app = Some(app);
        }
        Ok(())
    }
}

/// The port of a `host:port` a proxy listens on.
/// Waits until the Kafka broker at `addr` has a leader for every partition of each of `topics`
/// that it lists (up to [`DEADLINE`]; a topic it does not list within a second is not waited
/// for: a sidecar may rightly not subscribe to it). A subscriber creates its topics as the
/// sidecar starts, and a producer's first write while a new partition has no leader yet can
/// fail (daprd's producer retries three times in 300 ms, which a loaded machine can outlast).
/// What is still without a leader then is left to the check to meet: this only keeps the
/// broker's start-up out of the verdict.
async fn await_leaders<'a>(addr: &str, topics: impl Iterator<Item = &'a str>) {
    let started = Instant::now();
    for topic in topics {
        // A topic still without a leader at the deadline is the check's to meet: the wait's
        // own timeout is not a problem of the trial.
        let _ = crate::apps::poll("a leader for every partition", DEADLINE, || async {
            Ok(match harness::kafka_wire::topic_led(addr, topic).await {
                Ok(Some(true)) | Err(_) => Ok(()),
                Ok(None) if started.elapsed() >= std::time::Duration::from_secs(1) => Ok(()),
                Ok(_) => Err(format!("topic `{topic}` has a partition without a leader")),
            })
        })
        .await;
    }
}

fn port_of(listen: &str) -> Result<u16, Problem> {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            Problem::Setup(format!(
                "the fault proxy listens on {listen:?}, not host:port"
            ))
        })
}

//! One bench run: bring up the broker, the subscribed app and the target sidecar; measure every
//! rate (warm-up, measured phase, drain) through the sidecar and against the baselines, or
//! search the maximum sustainable rate; tear everything down; return the report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Durability, KafkaServer, RedisServer, Sidecar, SidecarOptions};

use crate::config::{BenchConfig, Broker, Protocol};
use crate::direct;
use crate::load::{self, Plan, Transport};
use crate::payload::{MAX_PHASE, PayloadMaker};
use crate::procstat::Sampler;
use crate::receiver::{self, Mode, PUBSUB, Phases, Server, TOPIC};
use crate::record::{Outcome, PhaseData};
use crate::schedule::Schedule;
use crate::search::{Next, Search, judge};
use crate::stats::{self, Delivery};
use harness_report::bench::model::{
    Baseline, BenchReport, FORMAT_VERSION, Machine, Params, PhaseResult, RateResult, Resources,
    SearchReport, SearchStep, TargetResult, TargetSearch,
};
use harness_report::event::{RunEvent, RunEvents, emit};

/// How long the sidecar may take to report `/v1.0/healthz` (app reached, subscriptions up).
const HEALTHZ_DEADLINE: Duration = Duration::from_secs(30);
/// At most this many messages per phase: every message keeps about 40 bytes of times and
/// counters until the phase is analysed.
const MAX_MESSAGES_PER_LOAD: f64 = 20_000_000.0;
/// The shutdown ladder's grace period for the sidecar.
const GRACE: Duration = Duration::from_secs(3);

/// Why a run could not be set up or carried out (exit code 2); a run that measured failures
/// returns a report with `failures` instead.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A directory or file of the run could not be written.
    #[error("cannot write {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The component template could not be read.
    #[error("cannot read the component template {}", path.display())]
    Template {
        /// The template.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The private broker did not start.
    #[error("cannot start the {broker} broker")]
    Broker {
        /// Which.
        broker: Broker,
        /// Why.
        #[source]
        source: harness::BrokerError,
    },
    /// No Kafka broker is configured.
    #[error(
        "no kafka broker: set PUBSUB_TCK_KAFKA_HOME (scripts/kafka.sh fetches Kafka) or PUBSUB_TCK_KAFKA"
    )]
    NoKafka,
    /// The target is attached (`url = ...`): the harness cannot point its app port at the
    /// bench app or read its process.
    #[error("target `{0}` is attached; bench needs a target it launches")]
    Attached(String),
    /// The in-process app could not listen.
    #[error("cannot start the in-process app")]
    App(#[source] std::io::Error),
    /// The sidecar did not start.
    #[error("cannot launch the target")]
    Launch(#[source] Box<harness::LaunchError>),
    /// The sidecar started but did not become healthy.
    #[error("the target did not report healthy (app reached, subscriptions started)")]
    Healthz(#[source] Box<harness::ReadyError>),
    /// A phase could not connect.
    #[error("phase `{phase}`: {message}")]
    Connect {
        /// The phase.
        phase: String,
        /// Why.
        message: String,
    },
    /// More phases than payload markers can number.
    #[error("too many phases in one run (at most {MAX_PHASE})")]
    TooManyPhases,
    /// The run was misconfigured.
    #[error("{0}")]
    Config(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Identifies the run in its report.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `<UTC time>-<seed>`.
    pub run_id: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// The tool's version.
    pub tool_version: String,
}

/// A broker process the run owns.
enum BrokerProcess {
    Redis(RedisServer),
    Kafka(KafkaServer),
}

/// Runs the benchmark described by `config`.
pub async fn run(
    config: &BenchConfig,
    info: RunInfo,
    events: &RunEvents,
) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    if config.rates.is_empty() || config.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(BenchError::Config(
            "every rate must be a positive number of messages per second".to_owned(),
        ));
    }
    let longest = config.duration.max(config.warmup).as_secs_f64();
    if let Some(r) = config
        .rates
        .iter()
        .find(|r| *r * longest > MAX_MESSAGES_PER_LOAD)
    {
        return Err(BenchError::Config(format!(
            "{r} msg/s for {longest} s is more than {MAX_MESSAGES_PER_LOAD} messages in one phase (each message's times are kept in memory); use a shorter --duration"
        )));
    }
    let Some(first) = config.targets.first() else {
        return Err(BenchError::Config("no target to measure".to_owned()));
    };
    if let Some(t) = config.targets.iter().find(|t| t.is_attach()) {
        return Err(BenchError::Attached(t.name().to_owned()));
    }
    let logs = config.work_dir.join("logs");
    let resources = config.work_dir.join("resources").join(config.broker.name());
    for dir in [&logs, &resources] {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }

    let (broker_process, broker_addr) = start_broker(config, &logs, events).await?;
    write_component(config, &resources, &broker_addr)?;

    let phases = Arc::new(Phases::default());
    // Every target runs at once, each with its own app on its own topic, so that rounds can
    // take turns; an idle sidecar costs the measured one little.
    let mut launched = Vec::new();
    let mut setup = Ok(());
    for (i, target) in config.targets.iter().enumerate() {
        match launch(
            config,
            target,
            &phases,
            &receiver::topic(i),
            (&resources, &logs),
            events,
        )
        .await
        {
            Ok(l) => launched.push(l),
            Err(e) => {
                setup = Err(e);
                break;
            }
        }
    }
    if let Err(e) = setup {
        stop_all(launched, broker_process).await;
        return Err(e);
    }
    emit(events, RunEvent::Line(format!("  {}", "sidecars ready")));

    let mut ctx = Ctx {
        config,
        phases: phases.clone(),
        events,
        next_phase: 1,
        payloads: Arc::new(PayloadMaker::new(config.payload_size, config.seed)),
        offset: fastrand::Rng::with_seed(config.seed).u64(..),
        notes: Vec::new(),
    };
    let mut report = BenchReport {
        format_version: FORMAT_VERSION,
        run_id: info.run_id,
        tool_version: info.tool_version,
        started_at: info.started_at,
        seed: config.seed,
        target: first.name().to_owned(),
        target_file: Some(first.path().display().to_string()),
        broker: config.broker.name().to_owned(),
        protocol: config.protocol.name().to_owned(),
        params: Params {
            rates: config.rates.clone(),
            duration_ms: config.duration.as_millis() as u64,
            warmup_ms: config.warmup.as_millis() as u64,
            payload_size: ctx.payloads.size(),
            publishers: config.publishers,
            connections: config.connections,
            drain_ms: config.drain.as_millis() as u64,
            request_timeout_ms: config.request_timeout.as_millis() as u64,
            max_error_rate: config.max_error_rate,
            rounds: if config.find_max.is_some() {
                1
            } else {
                config.rounds.max(1)
            },
            threads: config.threads,
        },
        machine: machine(),
        rates: Vec::new(),
        search: None,
        other_targets: config
            .targets
            .iter()
            .skip(1)
            .map(|t| t.name().to_owned())
            .collect(),
        other_searches: Vec::new(),
        failures: Vec::new(),
        notes: Vec::new(),
        duration_ms: 0,
    };

    let measured: Vec<Measured> = launched
        .iter()
        .map(|l| Measured {
            label: if launched.len() == 1 {
                "sidecar".to_owned()
            } else {
                l.name.clone()
            },
            transport: &l.transport,
            pid: l.pid,
        })
        .collect();
    let outcome = if let Some(search) = &config.find_max {
        find_max_all(&mut ctx, &measured, search, &mut report).await
    } else {
        measure_rates(&mut ctx, &measured, &broker_addr, &mut report).await
    };
    drop(measured);

    let mut notes = std::mem::take(&mut ctx.notes);
    notes.append(&mut report.notes);
    report.notes = notes;
    emit(
        events,
        RunEvent::Line(format!("  {}", "stopping the targets")),
    );
    stop_all(launched, broker_process).await;
    outcome?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// One target, up and subscribed: its sidecar, its app and how to publish to it.
struct Launched {
    name: String,
    sidecar: Sidecar,
    app: Server,
    transport: Transport,
    pid: Option<u32>,
}

/// What a load needs of one target.
struct Measured<'a> {
    /// The phase label: `sidecar` with one target, else the target's name.
    label: String,
    transport: &'a Transport,
    pid: Option<u32>,
}

/// Starts `target`'s app (subscribed to `topic`) and sidecar, and waits until it is healthy.
async fn launch(
    config: &BenchConfig,
    target: &harness::TargetFile,
    phases: &Arc<Phases>,
    topic: &str,
    (resources, logs): (&Path, &Path),
    events: &RunEvents,
) -> Result<Launched, BenchError> {
    let app = Server::start(Mode::App {
        phases: phases.clone(),
        topic: Arc::from(topic),
    })
    .await
    .map_err(BenchError::App)?;
    emit(
        events,
        RunEvent::Line(format!("  launching target `{}`", target.name())),
    );
    let mut opts = SidecarOptions::new(resources, logs);
    opts.app_port = Some(app.addr().port());
    let mut sidecar = match Sidecar::launch(target, opts).await {
        Ok(s) => s,
        Err(e) => {
            app.stop().await;
            return Err(BenchError::Launch(Box::new(e)));
        }
    };
    let transport = match sidecar.wait_healthz(HEALTHZ_DEADLINE).await {
        Ok(()) => sidecar_transport(&sidecar, config.protocol, topic),
        Err(e) => Err(BenchError::Healthz(Box::new(e))),
    };
    match transport {
        Ok(transport) => Ok(Launched {
            name: target.name().to_owned(),
            pid: sidecar.child().map(harness::Child::pid),
            sidecar,
            app,
            transport,
        }),
        Err(e) => {
            let _ = sidecar.terminate(GRACE).await;
            app.stop().await;
            Err(e)
        }
    }
}

/// Stops every launched target (sidecar, then app) and the run's broker.
async fn stop_all(launched: Vec<Launched>, broker: Option<BrokerProcess>) {
    for mut l in launched {
        drop(l.transport);
        let _ = l.sidecar.terminate(GRACE).await;
        l.app.stop().await;
    }
    if let Some(b) = broker {
        match b {
            BrokerProcess::Redis(mut r) => r.kill().await,
            BrokerProcess::Kafka(mut k) => k.kill().await,
        }
    }
}

async fn start_broker(
    config: &BenchConfig,
    logs: &Path,
    events: &RunEvents,
) -> Result<(Option<BrokerProcess>, String), BenchError> {
    let dir = config.work_dir.join("broker");
    let err = |source| BenchError::Broker {
        broker: config.broker,
        source,
    };
    match config.broker {
        Broker::InMemory => Ok((None, String::new())),
        Broker::Redis => {
            if let Some(addr) = &config.broker_sources.redis {
                return Ok((None, addr.clone()));
            }
            emit(
                events,
                RunEvent::Line(format!("  {}", "starting redis-server")),
            );
            // No persistence: the benchmark measures the sidecar, not the disk.
            let r =
                RedisServer::start_with(&dir.join("redis"), logs, "redis-bench", Durability::None)
                    .await
                    .map_err(err)?;
            let addr = r.addr().to_owned();
            Ok((Some(BrokerProcess::Redis(r)), addr))
        }
        Broker::Kafka => {
            if let Some(addr) = &config.broker_sources.kafka {
                return Ok((None, addr.clone()));
            }
            let Some(home) = &config.broker_sources.kafka_home else {
                return Err(BenchError::NoKafka);
            };
            emit(
                events,
                RunEvent::Line(format!("  {}", "starting Apache Kafka")),
            );
            let k = KafkaServer::start(home, &dir.join("kafka"), logs, "kafka-bench")
                .await
                .map_err(err)?;
            let addr = k.addr().to_owned();
            Ok((Some(BrokerProcess::Kafka(k)), addr))
        }
    }
}

/// The broker's component template, filled in the way the conformance trials fill it.
fn write_component(config: &BenchConfig, dir: &Path, broker_addr: &str) -> Result<(), BenchError> {
    let path = config.workspace_root.join(config.broker.template());
    let template = std::fs::read_to_string(&path).map_err(|source| BenchError::Template {
        path: path.clone(),
        source,
    })?;
    let component = render_component(&template, broker_addr);
    let file = dir.join("00-component.yaml");
    std::fs::write(&file, component).map_err(io_err(&file))
}

fn render_component(template: &str, broker_addr: &str) -> String {
    template
        .replace("{{name}}", PUBSUB)
        .replace("{{redis_host}}", broker_addr)
        .replace("{{kafka_brokers}}", broker_addr)
        .replace("{{metadata}}\n", "")
        .replace("{{metadata}}", "")
}

fn sidecar_transport(
    sidecar: &Sidecar,
    protocol: Protocol,
    topic: &str,
) -> Result<Transport, BenchError> {
    let missing = |what: &str| BenchError::Config(format!("the target has no {what} port"));
    Ok(match protocol {
        Protocol::Http => Transport::Http {
            addr: SocketAddr::from((
                [127, 0, 0, 1],
                sidecar.http_port().ok_or_else(|| missing("HTTP"))?,
            )),
            path: format!("/v1.0/publish/{PUBSUB}/{topic}"),
        },
        Protocol::Grpc => Transport::Grpc {
            endpoint: format!(
                "http://127.0.0.1:{}",
                sidecar.grpc_port().ok_or_else(|| missing("gRPC"))?
            ),
            topic: topic.to_owned(),
        },
    })
}

fn machine() -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
    });
    Machine {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        cpu_model,
    }
}

/// What every phase shares.
struct Ctx<'a> {
    config: &'a BenchConfig,
    phases: Arc<Phases>,
    events: &'a RunEvents,
    next_phase: u16,
    payloads: Arc<PayloadMaker>,
    offset: u64,
    /// Notes for the report, collected while phases run.
    notes: Vec<String>,
}

/// What one load left behind, before statistics.
struct Load {
    data: PhaseData,
    schedule: Schedule,
    resources: Option<Resources>,
}

impl Ctx<'_> {
    /// One load: send the schedule, wait for answers, drain deliveries. `pid` is sampled while
    /// the load runs when given.
    async fn load(
        &mut self,
        label: &str,
        transport: &Transport,
        rate: f64,
        duration: Duration,
        delivery: Delivery,
        pid: Option<u32>,
    ) -> Result<Load, BenchError> {
        let id = self.next_phase;
        if id > MAX_PHASE {
            return Err(BenchError::TooManyPhases);
        }
        self.next_phase += 1;
        let schedule = Schedule::new(rate, duration);
        emit(
            self.events,
            RunEvent::Stage {
                label: format!(
                    "{label} @ {}/s",
                    harness_report::bench::markdown::rate(rate)
                ),
                total: schedule.count(),
                unit: "msgs",
            },
        );
        let plan = Plan {
            phase: id,
            schedule,
            publishers: self.config.publishers,
            connections: self.config.connections,
            offset: self.offset,
            timeout: self.config.request_timeout,
        };
        let sampler = pid.map(Sampler::start);
        let phases = self.phases.clone();
        let rec = load::drive(
            transport,
            &plan,
            &self.payloads,
            |rec| phases.insert(id, rec.clone()),
            self.events,
        )
        .await
        .map_err(|message| BenchError::Connect {
            phase: label.to_owned(),
            message,
        });
        let resources = match sampler {
            Some(s) => s.finish().await,
            None => None,
        };
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                self.phases.remove(id);
                return Err(e);
            }
        };
        if delivery == Delivery::Expected {
            let accepted = rec
                .snapshot()
                .outcome
                .iter()
                .filter(|o| **o == Outcome::Ok)
                .count() as u64;
            rec.wait_received(accepted, self.config.drain).await;
        }
        self.phases.remove(id);
        Ok(Load {
            data: rec.snapshot(),
            schedule,
            resources,
        })
    }

    /// Statistics of the rounds of one kind of phase, each `each` long; emits the result.
    fn finish(
        &mut self,
        label: &str,
        loads: Vec<Load>,
        each: Duration,
        delivery: Delivery,
    ) -> PhaseResult {
        let rounds = loads.len().max(1) as u32;
        let schedule = loads
            .first()
            .map_or(Schedule::new(1.0, each), |l| l.schedule);
        let resources: Vec<Resources> = loads.iter().filter_map(|l| l.resources).collect();
        let datas: Vec<PhaseData> = loads.into_iter().map(|l| l.data).collect();
        let (data, merged) = stats::merge_rounds(&datas, &schedule);
        let mut result = stats::analyze(&data, &merged, each * rounds, delivery);
        result.resources = stats::merge_resources(&resources);
        emit(
            self.events,
            RunEvent::StageFinished {
                label: label.to_owned(),
                summary: (!label.ends_with("warm-up")).then(|| one_line(&result)),
            },
        );
        if let Some(note) = noise_note(label, &result) {
            emit(self.events, RunEvent::Line(format!("  note: {note}")));
            self.notes.push(note);
        }
        result
    }

    /// A warm-up (discarded) and one measured load.
    async fn measured(
        &mut self,
        label: &str,
        transport: &Transport,
        rate: f64,
        (warmup, duration): (Duration, Duration),
        delivery: Delivery,
        pid: Option<u32>,
    ) -> Result<PhaseResult, BenchError> {
        self.warm_up(label, transport, rate, warmup, delivery)
            .await?;
        let load = self
            .load(label, transport, rate, duration, delivery, pid)
            .await?;
        Ok(self.finish(label, vec![load], duration, delivery))
    }

    /// A load at `rate` whose results are discarded (none when `warmup` is zero).
    async fn warm_up(
        &mut self,
        label: &str,
        transport: &Transport,
        rate: f64,
        warmup: Duration,
        delivery: Delivery,
    ) -> Result<(), BenchError> {
        if !warmup.is_zero() {
            self.load(
                &format!("{label} warm-up"),
                transport,
                rate,
                warmup,
                delivery,
                None,
            )
            .await?;
        }
        Ok(())
    }
}

/// One line of numbers for the console.
pub fn one_line(r: &PhaseResult) -> String {
    use harness_report::bench::markdown::ms;
    let mut s = format!("achieved {:.1}/s", r.achieved_rate);
    if let Some(p) = r.publish {
        s.push_str(&format!(
            ", publish p50 {} p99 {} max {} ms",
            ms(p.p50_ms),
            ms(p.p99_ms),
            ms(p.max_ms)
        ));
    }
    if let Some(e) = r.e2e {
        s.push_str(&format!(
            ", e2e p50 {} p99 {} ms",
            ms(e.p50_ms),
            ms(e.p99_ms)
        ));
    }
    let errors = r.sent - r.ok;
    if errors > 0 {
        s.push_str(&format!(", {errors} errors"));
    }
    if let Some(lost) = r.lost.filter(|&l| l > 0) {
        s.push_str(&format!(", {lost} lost"));
    }
    if let Some(x) = r.resources {
        s.push_str(&format!(
            ", {:.0} mCPU, {:.1} MB",
            x.mcpu_mean, x.rss_mb_max
        ));
    }
    s
}

/// Above this p99 send delay the generator itself was held up (another process had the CPU),
/// so the phase's tail says more about the machine than about the target.
pub(crate) const NOISY_SEND_DELAY_MS: f64 = 1.0;

/// A note when a phase's generator fell behind its schedule.
fn noise_note(label: &str, r: &PhaseResult) -> Option<String> {
    let d = r.send_delay?;
    (d.p99_ms > NOISY_SEND_DELAY_MS).then(|| {
        format!(
            "{} msg/s, {label}: the generator sent late (send delay p99 {} ms > {NOISY_SEND_DELAY_MS} ms): the machine was busy or the connections saturated, so this phase's tail is not the target's alone",
            harness_report::bench::markdown::rate(r.rate),
            harness_report::bench::markdown::ms(d.p99_ms)
        )
    })
}

/// Why a sidecar phase failed the run.
fn failures_of(rate: f64, r: &PhaseResult, max_error_rate: f64) -> Vec<String> {
    let mut out = Vec::new();
    let at = harness_report::bench::markdown::rate(rate);
    if let Some(lost) = r.lost.filter(|&l| l > 0) {
        out.push(format!(
            "{at} msg/s: {lost} accepted messages were not delivered within the drain window"
        ));
    }
    if r.error_rate > max_error_rate {
        let kinds: Vec<String> = r.errors.iter().map(|(k, v)| format!("{v} {k}")).collect();
        out.push(format!(
            "{at} msg/s: {:.2}% of publishes failed ({}), above the {:.2}% threshold",
            r.error_rate * 100.0,
            kinds.join(", "),
            max_error_rate * 100.0
        ));
    }
    out
}

async fn measure_rates(
    ctx: &mut Ctx<'_>,
    targets: &[Measured<'_>],
    broker_addr: &str,
    report: &mut BenchReport,
) -> Result<(), BenchError> {
    let config = ctx.config;
    let (noop, direct) = if config.baselines {
        let noop = Server::start(Mode::Noop).await.map_err(BenchError::App)?;
        let tag = format!("{}-{}", config.seed, std::process::id());
        let direct = direct::start(config.broker, broker_addr, ctx.phases.clone(), &tag).await;
        if let Err(reason) = &direct {
            let note = format!("direct {} baseline unavailable: {reason}", config.broker);
            emit(ctx.events, RunEvent::Line(format!("  note: {note}")));
            report.notes.push(note);
        }
        (Some(noop), Some(direct))
    } else {
        (None, None)
    };
    let noop_transport = noop.as_ref().map(|s| Transport::Http {
        addr: s.addr(),
        path: format!("/v1.0/publish/{PUBSUB}/{TOPIC}"),
    });
    let rounds = config.rounds.max(1);
    let each = config.duration / rounds as u32;
    let several = targets.len() > 1;
    let result = async {
        for &rate in &config.rates {
            // Every kind warms up once; then short rounds of each kind take turns, so that
            // background load on a shared machine hits every target and the baselines alike.
            for t in targets {
                ctx.warm_up(
                    &t.label,
                    t.transport,
                    rate,
                    config.warmup,
                    Delivery::Expected,
                )
                .await?;
            }
            if let Some(t) = &noop_transport {
                ctx.warm_up("no-op HTTP", t, rate, config.warmup, Delivery::None)
                    .await?;
            }
            let direct_ok = match &direct {
                Some(Ok(d)) => Some(d),
                _ => None,
            };
            let direct_label = direct_ok.map(|d| format!("direct: {}", d.method));
            if let (Some(d), Some(label)) = (direct_ok, &direct_label) {
                ctx.warm_up(label, &d.transport, rate, config.warmup, Delivery::Expected)
                    .await?;
            }
            let mut target_loads: Vec<Vec<Load>> = targets.iter().map(|_| Vec::new()).collect();
            let (mut noop_loads, mut direct_loads) = (Vec::new(), Vec::new());
            for k in 1..=rounds {
                let round = |label: &str| {
                    if rounds == 1 {
                        label.to_owned()
                    } else {
                        format!("{label} {k}/{rounds}")
                    }
                };
                for (t, loads) in targets.iter().zip(&mut target_loads) {
                    loads.push(
                        ctx.load(
                            &round(&t.label),
                            t.transport,
                            rate,
                            each,
                            Delivery::Expected,
                            t.pid,
                        )
                        .await?,
                    );
                }
                if let Some(t) = &noop_transport {
                    noop_loads.push(
                        ctx.load(&round("no-op HTTP"), t, rate, each, Delivery::None, None)
                            .await?,
                    );
                }
                if let (Some(d), Some(label)) = (direct_ok, &direct_label) {
                    direct_loads.push(
                        ctx.load(
                            &round(label),
                            &d.transport,
                            rate,
                            each,
                            Delivery::Expected,
                            None,
                        )
                        .await?,
                    );
                }
            }
            let mut results = Vec::new();
            for (t, loads) in targets.iter().zip(target_loads) {
                let r = ctx.finish(&t.label, loads, each, Delivery::Expected);
                let failures = failures_of(rate, &r, config.max_error_rate);
                report.failures.extend(failures.into_iter().map(|f| {
                    if several {
                        format!("{}: {f}", t.label)
                    } else {
                        f
                    }
                }));
                results.push(r);
            }
            let noop_result = noop_transport
                .as_ref()
                .map(|_| ctx.finish("no-op HTTP", noop_loads, each, Delivery::None));
            let direct_result = match (&direct, direct_ok, &direct_label) {
                (None, _, _) => Baseline::Skipped,
                (Some(Err(reason)), _, _) => Baseline::Unavailable {
                    reason: reason.clone(),
                },
                (Some(Ok(_)), Some(d), Some(label)) => {
                    let result = ctx.finish(label, direct_loads, each, Delivery::Expected);
                    if let Some(lost) = result.lost.filter(|&l| l > 0) {
                        report.notes.push(format!(
                            "{} msg/s: the direct {} baseline lost {lost} messages",
                            harness_report::bench::markdown::rate(rate),
                            config.broker
                        ));
                    }
                    Baseline::Measured {
                        method: d.method.clone(),
                        result: Box::new(result),
                    }
                }
                (Some(Ok(_)), _, _) => Baseline::Skipped,
            };
            let mut results = results.into_iter();
            let Some(side) = results.next() else {
                return Err(BenchError::Config("no target to measure".to_owned()));
            };
            let overhead_of =
                |r: &PhaseResult| stats::overhead(r, noop_result.as_ref(), direct_result.result());
            let others = targets
                .iter()
                .skip(1)
                .zip(results)
                .map(|(t, r)| TargetResult {
                    target: t.label.clone(),
                    overhead: overhead_of(&r),
                    vs_first: harness_report::bench::model::Ratios::between(&r, &side),
                    sidecar: r,
                })
                .collect();
            report.rates.push(RateResult {
                rate,
                overhead: overhead_of(&side),
                sidecar: side,
                noop: noop_result,
                direct: direct_result,
                others,
            });
        }
        Ok::<(), BenchError>(())
    }
    .await;
    drop(noop_transport);
    if let Some(s) = noop {
        s.stop().await;
    }
    if let Some(Ok(d)) = direct {
        d.stop().await;
    }
    result
}

/// The maximum-rate search of every target, one after the other.
async fn find_max_all(
    ctx: &mut Ctx<'_>,
    targets: &[Measured<'_>],
    search_cfg: &crate::config::SearchConfig,
    report: &mut BenchReport,
) -> Result<(), BenchError> {
    let several = targets.len() > 1;
    for (i, t) in targets.iter().enumerate() {
        let search = find_max(ctx, t, several, search_cfg).await?;
        if search.max_rate.is_none() {
            report.failures.push(format!(
                "{}no rate met the bound (p99 ≤ {} ms, ≥ 99% of the rate achieved)",
                if several {
                    format!("{}: ", t.label)
                } else {
                    String::new()
                },
                search.p99_bound_ms
            ));
        }
        if i == 0 {
            report.search = Some(search);
        } else {
            report.other_searches.push(TargetSearch {
                target: t.label.clone(),
                search,
            });
        }
    }
    Ok(())
}

async fn find_max(
    ctx: &mut Ctx<'_>,
    target: &Measured<'_>,
    named: bool,
    search_cfg: &crate::config::SearchConfig,
) -> Result<SearchReport, BenchError> {
    let bound_ms = search_cfg.p99_bound.as_secs_f64() * 1000.0;
    let mut search = Search::new(search_cfg.max_steps);
    let mut steps = Vec::new();
    let mut rate = ctx.config.rates[0];
    let mut retried = false;
    let max_rate = loop {
        let label = format!(
            "{}search step {} at {}/s",
            if named {
                format!("{} ", target.label)
            } else {
                String::new()
            },
            steps.len() + 1,
            harness_report::bench::markdown::rate(rate)
        );
        let result = ctx
            .measured(
                &label,
                target.transport,
                rate,
                (search_cfg.step_warmup, search_cfg.step_duration),
                Delivery::Expected,
                target.pid,
            )
            .await?;
        let (passed, mut reason) = judge(&result, bound_ms, ctx.config.max_error_rate);
        // A failure while the generator itself ran late may be the machine's, not the target's:
        // such a step is measured once more before it counts.
        let retry = !passed && !retried && noise_note("", &result).is_some();
        if retry {
            reason.push_str("; the generator sent late, so this rate is measured again");
        }
        emit(
            ctx.events,
            RunEvent::Line(format!(
                "  step {}: {}/s {}: {reason}",
                steps.len() + 1,
                harness_report::bench::markdown::rate(rate),
                if passed { "PASS" } else { "FAIL" }
            )),
        );
        steps.push(SearchStep {
            rate,
            passed,
            reason,
            result,
        });
        if retry {
            retried = true;
            continue;
        }
        retried = false;
        match search.next(rate, passed) {
            Next::Try(r) => rate = r,
            Next::Done(best) => break best,
        }
    };
    Ok(SearchReport {
        p99_bound_ms: bound_ms,
        step_duration_ms: search_cfg.step_duration.as_millis() as u64,
        steps,
        max_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_rendered_like_the_trials_render_them() {
        let t = "metadata:\n  name: {{name}}\nspec:\n  metadata:\n  - name: redisHost\n    value: \"{{redis_host}}\"\n{{metadata}}\n";
        assert_eq!(
            render_component(t, "127.0.0.1:6379"),
            "metadata:\n  name: pubsub\nspec:\n  metadata:\n  - name: redisHost\n    value: \"127.0.0.1:6379\"\n"
        );
    }

    #[test]
    fn lost_messages_and_errors_fail_the_rate() {
        let mut r = harness_report::bench::test_support::phase(1.0, true);
        assert!(failures_of(1000.0, &r, 0.001).is_empty());
        r.lost = Some(2);
        r.error_rate = 0.01;
        r.errors.insert("http 500".into(), 20);
        let f = failures_of(1000.0, &r, 0.001);
        assert_eq!(f.len(), 2);
        assert!(f[0].contains("2 accepted messages"), "{f:?}");
        assert!(
            f[1].contains("1.00% of publishes failed (20 http 500)"),
            "{f:?}"
        );
    }

    #[test]
    fn a_late_generator_is_noted() {
        let mut r = harness_report::bench::test_support::phase(1.0, true);
        assert_eq!(noise_note("sidecar", &r), None);
        if let Some(d) = r.send_delay.as_mut() {
            d.p99_ms = 2.5;
        }
        let note = noise_note("sidecar", &r).unwrap();
        assert!(
            note.starts_with(
                "1000 msg/s, sidecar: the generator sent late (send delay p99 2.50 ms"
            ),
            "{note}"
        );
    }

    #[test]
    fn the_machine_has_cores() {
        assert!(machine().cores >= 1);
    }
}

//! A check: its id, title, clause, level, profile, needs, and the body that drives a trial.
//!
//! The catalog that lists every check is the `suites` crate's. Whether a check can run against
//! a target is decided from the target file, the broker, its addresses and the installed app
//! runtimes alone ([`Check::skip_reason`]), so a skip is known before the run.

use std::future::Future;
use std::pin::Pin;

pub use harness::AppProtocol;
pub use harness_report::Level;

use crate::problem::Problem;
use crate::trial::Trial;

/// The boxed future a check body returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Problem>> + Send + 'a>>;

/// A check body: drives a trial, returns `Ok(())` or the problem it found.
pub type CheckFn = for<'a> fn(&'a mut Trial) -> CheckFuture<'a>;

/// What a check needs from its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Its own sidecar process with its own resources (not possible in attach mode).
    Launch,
    /// A target capability named in the target file, such as `bulk`.
    Capability(&'static str),
    /// A promise only some brokers make (ordering, ...).
    Promise(crate::broker::Promise),
    /// This broker and no other (the `apps` flows: two sidecar processes must share a broker,
    /// one broker per flow keeps the profile short).
    Broker(crate::broker::Broker),
    /// A language runtime with the tutorial apps' dependencies installed (`apps` profile).
    Runtime(crate::apps::Runtime),
    /// One of these brokers (a chaos check runs where its fault matters).
    OneOf(&'static [crate::broker::Broker]),
    /// A broker process of its own that the trial may kill, pause or restart (not an external
    /// broker given by address or started in a container).
    PrivateBroker,
}

/// One conformance check.
#[derive(Clone)]
pub struct Check {
    /// `profile::area::name`; stable, used by `--filter` and as the test name.
    pub id: &'static str,
    /// One line: the promise.
    pub title: &'static str,
    /// The spec clause it enforces, in words (daprd docs or source, CloudEvents section).
    pub clause: &'static str,
    /// Where the clause can be read.
    pub clause_url: Option<&'static str>,
    /// MUST fails the run; SHOULD is reported as non-strict.
    pub level: Level,
    /// What it needs from the target.
    pub needs: &'static [Need],
    /// The protocol the trial's test app speaks (a gRPC app needs the capability `app.grpc`).
    pub app: AppProtocol,
    /// The body.
    pub run: CheckFn,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("id", &self.id)
            .field("level", &self.level)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// The profile: the first segment of the id.
    pub fn profile(&self) -> &'static str {
        self.id.split("::").next().unwrap_or("")
    }

    /// The area: the second segment of the id.
    pub fn area(&self) -> &'static str {
        self.id.split("::").nth(1).unwrap_or("")
    }

    /// Why this check cannot run in `env` (its target, broker and broker addresses), if it
    /// cannot.
    pub fn skip_reason(&self, env: &crate::env::RunEnv) -> Option<String> {
        let (target, broker) = (&env.target, env.broker);
        let component = broker.component_type();
        if broker != crate::broker::Broker::InMemory && !target.has_capability(component) {
            return Some(format!(
                "target `{}` does not declare capability `{component}`",
                target.name()
            ));
        }
        if self.app == AppProtocol::Grpc && !target.has_capability(GRPC_APP) {
            return Some(format!(
                "target `{}` does not declare capability `{GRPC_APP}`",
                target.name()
            ));
        }
        for need in self.needs {
            match need {
                Need::Launch if target.is_attach() => {
                    return Some(format!(
                        "needs its own sidecar with its own resources; target `{}` is attached",
                        target.name()
                    ));
                }
                Need::Capability(c) if !target.has_capability(c) => {
                    return Some(format!(
                        "target `{}` does not declare capability `{c}`",
                        target.name()
                    ));
                }
                Need::Promise(p) if !target.keeps(broker, *p) => {
                    return Some(format!(
                        "target `{}` does not promise {} on broker `{broker}` (`{p}` is not in its promises)",
                        target.name(),
                        p.describe()
                    ));
                }
                Need::Broker(b) if *b != broker => {
                    return Some(format!("runs on broker `{b}` only"));
                }
                Need::Runtime(r) => {
                    if let Some(reason) = r.unavailable() {
                        return Some(reason);
                    }
                }
                Need::OneOf(list) if !list.contains(&broker) => {
                    let names: Vec<&str> = list.iter().map(|b| b.name()).collect();
                    return Some(format!("runs on {} only", names.join(", ")));
                }
                Need::PrivateBroker => {
                    if let Some(var) = env.external_broker() {
                        return Some(format!(
                            "needs a broker process of its own to kill or restart; broker `{broker}` is external ({var} or a container)"
                        ));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// The capability of a target that can deliver to a gRPC app (`--app-protocol grpc`).
pub const GRPC_APP: &str = "app.grpc";

/// The id suffix of a check's run with a gRPC app.
pub const GRPC_SUFFIX: &str = "::grpc";

impl Check {
    /// This check run with a gRPC test app: the same body, id and title marked as such.
    /// The strings are made once per process (the catalog is built once).
    pub fn over_grpc(&self) -> Check {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Check {
            id: leak(format!("{}{GRPC_SUFFIX}", self.id)),
            title: leak(format!("{} (gRPC app)", self.title)),
            app: AppProtocol::Grpc,
            ..self.clone()
        }
    }

    /// This check, with a gRPC test app only (a promise that exists only over gRPC).
    pub fn grpc_only(self) -> Check {
        Check {
            app: AppProtocol::Grpc,
            ..self
        }
    }
}

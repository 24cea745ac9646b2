//! A trial's fault proxies: one Toxiproxy proxy per hop the scenario routes through.
//!
//! Owns creating the proxies (on `127.0.0.1:0`, named after the trial so that trials sharing
//! one real Toxiproxy never collide), turning a network [`Fault`] into Toxiproxy calls, and
//! deleting the proxies when the trial ends. Where each hop's traffic is redirected (component
//! metadata, the sidecar's app port, the publishing client) is the trial's business.

use std::collections::BTreeMap;

use harness::fault::{Fault, Hop};
use harness::fault_proxy::FaultProxy;
use harness_toxiproxy::client::{NewProxy, NewToxic, ToxiproxyError};

use crate::problem::Problem;

/// The proxies of one trial.
#[derive(Debug)]
pub struct Proxies {
    api: FaultProxy,
    prefix: String,
    /// Per hop: the proxy's name and the address it listens on.
    hops: BTreeMap<Hop, (String, String)>,
}

fn api_error(what: String) -> impl FnOnce(ToxiproxyError) -> Problem {
    move |e| {
        let mut msg = format!("fault proxy: {what}: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        Problem::Setup(msg)
    }
}

impl Proxies {
    /// Uses the Toxiproxy at `url`, or starts the bundled server (toxicity draws seeded with
    /// `seed`). Proxy names start with `prefix`.
    pub async fn connect(url: Option<&str>, seed: u64, prefix: String) -> Result<Proxies, Problem> {
        let api = FaultProxy::connect_or_spawn(url, Some(seed))
            .await
            .map_err(|e| Problem::setup(&e))?;
        Ok(Proxies {
            api,
            prefix,
            hops: BTreeMap::new(),
        })
    }

    /// Creates the proxy of `hop` in front of `upstream` (`host:port`) and returns the address
    /// it listens on.
    pub async fn add(&mut self, hop: Hop, upstream: &str) -> Result<String, Problem> {
        let name = format!("{}-{hop}", self.prefix);
        let proxy = self
            .api
            .client()
            .create_proxy(&NewProxy::new(&name, upstream))
            .await
            .map_err(api_error(format!("creating proxy {name}")))?;
        let listen = proxy.listen.clone();
        self.hops.insert(hop, (name, listen.clone()));
        Ok(listen)
    }

    /// Points the proxy of `hop` at a new upstream (its listen address stays).
    pub async fn retarget(&mut self, hop: Hop, upstream: &str) -> Result<(), Problem> {
        let name = self.name(hop)?;
        let update = harness_toxiproxy::client::ProxyUpdate {
            upstream: Some(upstream.to_owned()),
            ..Default::default()
        };
        self.api
            .client()
            .update_proxy(&name, &update)
            .await
            .map_err(api_error(format!("pointing proxy {name} at {upstream}")))?;
        Ok(())
    }

    /// Which Toxiproxy the trial's faults go through, for reports (see
    /// [`FaultProxy::identity`]).
    pub fn identity(&self) -> String {
        self.api.identity()
    }

    /// The address the proxy of `hop` listens on.
    pub fn listen(&self, hop: Hop) -> Option<&str> {
        self.hops.get(&hop).map(|(_, l)| l.as_str())
    }

    fn name(&self, hop: Hop) -> Result<String, Problem> {
        self.hops
            .get(&hop)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| Problem::Setup(format!("the scenario has no proxy on hop {hop}")))
    }

    /// Applies a network fault (a toxic added or removed, a proxy down or up).
    pub async fn apply(&self, fault: &Fault) -> Result<(), Problem> {
        let client = self.api.client();
        match fault {
            Fault::AddToxic { hop, stream, toxic } => {
                let proxy = self.name(*hop)?;
                let toxic_name = format!("tck-{}-{stream}", toxic.type_name());
                let new = NewToxic::new(toxic.clone())
                    .stream(*stream)
                    .named(&toxic_name);
                client
                    .add_toxic(&proxy, &new)
                    .await
                    .map_err(api_error(format!("adding {toxic_name} to {proxy}")))?;
            }
            Fault::RemoveToxic { hop, stream, toxic } => {
                let proxy = self.name(*hop)?;
                let toxic_name = format!("tck-{}-{stream}", toxic.type_name());
                client
                    .remove_toxic(&proxy, &toxic_name)
                    .await
                    .map_err(api_error(format!("removing {toxic_name} from {proxy}")))?;
            }
            Fault::ProxyDown(hop) => {
                let proxy = self.name(*hop)?;
                client
                    .disable_proxy(&proxy)
                    .await
                    .map_err(api_error(format!("disabling {proxy}")))?;
            }
            Fault::ProxyUp(hop) => {
                let proxy = self.name(*hop)?;
                client
                    .enable_proxy(&proxy)
                    .await
                    .map_err(api_error(format!("enabling {proxy}")))?;
            }
            other => {
                return Err(Problem::Setup(format!(
                    "not a network fault: {}",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    /// Deletes every proxy of the trial (a shared Toxiproxy keeps nothing of it).
    pub async fn delete(&self) {
        for (name, _) in self.hops.values() {
            let _ = self.api.client().delete_proxy(name).await;
        }
    }
}

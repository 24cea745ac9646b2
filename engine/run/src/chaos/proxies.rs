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

    /// A fault counts as applied once it took effect: the toxic is among the proxy's toxics
    /// (`present`), or no longer is.
    async fn confirm_toxic(&self, proxy: &str, toxic: &str, present: bool) -> Result<(), Problem> {
        let toxics = self
            .api
            .client()
            .toxics(proxy)
            .await
            .map_err(api_error(format!("listing the toxics of {proxy}")))?;
        let listed = toxics.iter().any(|t| t.name == toxic);
        if listed == present {
            Ok(())
        } else {
            Err(Problem::Setup(format!(
                "fault proxy: {proxy} {} toxic {toxic} after the call that should have {}",
                if listed {
                    "still lists"
                } else {
                    "does not list"
                },
                if present { "added it" } else { "removed it" }
            )))
        }
    }

    /// A proxy taken down refuses connections on its listen address; one brought up accepts
    /// them. Waits for that with a deadline: a proxy that kept listening would let the check
    /// pass without its fault.
    async fn confirm_listening(&self, hop: Hop, listening: bool) -> Result<(), Problem> {
        let (name, listen) = self
            .hops
            .get(&hop)
            .ok_or_else(|| Problem::Setup(format!("no fault proxy on hop {hop}")))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let accepts = tokio::net::TcpStream::connect(listen.as_str())
                .await
                .is_ok();
            if accepts == listening {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Problem::Setup(format!(
                    "fault proxy: {name} on {listen} {} connections 2 s after it was {}",
                    if accepts {
                        "still accepts"
                    } else {
                        "still refuses"
                    },
                    if listening { "enabled" } else { "disabled" }
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
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
                self.confirm_toxic(&proxy, &toxic_name, true).await?;
            }
            Fault::RemoveToxic { hop, stream, toxic } => {
                let proxy = self.name(*hop)?;
                let toxic_name = format!("tck-{}-{stream}", toxic.type_name());
                client
                    .remove_toxic(&proxy, &toxic_name)
                    .await
                    .map_err(api_error(format!("removing {toxic_name} from {proxy}")))?;
                self.confirm_toxic(&proxy, &toxic_name, false).await?;
            }
            Fault::ProxyDown(hop) | Fault::ProxyUp(hop) => {
                let up = matches!(fault, Fault::ProxyUp(_));
                let proxy = self.name(*hop)?;
                let (done, doing) = if up {
                    (client.enable_proxy(&proxy).await, "enabling")
                } else {
                    (client.disable_proxy(&proxy).await, "disabling")
                };
                done.map_err(api_error(format!("{doing} {proxy}")))?;
                self.confirm_listening(*hop, up).await?;
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

//! Faults a check injects into its trial: each applied, recorded in the history once it took
//! effect, and healed by its inverse.

use super::*;

impl Trial {
    /// Applies `fault` and records it in the history: a fault's start when it has taken
    /// effect, its stop when it was healed.
    pub async fn inject(&mut self, fault: &Fault) -> Result<(), Problem> {
        let span = tracing::info_span!("fault", kind = %fault.kind(), detail = %fault.detail());
        let _enter = span.enter();
        let phase = if fault.is_start() {
            FaultPhase::Start
        } else {
            FaultPhase::Stop
        };
        self.apply(fault).await?;
        let event = FaultEvent {
            kind: fault.kind(),
            phase,
            detail: Some(fault.detail()),
        };
        self.history.record(self.at(), EventKind::Fault(event));
        Ok(())
    }

    async fn apply(&mut self, fault: &Fault) -> Result<(), Problem> {
        let signal = |e: harness::SignalError| Problem::setup(&e);
        match fault {
            Fault::Kill(Proc::Sidecar) => {
                self.sidecar().kill().await;
            }
            Fault::Restart(Proc::Sidecar) => {
                self.sidecar()
                    .restart()
                    .await
                    .map_err(|e| Problem::setup(&e))?;
                self.sidecar().wait_healthz(DEADLINE).await?;
            }
            Fault::Pause(Proc::Sidecar) => {
                let child = self.sidecar().child_mut().ok_or_else(attached)?;
                child.pause().map_err(signal)?;
                took_effect(child, true).await?;
            }
            Fault::Resume(Proc::Sidecar) => {
                let child = self.sidecar().child_mut().ok_or_else(attached)?;
                child.resume().map_err(signal)?;
                took_effect(child, false).await?;
            }
            Fault::Kill(Proc::App) => self.app().stop().await,
            Fault::Restart(Proc::App) => self.app().restart_on_same_port().await?,
            Fault::Pause(Proc::App) | Fault::Resume(Proc::App) => {
                return Err(Problem::Setup(
                    "the test app runs inside the harness and cannot be paused".into(),
                ));
            }
            Fault::Kill(Proc::Broker) => self.private_broker()?.kill().await,
            Fault::Restart(Proc::Broker) => self
                .private_broker()?
                .restart()
                .await
                .map_err(|e| Problem::setup(&e))?,
            Fault::Pause(Proc::Broker) => {
                let broker = self.private_broker()?;
                broker.pause().map_err(signal)?;
                if let Some(child) = broker.child() {
                    took_effect(child, true).await?;
                }
            }
            Fault::Resume(Proc::Broker) => {
                let broker = self.private_broker()?;
                broker.resume().map_err(signal)?;
                if let Some(child) = broker.child() {
                    took_effect(child, false).await?;
                }
            }
            Fault::AddToxic { .. }
            | Fault::RemoveToxic { .. }
            | Fault::ProxyDown(_)
            | Fault::ProxyUp(_) => self.apply_network(fault).await?,
        }
        Ok(())
    }

    /// Network faults need the trial's proxies (see [`Scenario::through_proxies`]).
    async fn apply_network(&mut self, fault: &Fault) -> Result<(), Problem> {
        match self.cluster.as_ref().and_then(|c| c.proxies.as_ref()) {
            Some(p) => p.apply(fault).await,
            None => Err(Problem::Setup(format!(
                "no fault proxy on hop {}: the scenario routes no hop through proxies",
                fault.hop().map_or("-", |h| h.name())
            ))),
        }
    }

    fn private_broker(&mut self) -> Result<&mut BrokerServer, Problem> {
        match self.broker_server() {
            Some(b) if b.is_private() => Ok(b),
            _ => Err(Problem::Setup(
                "the broker is not a private process of this trial (in-memory, external or a container)"
                    .into(),
            )),
        }
    }
}

/// A pause counts once every process of the group is stopped, a resume once none is: a
/// SIGSTOP that has not taken effect yet would let the check pass without its fault.
async fn took_effect(child: &harness::Child, stopped: bool) -> Result<(), Problem> {
    child
        .wait_group_state(stopped, Duration::from_secs(2))
        .await
        .map_err(|e| Problem::setup(&e))
}

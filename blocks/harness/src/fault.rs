//! Faults as data: what a chaos trial can do to the network and to processes.
//!
//! Owns the vocabulary — [`Hop`], [`Proc`], [`Fault`], [`FaultKind`] (toxics are the
//! Toxiproxy client's [`ToxicKind`]) — and the rule that every
//! fault has an inverse ([`Fault::inverse`]) that heals it, so a schedule is a list of
//! start/stop pairs and a run can always be healed. It does not apply faults (the trial that
//! owns the processes and proxies does) and does not schedule them (the nemesis does).
//!
//! Names ([`Fault::kind`]) are the ones recorded in the history and accepted by
//! `pubsub-tck chaos --faults`; [`FaultKind::ALL`] lists them.

use std::fmt;

/// Toxics and their direction are the Toxiproxy client's types: `Duration`s inside, wire
/// units only at the client's edge.
pub use harness_toxiproxy::client::{Stream, ToxicKind};

/// A network hop a trial can route through a fault proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hop {
    /// The sidecar's connections to the broker (component host metadata points at the proxy).
    SidecarToBroker,
    /// The sidecar's deliveries to the app (the sidecar's app port is the proxy).
    SidecarToApp,
    /// The app's publishes to the sidecar (the harness publishes through the proxy).
    AppToSidecar,
}

impl Hop {
    /// Every hop.
    pub const ALL: [Hop; 3] = [Hop::SidecarToBroker, Hop::SidecarToApp, Hop::AppToSidecar];

    /// `sidecar-broker`, `sidecar-app` or `app-sidecar`: the proxy name suffix and the detail
    /// recorded with a fault.
    pub fn name(self) -> &'static str {
        match self {
            Hop::SidecarToBroker => "sidecar-broker",
            Hop::SidecarToApp => "sidecar-app",
            Hop::AppToSidecar => "app-sidecar",
        }
    }
}

/// A process a fault can kill or pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proc {
    /// The sidecar under test.
    Sidecar,
    /// The test app.
    App,
    /// The trial's private broker process.
    Broker,
}

impl Proc {
    /// `sidecar`, `app` or `broker`.
    pub fn name(self) -> &'static str {
        match self {
            Proc::Sidecar => "sidecar",
            Proc::App => "app",
            Proc::Broker => "broker",
        }
    }
}

/// `Display` for each listed type as its `name()`.
macro_rules! display_as_name {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}

display_as_name!(Hop, Proc);

/// One fault action. Variants come in inverse pairs; see [`Fault::inverse`].
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Adds `toxic` to `hop` on `stream`.
    AddToxic {
        /// Where.
        hop: Hop,
        /// Which way.
        stream: Stream,
        /// What.
        toxic: ToxicKind,
    },
    /// Removes the toxic that [`Fault::AddToxic`] added.
    RemoveToxic {
        /// Where.
        hop: Hop,
        /// Which way.
        stream: Stream,
        /// What.
        toxic: ToxicKind,
    },
    /// The hop's proxy stops listening and closes its connections.
    ProxyDown(Hop),
    /// The hop's proxy listens again.
    ProxyUp(Hop),
    /// SIGKILL.
    Kill(Proc),
    /// Starts the killed process again, with the same ports and resources.
    Restart(Proc),
    /// SIGSTOP.
    Pause(Proc),
    /// SIGCONT.
    Resume(Proc),
}

impl Fault {
    /// The action that heals this one (and the other way round).
    pub fn inverse(&self) -> Fault {
        match self.clone() {
            Fault::AddToxic { hop, stream, toxic } => Fault::RemoveToxic { hop, stream, toxic },
            Fault::RemoveToxic { hop, stream, toxic } => Fault::AddToxic { hop, stream, toxic },
            Fault::ProxyDown(h) => Fault::ProxyUp(h),
            Fault::ProxyUp(h) => Fault::ProxyDown(h),
            Fault::Kill(p) => Fault::Restart(p),
            Fault::Restart(p) => Fault::Kill(p),
            Fault::Pause(p) => Fault::Resume(p),
            Fault::Resume(p) => Fault::Pause(p),
        }
    }

    /// Whether this action starts a fault (as opposed to healing one).
    pub fn is_start(&self) -> bool {
        matches!(
            self,
            Fault::AddToxic { .. } | Fault::ProxyDown(_) | Fault::Kill(_) | Fault::Pause(_)
        )
    }

    /// The fault's kind, the same for an action and its inverse: a toxic type name
    /// (`latency`, …), `down`, `kill-<proc>` or `pause-<proc>`.
    pub fn kind(&self) -> String {
        match self {
            Fault::AddToxic { toxic, .. } | Fault::RemoveToxic { toxic, .. } => {
                toxic.type_name().replace('_', "-")
            }
            Fault::ProxyDown(_) | Fault::ProxyUp(_) => "down".to_owned(),
            Fault::Kill(p) | Fault::Restart(p) => format!("kill-{p}"),
            Fault::Pause(p) | Fault::Resume(p) => format!("pause-{p}"),
        }
    }

    /// What the fault hits: `<hop>/<stream>` for toxics, the hop for proxies, the process.
    pub fn detail(&self) -> String {
        match self {
            Fault::AddToxic { hop, stream, .. } | Fault::RemoveToxic { hop, stream, .. } => {
                format!("{hop}/{stream}")
            }
            Fault::ProxyDown(h) | Fault::ProxyUp(h) => h.name().to_owned(),
            Fault::Kill(p) | Fault::Restart(p) | Fault::Pause(p) | Fault::Resume(p) => {
                p.name().to_owned()
            }
        }
    }

    /// The hop this fault needs a proxy on, if any.
    pub fn hop(&self) -> Option<Hop> {
        match self {
            Fault::AddToxic { hop, .. }
            | Fault::RemoveToxic { hop, .. }
            | Fault::ProxyDown(hop)
            | Fault::ProxyUp(hop) => Some(*hop),
            _ => None,
        }
    }

    /// The process this fault acts on, if any.
    pub fn proc(&self) -> Option<Proc> {
        match self {
            Fault::Kill(p) | Fault::Restart(p) | Fault::Pause(p) | Fault::Resume(p) => Some(*p),
            _ => None,
        }
    }
}

/// A fault kind without its parameters, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// A latency toxic.
    Latency,
    /// A bandwidth toxic.
    Bandwidth,
    /// A slow_close toxic.
    SlowClose,
    /// A timeout toxic.
    Timeout,
    /// A reset_peer toxic.
    ResetPeer,
    /// A slicer toxic.
    Slicer,
    /// A limit_data toxic.
    LimitData,
    /// A proxy taken down.
    Down,
    /// A process killed and restarted.
    Kill(Proc),
    /// A process paused and resumed.
    Pause(Proc),
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 14] = [
        FaultKind::Latency,
        FaultKind::Bandwidth,
        FaultKind::SlowClose,
        FaultKind::Timeout,
        FaultKind::ResetPeer,
        FaultKind::Slicer,
        FaultKind::LimitData,
        FaultKind::Down,
        FaultKind::Kill(Proc::Sidecar),
        FaultKind::Kill(Proc::App),
        FaultKind::Kill(Proc::Broker),
        FaultKind::Pause(Proc::Sidecar),
        FaultKind::Pause(Proc::App),
        FaultKind::Pause(Proc::Broker),
    ];

    /// The name recorded in histories and accepted by `--faults`.
    pub fn name(self) -> String {
        match self {
            FaultKind::Latency => "latency".into(),
            FaultKind::Bandwidth => "bandwidth".into(),
            FaultKind::SlowClose => "slow-close".into(),
            FaultKind::Timeout => "timeout".into(),
            FaultKind::ResetPeer => "reset-peer".into(),
            FaultKind::Slicer => "slicer".into(),
            FaultKind::LimitData => "limit-data".into(),
            FaultKind::Down => "down".into(),
            FaultKind::Kill(p) => format!("kill-{p}"),
            FaultKind::Pause(p) => format!("pause-{p}"),
        }
    }

    /// Parses one name of [`FaultKind::name`].
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name.trim())
    }

    /// Whether this kind acts on a hop's proxy (and so needs one).
    pub fn is_network(self) -> bool {
        !matches!(self, FaultKind::Kill(_) | FaultKind::Pause(_))
    }
}

/// Parses a comma-separated list of fault kinds, or `all`.
pub fn parse_kinds(list: &str) -> Result<Vec<FaultKind>, String> {
    crate::broker::parse_list_or_all(list, &FaultKind::ALL, FaultKind::parse, |s| {
        let known: Vec<String> = FaultKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "unknown fault `{}` (known: {}, or all)",
            s.trim(),
            known.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn every_action() -> Vec<Fault> {
        let toxic = ToxicKind::Latency {
            latency: Duration::from_millis(100),
            jitter: Duration::ZERO,
        };
        let mut all = vec![Fault::AddToxic {
            hop: Hop::SidecarToApp,
            stream: Stream::Downstream,
            toxic,
        }];
        for hop in Hop::ALL {
            all.push(Fault::ProxyDown(hop));
        }
        for p in [Proc::Sidecar, Proc::App, Proc::Broker] {
            all.push(Fault::Kill(p));
            all.push(Fault::Pause(p));
        }
        all
    }

    #[test]
    fn every_fault_has_an_inverse_with_the_same_kind() {
        for f in every_action() {
            let inv = f.inverse();
            assert_ne!(inv, f);
            assert_eq!(inv.inverse(), f);
            assert_eq!(inv.kind(), f.kind());
            assert_eq!(inv.detail(), f.detail());
            assert!(f.is_start() && !inv.is_start(), "{f:?}");
        }
    }

    #[test]
    fn kinds_parse_by_name() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(&k.name()), Some(k));
        }
        assert_eq!(
            parse_kinds("latency, kill-broker"),
            Ok(vec![FaultKind::Latency, FaultKind::Kill(Proc::Broker)])
        );
        assert_eq!(parse_kinds("all").map(|v| v.len()), Ok(14));
        assert!(parse_kinds("latency,flood").is_err_and(|e| e.contains("unknown fault `flood`")));
    }
}

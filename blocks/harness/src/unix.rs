//! Unix signals for process groups and single processes.
//!
//! Every child the harness spawns leads its own process group (`process_group(0)`), so
//! signalling the group also reaches whatever the child forked.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The signals the harness sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGKILL.
    Kill,
    /// SIGSTOP.
    Stop,
    /// SIGCONT.
    Cont,
}

impl Sig {
    /// The signal's name (`SIGTERM`).
    pub fn name(self) -> &'static str {
        match self {
            Sig::Term => "SIGTERM",
            Sig::Int => "SIGINT",
            Sig::Kill => "SIGKILL",
            Sig::Stop => "SIGSTOP",
            Sig::Cont => "SIGCONT",
        }
    }

    fn to_nix(self) -> Signal {
        match self {
            Sig::Term => Signal::SIGTERM,
            Sig::Int => Signal::SIGINT,
            Sig::Kill => Signal::SIGKILL,
            Sig::Stop => Signal::SIGSTOP,
            Sig::Cont => Signal::SIGCONT,
        }
    }
}

fn pid(raw: u32) -> Result<Pid, nix::Error> {
    i32::try_from(raw)
        .map(Pid::from_raw)
        .map_err(|_| nix::Error::EINVAL)
}

/// Sends `sig` to the process group led by `pgid`.
pub fn signal_group(pgid: u32, sig: Sig) -> Result<(), nix::Error> {
    killpg(pid(pgid)?, sig.to_nix())
}

/// Sends `sig` to one process.
pub fn signal_process(raw: u32, sig: Sig) -> Result<(), nix::Error> {
    kill(pid(raw)?, sig.to_nix())
}

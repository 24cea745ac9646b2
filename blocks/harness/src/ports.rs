//! Loopback port allocation for child processes.
//!
//! A child process binds its own ports, so the harness has to pick them first. Two things can
//! take a picked port before the child binds it:
//! - another trial of the same run, handed the same port by the kernel once the first
//!   reservation closed its listener (`bind(0)` reuses a port as soon as it is free);
//! - any outgoing connection on the machine, whose local port the kernel draws from the
//!   ephemeral range.
//!
//! So ports come from *outside* the kernel's ephemeral range (read from
//! `/proc/sys/net/ipv4/ip_local_port_range`), where neither `bind(0)` nor `connect` ever
//! lands, and every port handed out is recorded in one process-wide table of leases.
//! A [`PortReservation`] holds a listener on each port (so no other process can bind it while
//! the harness prepares the child); [`PortReservation::release`] closes the listeners just
//! before the spawn and turns the reservation into a [`PortLease`], which keeps the ports out
//! of every later reservation of this process until it is dropped. Children keep their lease
//! for their whole life ([`crate::ProcessSpec::hold_ports`]), restarts included.
//!
//! Another process on the machine can still choose a port in the moment between release and
//! bind; readiness probes therefore check that they reached their own child (see
//! `crate::broker` and `crate::sidecar`), and a child that fails to bind is launched again on
//! fresh ports.
//!
//! In-process servers do not need this: they bind `127.0.0.1:0` themselves and keep it.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Why ports could not be reserved.
#[derive(Debug, thiserror::Error)]
#[error("cannot reserve a loopback port")]
pub struct PortError(#[source] pub std::io::Error);

/// The lowest port the allocator hands out: below it live well-known services.
const LOWEST: u16 = 10_000;
/// How many candidate ports one reservation tries before it gives up.
const ATTEMPTS: usize = 10_000;

/// Ports handed out by this process and not yet given back, across every trial of a run.
fn leased() -> &'static Mutex<BTreeSet<u16>> {
    static LEASED: OnceLock<Mutex<BTreeSet<u16>>> = OnceLock::new();
    LEASED.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Runs `f` on the lease table. A panic elsewhere while holding the lock cannot leave the
/// set inconsistent (every operation is a single insert or remove), so poison is ignored.
fn with_leases<T>(f: impl FnOnce(&mut BTreeSet<u16>) -> T) -> T {
    let mut set = leased().lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut set)
}

/// The range ports are drawn from: the larger stretch outside the kernel's ephemeral range.
fn pool() -> std::ops::Range<u16> {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| parse_port_range(&s))
        .unwrap_or((32_768, 60_999));
    pool_outside(ephemeral)
}

/// `"32768\t60999\n"` → `(32768, 60999)`.
fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// The larger of `[LOWEST, lo)` and `(hi, 65535]`; empty when the ephemeral range covers both.
fn pool_outside((lo, hi): (u16, u16)) -> std::ops::Range<u16> {
    let below = LOWEST..lo.max(LOWEST);
    let above = hi.saturating_add(1).max(LOWEST)..u16::MAX;
    if below.len() >= above.len() {
        below
    } else {
        above
    }
}

/// Loopback ports held open until released.
#[derive(Debug)]
#[must_use = "ports are only reserved while the reservation is alive"]
pub struct PortReservation {
    listeners: Vec<TcpListener>,
    lease: PortLease,
}

/// Reserves `n` distinct free loopback ports.
pub fn reserve(n: usize) -> Result<PortReservation, PortError> {
    PortReservation::new(n)
}

impl PortReservation {
    /// Reserves `n` distinct free loopback ports, none of them leased by this process.
    pub fn new(n: usize) -> Result<PortReservation, PortError> {
        let pool = pool();
        let mut listeners = Vec::with_capacity(n);
        // The lease exists from the first port on, so a failure half-way gives every port back.
        let mut lease = PortLease { ports: Vec::new() };
        for _ in 0..n {
            let (port, listener) = claim_one(&pool)?;
            lease.ports.push(port);
            listeners.push(listener);
        }
        Ok(PortReservation { listeners, lease })
    }

    /// The reserved ports, in reservation order.
    pub fn ports(&self) -> &[u16] {
        &self.lease.ports
    }

    /// Closes the listeners, right before the child that binds the ports is spawned; the ports
    /// stay leased (no other reservation of this process gets them) while the lease lives.
    pub fn release(self) -> PortLease {
        // A listener that never accepted leaves no TIME_WAIT state, so the port can be
        // bound again immediately by the child.
        drop(self.listeners);
        self.lease
    }
}

/// Ports that were handed to a child: out of every later reservation until dropped.
#[derive(Debug, Default)]
#[must_use = "the ports go back to the pool when the lease is dropped"]
pub struct PortLease {
    ports: Vec<u16>,
}

impl PortLease {
    /// The leased ports, in reservation order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Adds the ports of `other` to this lease.
    pub fn merge(&mut self, mut other: PortLease) {
        self.ports.append(&mut other.ports);
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        with_leases(|set| {
            for p in &self.ports {
                set.remove(p);
            }
        });
    }
}

/// Picks an unleased port of `pool` that nobody listens on, binds it and leases it.
/// Falls back to a kernel-chosen port when the pool is empty or exhausted.
fn claim_one(pool: &std::ops::Range<u16>) -> Result<(u16, TcpListener), PortError> {
    if !pool.is_empty() {
        for _ in 0..ATTEMPTS {
            let port = fastrand::u16(pool.clone());
            // Lease first, then bind: two reservations racing for one port cannot both win.
            if !with_leases(|set| set.insert(port)) {
                continue;
            }
            match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
                Ok(l) => return Ok((port, l)),
                Err(_) => with_leases(|set| set.remove(&port)),
            };
        }
    }
    // The kernel's choice can still collide with a port handed out earlier (it does not know
    // our leases): keep drawing while holding the listeners of leased ports, so it must pick
    // another.
    let mut held = Vec::new();
    loop {
        let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(PortError)?;
        let port = l.local_addr().map_err(PortError)?.port();
        if with_leases(|set| set.insert(port)) {
            return Ok((port, l));
        }
        held.push(l);
        if held.len() > ATTEMPTS {
            return Err(PortError(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "every port the kernel offered is leased",
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_distinct_ports_and_releases_them() {
        let r = reserve(3).unwrap();
        let ports = r.ports().to_vec();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|&p| p != 0));
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
        // While reserved, binding the same port fails.
        assert!(TcpListener::bind(("127.0.0.1", ports[0])).is_err());
        let lease = r.release();
        assert_eq!(lease.ports(), ports);
        TcpListener::bind(("127.0.0.1", ports[0])).unwrap();
    }

    #[test]
    fn a_leased_port_is_never_reserved_again_until_dropped() {
        let lease = reserve(4).unwrap().release();
        let mine: BTreeSet<u16> = lease.ports().iter().copied().collect();
        // The listeners are closed, so only the lease table keeps the ports out.
        for _ in 0..200 {
            let other = reserve(4).unwrap();
            assert!(other.ports().iter().all(|p| !mine.contains(p)));
        }
        drop(lease);
        with_leases(|set| assert!(mine.iter().all(|p| !set.contains(p))));
    }

    #[test]
    fn ports_avoid_the_ephemeral_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32_768, 60_999)));
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(pool_outside((32_768, 60_999)), 10_000..32_768);
        assert_eq!(pool_outside((1_024, 20_000)), 20_001..65_535);
        assert!(pool_outside((1_024, 65_535)).is_empty());
        let r = reserve(2).unwrap();
        let pool = pool();
        assert!(r.ports().iter().all(|p| pool.contains(p)));
    }
}

//! Loopback port allocation for child processes.
//!
//! A [`PortReservation`] binds `127.0.0.1:0` once per port and keeps the listeners open,
//! so no other test can take those ports, until [`PortReservation::release`] is called
//! just before the child that needs them is spawned.
//! In-process servers do not need this: they bind `127.0.0.1:0` themselves and keep it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// Why ports could not be reserved.
#[derive(Debug, thiserror::Error)]
#[error("cannot reserve a loopback port")]
pub struct PortError(#[source] pub std::io::Error);

/// Loopback ports held open until released.
#[derive(Debug)]
#[must_use = "ports are only reserved while the reservation is alive"]
pub struct PortReservation {
    listeners: Vec<TcpListener>,
    ports: Vec<u16>,
}

/// Reserves `n` distinct free loopback ports.
pub fn reserve(n: usize) -> Result<PortReservation, PortError> {
    PortReservation::new(n)
}

impl PortReservation {
    /// Reserves `n` distinct free loopback ports.
    pub fn new(n: usize) -> Result<PortReservation, PortError> {
        let mut listeners = Vec::with_capacity(n);
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            let l =
                TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(PortError)?;
            ports.push(l.local_addr().map_err(PortError)?.port());
            listeners.push(l);
        }
        Ok(PortReservation { listeners, ports })
    }

    /// The reserved ports, in reservation order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Closes the listeners and returns the ports; call it right before spawning.
    pub fn release(self) -> Vec<u16> {
        // A listener that never accepted leaves no TIME_WAIT state, so the port can be
        // bound again immediately by the child.
        drop(self.listeners);
        self.ports
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
        let released = r.release();
        assert_eq!(released, ports);
        TcpListener::bind(("127.0.0.1", ports[0])).unwrap();
    }
}

//! Users' own tests drive Toxiproxy with the `toxiproxy_rust` crate (a blocking client). These
//! tests point that crate, unchanged, at the `tck-toxiproxy` binary started as a user would
//! start `toxiproxy-server`, and check every call's effect on real loopback traffic: proxies
//! populated, listed and found, toxics created, listed and removed, a proxy taken down and
//! brought back.

// `allow-unwrap-in-tests` does not reach helper functions in `tests/` (rust-clippy #13981).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

/// A `tck-toxiproxy` process on a port it picked; killed on drop.
struct Server {
    child: Child,
    client: Client,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tck-toxiproxy"))
            .args(["-host", "127.0.0.1", "-port", "0", "-seed", "7"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tck-toxiproxy starts");
        // With `-port 0` the server prints the address it bound as its first line, once it
        // accepts connections.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("tck-toxiproxy's stdout is readable");
        let addr: SocketAddr = line
            .trim()
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("tck-toxiproxy printed {line:?}, not an address: {e}"));
        Server {
            child,
            client: Client::new(addr),
        }
    }

    /// Whether the server lists proxy `name` as enabled.
    fn enabled(&self, name: &str) -> bool {
        self.client.find_proxy(name).unwrap().proxy_pack.enabled
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An echo server on a loopback port: every connection gets back what it sends.
fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `ping` through `addr` and returns the echo and how long the round trip took.
fn round_trip(addr: &str) -> std::io::Result<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"ping")?;
    let mut got = [0u8; 4];
    conn.read_exact(&mut got)?;
    Ok((got.to_vec(), started.elapsed()))
}

/// Populates one proxy `name` in front of a fresh echo server and returns its listen address.
fn populate_echo(server: &Server, name: &str) -> String {
    let upstream = echo_upstream();
    let proxies = server
        .client
        .populate(vec![ProxyPack::new(
            name.into(),
            "127.0.0.1:0".into(),
            upstream.to_string(),
        )])
        .expect("populate answers");
    assert_eq!(proxies.len(), 1, "populate returns the proxy it created");
    let pack = &proxies[0].proxy_pack;
    assert_eq!(pack.name, name);
    assert_eq!(pack.upstream, upstream.to_string());
    assert!(pack.enabled);
    assert!(
        !pack.listen.ends_with(":0"),
        "the listen address comes back with the bound port: {}",
        pack.listen
    );
    pack.listen.clone()
}

/// Asserts that `ping` comes back through `listen`; `when` names the moment in a failure.
fn assert_echoes(listen: &str, when: &str) {
    let (echo, _) = round_trip(listen).unwrap_or_else(|e| panic!("{when}: no echo: {e}"));
    assert_eq!(echo, b"ping", "{when}");
}

/// A started server with one proxy `name` in front of a fresh echo server, and the proxy's
/// listen address.
fn server_with_echo(name: &str) -> (Server, String) {
    let server = Server::start();
    let listen = populate_echo(&server, name);
    (server, listen)
}

#[test]
fn server_answers_the_crate_s_health_and_version_calls() {
    let server = Server::start();
    assert!(server.client.is_running());
    let version = server.client.version().expect("version answers");
    assert!(
        !version.trim().is_empty() && version.chars().any(|c| c.is_ascii_digit()),
        "a version string: {version:?}"
    );
}

#[test]
fn populated_proxy_forwards_and_is_listed_and_found() {
    let (server, listen) = server_with_echo("echo");
    assert_echoes(&listen, "traffic passes through the proxy");

    let all = server.client.all().expect("all proxies");
    assert_eq!(all.keys().collect::<Vec<_>>(), ["echo"]);
    assert_eq!(all["echo"].proxy_pack.listen, listen);
    let found = server.client.find_proxy("echo").expect("find_proxy");
    assert_eq!(found.proxy_pack.listen, listen);
    assert!(server.client.find_proxy("missing").is_err());
}

#[test]
fn latency_toxic_delays_traffic_until_apply_removes_it() {
    let (server, listen) = server_with_echo("slow");
    let proxy = server.client.find_and_reset_proxy("slow").unwrap();
    proxy
        .with_latency("downstream".into(), 300, 0, 1.0)
        .apply(|| {
            let toxics = proxy.toxics().expect("toxics are listed");
            assert_eq!(toxics.len(), 1, "{toxics:?}");
            assert_eq!(toxics[0].r#type, "latency");
            assert_eq!(toxics[0].stream, "downstream");
            assert_eq!(toxics[0].attributes.get("latency"), Some(&300));
            let (echo, took) = round_trip(&listen).unwrap();
            assert_eq!(echo, b"ping");
            assert!(
                took >= Duration::from_millis(300),
                "the echo came back after {took:?}, before the 300 ms latency"
            );
        })
        .expect("apply removes the toxic");
    assert!(proxy.toxics().unwrap().is_empty(), "apply left no toxic");
    assert_echoes(&listen, "after apply");
}

#[test]
fn with_down_refuses_connections_then_restores_the_proxy() {
    let (server, listen) = server_with_echo("flaky");
    let proxy = server.client.find_and_reset_proxy("flaky").unwrap();
    proxy
        .with_down(|| {
            assert!(!server.enabled("flaky"), "the proxy is listed as disabled");
            assert!(
                round_trip(&listen).is_err(),
                "a disabled proxy passes no traffic"
            );
        })
        .expect("with_down enables the proxy again");
    assert!(server.enabled("flaky"));
    assert_echoes(&listen, "traffic passes again");
}

#[test]
fn reset_removes_every_toxic_and_enables_every_proxy() {
    let (server, listen) = server_with_echo("reset-me");
    let proxy = server.client.find_proxy("reset-me").unwrap();
    proxy.with_limit_data("upstream".into(), 2, 1.0);
    proxy.disable().unwrap();
    assert_eq!(proxy.toxics().unwrap().len(), 1);
    server.client.reset().expect("reset answers");
    assert!(proxy.toxics().unwrap().is_empty());
    assert!(server.enabled("reset-me"));
    assert_echoes(&listen, "after reset");
    proxy.delete().unwrap();
    assert!(server.client.all().unwrap().is_empty());
}

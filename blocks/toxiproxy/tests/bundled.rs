//! What only the bundled server promises (the contract suite covers what it shares with
//! Toxiproxy): its deliberate differences, seeded replay, in-process lifetime, and the
//! `tck-toxiproxy` binary.

// `allow-unwrap-in-tests` does not reach helper functions in `tests/` (rust-clippy #13981).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

mod common;

use common::{echo, round_trip, within};
use harness_toxiproxy::{Client, NewProxy, NewToxic, Proxy, ServerHandle, ToxicKind};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

async fn server(seed: u64) -> (ServerHandle, Client) {
    let server = harness_toxiproxy::spawn(([127, 0, 0, 1], 0).into(), Some(seed))
        .await
        .unwrap();
    let client = Client::new(server.base_url()).unwrap();
    (server, client)
}

/// A proxy `name` to a fresh echo server.
async fn echo_proxy(client: &Client, name: &str) -> Proxy {
    client
        .create_proxy(&NewProxy::new(name, echo().await.to_string()))
        .await
        .unwrap()
}

/// A proxy `name` to a fresh echo server, and a connection through it.
async fn echo_connection(client: &Client, name: &str) -> (Proxy, TcpStream) {
    let proxy = echo_proxy(client, name).await;
    let stream = TcpStream::connect(&proxy.listen).await.unwrap();
    (proxy, stream)
}

/// Reads until the connection ends; the error kind if it ended with one.
async fn read_end(stream: &mut TcpStream) -> Result<Vec<u8>, ErrorKind> {
    let mut got = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match within("the close", stream.read(&mut buffer)).await {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) => return Err(e.kind()),
        }
    }
}

#[tokio::test]
async fn reset_peer_resets_connections_opened_before_it() {
    let (_server, client) = server(1).await;
    let (proxy, mut stream) = echo_connection(&client, "early").await;
    round_trip(&mut stream, b"before").await;
    let toxic = NewToxic::new(ToxicKind::ResetPeer {
        timeout: Duration::ZERO,
    });
    client.add_toxic(&proxy.name, &toxic).await.unwrap();
    stream.write_all(b"now").await.unwrap();
    assert_eq!(read_end(&mut stream).await, Err(ErrorKind::ConnectionReset));
}

#[tokio::test]
async fn listen_addresses_must_be_loopback() {
    let (server, client) = server(1).await;
    let error = client
        .create_proxy(&NewProxy::new("wide", "127.0.0.1:1").listen("0.0.0.0:0"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert!(
        error
            .to_string()
            .contains("listen address 0.0.0.0:0 is not a loopback address"),
        "{error}"
    );
    // An empty listen address means 127.0.0.1:0.
    let empty = client
        .create_proxy(&NewProxy::new("empty", "127.0.0.1:1").listen(""))
        .await
        .unwrap();
    assert!(empty.listen_addr().unwrap().ip().is_loopback());
    assert!(matches!(
        harness_toxiproxy::spawn(([0, 0, 0, 0], 0).into(), None).await,
        Err(harness_toxiproxy::SpawnError::NotLoopback(_))
    ));
    drop(server);
}

/// Which of eight successive connections a toxicity-0.5 `limit_data` 0 toxic closed at
/// their first byte (the others echo it): an effect that does not depend on timing.
async fn affected_connections(seed: u64) -> Vec<bool> {
    let (_server, client) = server(seed).await;
    let proxy = echo_proxy(&client, "replay").await;
    let toxic = NewToxic::new(ToxicKind::LimitData { bytes: 0 })
        .upstream()
        .toxicity(0.5);
    client.add_toxic(&proxy.name, &toxic).await.unwrap();
    let mut pattern = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(&proxy.listen).await.unwrap();
        stream.write_all(b"x").await.unwrap();
        let mut echoed = [0u8; 1];
        let read = within("the echo or the close", stream.read(&mut echoed)).await;
        pattern.push(!matches!(read, Ok(1)));
    }
    pattern
}

#[tokio::test]
async fn the_seed_replays_toxicity_draws() {
    let first = affected_connections(11).await;
    assert!(
        first.contains(&true) && first.contains(&false),
        "toxicity 0.5 should affect some connections and not others: {first:?}"
    );
    assert_eq!(affected_connections(11).await, first);
    assert_ne!(
        affected_connections(12).await,
        first,
        "another seed, other draws"
    );
}

#[tokio::test]
async fn a_half_close_is_forwarded() {
    let (_server, client) = server(1).await;
    let (_proxy, mut stream) = echo_connection(&client, "half").await;
    stream.write_all(b"last words").await.unwrap();
    stream.shutdown().await.unwrap();
    // The echo sees the EOF, answers, then closes; the answer still comes back.
    assert_eq!(read_end(&mut stream).await, Ok(b"last words".to_vec()));
}

#[tokio::test]
async fn dropping_the_handle_closes_proxies_and_connections() {
    let (server, client) = server(1).await;
    let (proxy, mut stream) = echo_connection(&client, "lifetime").await;
    round_trip(&mut stream, b"alive").await;
    drop(server);
    assert!(read_end(&mut stream).await.unwrap_or_default().is_empty());
    within("the listener to close", async {
        while TcpStream::connect(&proxy.listen).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn go_quirks_are_kept() {
    let (server, client) = server(1).await;
    let http = reqwest::Client::new();
    let base = server.base_url();
    // An empty populate answers `"proxies": null`, as Go marshals a nil slice.
    let reply = http
        .post(format!("{base}/populate"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    assert_eq!(reply.text().await.unwrap(), r#"{"proxies":null}"#);
    assert!(client.populate(&[]).await.unwrap().is_empty());
    // Unknown routes answer Go's plain 404; errors are text with a trailing newline.
    let missing = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(missing.text().await.unwrap(), "404 page not found\n");
    let error = http
        .get(format!("{base}/proxies/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error.text().await.unwrap(),
        "{\"error\":\"proxy not found\",\"status\":404}\n"
    );
    let version = http.get(format!("{base}/version")).send().await.unwrap();
    assert!(version.headers().contains_key("x-toxiproxy-request-id"));
    assert_eq!(
        version.text().await.unwrap(),
        format!("{{\"version\": \"{}\"}}\n", harness_toxiproxy::API_VERSION)
    );
}

#[tokio::test]
async fn the_binary_prints_its_address_and_applies_its_config() {
    let upstream = echo().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxies.json");
    let proxies = serde_json::json!([{"name": "from_config", "listen": "127.0.0.1:0", "upstream": upstream.to_string()}]);
    std::fs::write(&config, proxies.to_string()).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tck-toxiproxy"))
        .args(["-port", "0", "-seed", "3", "-config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within("the address line", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    let addr: SocketAddr = line.parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
    let client = Client::new(format!("http://{addr}")).unwrap();
    assert_eq!(
        client.version().await.unwrap(),
        harness_toxiproxy::API_VERSION
    );
    let proxy = client.proxy("from_config").await.unwrap();
    let mut stream = TcpStream::connect(&proxy.listen).await.unwrap();
    round_trip(&mut stream, b"configured").await;
    child.kill().await.unwrap();

    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_tck-toxiproxy"))
        .args(["-host", "0.0.0.0", "-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a loopback address"),
        "{refused:?}"
    );
}

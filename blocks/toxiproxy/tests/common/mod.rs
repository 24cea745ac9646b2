//! Sockets and waits shared by the `bundled` and `contract` tests: loopback listeners, an echo
//! upstream, and a deadline on every wait.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How long anything expected may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// `future`'s output, or a panic naming `what` after [`DEADLINE`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {DEADLINE:?}"))
}

/// A listener on a free loopback port, and its address.
pub(crate) async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Echoes every connection until it closes, then closes.
pub(crate) async fn echo() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Sends `message` and reads its echo; returns how long that took.
pub(crate) async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
    let start = Instant::now();
    stream.write_all(message).await.unwrap();
    let mut echoed = vec![0; message.len()];
    within("the echo", stream.read_exact(&mut echoed))
        .await
        .expect("the echo arrives");
    assert_eq!(echoed, message);
    start.elapsed()
}

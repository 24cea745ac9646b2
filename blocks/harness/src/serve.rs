//! The accept loop every server of the harness runs: the test app, and the self-check's proxies.

use std::future::Future;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Resolves once `stop` turns true, or its sender is gone (which also means stop).
pub async fn stopping(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts connections on `listener` (with `TCP_NODELAY`) and runs `connection` on each in a task
/// of its own, until `stop` turns true; then closes the listener and aborts every open
/// connection. Accept errors (too many open files, say) are transient: the loop yields to let
/// other tasks release what they hold, and goes on.
pub async fn until_stopped<C, F>(
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    mut connection: C,
) where
    C: FnMut(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    let stopped = stopping(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                conns.spawn(connection(stream));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

//! The private redis-server: starts, answers, survives kill and restart with its data.

// clippy's allow-unwrap-in-tests does not cover integration-test directories.
#![allow(clippy::unwrap_used)]

use harness::RedisServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn command(addr: &str, cmd: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(cmd.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn private_redis_keeps_data_across_kill_and_restart() {
    let dir = std::env::temp_dir().join(format!("harness-redis-{}", uuid::Uuid::new_v4().simple()));
    let mut redis = RedisServer::start(&dir.join("data"), &dir, "redis-test")
        .await
        .unwrap();
    assert!(redis.is_private());
    assert_eq!(command(redis.addr(), "SET k v\r\n").await, "+OK\r\n");
    redis.kill().await;
    redis.restart().await.unwrap();
    assert_eq!(
        command(redis.addr(), "GET k\r\n").await,
        "$1\r\nv\r\n",
        "appendfsync always keeps the write"
    );
    redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

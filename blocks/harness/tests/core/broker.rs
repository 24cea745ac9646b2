//! The private redis-server: starts, answers, survives kill and restart with its data.

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

/// Asks the broker at `addr` for `topic`'s metadata with auto-creation on (`Metadata` v4), which
/// makes the topic, and returns the error code the broker gave it.
async fn auto_create(addr: &str, topic: &str) -> i16 {
    let mut frame = Vec::new();
    frame.extend_from_slice(&3i16.to_be_bytes()); // Metadata
    frame.extend_from_slice(&4i16.to_be_bytes()); // v4
    frame.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    frame.extend_from_slice(topic.as_bytes());
    frame.push(1); // allow auto-creation
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&(frame.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&frame).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    // The topic's error code is the two bytes before its name, which ends the response but
    // for the internal flag and the partitions array.
    let at = body
        .windows(topic.len())
        .rposition(|w| w == topic.as_bytes())
        .unwrap();
    i16::from_be_bytes([body[at - 4], body[at - 3]])
}

/// A Kafka broker handed back is emptied (every topic deleted) and is the one the next trial
/// takes; one that is not handed back is not reused.
#[tokio::test]
async fn kafka_broker_handed_back_is_empty_and_taken_again() {
    let Some(home) = std::env::var_os("PUBSUB_TCK_KAFKA_HOME") else {
        eprintln!(
            "skipped: PUBSUB_TCK_KAFKA_HOME is not set (the README's test command sets it; `bash scripts/kafka.sh` prints it)"
        );
        return;
    };
    let home = std::path::PathBuf::from(home);
    let dir = std::env::temp_dir().join(format!("harness-kafka-{}", uuid::Uuid::new_v4().simple()));
    let first = harness::KafkaServer::take(&home, &dir.join("a"), &dir, "kafka-a")
        .await
        .unwrap();
    let (addr, pid) = (first.addr().to_owned(), first.child().unwrap().pid());
    // A new topic reports LEADER_NOT_AVAILABLE (5) while it is made, then none.
    for _ in 0..200 {
        if auto_create(&addr, "orders").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(auto_create(&addr, "orders").await, 0);
    assert_eq!(
        harness::kafka_wire::topics(&addr).await.unwrap(),
        vec!["orders".to_owned()]
    );

    first.hand_back().await;
    let second = harness::KafkaServer::take(&home, &dir.join("b"), &dir, "kafka-b")
        .await
        .unwrap();
    assert_eq!(
        second.child().unwrap().pid(),
        pid,
        "the idle broker is reused"
    );
    assert_eq!(
        harness::kafka_wire::topics(second.addr()).await.unwrap(),
        Vec::<String>::new(),
        "a broker is handed over empty"
    );
    let log = std::fs::read_to_string(second.child().unwrap().log_path()).unwrap();
    assert!(log.contains("--- now the broker of kafka-b"), "{log}");

    // Not handed back (a trial that faulted it drops it): the next take starts another.
    drop(second);
    let third = harness::KafkaServer::take(&home, &dir.join("c"), &dir, "kafka-c")
        .await
        .unwrap();
    assert_ne!(third.child().unwrap().pid(), pid);
    drop(third);
    harness::KafkaServer::stop_idle().await;
    let _ = std::fs::remove_dir_all(&dir);
}

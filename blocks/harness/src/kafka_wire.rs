//! Just enough of the Kafka protocol to ask a broker where a consumer group stands: a topic's
//! partitions (`Metadata` v4), each partition's end offset (`ListOffsets` v1) and the group's
//! committed offsets (`OffsetFetch` v1); and to empty a broker for its next trial: every topic
//! (`Metadata` v4) and their deletion (`DeleteTopics` v1); and, for the readiness probe in
//! `broker.rs`, which cluster a broker belongs to and what it advertises (`Metadata` v4). Written
//! by hand: the harness has no Kafka client. These versions are the oldest Kafka 4 still
//! answers (KIP-896) and have no tagged fields. One broker is assumed (the trial's own), which
//! is then every partition's leader and the group's coordinator.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One partition of a topic: where the group's committed offset is, and where the log ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition index.
    pub partition: i32,
    /// The group's committed offset (the next offset it will read), -1 when it committed none.
    pub committed: i64,
    /// The offset the next record written to the partition will get.
    pub end: i64,
}

impl PartitionLag {
    /// Records written to the partition that the group has not committed past.
    pub fn uncommitted(&self) -> i64 {
        self.end - self.committed.max(0)
    }
}

const METADATA: i16 = 3;
const LIST_OFFSETS: i16 = 2;
const OFFSET_FETCH: i16 = 9;
const DELETE_TOPICS: i16 = 20;
const CORRELATION: i32 = 0x7463_6b32;

/// Each partition of `topic` with the committed offset of `group` and the end offset, from the
/// broker at `addr`.
pub async fn group_lag(addr: &str, group: &str, topic: &str) -> Result<Vec<PartitionLag>, String> {
    let partitions = call(addr, METADATA, 4, &metadata_body(topic))
        .await
        .and_then(|b| parse_partitions(&b, topic))?;
    let ends = call(
        addr,
        LIST_OFFSETS,
        1,
        &list_offsets_body(topic, &partitions),
    )
    .await
    .and_then(|b| parse_list_offsets(&b))?;
    let committed = call(
        addr,
        OFFSET_FETCH,
        1,
        &offset_fetch_body(group, topic, &partitions),
    )
    .await
    .and_then(|b| parse_offset_fetch(&b))?;
    Ok(partitions
        .iter()
        .map(|&p| PartitionLag {
            partition: p,
            committed: committed
                .iter()
                .find(|(q, _)| *q == p)
                .map_or(-1, |(_, o)| *o),
            end: ends.iter().find(|(q, _)| *q == p).map_or(0, |(_, o)| *o),
        })
        .collect())
}

/// The cluster id the broker at `addr` reports, and the `host:port` of every broker it lists.
pub(crate) async fn cluster(addr: &str) -> Result<(Option<String>, Vec<String>), String> {
    let body = call(addr, METADATA, 4, &no_topics_body()).await?;
    let m = parse_metadata(&body)?;
    Ok((m.cluster, m.brokers))
}

/// Whether the broker at `addr` has a leader for each partition of `topic` (`None`: it does not
/// list the topic). A producer's first write to a topic created moments ago can find no leader.
pub async fn topic_led(addr: &str, topic: &str) -> Result<Option<bool>, String> {
    let body = call(addr, METADATA, 4, &metadata_body(topic)).await?;
    Ok(parse_metadata(&body)?
        .topics
        .iter()
        .find(|t| t.name == topic && t.error != 3)
        .map(|t| t.led))
}

/// The names of every topic on the broker at `addr` but its internal ones (`__consumer_offsets`).
pub async fn topics(addr: &str) -> Result<Vec<String>, String> {
    call(addr, METADATA, 4, &all_topics_body())
        .await
        .and_then(|b| parse_topics(&b))
}

/// Deletes `topics` on the broker at `addr`, waiting up to `timeout_ms` for the controller.
/// A topic already gone counts as deleted.
pub async fn delete_topics(addr: &str, topics: &[String], timeout_ms: i32) -> Result<(), String> {
    let body = call(
        addr,
        DELETE_TOPICS,
        1,
        &delete_topics_body(topics, timeout_ms),
    )
    .await?;
    parse_delete_topics(&body)
}

/// Sends one request and returns the response after its correlation id.
async fn call(addr: &str, api_key: i16, version: i16, body: &[u8]) -> Result<Vec<u8>, String> {
    let client_id = b"pubsub-tck";
    let mut frame = Vec::with_capacity(14 + client_id.len() + body.len());
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&CORRELATION.to_be_bytes());
    frame.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    frame.extend_from_slice(client_id);
    frame.extend_from_slice(body);
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.write_all(&(frame.len() as u32).to_be_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.write_all(&frame)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let len = u32::from_be_bytes(len) as usize;
    if !(4..=1 << 20).contains(&len) {
        return Err(format!("a response of {len} bytes"));
    }
    let mut resp = vec![0u8; len];
    s.read_exact(&mut resp)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let mut r = Reader(&resp);
    if r.i32()? != CORRELATION {
        return Err("a response to another request".to_owned());
    }
    Ok(r.0.to_vec())
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `Metadata` v4: one topic, no auto-creation.
fn metadata_body(topic: &str) -> Vec<u8> {
    let mut b = 1i32.to_be_bytes().to_vec();
    string(&mut b, topic);
    b.push(0);
    b
}

/// `Metadata` v4: no topic (an empty array), no auto-creation.
fn no_topics_body() -> Vec<u8> {
    let mut b = 0i32.to_be_bytes().to_vec();
    b.push(0);
    b
}

/// `Metadata` v4: every topic (a null array), no auto-creation.
fn all_topics_body() -> Vec<u8> {
    let mut b = (-1i32).to_be_bytes().to_vec();
    b.push(0);
    b
}

/// `DeleteTopics` v1: the names, then the timeout.
fn delete_topics_body(topics: &[String], timeout_ms: i32) -> Vec<u8> {
    let mut b = (topics.len() as i32).to_be_bytes().to_vec();
    for t in topics {
        string(&mut b, t);
    }
    b.extend_from_slice(&timeout_ms.to_be_bytes());
    b
}

/// `ListOffsets` v1: replica -1 (a client), the latest offset (-1) of every partition.
fn list_offsets_body(topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut b = (-1i32).to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    string(&mut b, topic);
    b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions {
        b.extend_from_slice(&p.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
    }
    b
}

/// `OffsetFetch` v1: the group's offsets of every partition of one topic.
fn offset_fetch_body(group: &str, topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, group);
    b.extend_from_slice(&1i32.to_be_bytes());
    string(&mut b, topic);
    b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions {
        b.extend_from_slice(&p.to_be_bytes());
    }
    b
}

/// One topic of a `Metadata` v4 response.
struct TopicMetadata {
    error: i16,
    name: String,
    internal: bool,
    partitions: Vec<i32>,
    /// Whether every partition has a leader and no error.
    led: bool,
}

/// A `Metadata` v4 response.
struct Metadata {
    /// The cluster id (nullable).
    cluster: Option<String>,
    /// Each broker's `host:port`.
    brokers: Vec<String>,
    topics: Vec<TopicMetadata>,
}

/// Reads a `Metadata` v4 response: throttle time, brokers `[node_id, host, port, rack]`,
/// cluster id, controller id, topics.
fn parse_metadata(body: &[u8]) -> Result<Metadata, String> {
    let mut r = Reader(body);
    let _throttle = r.i32()?;
    let mut brokers = Vec::new();
    for _ in 0..r.count()? {
        let _node = r.i32()?;
        let host = r.string()?.unwrap_or_default();
        let port = r.i32()?;
        let _rack = r.string()?;
        brokers.push(format!("{host}:{port}"));
    }
    let cluster = r.string()?;
    let _controller = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.count()? {
        let error = r.i16()?;
        let name = r.string()?.unwrap_or_default();
        let internal = r.take(1)?[0] != 0;
        let mut partitions = Vec::new();
        let mut led = true;
        for _ in 0..r.count()? {
            let partition_error = r.i16()?;
            partitions.push(r.i32()?);
            let leader = r.i32()?;
            led &= partition_error == 0 && leader >= 0;
            for _ in 0..r.count()? {
                r.i32()?;
            }
            for _ in 0..r.count()? {
                r.i32()?;
            }
        }
        topics.push(TopicMetadata {
            led: led && error == 0 && !partitions.is_empty(),
            error,
            name,
            internal,
            partitions,
        });
    }
    Ok(Metadata {
        cluster,
        brokers,
        topics,
    })
}

/// The partition indexes of `topic` in a `Metadata` v4 response.
fn parse_partitions(body: &[u8], topic: &str) -> Result<Vec<i32>, String> {
    let t = parse_metadata(body)?
        .topics
        .into_iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| format!("the broker does not list topic `{topic}`"))?;
    if t.error != 0 {
        return Err(format!("topic `{topic}`: Metadata error code {}", t.error));
    }
    Ok(t.partitions)
}

/// The names of the topics that are not internal in a `Metadata` v4 response.
fn parse_topics(body: &[u8]) -> Result<Vec<String>, String> {
    Ok(parse_metadata(body)?
        .topics
        .into_iter()
        .filter(|t| !t.internal)
        .map(|t| t.name)
        .collect())
}

/// Every topic of a `DeleteTopics` v1 response deleted, or already gone (3,
/// `UNKNOWN_TOPIC_OR_PARTITION`).
fn parse_delete_topics(body: &[u8]) -> Result<(), String> {
    let mut r = Reader(body);
    let _throttle = r.i32()?;
    for _ in 0..r.count()? {
        let name = r.string()?.unwrap_or_default();
        let error = r.i16()?;
        if error != 0 && error != 3 {
            return Err(format!("topic `{name}`: DeleteTopics error code {error}"));
        }
    }
    Ok(())
}

/// `(partition, offset)` pairs of a `ListOffsets` v1 response.
fn parse_list_offsets(body: &[u8]) -> Result<Vec<(i32, i64)>, String> {
    partition_offsets(body, "ListOffsets", |r| {
        let error = r.i16()?;
        let _timestamp = r.i64()?;
        Ok((r.i64()?, error))
    })
}

/// `(partition, committed offset)` pairs of an `OffsetFetch` v1 response.
fn parse_offset_fetch(body: &[u8]) -> Result<Vec<(i32, i64)>, String> {
    partition_offsets(body, "OffsetFetch", |r| {
        let offset = r.i64()?;
        let _metadata = r.string()?;
        Ok((offset, r.i16()?))
    })
}

/// `(partition, offset)` pairs of a response that lists topics, each with its partitions: a
/// partition's index, then what `entry` reads of it (its offset and error code). A partition
/// with an error fails the whole response, named after `api`.
fn partition_offsets(
    body: &[u8],
    api: &str,
    entry: impl Fn(&mut Reader<'_>) -> Result<(i64, i16), String>,
) -> Result<Vec<(i32, i64)>, String> {
    let mut r = Reader(body);
    let mut out = Vec::new();
    for _ in 0..r.count()? {
        let _name = r.string()?;
        for _ in 0..r.count()? {
            let partition = r.i32()?;
            let (offset, error) = entry(&mut r)?;
            if error != 0 {
                return Err(format!("partition {partition}: {api} error code {error}"));
            }
            out.push((partition, offset));
        }
    }
    Ok(out)
}

/// A cursor over a Kafka response.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("a truncated Kafka response".to_owned());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// An array length, bounded so a corrupt length cannot run a loop for long.
    fn count(&mut self) -> Result<i32, String> {
        Ok(self.i32()?.clamp(0, 65_536))
    }

    /// A nullable string: int16 length (-1 is null), then the bytes.
    fn string(&mut self) -> Result<Option<String>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Field::{I16, I32, I64, S, U8};

    /// One field of a Kafka message, as the tests lay messages out.
    #[derive(Clone, Copy)]
    enum Field<'a> {
        U8(u8),
        I16(i16),
        I32(i32),
        I64(i64),
        /// A length-prefixed string.
        S(&'a str),
    }

    /// `fields` in wire form, one after the other.
    fn wire(fields: &[Field]) -> Vec<u8> {
        let mut b = Vec::new();
        for f in fields {
            match *f {
                U8(v) => b.push(v),
                I16(v) => b.extend_from_slice(&v.to_be_bytes()),
                I32(v) => b.extend_from_slice(&v.to_be_bytes()),
                I64(v) => b.extend_from_slice(&v.to_be_bytes()),
                S(v) => string(&mut b, v),
            }
        }
        b
    }

    #[test]
    fn metadata_partitions() {
        let mut b = wire(&[
            I32(0), // throttle
            I32(1), // one broker
            I32(1),
            S("127.0.0.1"),
            I32(9092),
            I16(-1),
            S("cluster"),
            I32(1), // controller
            I32(1), // one topic
            I16(0),
            S("orders"),
            U8(0),
            I32(2), // two partitions
        ]);
        for p in [0i32, 1] {
            b.extend(wire(&[
                I16(0),
                I32(p),
                I32(1),
                I32(1),
                I32(1),
                I32(1),
                I32(1),
            ]));
        }
        assert_eq!(parse_partitions(&b, "orders"), Ok(vec![0, 1]));
        assert!(parse_metadata(&b).unwrap().topics[0].led);
        assert!(parse_partitions(&b, "other").is_err());
        assert!(parse_partitions(&b[..b.len() - 3], "orders").is_err());
        // The last partition without a leader (-1): the topic is not led yet.
        let n = b.len();
        b[n - 20..n - 16].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(!parse_metadata(&b).unwrap().topics[0].led);
    }

    #[test]
    fn metadata_cluster_and_brokers() {
        let b = wire(&[
            I32(0), // throttle
            I32(1), // one broker
            I32(7),
            S("127.0.0.1"),
            I32(9092),
            I16(-1), // no rack
            S("tck-1"),
            I32(7), // controller
            I32(0), // no topics
        ]);
        let m = parse_metadata(&b).unwrap();
        assert_eq!(m.cluster.as_deref(), Some("tck-1"));
        assert_eq!(m.brokers, ["127.0.0.1:9092"]);
        assert!(parse_metadata(&b[..b.len() - 6]).is_err());
        assert_eq!(no_topics_body(), [0, 0, 0, 0, 0]);
    }

    #[test]
    fn topics_and_their_deletion() {
        let mut b = wire(&[
            I32(0), // throttle
            I32(0), // no brokers
            S("cluster"),
            I32(1), // controller
            I32(2), // two topics
        ]);
        for (name, internal) in [("__consumer_offsets", 1u8), ("orders", 0)] {
            b.extend(wire(&[I16(0), S(name), U8(internal), I32(0)])); // no partitions
        }
        assert_eq!(parse_topics(&b), Ok(vec!["orders".to_owned()]));
        assert!(parse_topics(&b[..b.len() - 2]).is_err());

        assert_eq!(
            delete_topics_body(&["t".to_owned()], 5),
            [0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 5]
        );
        let reply = |code: i16| wire(&[I32(0), I32(1), S("t"), I16(code)]);
        assert_eq!(parse_delete_topics(&reply(0)), Ok(()));
        assert_eq!(parse_delete_topics(&reply(3)), Ok(()));
        assert!(parse_delete_topics(&reply(41)).is_err());
    }

    #[test]
    fn offsets() {
        let b = wire(&[I32(1), S("orders"), I32(1), I32(0), I16(0), I64(-1), I64(3)]);
        assert_eq!(parse_list_offsets(&b), Ok(vec![(0, 3)]));

        let f = wire(&[I32(1), S("orders"), I32(1), I32(0), I64(2), I16(-1), I16(0)]);
        assert_eq!(parse_offset_fetch(&f), Ok(vec![(0, 2)]));
        let lag = PartitionLag {
            partition: 0,
            committed: 2,
            end: 3,
        };
        assert_eq!(lag.uncommitted(), 1);
    }

    #[test]
    fn request_bodies() {
        assert_eq!(
            offset_fetch_body("g", "t", &[0]),
            [0, 1, b'g', 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 0]
        );
        let lo = list_offsets_body("t", &[0]);
        assert_eq!(&lo[..4], &(-1i32).to_be_bytes());
        assert_eq!(&lo[lo.len() - 8..], &(-1i64).to_be_bytes());
    }
}

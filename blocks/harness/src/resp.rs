//! Just enough of the Redis protocol (RESP2 and RESP3) for the harness: framing a reply or
//! command in a byte stream (the `never-ack` mutant's proxy forwards whole values), decoding a
//! reply, and sending one command to a server (the checks look at a consumer group's pending
//! entries).

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The largest value the harness reads: 16 MiB.
const MAX_VALUE: usize = 16 << 20;

/// A decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// `+OK` and other simple strings (also RESP3 doubles, big numbers and booleans, as text).
    Simple(String),
    /// `-ERR ...` (also RESP3 blob errors).
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$5\r\nhello`, or null.
    Bulk(Option<Vec<u8>>),
    /// `*N`, RESP3 sets and pushes; a RESP3 map as its keys and values in turn. `None` is null.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The text of a simple or bulk string.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A byte stream that is not RESP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not RESP at byte {at}: {problem}")]
pub struct RespError {
    /// Offset of the problem in the buffer.
    pub at: usize,
    /// What is wrong.
    pub problem: String,
}

fn err(at: usize, problem: impl Into<String>) -> RespError {
    RespError {
        at,
        problem: problem.into(),
    }
}

/// The line starting at `at` (without its CRLF) and the offset after it; `None` if incomplete.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn number(text: &[u8], at: usize) -> Result<i64, RespError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            err(
                at,
                format!("bad length {:?}", String::from_utf8_lossy(text)),
            )
        })
}

/// Decodes one value at `at`: `Ok(None)` while the buffer holds only part of it, else the
/// value and the offset after it. Inline commands (a bare line, as `redis-cli` sends) are not
/// RESP values and are an error here.
pub fn decode(buf: &[u8], at: usize) -> Result<Option<(Resp, usize)>, RespError> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((head, after)) = line(buf, at + 1) else {
        if buf.len() - at > MAX_VALUE {
            return Err(err(at, "header line longer than 16 MiB"));
        }
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(head).into_owned();
    match kind {
        b'+' | b',' | b'(' | b'#' => Ok(Some((Resp::Simple(text()), after))),
        b'-' => Ok(Some((Resp::Error(text()), after))),
        b':' => Ok(Some((Resp::Int(number(head, at)?), after))),
        b'_' => Ok(Some((Resp::Bulk(None), after))),
        b'$' | b'!' | b'=' => {
            let n = number(head, at)?;
            if n < 0 {
                return Ok(Some((Resp::Bulk(None), after)));
            }
            let n = usize::try_from(n).map_err(|_| err(at, "length out of range"))?;
            if n > MAX_VALUE {
                return Err(err(at, format!("a {n}-byte string is over 16 MiB")));
            }
            let end = after + n;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(err(end, "string not followed by CRLF"));
            }
            let bytes = buf[after..end].to_vec();
            let value = if kind == b'!' {
                Resp::Error(String::from_utf8_lossy(&bytes).into_owned())
            } else {
                Resp::Bulk(Some(bytes))
            };
            Ok(Some((value, end + 2)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number(head, at)?;
            if n < 0 {
                return Ok(Some((Resp::Array(None), after)));
            }
            let n = usize::try_from(n).map_err(|_| err(at, "count out of range"))?;
            // A map's and an attribute's entries are key-value pairs.
            let n = if matches!(kind, b'%' | b'|') {
                n.checked_mul(2)
                    .ok_or_else(|| err(at, "count out of range"))?
            } else {
                n
            };
            if n > MAX_VALUE {
                return Err(err(at, format!("{n} elements is too many")));
            }
            let mut items = Vec::new();
            let mut pos = after;
            for _ in 0..n {
                match decode(buf, pos)? {
                    Some((v, next)) => {
                        items.push(v);
                        pos = next;
                    }
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // Attributes annotate the value that follows them; the harness keeps the value.
                return decode(buf, pos);
            }
            Ok(Some((Resp::Array(Some(items)), pos)))
        }
        other => Err(err(at, format!("unknown type byte {:?}", other as char))),
    }
}

/// Encodes a command as an array of bulk strings.
pub fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The command name of an encoded command (an array of bulk strings), upper-cased, and its
/// number of arguments after the name.
pub fn command_name(value: &Resp) -> Option<(String, usize)> {
    let Resp::Array(Some(items)) = value else {
        return None;
    };
    let name = items.first()?.as_text()?.to_ascii_uppercase();
    Some((name, items.len() - 1))
}

/// Sends one command to the Redis at `addr` on a new connection and returns its reply.
pub async fn command(addr: &str, args: &[&str]) -> Result<Resp, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to Redis at {addr}: {e}"))?;
    s.write_all(&encode_command(args))
        .await
        .map_err(|e| format!("write to Redis at {addr}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((reply, _)) = decode(&buf, 0).map_err(|e| format!("Redis at {addr}: {e}"))? {
            return Ok(reply);
        }
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read from Redis at {addr}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "Redis at {addr} closed the connection mid-reply to {}",
                args.first().copied().unwrap_or_default()
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `XINFO GROUPS stream`: each consumer group's name and its count of pending (read, never
/// acknowledged) entries. A stream that does not exist has no groups.
pub async fn pending_per_group(addr: &str, stream: &str) -> Result<Vec<(String, i64)>, String> {
    let reply = command(addr, &["XINFO", "GROUPS", stream]).await?;
    let groups = match reply {
        Resp::Array(Some(groups)) => groups,
        Resp::Error(e) if e.contains("no such key") => return Ok(Vec::new()),
        other => return Err(format!("XINFO GROUPS {stream} answered {other:?}")),
    };
    let mut out = Vec::new();
    for g in groups {
        let Resp::Array(Some(fields)) = g else {
            return Err(format!(
                "XINFO GROUPS {stream}: a group is not a list: {g:?}"
            ));
        };
        let mut name = None;
        let mut pending = None;
        for pair in fields.chunks(2) {
            match (pair[0].as_text().as_deref(), pair.get(1)) {
                (Some("name"), Some(v)) => name = v.as_text(),
                (Some("pending"), Some(Resp::Int(n))) => pending = Some(*n),
                _ => {}
            }
        }
        match (name, pending) {
            (Some(n), Some(p)) => out.push((n, p)),
            _ => {
                return Err(format!(
                    "XINFO GROUPS {stream}: no name or pending in {fields:?}"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Resp {
        let (v, end) = decode(bytes, 0).unwrap().unwrap();
        assert_eq!(end, bytes.len(), "{v:?} ends at {end}");
        v
    }

    #[test]
    fn decodes_resp2_and_resp3_values() {
        assert_eq!(whole(b"+OK\r\n"), Resp::Simple("OK".into()));
        assert_eq!(whole(b"-ERR no\r\n"), Resp::Error("ERR no".into()));
        assert_eq!(whole(b":-3\r\n"), Resp::Int(-3));
        assert_eq!(whole(b"$-1\r\n"), Resp::Bulk(None));
        assert_eq!(whole(b"_\r\n"), Resp::Bulk(None));
        assert_eq!(
            whole(b"$4\r\na\r\nb\r\n"),
            Resp::Bulk(Some(b"a\r\nb".to_vec()))
        );
        assert_eq!(
            whole(b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n"),
            Resp::Array(Some(vec![
                Resp::Int(1),
                Resp::Array(Some(vec![Resp::Bulk(Some(b"x".to_vec()))]))
            ]))
        );
        assert_eq!(
            whole(b"%1\r\n+k\r\n:2\r\n"),
            Resp::Array(Some(vec![Resp::Simple("k".into()), Resp::Int(2)]))
        );
        assert_eq!(whole(b"|1\r\n+a\r\n+b\r\n:7\r\n"), Resp::Int(7));
        assert_eq!(whole(b"*-1\r\n"), Resp::Array(None));
    }

    #[test]
    fn partial_values_ask_for_more_and_garbage_is_an_error() {
        for cut in [
            b"".as_slice(),
            b"*2\r\n:1\r\n",
            b"$5\r\nab",
            b"$5\r\nabcde",
            b":1",
        ] {
            assert_eq!(decode(cut, 0), Ok(None), "{cut:?}");
        }
        assert!(decode(b"?what\r\n", 0).is_err());
        assert!(decode(b"$x\r\n", 0).is_err());
        assert!(decode(b"$1\r\nab\r\n", 0).is_err());
        assert!(decode(b"$99999999999\r\n", 0).is_err());
    }

    #[test]
    fn commands_round_trip() {
        let cmd = encode_command(&["XACK", "orders", "app", "1-0", "2-0"]);
        let v = whole(&cmd);
        assert_eq!(command_name(&v), Some(("XACK".to_owned(), 4)));
        assert_eq!(command_name(&Resp::Int(1)), None);
    }
}

//! A raw HTTP/1.1 client: writes a request byte for byte and reads one answer.
//!
//! The robustness profile sends what a client library would refuse to build (paths with raw
//! bytes, header values that are not UTF-8, bodies around the size limit), so the request is
//! written as given. The connection is kept alive between requests and opened again when the
//! target closed it; the answer is framed by `Content-Length`, chunked encoding or the close of
//! the connection, and read up to a cap.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How much of an answer's body is kept (the rest is read and dropped).
const KEEP_BODY: usize = 64 * 1024;

/// How long a second attempt waits for an answer to a request's head before it sends the
/// body ([`RawHttp::send`]).
const EARLY_ANSWER: Duration = Duration::from_millis(300);

/// The largest head (status line and headers) accepted.
const MAX_HEAD: usize = 256 * 1024;

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The start of the body (at most 64 KiB).
    pub body: Vec<u8>,
}

/// Why no answer was read.
#[derive(Debug, thiserror::Error)]
pub enum RawHttpError {
    /// The connection could not be opened.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke (reset, or closed before a whole answer).
    #[error("the connection broke before a whole answer arrived")]
    Broken(#[source] std::io::Error),
    /// The connection was closed before a whole answer.
    #[error("the connection was closed before a whole answer arrived ({read} bytes of it read)")]
    Closed {
        /// Bytes of the answer read before the close.
        read: usize,
    },
    /// No whole answer within the deadline.
    #[error("no whole answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not HTTP/1.1.
    #[error("the answer is not HTTP/1.x: {0}")]
    Malformed(String),
}

/// A kept-alive connection to one address.
#[derive(Debug)]
pub struct RawHttp {
    addr: String,
    conn: Option<TcpStream>,
    deadline: Duration,
}

impl RawHttp {
    /// A client of `addr` (`host:port`) waiting at most `deadline` for each whole answer.
    #[must_use]
    pub fn new(addr: impl Into<String>, deadline: Duration) -> RawHttp {
        RawHttp {
            addr: addr.into(),
            conn: None,
            deadline,
        }
    }

    /// Sends `request` (a whole HTTP/1.1 request, head and body) and reads its answer
    /// (`head`: the request is a `HEAD`, whose answer has no body whatever its headers say). A
    /// kept connection that the target closed since the last answer is opened again once,
    /// before anything of the request was answered; a connection closed or reset without an
    /// answer is tried once more, head first (see [`RawHttp::head_first`]).
    pub async fn send(&mut self, request: &[u8], head: bool) -> Result<RawResponse, RawHttpError> {
        let deadline = self.deadline;
        match tokio::time::timeout(deadline, self.send_inner(request, head)).await {
            Ok(result) => result,
            Err(_) => {
                self.conn = None;
                Err(RawHttpError::Timeout(deadline))
            }
        }
    }

    async fn send_inner(
        &mut self,
        request: &[u8],
        head: bool,
    ) -> Result<RawResponse, RawHttpError> {
        let reused = self.conn.is_some();
        let first = match self.exchange(request, head).await {
            // A kept connection the target had closed fails at once with nothing read: the
            // request never reached the target, so it is sent again on a new connection.
            Err(RawHttpError::Closed { read: 0 } | RawHttpError::Broken(_)) if reused => {
                self.conn = None;
                self.exchange(request, head).await
            }
            other => other,
        };
        match first {
            Err(RawHttpError::Closed { .. } | RawHttpError::Broken(_)) => {
                self.conn = None;
                self.head_first(request, head).await
            }
            other => other,
        }
    }

    /// Sends `request` again on a new connection, its head first and its body only when no
    /// answer came within [`EARLY_ANSWER`]. A target may refuse a request from its head (a
    /// malformed request line, an unknown route) and close the connection without reading
    /// the body; the kernel then resets the connection, and an answer not yet read is lost
    /// with it. Without the body in flight, the refusal arrives whole.
    async fn head_first(
        &mut self,
        request: &[u8],
        head: bool,
    ) -> Result<RawResponse, RawHttpError> {
        let split = request
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(request.len(), |i| i + 4);
        let (head_bytes, body) = request.split_at(split);
        let mut conn =
            TcpStream::connect(&self.addr)
                .await
                .map_err(|source| RawHttpError::Connect {
                    addr: self.addr.clone(),
                    source,
                })?;
        conn.set_nodelay(true).map_err(RawHttpError::Broken)?;
        conn.write_all(head_bytes)
            .await
            .map_err(RawHttpError::Broken)?;
        let early = tokio::time::timeout(EARLY_ANSWER, conn.readable()).await;
        let (mut rd, mut wr) = conn.split();
        let (response, _) = if early.is_ok() || body.is_empty() {
            read_response(&mut rd, head).await?
        } else {
            let (_, read) = tokio::join!(wr.write_all(body), read_response(&mut rd, head));
            read?
        };
        Ok(response)
    }

    async fn exchange(&mut self, request: &[u8], head: bool) -> Result<RawResponse, RawHttpError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let c = TcpStream::connect(&self.addr).await.map_err(|source| {
                    RawHttpError::Connect {
                        addr: self.addr.clone(),
                        source,
                    }
                })?;
                c.set_nodelay(true).map_err(RawHttpError::Broken)?;
                c
            }
        };
        // The answer is read while the request is written: a target may answer before it has
        // read a large body (a 413, a route that ignores bodies) and close the connection, and
        // the answer must not be lost to the failed write.
        let (mut rd, mut wr) = conn.split();
        let (written, read) = tokio::join!(wr.write_all(request), read_response(&mut rd, head));
        let (response, keep) = read?;
        if keep && written.is_ok() {
            self.conn = Some(conn);
        }
        Ok(response)
    }
}

/// Reads one answer; the flag tells whether the connection can carry another request.
async fn read_response(
    conn: &mut (impl AsyncRead + Unpin),
    head: bool,
) -> Result<(RawResponse, bool), RawHttpError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // 1xx answers (100 Continue) come before the real one: skip them.
        let (status, head_len, framing, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = parsed.code.unwrap_or(0);
                    let (framing, close) = framing_of(parsed.headers, parsed.version)?;
                    break (status, n, framing, close);
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() > MAX_HEAD {
                        return Err(RawHttpError::Malformed(format!(
                            "a head longer than {MAX_HEAD} bytes"
                        )));
                    }
                    read_more(conn, &mut buf).await?;
                }
                Err(e) => {
                    return Err(RawHttpError::Malformed(format!(
                        "{e} in {:?}",
                        String::from_utf8_lossy(&buf[..buf.len().min(200)])
                    )));
                }
            }
        };
        buf.drain(..head_len);
        if (100..200).contains(&status) {
            continue;
        }
        let mut body = Vec::new();
        // Answers to HEAD, 204 and 304 end with their head.
        let framing = if head || status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            framing
        };
        let keep = match framing {
            Framing::Length(n) => {
                read_body(conn, &mut buf, n, &mut body).await?;
                !close
            }
            Framing::Chunked => {
                read_chunked(conn, &mut buf, &mut body).await?;
                !close
            }
            Framing::UntilClose => {
                keep_start(&mut body, &buf);
                loop {
                    let mut chunk = [0u8; 16 * 1024];
                    // A body framed by the close may end in a reset rather than a FIN: a server
                    // that refused the request from its head (Go's 431) closes with some of the
                    // request unread, and the kernel resets. The answer is the head.
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => keep_start(&mut body, &chunk[..n]),
                    }
                }
                false
            }
        };
        return Ok((RawResponse { status, body }, keep));
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing_of(
    headers: &[httparse::Header<'_>],
    version: Option<u8>,
) -> Result<(Framing, bool), RawHttpError> {
    let mut framing = Framing::UntilClose;
    let mut close = version == Some(0);
    for h in headers {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.trim().parse().map_err(|_| {
                RawHttpError::Malformed(format!("Content-Length {value:?} is not a number"))
            })?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        }
    }
    Ok((framing, close))
}

async fn read_more(
    conn: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Result<(), RawHttpError> {
    let mut chunk = [0u8; 16 * 1024];
    let n = conn.read(&mut chunk).await.map_err(RawHttpError::Broken)?;
    if n == 0 {
        return Err(RawHttpError::Closed { read: buf.len() });
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn keep_start(body: &mut Vec<u8>, bytes: &[u8]) {
    let room = KEEP_BODY.saturating_sub(body.len());
    body.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

async fn read_body(
    conn: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    mut left: usize,
    body: &mut Vec<u8>,
) -> Result<(), RawHttpError> {
    loop {
        let take = left.min(buf.len());
        keep_start(body, &buf[..take]);
        buf.drain(..take);
        left -= take;
        if left == 0 {
            return Ok(());
        }
        read_more(conn, buf).await?;
    }
}

async fn read_chunked(
    conn: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> Result<(), RawHttpError> {
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > MAX_HEAD {
                return Err(RawHttpError::Malformed("a chunk size line too long".into()));
            }
            read_more(conn, buf).await?;
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| RawHttpError::Malformed(format!("chunk size {line:?}")))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Ok(());
                    }
                    continue;
                }
                read_more(conn, buf).await?;
            }
        }
        read_body(conn, buf, size, body).await?;
        while buf.len() < 2 {
            read_more(conn, buf).await?;
        }
        buf.drain(..2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server answering every request on one connection with the given bytes.
    async fn serve(answers: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            for a in answers {
                let mut req = [0u8; 1024];
                let _ = conn.read(&mut req).await.unwrap();
                conn.write_all(a).await.unwrap();
            }
        });
        addr
    }

    /// A server that, on every connection, reads once (at most `read` bytes), writes `answer`
    /// and closes.
    async fn serve_once_each(read: usize, answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut req = vec![0u8; read];
                let _ = conn.read(&mut req).await;
                let _ = conn.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_chunked_and_continue() {
        let addr = serve(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        ])
        .await;
        let mut c = RawHttp::new(addr, Duration::from_secs(5));
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(c.send(req, false).await.unwrap().status, 204);
        let r = c.send(req, false).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        let r = c.send(req, false).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"hi"[..]));
    }

    #[tokio::test]
    async fn a_close_mid_answer_is_an_error() {
        let addr = serve_once_each(1024, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").await;
        let mut c = RawHttp::new(addr, Duration::from_secs(5));
        let e = c.send(b"GET / HTTP/1.1\r\n\r\n", false).await.unwrap_err();
        assert!(matches!(e, RawHttpError::Closed { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn an_answer_to_the_head_survives_a_close_with_the_body_unread() {
        // Reads only the request line, answers, closes: the body stays unread.
        let addr = serve_once_each(
            16,
            b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let mut req = b"POST /? = HTTP/1.1\r\nContent-Length: 200000\r\n\r\n".to_vec();
        req.resize(req.len() + 200_000, b'x');
        let mut c = RawHttp::new(addr, Duration::from_secs(5));
        assert_eq!(c.send(&req, false).await.unwrap().status, 400);
    }

    #[tokio::test]
    async fn a_reset_after_the_body_is_no_answer() {
        // Reads everything, then closes without a word.
        let addr = serve_once_each(64 * 1024, b"").await;
        let mut c = RawHttp::new(addr, Duration::from_secs(5));
        let e = c
            .send(b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", false)
            .await;
        assert!(
            matches!(
                e,
                Err(RawHttpError::Closed { .. } | RawHttpError::Broken(_))
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn no_answer_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let _keep = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(conn);
        });
        let mut c = RawHttp::new(addr, Duration::from_millis(200));
        let e = c.send(b"GET / HTTP/1.1\r\n\r\n", false).await.unwrap_err();
        assert!(matches!(e, RawHttpError::Timeout(_)), "{e:?}");
    }
}

//! One proxied connection: the dial to the upstream, and two links that carry bytes through
//! the current toxic chain of their stream (upstream = client → server, downstream =
//! server → client).
//!
//! Each link has a reader that stamps every chunk with its arrival time and queues it, and a
//! pipeline that takes chunks in order and pushes each one depth-first through the chain
//! (a toxic may hold, drop, split or pace a chunk, or end the connection). The EOF is a
//! frame like any other, so data held by a toxic is delivered before the close. Latency is
//! measured from arrival, so a stream of chunks is delayed as a whole (pipelined), not
//! chunk after chunk. The chain comes from a `watch` channel and is re-read between chunks
//! and during every wait, so toxics apply to live connections as soon as they change.
//!
//! Per link and per toxic, a draw against the toxicity decides whether the toxic acts
//! (when the toxic starts on the link, and again when it is updated). Every random choice
//! of a link comes from its own generator, seeded from the server seed, the proxy name,
//! the connection's accept order and the stream, so a run with the same seed and the same
//! sequence of operations replays.
//!
//! Not here: accepting, the connection registry, and closing connections on disable
//! (`proxy`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::toxics::{Chain, Kind, Stream, ToxicEntry};

/// Bytes asked of the socket per read, as Go's `io.Copy`.
const READ_BUFFER: usize = 32 * 1024;
/// Chunks a link queues between its reader and its pipeline. The reader must keep reading
/// (and stamping) while a toxic holds a chunk, or latency would become cumulative; this is
/// the Go latency toxic's buffer size.
const LINK_BUFFER: usize = 1024;
/// How long a dial to the upstream may take before the client is closed.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// A wait that would overflow the clock is cut to this.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a link's reader hands to its pipeline.
#[derive(Debug)]
enum Frame {
    /// Bytes, stamped with when they were read (a latency toxic moves the stamp on).
    Data { bytes: Bytes, at: Instant },
    /// The source closed (or failed, which the Go server treats the same way).
    Eof,
}

/// Why a connection ends before both links delivered their EOF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Close both sockets (FIN).
    Close,
    /// Close both sockets with `SO_LINGER` 0 (RST).
    Reset,
}

/// How a toxic's wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waited {
    /// The deadline passed.
    Elapsed,
    /// The toxic was removed, or redrawn inactive, meanwhile: the frame goes on at once.
    Released,
}

/// What a connection needs from its proxy.
#[derive(Debug)]
pub(crate) struct ConnectionSpec {
    /// Proxy name, for logs.
    pub(crate) proxy: Arc<str>,
    /// Where to dial.
    pub(crate) upstream: Arc<str>,
    /// Chains of the upstream and downstream streams.
    pub(crate) chains: [watch::Receiver<Chain>; 2],
    /// Seeds of the upstream and downstream links.
    pub(crate) seeds: [u64; 2],
}

/// Serves one accepted client until both directions closed or a toxic ended the connection.
/// Dropping the future closes both sockets, which is how a proxy closes its connections.
pub(crate) async fn serve_connection(client: TcpStream, spec: ConnectionSpec) {
    let upstream = match tokio::time::timeout(
        DIAL_TIMEOUT,
        TcpStream::connect(spec.upstream.as_ref()),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            // The Go server accepts, then closes the client: it sees EOF, not a refusal.
            tracing::warn!(proxy = %spec.proxy, upstream = %spec.upstream, %error, "cannot connect to the upstream; closing the client");
            return;
        }
        Err(_) => {
            tracing::warn!(proxy = %spec.proxy, upstream = %spec.upstream, "connecting to the upstream timed out; closing the client");
            return;
        }
    };
    // Toxics decide the pacing; Nagle's algorithm would only blur it.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, client_write) = client.into_split();
    let (mut upstream_read, upstream_write) = upstream.into_split();
    let (up_tx, up_rx) = mpsc::channel(LINK_BUFFER);
    let (down_tx, down_rx) = mpsc::channel(LINK_BUFFER);
    let [up_chain, down_chain] = spec.chains;
    let mut up = Link::new(up_rx, up_chain, upstream_write, spec.seeds[0]);
    let mut down = Link::new(down_rx, down_chain, client_write, spec.seeds[1]);

    let ending = {
        let read_up = read(&mut client_read, up_tx);
        let read_down = read(&mut upstream_read, down_tx);
        let run_up = up.run();
        let run_down = down.run();
        tokio::pin!(read_up, read_down, run_up, run_down);
        let (mut read_up_done, mut read_down_done) = (false, false);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            // Both links ended with their EOF delivered: a normal close.
            if up_done && down_done {
                break None;
            }
            tokio::select! {
                () = &mut read_up, if !read_up_done => read_up_done = true,
                () = &mut read_down, if !read_down_done => read_down_done = true,
                outcome = &mut run_up, if !up_done => match outcome {
                    Ok(()) => up_done = true,
                    Err(stop) => break Some(stop),
                },
                outcome = &mut run_down, if !down_done => match outcome {
                    Ok(()) => down_done = true,
                    Err(stop) => break Some(stop),
                },
            }
        }
    };
    if ending == Some(Stop::Reset) {
        // Linger 0 turns the close into a RST; reuniting first keeps the write halves from
        // sending a FIN of their own on drop.
        for stream in [
            client_read.reunite(down.dest),
            upstream_read.reunite(up.dest),
        ]
        .into_iter()
        .flatten()
        {
            let _ = stream.set_zero_linger();
        }
    }
    tracing::debug!(proxy = %spec.proxy, ?ending, "connection closed");
}

/// Reads `source` into `chunks` until EOF or an error, then queues the EOF.
async fn read(source: &mut OwnedReadHalf, chunks: mpsc::Sender<Frame>) {
    let mut buffer = BytesMut::with_capacity(READ_BUFFER);
    loop {
        buffer.reserve(READ_BUFFER);
        match source.read_buf(&mut buffer).await {
            Ok(0) => break,
            Ok(_) => {
                let frame = Frame::Data {
                    at: Instant::now(),
                    bytes: buffer.split().freeze(),
                };
                if chunks.send(frame).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%error, "source failed; treated as EOF");
                break;
            }
        }
    }
    let _ = chunks.send(Frame::Eof).await;
}

/// Per link and per toxic state.
#[derive(Debug, Default)]
struct ToxicState {
    /// The toxic version the state was drawn for.
    version: u64,
    /// Whether the toxicity draw made the toxic act on this link.
    active: bool,
    /// `limit_data`: bytes passed so far (kept across updates).
    sent: u64,
    /// `timeout` above 0: when the connection closes.
    close_at: Option<Instant>,
    /// `timeout`: removing it closes the connection, as the Go server's cleanup does.
    closes_on_removal: bool,
    /// `bandwidth`: when the last piece was due, so the rate holds across chunks.
    next_free: Option<Instant>,
}

impl ToxicState {
    fn start(&mut self, toxic: &ToxicEntry, rng: &mut fastrand::Rng, now: Instant) {
        self.version = toxic.version;
        self.active = draw(rng, toxic.toxicity);
        self.close_at = None;
        self.closes_on_removal = false;
        if let (true, Kind::Timeout { timeout }) = (self.active, &toxic.kind) {
            self.closes_on_removal = true;
            if *timeout > 0 {
                self.close_at = Some(later(now, millis(*timeout)));
            }
        }
    }
}

/// One direction of a connection.
struct Link {
    input: mpsc::Receiver<Frame>,
    chain_rx: watch::Receiver<Chain>,
    /// False once the proxy dropped the chain's sender (it is being deleted).
    chain_open: bool,
    chain: Chain,
    states: HashMap<u64, ToxicState>,
    dest: OwnedWriteHalf,
    rng: fastrand::Rng,
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<(), Stop>> + Send + 'a>>;

impl Link {
    fn new(
        input: mpsc::Receiver<Frame>,
        chain_rx: watch::Receiver<Chain>,
        dest: OwnedWriteHalf,
        seed: u64,
    ) -> Link {
        let chain = chain_rx.borrow().clone();
        Link {
            input,
            chain_rx,
            chain_open: true,
            chain,
            states: HashMap::new(),
            dest,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Carries frames until the EOF is delivered (`Ok`) or a toxic ends the connection.
    async fn run(&mut self) -> Result<(), Stop> {
        self.sync()?;
        loop {
            let close_at = self.next_close();
            let frame = tokio::select! {
                // Chain changes first: a chunk that arrived after a change must see it.
                biased;
                changed = self.chain_rx.changed(), if self.chain_open => {
                    match changed {
                        Ok(()) => self.sync()?,
                        Err(_) => self.chain_open = false,
                    }
                    continue;
                }
                () = sleep_opt(close_at) => return Err(Stop::Close),
                frame = self.input.recv() => frame.unwrap_or(Frame::Eof),
            };
            let eof = matches!(frame, Frame::Eof);
            let chain = Arc::clone(&self.chain);
            self.push(chain, 0, frame).await?;
            if eof {
                return Ok(());
            }
        }
    }

    /// Brings the per-toxic states in line with the latest chain. Fails when an active
    /// `timeout` toxic was removed.
    fn sync(&mut self) -> Result<(), Stop> {
        let chain = self.chain_rx.borrow_and_update().clone();
        let now = Instant::now();
        let mut close = false;
        self.states.retain(|id, state| {
            let keep = chain.iter().any(|t| t.id == *id);
            close |= !keep && state.closes_on_removal;
            keep
        });
        for toxic in chain.iter() {
            match self.states.get_mut(&toxic.id) {
                Some(state) if state.version == toxic.version => {}
                Some(state) => state.start(toxic, &mut self.rng, now),
                None => {
                    let mut state = ToxicState::default();
                    state.start(toxic, &mut self.rng, now);
                    self.states.insert(toxic.id, state);
                }
            }
        }
        self.chain = chain;
        if close { Err(Stop::Close) } else { Ok(()) }
    }

    fn next_close(&self) -> Option<Instant> {
        self.states.values().filter_map(|s| s.close_at).min()
    }

    /// The toxic `id` as it is now, if it is still there and acts on this link.
    fn active(&self, id: u64) -> Option<Arc<ToxicEntry>> {
        if !self.states.get(&id).is_some_and(|s| s.active) {
            return None;
        }
        self.chain.iter().find(|t| t.id == id).cloned()
    }

    /// Waits until `due` on behalf of toxic `id`, following chain changes meanwhile.
    async fn wait(&mut self, due: Instant, id: u64) -> Result<Waited, Stop> {
        loop {
            let close_at = self.next_close();
            tokio::select! {
                biased;
                () = sleep_until(due) => return Ok(Waited::Elapsed),
                changed = self.chain_rx.changed(), if self.chain_open => {
                    match changed {
                        Ok(()) => self.sync()?,
                        Err(_) => self.chain_open = false,
                    }
                    if self.active(id).is_none() {
                        return Ok(Waited::Released);
                    }
                }
                () = sleep_opt(close_at) => return Err(Stop::Close),
            }
        }
    }

    /// Pushes `frame` through toxic `idx` of `chain` and everything after it. The chain is
    /// the one the frame entered with; each toxic is looked up again by id, so a removed
    /// toxic is skipped and an updated one acts with its new attributes.
    fn push(&mut self, chain: Chain, idx: usize, frame: Frame) -> Step<'_> {
        Box::pin(async move {
            let Some(id) = chain.get(idx).map(|t| t.id) else {
                return self.deliver(frame).await;
            };
            let next = idx + 1;
            let Some(toxic) = self.active(id) else {
                return self.push(chain, next, frame).await;
            };
            match (&toxic.kind, frame) {
                (Kind::Latency { latency, jitter }, Frame::Data { bytes, at }) => {
                    let due = later(at, latency_delay(*latency, *jitter, &mut self.rng));
                    self.wait(due, id).await?;
                    self.push(chain, next, Frame::Data { bytes, at: due }).await
                }
                (Kind::Bandwidth { rate }, Frame::Data { bytes, at }) if *rate > 0 => {
                    self.throttle(chain, next, id, *rate, bytes, at).await
                }
                (Kind::SlowClose { delay }, Frame::Eof) => {
                    self.wait(later(Instant::now(), millis(*delay)), id).await?;
                    self.push(chain, next, Frame::Eof).await
                }
                (Kind::Timeout { .. }, Frame::Data { .. }) => Ok(()),
                (Kind::ResetPeer { timeout }, frame) => {
                    let due = later(Instant::now(), millis(*timeout));
                    match self.wait(due, id).await? {
                        Waited::Elapsed => Err(Stop::Reset),
                        Waited::Released => self.push(chain, next, frame).await,
                    }
                }
                (
                    Kind::Slicer {
                        average_size,
                        size_variation,
                        delay,
                    },
                    Frame::Data { mut bytes, at },
                ) => {
                    let sizes =
                        slice_sizes(bytes.len(), *average_size, *size_variation, &mut self.rng);
                    let pause = micros(*delay);
                    for size in sizes {
                        let piece = bytes.split_to(size.min(bytes.len()));
                        let frame = Frame::Data { bytes: piece, at };
                        self.push(Arc::clone(&chain), next, frame).await?;
                        if !pause.is_zero()
                            && self.wait(later(Instant::now(), pause), id).await?
                                == Waited::Released
                        {
                            break;
                        }
                    }
                    if bytes.is_empty() {
                        Ok(())
                    } else {
                        self.push(chain, next, Frame::Data { bytes, at }).await
                    }
                }
                (Kind::LimitData { bytes: limit }, Frame::Data { bytes, at }) => {
                    let limit = u64::try_from(*limit).unwrap_or(0);
                    let state = self.states.entry(id).or_default();
                    let room = limit.saturating_sub(state.sent);
                    let take = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
                    state.sent += take as u64;
                    let reached = state.sent >= limit;
                    if take > 0 {
                        let frame = Frame::Data {
                            bytes: bytes.slice(..take),
                            at,
                        };
                        self.push(chain, next, frame).await?;
                    }
                    if reached { Err(Stop::Close) } else { Ok(()) }
                }
                (_, frame) => self.push(chain, next, frame).await,
            }
        })
    }

    /// Sends `bytes` on at `rate` KB/s in pieces of at most `rate * 100` bytes (100 ms each),
    /// each piece after its transfer time, on a clock that carries over between chunks.
    async fn throttle(
        &mut self,
        chain: Chain,
        next: usize,
        id: u64,
        rate: i64,
        mut bytes: Bytes,
        at: Instant,
    ) -> Result<(), Stop> {
        let piece = piece_size(rate);
        let now = Instant::now();
        let mut clock = self
            .states
            .get(&id)
            .and_then(|s| s.next_free)
            .map_or(now, |t| t.max(now));
        while !bytes.is_empty() {
            let part = bytes.split_to(piece.min(bytes.len()));
            clock = later(clock, transfer_time(part.len(), rate));
            if self.wait(clock, id).await? == Waited::Released {
                // The toxic went away: everything left goes on unthrottled.
                let mut rest = BytesMut::from(part);
                rest.extend_from_slice(&bytes);
                let frame = Frame::Data {
                    bytes: rest.freeze(),
                    at,
                };
                return self.push(chain, next, frame).await;
            }
            if let Some(state) = self.states.get_mut(&id) {
                state.next_free = Some(clock);
            }
            self.push(Arc::clone(&chain), next, Frame::Data { bytes: part, at })
                .await?;
        }
        Ok(())
    }

    /// Writes a frame that left the chain to the destination socket.
    async fn deliver(&mut self, frame: Frame) -> Result<(), Stop> {
        match frame {
            Frame::Data { bytes, .. } => self.dest.write_all(&bytes).await.map_err(|_| Stop::Close),
            Frame::Eof => {
                // A half-close: the other direction keeps flowing until it closes too.
                let _ = self.dest.shutdown().await;
                Ok(())
            }
        }
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// `at + d`, never overflowing the clock.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

/// A millisecond attribute as a duration; negative values mean no wait.
fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A microsecond attribute as a duration; negative values mean no wait.
fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// Whether a toxic acts on a link: a draw in [0, 1) below the toxicity, as in Go.
pub(crate) fn draw(rng: &mut fastrand::Rng, toxicity: f32) -> bool {
    rng.f32() < toxicity
}

/// `latency ± jitter` ms, the jitter uniform in `[-jitter, jitter)` as in Go; never negative.
pub(crate) fn latency_delay(latency: i64, jitter: i64, rng: &mut fastrand::Rng) -> Duration {
    let mut delay = i128::from(latency);
    if jitter > 0 {
        delay += i128::from(rng.i64(-jitter..jitter));
    }
    Duration::from_millis(u64::try_from(delay.max(0)).unwrap_or(u64::MAX))
}

/// The largest piece the bandwidth toxic sends at once: 100 ms worth at `rate` KB/s.
pub(crate) fn piece_size(rate: i64) -> usize {
    usize::try_from(rate.saturating_mul(100))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// How long `len` bytes take at `rate` KB/s (1 KB = 1000 bytes); `rate` is above 0.
pub(crate) fn transfer_time(len: usize, rate: i64) -> Duration {
    let rate = u128::try_from(rate).unwrap_or(1).max(1);
    let micros = (len as u128) * 1000 / rate;
    Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// The piece sizes the slicer cuts `len` bytes into: halving recursively (here with an
/// explicit stack) until a piece is within `average_size + size_variation`, each cut moved
/// by a uniform draw in `[-size_variation, size_variation)`, as the Go toxic does. Unlike
/// Go, cuts stay strictly inside the piece, so any attributes (0 or negative included)
/// give pieces of at least one byte that add up to `len`.
pub(crate) fn slice_sizes(
    len: usize,
    average_size: i64,
    size_variation: i64,
    rng: &mut fastrand::Rng,
) -> Vec<usize> {
    let variation = size_variation.max(0);
    let target = i128::from(average_size) + i128::from(variation);
    let mut sizes = Vec::new();
    // Pieces still to cut, as (start, end); the right half is pushed first so the left one
    // comes out first and the sizes stay in order.
    let mut todo = vec![(0usize, len)];
    while let Some((start, end)) = todo.pop() {
        let size = end - start;
        if size as i128 <= target || size < 2 {
            if size > 0 {
                sizes.push(size);
            }
            continue;
        }
        let mut mid = (start + size / 2) as i128;
        if variation > 0 {
            mid += i128::from(rng.i64(-variation..variation));
        }
        let mid =
            usize::try_from(mid.clamp(start as i128 + 1, end as i128 - 1)).unwrap_or(start + 1);
        todo.push((mid, end));
        todo.push((start, mid));
    }
    sizes
}

/// The seed of one link: the server seed mixed with the proxy name, the connection's accept
/// order and the stream, so links draw independently and reproducibly.
pub(crate) fn link_seed(server_seed: u64, proxy: &str, ordinal: u64, stream: Stream) -> u64 {
    // FNV-1a of the name, then splitmix64 rounds.
    let mut name = 0xcbf2_9ce4_8422_2325_u64;
    for b in proxy.bytes() {
        name ^= u64::from(b);
        name = name.wrapping_mul(0x0100_0000_01b3);
    }
    let stream = stream.index() as u64;
    mix(mix(mix(server_seed ^ mix(name)) ^ ordinal) ^ stream)
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_slices(len: usize, avg: i64, var: i64, seed: u64) -> Vec<usize> {
        let sizes = slice_sizes(len, avg, var, &mut fastrand::Rng::with_seed(seed));
        assert_eq!(sizes.iter().sum::<usize>(), len, "{len} {avg} {var}");
        assert!(sizes.iter().all(|s| *s > 0));
        sizes
    }

    #[test]
    fn slicer_halves_down_to_the_average() {
        assert_eq!(
            check_slices(100, 10, 0, 1),
            [6, 6, 6, 7, 6, 6, 6, 7, 6, 6, 6, 7, 6, 6, 6, 7]
        );
        assert_eq!(check_slices(8, 10, 0, 1), [8]);
        assert_eq!(check_slices(0, 10, 0, 1), Vec::<usize>::new());
        for seed in 0..50 {
            let sizes = check_slices(1000, 50, 20, seed);
            assert!(sizes.iter().all(|s| *s <= 70), "{sizes:?}");
        }
    }

    #[test]
    fn slicer_never_panics_on_odd_attributes() {
        assert_eq!(check_slices(5, 0, 0, 1), [1, 1, 1, 1, 1]);
        check_slices(100, -3, -7, 1);
        check_slices(100, 1, 1000, 2);
        check_slices(100_000, 1, i64::MAX, 3);
        check_slices(10, i64::MAX, i64::MAX, 4);
    }

    #[test]
    fn bandwidth_pieces_take_100_ms() {
        assert_eq!(piece_size(50), 5000);
        assert_eq!(transfer_time(5000, 50), Duration::from_millis(100));
        assert_eq!(transfer_time(1000, 1), Duration::from_secs(1));
        assert_eq!(transfer_time(1, 1000), Duration::from_micros(1));
        assert!(piece_size(i64::MAX) >= 1 << 40);
        assert_eq!(piece_size(0), 1);
        assert!(transfer_time(usize::MAX, 1) > Duration::from_secs(1));
    }

    #[test]
    fn latency_jitter_stays_within_bounds() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let d = latency_delay(100, 30, &mut rng);
            assert!(d >= Duration::from_millis(70) && d < Duration::from_millis(130));
        }
        assert_eq!(latency_delay(-10, 0, &mut rng), Duration::ZERO);
        assert_eq!(latency_delay(5, 0, &mut rng), Duration::from_millis(5));
        latency_delay(i64::MAX, i64::MAX, &mut rng);
    }

    #[test]
    fn toxicity_draws_replay_with_the_seed() {
        let draws = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..64).map(|_| draw(&mut rng, 0.5)).collect::<Vec<_>>()
        };
        assert_eq!(draws(42), draws(42));
        assert_ne!(draws(42), draws(43));
        let hits = draws(42).iter().filter(|d| **d).count();
        assert!((16..=48).contains(&hits), "{hits}");
        let mut rng = fastrand::Rng::with_seed(1);
        assert!((0..100).all(|_| draw(&mut rng, 1.0)));
        assert!((0..100).all(|_| !draw(&mut rng, 0.0)));
    }

    #[test]
    fn link_seeds_differ_by_proxy_connection_and_stream() {
        let a = link_seed(1, "redis", 0, Stream::Upstream);
        assert_eq!(a, link_seed(1, "redis", 0, Stream::Upstream));
        assert_ne!(a, link_seed(1, "redis", 0, Stream::Downstream));
        assert_ne!(a, link_seed(1, "redis", 1, Stream::Upstream));
        assert_ne!(a, link_seed(1, "kafka", 0, Stream::Upstream));
        assert_ne!(a, link_seed(2, "redis", 0, Stream::Upstream));
    }
}

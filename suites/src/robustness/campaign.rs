//! The campaign loop: draw probes from a seeded strategy, send each, interleave valid
//! publishes, and shrink the first probe the target does not answer to a minimal one.
//!
//! The loop drives proptest's value trees itself (`new_tree`, `simplify`, `complicate`)
//! instead of `TestRunner::run`, because sending is asynchronous and a target that died on a
//! probe must be started again before the next candidate is tried. The trees live on a
//! generator thread of their own ([`Generator`]).

use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use harness_engine::problem::Problem;

/// One valid publish every this many probes.
pub(crate) const VALID_EVERY: u64 = 100;

/// Candidates tried while shrinking (each may restart the target), and the time it may take
/// (a target that hangs costs a whole answer deadline per candidate).
const MAX_SHRINK_STEPS: u32 = 400;
const MAX_SHRINK_TIME: std::time::Duration = std::time::Duration::from_secs(120);

/// One request of a campaign.
pub(crate) trait Probe: Clone + std::fmt::Debug + Send + 'static {
    /// A command a person can paste that sends this request.
    fn command(&self) -> String;

    /// One line naming this request.
    fn summary(&self) -> String;
}

/// What a campaign drives: a live target and the trial around it.
pub(crate) trait Target {
    /// One request.
    type Probe: Probe;

    /// Sends `probe`; `None` when the target answered, else why it did not.
    async fn send(&mut self, probe: &Self::Probe) -> Option<String>;

    /// A valid publish the target must accept and deliver (the `n`th of the campaign).
    async fn valid(&mut self, n: u64) -> Result<(), Problem>;

    /// Starts the target again if it exited (shrinking needs a live target); `true` when it
    /// had exited.
    async fn revive(&mut self) -> Result<bool, Problem>;

    /// After the last probe: the target is alive and healthy, and every valid publish it
    /// accepted was delivered.
    async fn finish(&mut self) -> Result<(), Problem>;
}

/// What a campaign did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Probes sent.
    pub probes: u64,
    /// Valid publishes sent.
    pub valid: u64,
}

/// Runs `budget` probes drawn from the strategy `make` builds, seeded with `seed`, against
/// `target`.
pub(crate) async fn run<T: Target>(
    target: &mut T,
    make: impl FnOnce() -> BoxedStrategy<T::Probe> + Send + 'static,
    budget: u64,
    seed: u64,
) -> Result<Tally, Problem> {
    let mut draws = Generator::spawn(make, seed);
    let mut tally = Tally::default();
    for case in 0..budget {
        if case % VALID_EVERY == 0 {
            target.valid(tally.valid).await?;
            tally.valid += 1;
        }
        let probe = draws
            .ask(Cmd::Next)
            .await?
            .ok_or_else(|| Problem::Setup("the probe generator drew nothing".into()))?;
        tally.probes += 1;
        if let Some(why) = target.send(&probe).await {
            let exited = target.revive().await?;
            let original = (probe, why, exited);
            let (minimal, steps) = shrink(target, &mut draws, original.clone()).await?;
            return Err(report::<T>(case, seed, &original, &minimal, steps));
        }
    }
    target.finish().await?;
    Ok(tally)
}

type Found<P> = (P, String, bool);

/// Shrinks a failing probe: simplify while the target still fails on the candidate, step
/// back when it answers. The target is started again whenever a candidate killed it.
async fn shrink<T: Target>(
    target: &mut T,
    draws: &mut Generator<T::Probe>,
    mut best: Found<T::Probe>,
) -> Result<(Found<T::Probe>, u32), Problem> {
    let mut steps = 0;
    let mut next = draws.ask(Cmd::Simplify).await?;
    let started = std::time::Instant::now();
    while let Some(candidate) = next {
        if steps >= MAX_SHRINK_STEPS || started.elapsed() >= MAX_SHRINK_TIME {
            break;
        }
        steps += 1;
        next = match target.send(&candidate).await {
            Some(why) => {
                let exited = target.revive().await?;
                best = (candidate, why, exited);
                draws.ask(Cmd::Simplify).await?
            }
            None => draws.ask(Cmd::Complicate).await?,
        };
    }
    Ok((best, steps))
}

/// What the generator thread is asked.
#[derive(Debug, Clone, Copy)]
enum Cmd {
    /// A new probe (a new value tree).
    Next,
    /// A simpler version of the current probe, if there is one.
    Simplify,
    /// Back towards the last failing probe, if there is a step left.
    Complicate,
}

/// proptest's value trees are not `Send`, and a check's future must be: the strategy, the
/// seeded runner and the current tree live on a thread of their own, which answers [`Cmd`]s.
struct Generator<P> {
    cmds: tokio::sync::mpsc::Sender<Cmd>,
    draws: tokio::sync::mpsc::Receiver<Result<Option<P>, String>>,
}

impl<P: Clone + std::fmt::Debug + Send + 'static> Generator<P> {
    fn spawn(make: impl FnOnce() -> BoxedStrategy<P> + Send + 'static, seed: u64) -> Generator<P> {
        let (cmds, mut cmd_rx) = tokio::sync::mpsc::channel::<Cmd>(1);
        let (draw_tx, draws) = tokio::sync::mpsc::channel(1);
        std::thread::spawn(move || {
            let strategy = make();
            let mut runner = TestRunner::new_with_rng(
                Config {
                    failure_persistence: None,
                    ..Config::default()
                },
                TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
            );
            let mut tree: Option<Box<dyn ValueTree<Value = P>>> = None;
            while let Some(cmd) = cmd_rx.blocking_recv() {
                let reply = match cmd {
                    Cmd::Next => match strategy.new_tree(&mut runner) {
                        Ok(t) => {
                            let v = t.current();
                            tree = Some(t);
                            Ok(Some(v))
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    Cmd::Simplify | Cmd::Complicate => Ok(tree.as_mut().and_then(|t| {
                        let moved = match cmd {
                            Cmd::Simplify => t.simplify(),
                            _ => t.complicate(),
                        };
                        moved.then(|| t.current())
                    })),
                };
                if draw_tx.blocking_send(reply).is_err() {
                    break;
                }
            }
        });
        Generator { cmds, draws }
    }

    async fn ask(&mut self, cmd: Cmd) -> Result<Option<P>, Problem> {
        let gone = || Problem::Setup("the probe generator thread stopped".into());
        self.cmds.send(cmd).await.map_err(|_| gone())?;
        match self.draws.recv().await {
            Some(Ok(p)) => Ok(p),
            Some(Err(e)) => Err(Problem::Setup(format!("cannot generate a probe: {e}"))),
            None => Err(gone()),
        }
    }
}

fn report<T: Target>(
    case: u64,
    seed: u64,
    original: &Found<T::Probe>,
    minimal: &Found<T::Probe>,
    steps: u32,
) -> Problem {
    let (probe, why, exited) = minimal;
    let effect = if *exited {
        "the target exited"
    } else {
        "the target did not answer"
    };
    Problem::fail(
        format!(
            "{effect} on probe {} of the campaign (seed {seed}): {why}; shrunk in {steps} steps to: {}",
            case + 1,
            probe.summary()
        ),
        vec![
            format!("reproduce with:\n{}", probe.command()),
            format!("the probe as first drawn: {}", original.0.summary()),
        ],
    )
}

/// The ChaCha seed of a campaign: the trial's seed, spread over 32 bytes.
fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let word = seed
            .wrapping_add(i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pretend target that "dies" on any number ≥ 1000 and counts what it saw.
    struct Picky {
        sent: Vec<u32>,
        valid: u64,
        dead: bool,
    }

    impl Target for Picky {
        type Probe = u32;
        async fn send(&mut self, probe: &u32) -> Option<String> {
            self.sent.push(*probe);
            if *probe >= 1000 {
                self.dead = true;
                return Some(format!("{probe} is too big"));
            }
            None
        }
        async fn valid(&mut self, _: u64) -> Result<(), Problem> {
            self.valid += 1;
            Ok(())
        }
        async fn revive(&mut self) -> Result<bool, Problem> {
            Ok(std::mem::replace(&mut self.dead, false))
        }
        async fn finish(&mut self) -> Result<(), Problem> {
            Ok(())
        }
    }

    impl Probe for u32 {
        fn command(&self) -> String {
            format!("send {self}")
        }
        fn summary(&self) -> String {
            self.to_string()
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_failure_shrinks_to_the_boundary_and_names_the_command() {
        let mut t = Picky {
            sent: vec![],
            valid: 0,
            dead: false,
        };
        let err = block_on(run(&mut t, || (0u32..100_000).boxed(), 10_000, 5)).unwrap_err();
        let Problem::Fail { summary, evidence } = err else {
            panic!("{err:?}")
        };
        assert!(summary.contains("shrunk"), "{summary}");
        assert!(summary.contains("to: 1000"), "{summary}");
        assert!(summary.contains("the target exited"), "{summary}");
        assert_eq!(evidence[0], "reproduce with:\nsend 1000");
    }

    #[test]
    fn the_same_seed_draws_the_same_probes() {
        let draw = |seed| {
            let mut t = Picky {
                sent: vec![],
                valid: 0,
                dead: false,
            };
            block_on(run(&mut t, || (0u32..1000).boxed(), 300, seed)).unwrap();
            (t.sent, t.valid)
        };
        let (a, valid) = draw(9);
        assert_eq!(a.len(), 300);
        assert_eq!(valid, 3);
        assert_eq!(a, draw(9).0);
        assert_ne!(a, draw(10).0);
    }
}

//! The kit as a library, for an implementer's own `cargo test`: add `pubsub-tck` as a
//! dev-dependency and run [`conformance::main_for`] from a `[[test]]` with `harness = false`
//! (see `examples/implementer/`). Every check becomes a libtest trial with the same names,
//! skips, expected failures, seeds and reports as `pubsub-tck run`.

pub use suites::conformance;

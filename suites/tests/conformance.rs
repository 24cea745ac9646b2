//! `cargo test -p suites --test conformance`: every check on every broker against
//! `PUBSUB_TCK_TARGET` (default: the reference target); see `suites::conformance`.

fn main() -> std::process::ExitCode {
    suites::conformance::main()
}

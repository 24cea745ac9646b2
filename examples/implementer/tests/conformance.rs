//! `cargo test --test conformance`: every pubsub-tck check against the sidecar that
//! `my-sidecar.toml` describes (`PUBSUB_TCK_TARGET` overrides it; `PUBSUB_TCK_BROKERS`,
//! `PUBSUB_TCK_SEED` and the other variables of the kit's README apply).

fn main() -> std::process::ExitCode {
    pubsub_tck::conformance::main_for(concat!(env!("CARGO_MANIFEST_DIR"), "/my-sidecar.toml"))
}

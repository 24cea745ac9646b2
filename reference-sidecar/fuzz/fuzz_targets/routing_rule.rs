//! `routing`: a CEL `match` expression (from `/dapr/subscribe` or a Subscription resource)
//! compiled, then evaluated against a delivered event (from any publisher).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reference_sidecar::routing::{Rule, route};

#[derive(Arbitrary, Debug)]
struct Input {
    expr: String,
    path: String,
    event: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let Ok(rule) = Rule::new(&input.expr, &input.path) else {
        return;
    };
    let rules = [
        rule,
        Rule::new("", "/default").expect("an empty rule compiles"),
    ];
    let _ = route(&rules, || serde_json::from_slice(&input.event).ok());
});

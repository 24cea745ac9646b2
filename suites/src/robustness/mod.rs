//! The `robustness` profile's machinery: generated requests ([`http`], [`grpc`]) and the
//! campaign loop that sends, checks and shrinks them ([`campaign`]), and the inputs a sidecar
//! reads when it starts ([`startup`]). The checks themselves are
//! in `checks/robustness.rs`.

pub(crate) mod campaign;
pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod startup;

//! The check bodies, one module per area. Each module exposes `checks()`; the catalog order is
//! the order below.

use crate::catalog::Check;

mod apps;
mod auth;
mod bulk;
mod chaos;
mod cloudevents;
mod discovery;
mod dlq;
mod durability;
mod lifecycle;
mod ordering;
mod publish;
mod redelivery;
mod resiliency;
mod status;

/// Every check, area by area.
pub(crate) fn all() -> Vec<Check> {
    [
        publish::checks(),
        cloudevents::checks(),
        discovery::checks(),
        status::checks(),
        redelivery::checks(),
        resiliency::checks(),
        dlq::checks(),
        auth::checks(),
        bulk::checks(),
        ordering::checks(),
        lifecycle::checks(),
        durability::checks(),
        apps::checks(),
        chaos::checks(),
    ]
    .concat()
}

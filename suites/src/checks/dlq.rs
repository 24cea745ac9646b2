//! Checks of the `dlq` area.

use crate::catalog::Check;

pub(crate) fn checks() -> Vec<Check> {
    vec![]
}

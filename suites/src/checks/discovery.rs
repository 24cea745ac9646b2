//! Checks of the `discovery` area.

use crate::catalog::Check;

pub(crate) fn checks() -> Vec<Check> {
    vec![]
}

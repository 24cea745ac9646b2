//! Checks of the `bulk` area.

use crate::catalog::Check;

pub(crate) fn checks() -> Vec<Check> {
    vec![]
}

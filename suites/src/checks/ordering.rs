//! Checks of the `ordering` area.

use crate::catalog::Check;

pub(crate) fn checks() -> Vec<Check> {
    vec![]
}

//! Checks of the `auth` area.

use crate::catalog::Check;

pub(crate) fn checks() -> Vec<Check> {
    vec![]
}

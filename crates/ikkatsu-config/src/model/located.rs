//! [`Located`]: a value of a job file with the position it was written at.

use crate::error::Position;

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub position: Position,
}

impl<T> Located<T> {
    pub(crate) fn new(value: T, position: Position) -> Self {
        Located { value, position }
    }
}

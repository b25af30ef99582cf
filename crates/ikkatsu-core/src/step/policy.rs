//! Skip and retry policies, decided per [`ErrorKind`]. The retry policy is
//! [`crate::retry::RetryPolicy`], shared with the overwrite flow and the storage layer.

use crate::error::{Error, ErrorKind};
pub use crate::retry::RetryPolicy;

/// Which failed items may be skipped, and how many in one step execution.
#[derive(Debug, Clone, Default)]
pub struct SkipPolicy {
    /// Most skips allowed; the step fails on the next one.
    pub limit: u64,
    /// Error kinds that may be skipped. Empty means none.
    pub kinds: Vec<ErrorKind>,
}

impl SkipPolicy {
    /// Never skip.
    pub fn never() -> Self {
        SkipPolicy::default()
    }

    /// Skip up to `limit` errors of the given kinds.
    pub fn new(limit: u64, kinds: Vec<ErrorKind>) -> Self {
        SkipPolicy { limit, kinds }
    }

    /// Whether `error` may be skipped when `skipped` items were skipped already.
    pub fn should_skip(&self, error: &Error, skipped: u64) -> bool {
        skipped < self.limit && self.kinds.contains(&error.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_respects_limit_and_kinds() {
        let policy = SkipPolicy::new(2, vec![ErrorKind::Parse]);
        let parse = Error::new(ErrorKind::Parse, "x");
        assert!(policy.should_skip(&parse, 1));
        assert!(!policy.should_skip(&parse, 2));
        assert!(!policy.should_skip(&Error::new(ErrorKind::Io, "x"), 0));
    }
}

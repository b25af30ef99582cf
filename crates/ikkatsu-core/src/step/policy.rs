//! Skip and retry policies, decided per [`ErrorKind`], and the [`Phase`] of a chunk an error
//! happened in. The retry policy is [`crate::retry::RetryPolicy`], shared with the overwrite
//! flow and the storage layer.

use crate::error::{Error, ErrorKind};
pub use crate::item::Phase;
pub use crate::retry::RetryPolicy;

/// Which failed items may be skipped, and how many in one step execution (read, process
/// and write skips together).
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

    /// Whether errors of `error`'s kind are skippable at all (whatever the count).
    pub fn is_skippable(&self, error: &Error) -> bool {
        self.kinds.contains(&error.kind())
    }

    /// Whether `error` may be skipped when `skipped` items were skipped already.
    pub fn should_skip(&self, error: &Error, skipped: u64) -> bool {
        skipped < self.limit && self.is_skippable(error)
    }

    /// `Ok` when `error`, in `phase`, may be skipped after `skipped` skips; else the error
    /// that fails the step: `error` itself when its kind is not skippable, or, when the limit
    /// is reached, `skip limit N exceeded in <phase>: <error>` (of the same kind).
    pub fn check(&self, error: Error, phase: Phase, skipped: u64) -> Result<Error, Error> {
        if self.should_skip(&error, skipped) {
            return Ok(error);
        }
        if !self.is_skippable(&error) {
            return Err(error);
        }
        let message = format!(
            "skip limit {} exceeded in {phase}: {}",
            self.limit,
            error.report()
        );
        Err(Error::new(error.kind(), message).with_source(error))
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

    #[test]
    fn check_names_the_limit_and_the_phase() {
        let policy = SkipPolicy::new(2, vec![ErrorKind::Parse]);
        let bad = || Error::new(ErrorKind::Parse, "line 7: bad quote");
        assert!(policy.check(bad(), Phase::Read, 1).is_ok());
        let err = policy.check(bad(), Phase::Write, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "skip limit 2 exceeded in write: line 7: bad quote"
        );
        assert_eq!(err.kind(), ErrorKind::Parse);
        let io = policy
            .check(Error::new(ErrorKind::Io, "disk full"), Phase::Write, 0)
            .unwrap_err();
        assert_eq!(io.to_string(), "disk full");
    }
}

//! The fault-tolerance rules of a chunk step in one place: which errors are retried in which
//! phase, how a retry waits and is announced, and what a skipped item leaves behind.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::listener::{RetryEvent, RetryListener};
use crate::step::{Phase, RetryPolicy, SkipPolicy};

/// The skip, retry and no-rollback rules of a chunk step and its retry listeners; cloned
/// into the read-ahead task.
#[derive(Clone)]
pub(super) struct Faults {
    /// The step's name, for messages.
    pub step: String,
    pub skip: SkipPolicy,
    pub retry: RetryPolicy,
    /// Kinds whose process or write errors do not roll back what the chunk did.
    pub no_rollback: Vec<ErrorKind>,
    pub retry_listeners: Vec<Arc<dyn RetryListener>>,
}

impl Faults {
    /// Whether an error of `error`'s kind is one that does not roll back.
    pub fn is_no_rollback(&self, error: &Error) -> bool {
        self.no_rollback.contains(&error.kind())
    }

    /// Whether `error` in `phase`, after `attempt` retries of the same work, is tried again:
    /// within the retry limit, and
    /// * read: only a temporary error (the reader has not moved past the item; a reader
    ///   that returns a permanent error has, and reading again would lose the item);
    /// * process: a temporary error or one of the retried kinds, unless it is of a
    ///   no-rollback kind (skipped at once, as in Spring Batch);
    /// * write: a temporary error or one of the retried kinds.
    pub fn retries(&self, phase: Phase, error: &Error, attempt: u32) -> bool {
        if attempt >= self.retry.limit || error.kind() == ErrorKind::Cancelled {
            return false;
        }
        match phase {
            Phase::Read => error.is_temporary(),
            Phase::Process => !self.is_no_rollback(error) && self.retry.is_retryable(error),
            Phase::Write => self.retry.is_retryable(error),
        }
    }

    /// Whether a failed chunk write may be undone and written again (retried, or scanned
    /// item by item): the step can retry or skip write errors.
    pub fn rolls_back_writes(&self) -> bool {
        self.retry.limit > 0 || !self.skip.kinds.is_empty()
    }

    /// Announces retry number `attempt` after `error` (log and retry listeners), then waits
    /// its delay; an error of kind [`ErrorKind::Cancelled`] when the step is stopped meanwhile.
    pub async fn before_retry(
        &self,
        phase: Phase,
        attempt: u32,
        error: &Error,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let delay = self.retry.backoff(attempt);
        tracing::warn!(
            step = %self.step,
            %phase,
            attempt,
            limit = self.retry.limit,
            delay_ms = delay.as_millis() as u64,
            error = %error.report(),
            "retrying after an error"
        );
        let event = RetryEvent {
            step: &self.step,
            phase,
            attempt,
            limit: self.retry.limit,
            delay,
            error,
        };
        for listener in &self.retry_listeners {
            listener.on_retry(&event).await?;
        }
        tokio::select! {
            _ = cancel.cancelled() => Err(Error::new(
                ErrorKind::Cancelled,
                format!("step `{}` stopped while waiting to retry after: {}", self.step, error.report()),
            )),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }
}

/// What was skipped: nothing (a read), the item as read, or the item as processed.
pub(super) enum SkippedItem<I, O> {
    Read,
    Process(I),
    Write(O),
}

impl<I, O> SkippedItem<I, O> {
    pub fn phase(&self) -> Phase {
        match self {
            SkippedItem::Read => Phase::Read,
            SkippedItem::Process(_) => Phase::Process,
            SkippedItem::Write(_) => Phase::Write,
        }
    }
}

/// An item skipped in the current chunk, reported to the skip listeners and the dead-letter
/// writer when the chunk commits.
pub(super) struct Skip<I, O> {
    pub item: SkippedItem<I, O>,
    /// The item's input position (1-based over the step's input).
    pub position: u64,
    pub error: Error,
}

//! Listeners: hooks before and after jobs, steps and chunks, around the reading, processing
//! and writing of items, and on the skips and retries of chunk steps.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::call::ExternalCallListener;
use crate::error::{Error, Result};
use crate::execution::{JobExecution, StepExecution};
use crate::item::Phase;
use crate::status::ExitStatus;

/// Called before a job execution starts and after it ends (on every outcome).
#[async_trait]
pub trait JobExecutionListener: Send + Sync {
    /// Before the first step. An error fails the execution.
    async fn before_job(&self, execution: &JobExecution) -> Result<()> {
        let _ = execution;
        Ok(())
    }

    /// After the execution ended; `execution.status` is final.
    async fn after_job(&self, execution: &JobExecution) -> Result<()> {
        let _ = execution;
        Ok(())
    }
}

/// Called before a step starts and after it ends.
#[async_trait]
pub trait StepExecutionListener: Send + Sync {
    /// Before the step's work. An error fails the step.
    async fn before_step(&self, execution: &StepExecution) -> Result<()> {
        let _ = execution;
        Ok(())
    }

    /// After the step's work; may replace the exit status (and so the flow's next move).
    async fn after_step(&self, execution: &StepExecution) -> Result<Option<ExitStatus>> {
        let _ = execution;
        Ok(None)
    }

    /// The listener of the step's external calls (storage requests, SQL statements), if
    /// this listener wants them: asked once per step run, before `before_step`
    /// (see [`crate::call`]).
    fn call_listener(&self) -> Option<Arc<dyn ExternalCallListener>> {
        None
    }
}

/// Called around each chunk (or tasklet iteration).
#[async_trait]
pub trait ChunkListener: Send + Sync {
    /// Before the chunk is read.
    async fn before_chunk(&self, execution: &StepExecution) -> Result<()> {
        let _ = execution;
        Ok(())
    }

    /// After the chunk was committed.
    async fn after_chunk(&self, execution: &StepExecution) -> Result<()> {
        let _ = execution;
        Ok(())
    }

    /// After the chunk failed and was rolled back.
    async fn after_chunk_error(&self, execution: &StepExecution, error: &Error) -> Result<()> {
        let _ = (execution, error);
        Ok(())
    }
}

/// Told of every item a chunk step skips (Spring Batch's `SkipListener`): `I` is the item
/// as read, `O` as processed.
///
/// Called once per skipped item, when the chunk it was skipped in commits (before the
/// commit, so an error fails the chunk): a chunk that fails and is rolled back reports
/// nothing, and a restart that skips the same item again reports it once. A write skip is
/// reported after the scan of its chunk (see [`ChunkStep`](crate::ChunkStep)).
#[async_trait]
pub trait SkipListener<I: Sync, O: Sync>: Send + Sync {
    /// A read failed with `error` and was skipped (there is no item).
    async fn on_skip_in_read(&self, error: &Error) -> Result<()> {
        let _ = error;
        Ok(())
    }

    /// Processing `item` failed with `error`; the item was skipped.
    async fn on_skip_in_process(&self, item: &I, error: &Error) -> Result<()> {
        let _ = (item, error);
        Ok(())
    }

    /// Writing `item` failed with `error`; the item was skipped.
    async fn on_skip_in_write(&self, item: &O, error: &Error) -> Result<()> {
        let _ = (item, error);
        Ok(())
    }
}

/// A failed attempt that a chunk step is about to retry.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RetryEvent<'a> {
    /// The step's name.
    pub step: &'a str,
    /// What failed: reading an item, processing one, or writing a chunk (or, in a scan,
    /// one item).
    pub phase: Phase,
    /// The number of the retry about to be made (1 for the first retry).
    pub attempt: u32,
    /// The most retries allowed.
    pub limit: u32,
    /// How long the step waits before the retry.
    pub delay: Duration,
    /// The error of the failed attempt.
    pub error: &'a Error,
}

/// Told of each retry of a chunk step, after an attempt failed and before the step waits to
/// try again. An error fails the chunk.
#[async_trait]
pub trait RetryListener: Send + Sync {
    /// The attempt described by `event` failed and is retried.
    async fn on_retry(&self, event: &RetryEvent<'_>) -> Result<()>;
}

/// Told of every read of a chunk step (Spring Batch's `ItemReadListener`), in the step's
/// own task: a step with read listeners reads item by item and does not read ahead.
///
/// `before_read` comes before each read attempt (also the one that finds the end of the
/// input), then `after_read` with the item, or `on_read_error` with the error (before the
/// step retries or skips it). An error of a listener fails the chunk.
#[async_trait]
pub trait ItemReadListener<I: Sync>: Send + Sync {
    /// Before an item is read.
    async fn before_read(&self) -> Result<()> {
        Ok(())
    }

    /// `item` was read.
    async fn after_read(&self, item: &I) -> Result<()> {
        let _ = item;
        Ok(())
    }

    /// A read failed with `error`.
    async fn on_read_error(&self, error: &Error) -> Result<()> {
        let _ = error;
        Ok(())
    }
}

/// Told of the processing of every item of a chunk step (Spring Batch's
/// `ItemProcessListener`): a step with process listeners processes item by item.
///
/// `before_process` comes before each attempt, then `after_process` with the result (`None`
/// when the processor filtered the item out), or `on_process_error` with the error (before
/// the step retries or skips the item). An error of a listener fails the chunk.
#[async_trait]
pub trait ItemProcessListener<I: Sync, O: Sync>: Send + Sync {
    /// Before `item` is processed.
    async fn before_process(&self, item: &I) -> Result<()> {
        let _ = item;
        Ok(())
    }

    /// `item` was processed into `result` (`None`: filtered out).
    async fn after_process(&self, item: &I, result: Option<&O>) -> Result<()> {
        let _ = (item, result);
        Ok(())
    }

    /// Processing `item` failed with `error`.
    async fn on_process_error(&self, item: &I, error: &Error) -> Result<()> {
        let _ = (item, error);
        Ok(())
    }
}

/// Told of every write of a chunk step (Spring Batch's `ItemWriteListener`).
///
/// `before_write` comes before each write attempt of a chunk, then `after_write` with the
/// same items, or `on_write_error` with the error (before the step rolls back, retries or
/// scans the chunk). In a scan each item is written, and reported, alone. An error of a
/// listener fails the chunk.
#[async_trait]
pub trait ItemWriteListener<O: Sync>: Send + Sync {
    /// Before `items` are written.
    async fn before_write(&self, items: &[O]) -> Result<()> {
        let _ = items;
        Ok(())
    }

    /// `items` were written (not yet committed).
    async fn after_write(&self, items: &[O]) -> Result<()> {
        let _ = items;
        Ok(())
    }

    /// Writing `items` failed with `error`.
    async fn on_write_error(&self, items: &[O], error: &Error) -> Result<()> {
        let _ = (items, error);
        Ok(())
    }
}

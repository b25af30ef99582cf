//! Listeners: hooks before and after jobs, steps and chunks.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::execution::{JobExecution, StepExecution};
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

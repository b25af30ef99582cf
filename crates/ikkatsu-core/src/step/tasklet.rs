//! The tasklet step: one unit of work, called repeatedly while it says
//! [`RepeatStatus::Continuable`], each call committed like a chunk.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Step, StepContext};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::StepExecution;
use crate::listener::ChunkListener;

/// Whether a tasklet wants to be called again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatStatus {
    /// Call again (after committing this iteration).
    Continuable,
    /// Done.
    Finished,
}

/// A unit of work that is not item-oriented: a shell command, a file operation, a SQL call.
#[async_trait]
pub trait Tasklet: Send + Sync {
    /// Does one iteration. May update `execution.execution_context` (saved at commit) and set
    /// a custom exit code in `execution.exit_status`.
    async fn execute(
        &self,
        execution: &mut StepExecution,
        ctx: &StepContext,
    ) -> Result<RepeatStatus>;
}

/// A step that runs a [`Tasklet`].
pub struct TaskletStep {
    name: String,
    tasklet: Arc<dyn Tasklet>,
    listeners: Vec<Arc<dyn ChunkListener>>,
    allow_start_if_complete: bool,
    start_limit: u64,
}

impl TaskletStep {
    /// A step named `name` running `tasklet`.
    pub fn new(name: impl Into<String>, tasklet: Arc<dyn Tasklet>) -> Self {
        TaskletStep {
            name: name.into(),
            tasklet,
            listeners: Vec::new(),
            allow_start_if_complete: false,
            start_limit: u64::MAX,
        }
    }

    /// Adds a listener called around each iteration.
    pub fn with_listener(mut self, listener: Arc<dyn ChunkListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Rerun the step on restart even if it completed before.
    pub fn with_allow_start_if_complete(mut self, allow: bool) -> Self {
        self.allow_start_if_complete = allow;
        self
    }

    /// How many times the step may start within one job instance.
    pub fn with_start_limit(mut self, limit: u64) -> Self {
        self.start_limit = limit;
        self
    }
}

#[async_trait]
impl Step for TaskletStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn allow_start_if_complete(&self) -> bool {
        self.allow_start_if_complete
    }

    fn start_limit(&self) -> u64 {
        self.start_limit
    }

    async fn execute(&self, execution: &mut StepExecution, ctx: &StepContext) -> Result<()> {
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("step `{}` stopped on request", self.name),
                ));
            }
            for listener in &self.listeners {
                listener.before_chunk(execution).await?;
            }
            let repeat = match self.tasklet.execute(execution, ctx).await {
                Ok(repeat) => repeat,
                Err(err) => {
                    execution.counts.rollback_count += 1;
                    for listener in &self.listeners {
                        listener.after_chunk_error(execution, &err).await?;
                    }
                    return Err(err);
                }
            };
            execution.counts.commit_count += 1;
            ctx.repository.update_step_execution(execution).await?;
            for listener in &self.listeners {
                listener.after_chunk(execution).await?;
            }
            if repeat == RepeatStatus::Finished {
                return Ok(());
            }
        }
    }
}

//! [`LocalPartitionHandler`]: partitions run as tasks of this process, at most `parallelism`
//! at a time.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use tokio::task::JoinError;

use super::PartitionHandler;
use super::run::{PartitionTiming, run_partition};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::StepExecution;
use crate::step::{Step, StepContext};

/// Runs partitions in this process, at most `parallelism` at once (Spring Batch's
/// `TaskExecutorPartitionHandler`). Partitions are started in order; a stop request stops
/// the running ones at their next chunk and starts no more.
#[derive(Debug, Clone)]
pub struct LocalPartitionHandler {
    parallelism: usize,
    timing: PartitionTiming,
}

impl LocalPartitionHandler {
    /// A handler running `parallelism` partitions at once (at least 1).
    pub fn new(parallelism: usize) -> Self {
        LocalPartitionHandler {
            parallelism: parallelism.max(1),
            timing: PartitionTiming::default(),
        }
    }

    /// Replaces the heartbeat timing.
    pub fn with_timing(mut self, timing: PartitionTiming) -> Self {
        self.timing = timing;
        self
    }

    /// How many partitions run at once.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }
}

#[async_trait]
impl PartitionHandler for LocalPartitionHandler {
    fn describe(&self) -> String {
        format!("local (parallelism {})", self.parallelism)
    }

    async fn handle(
        &self,
        _manager: &str,
        worker: Arc<dyn Step>,
        partitions: Vec<StepExecution>,
        ctx: &StepContext,
    ) -> Result<Vec<StepExecution>> {
        // Each partition is a task of its own, so CPU-bound partitions use every core.
        let results: Vec<Result<Result<StepExecution>, JoinError>> = stream::iter(partitions)
            .map(|execution| {
                let (worker, ctx, timing) = (worker.clone(), ctx.clone(), self.timing);
                tokio::spawn(async move { run_one(worker, execution, ctx, timing).await })
            })
            .buffered(self.parallelism)
            .collect()
            .await;
        results
            .into_iter()
            .map(|joined| {
                joined.map_err(|err| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("a partition task ended abnormally: {err}"),
                    )
                })?
            })
            .collect()
    }
}

async fn run_one(
    worker: Arc<dyn Step>,
    mut execution: StepExecution,
    ctx: StepContext,
    timing: PartitionTiming,
) -> Result<StepExecution> {
    if ctx.cancel.is_cancelled() {
        execution.status = crate::status::BatchStatus::Stopped;
        execution.exit_status = crate::status::ExitStatus::stopped()
            .with_description("the job was stopped before the partition started");
        execution.end_time = Some(chrono::Utc::now());
        ctx.repository.update_step_execution(&mut execution).await?;
        return Ok(execution);
    }
    run_partition(worker.as_ref(), &mut execution, &ctx, &timing, false).await?;
    Ok(execution)
}

//! [`PartitionStep`]: the manager step of a partitioned step.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use super::run::PartitionTiming;
use super::{INDEX_KEY, NAME_KEY, Partition, PartitionHandler, Partitioner, execution_name};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::{StepCounts, StepExecution};
use crate::status::BatchStatus;
use crate::step::{Step, StepContext};

/// The manager step's context key holding its plan: every partition with its context.
pub const PLAN_KEY: &str = "ikkatsu.partition.plan";

/// A step that partitions its work and has a [`PartitionHandler`] run the worker step once
/// per partition (Spring Batch's `PartitionStep`).
///
/// Its counts are the sum of the partitions run by this execution; it fails when any
/// partition failed (naming them), else stops when any stopped. A restart reuses the plan
/// recorded in its execution context (the partitioner is not called again) and runs only
/// the partitions that did not complete, each from its own last commit.
pub struct PartitionStep {
    name: String,
    worker: Arc<dyn Step>,
    partitioner: Arc<dyn Partitioner>,
    handler: Arc<dyn PartitionHandler>,
    grid_size: usize,
    timing: PartitionTiming,
    allow_start_if_complete: bool,
    start_limit: u64,
}

impl PartitionStep {
    /// A step named `name` running `worker` over the partitions of `partitioner`, with
    /// `handler`; the grid size defaults to the handler-independent 4.
    pub fn new(
        name: impl Into<String>,
        worker: Arc<dyn Step>,
        partitioner: Arc<dyn Partitioner>,
        handler: Arc<dyn PartitionHandler>,
    ) -> Self {
        PartitionStep {
            name: name.into(),
            worker,
            partitioner,
            handler,
            grid_size: 4,
            timing: PartitionTiming::default(),
            allow_start_if_complete: false,
            start_limit: u64::MAX,
        }
    }

    /// How many partitions to ask the partitioner for.
    pub fn with_grid_size(mut self, grid_size: usize) -> Self {
        self.grid_size = grid_size.max(1);
        self
    }

    /// The heartbeat timing (how long a restart waits for partitions a gone worker may
    /// still be running).
    pub fn with_timing(mut self, timing: PartitionTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Whether a completed step runs again on restart.
    pub fn with_allow_start_if_complete(mut self, allow: bool) -> Self {
        self.allow_start_if_complete = allow;
        self
    }

    /// How many times the step may start within one job instance.
    pub fn with_start_limit(mut self, limit: u64) -> Self {
        self.start_limit = limit;
        self
    }

    /// The worker step.
    pub fn worker(&self) -> &Arc<dyn Step> {
        &self.worker
    }

    /// The plan: read back on restart, else made by the partitioner and committed before
    /// any partition runs.
    async fn plan(&self, manager: &mut StepExecution, ctx: &StepContext) -> Result<Vec<Partition>> {
        if let Some(plan) = manager.execution_context.get::<Vec<Partition>>(PLAN_KEY)? {
            tracing::info!(
                step = %self.name,
                partitions = plan.len(),
                "restart: running the partitions recorded by the first execution (the partitioner is not called again)"
            );
            return Ok(plan);
        }
        let mut plan = self.partitioner.partition(self.grid_size, ctx).await?;
        let mut seen = HashSet::new();
        for (index, partition) in plan.iter_mut().enumerate() {
            if partition.name.is_empty() || partition.name.contains(':') {
                return Err(Error::config(format!(
                    "step `{}`: the partitioner named a partition `{}`; a partition name must be non-empty and without `:`",
                    self.name, partition.name
                )));
            }
            if !seen.insert(partition.name.clone()) {
                return Err(Error::config(format!(
                    "step `{}`: the partitioner made two partitions named `{}`",
                    self.name, partition.name
                )));
            }
            partition.context.put(NAME_KEY, &partition.name);
            partition.context.put(INDEX_KEY, index as u64);
        }
        manager.execution_context.put(PLAN_KEY, &plan);
        ctx.repository.update_step_execution(manager).await?;
        tracing::info!(step = %self.name, partitions = plan.len(), handler = %self.handler.describe(), "partitioned");
        Ok(plan)
    }

    /// The executions to run: a new one per partition that has not completed, starting
    /// from the context of its last execution (or the plan's).
    async fn executions(
        &self,
        plan: &[Partition],
        ctx: &StepContext,
    ) -> Result<Vec<StepExecution>> {
        let mut executions = Vec::with_capacity(plan.len());
        for partition in plan {
            let name = execution_name(&self.name, &partition.name);
            let last = ctx
                .repository
                .last_step_execution(ctx.instance_id, &name)
                .await?;
            let mut execution = StepExecution::new(ctx.job_execution_id, &name);
            match last {
                Some(last) if last.status == BatchStatus::Completed => {
                    tracing::info!(partition = %name, "partition already completed; not run again");
                    continue;
                }
                Some(last) => {
                    // The state once no worker touches it any more: a worker of the earlier
                    // execution may have committed more, or completed it, meanwhile.
                    let last = self.settle(last, ctx).await?;
                    if last.status == BatchStatus::Completed {
                        tracing::info!(partition = %name, "partition completed by its earlier worker; not run again");
                        continue;
                    }
                    execution.execution_context = last.execution_context;
                }
                None => execution.execution_context = partition.context.clone(),
            }
            execution.start_time = None;
            ctx.repository.add_step_execution(&mut execution).await?;
            executions.push(execution);
        }
        Ok(executions)
    }

    /// Waits until an earlier execution of a partition has not been touched for two
    /// heartbeats: a worker still running it (its job execution was recovered after the
    /// manager died) stops at its next chunk, and keeps beating until it has, so two workers
    /// never write the same partition.
    async fn settle(&self, last: StepExecution, ctx: &StepContext) -> Result<StepExecution> {
        let quiet = self.timing.heartbeat * 2;
        let mut seen = last;
        loop {
            let age = (Utc::now() - seen.last_updated)
                .to_std()
                .unwrap_or_default();
            if age >= quiet {
                return Ok(seen);
            }
            if ctx.cancel.is_cancelled() {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    "stopped while waiting for a partition's earlier worker to let go",
                ));
            }
            tracing::info!(
                partition = %seen.step_name,
                "waiting for the worker of the partition's earlier execution to stop"
            );
            tokio::time::sleep(self.timing.poll_interval.max(quiet - age)).await;
            let id = seen.id;
            if let Some(stored) = ctx
                .repository
                .step_executions(seen.job_execution_id)
                .await?
                .into_iter()
                .find(|s| s.id == id)
            {
                seen = stored;
            }
        }
    }
}

#[async_trait]
impl Step for PartitionStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn allow_start_if_complete(&self) -> bool {
        self.allow_start_if_complete
    }

    fn start_limit(&self) -> u64 {
        self.start_limit
    }

    fn partition_worker(&self) -> Option<Arc<dyn Step>> {
        Some(self.worker.clone())
    }

    async fn execute(&self, manager: &mut StepExecution, ctx: &StepContext) -> Result<()> {
        let plan = self.plan(manager, ctx).await?;
        let executions = self.executions(&plan, ctx).await?;
        if executions.is_empty() {
            return Ok(());
        }
        let ended = self
            .handler
            .handle(&self.name, self.worker.clone(), executions, ctx)
            .await?;
        let mut counts = StepCounts::default();
        let (mut failed, mut stopped) = (Vec::new(), Vec::new());
        for partition in &ended {
            add_counts(&mut counts, &partition.counts);
            let line = || match partition.exit_status.description.as_str() {
                "" => format!("`{}`", partition.step_name),
                d => format!("`{}` ({d})", partition.step_name),
            };
            match partition.status {
                BatchStatus::Completed => {}
                BatchStatus::Stopped | BatchStatus::Stopping => stopped.push(line()),
                _ => failed.push(line()),
            }
        }
        manager.counts = counts;
        if !failed.is_empty() {
            return Err(Error::new(
                ErrorKind::Component,
                format!(
                    "{} of {} partitions failed: {}; a restart runs only the partitions that did not complete",
                    failed.len(),
                    ended.len(),
                    failed.join("; ")
                ),
            ));
        }
        if !stopped.is_empty() || ctx.cancel.is_cancelled() {
            return Err(Error::new(
                ErrorKind::Cancelled,
                format!(
                    "{} of {} partitions stopped: {}",
                    stopped.len(),
                    ended.len(),
                    stopped.join("; ")
                ),
            ));
        }
        Ok(())
    }
}

fn add_counts(total: &mut StepCounts, part: &StepCounts) {
    total.read_count += part.read_count;
    total.write_count += part.write_count;
    total.filter_count += part.filter_count;
    total.read_skip_count += part.read_skip_count;
    total.process_skip_count += part.process_skip_count;
    total.write_skip_count += part.write_skip_count;
    total.commit_count += part.commit_count;
    total.rollback_count += part.rollback_count;
}

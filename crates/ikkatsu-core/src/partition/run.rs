//! Runs one partition: the worker step over the partition's step execution, with a heartbeat
//! that marks the execution alive and, for remote workers, stops it when its job execution is
//! no longer running.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::Result;
use crate::execution::StepExecution;
use crate::launch::record_outcome;
use crate::status::BatchStatus;
use crate::step::{Step, StepContext};

/// How partitions are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionTiming {
    /// How often a running partition marks its step execution alive.
    pub heartbeat: Duration,
    /// A running partition whose heartbeat is older than this has lost its worker: another
    /// worker may take it over.
    pub stale_after: Duration,
    /// How often the manager reads the partitions' state from the repository.
    pub poll_interval: Duration,
    /// The longest the manager waits for its partitions (`None`: no limit).
    pub timeout: Option<Duration>,
}

impl Default for PartitionTiming {
    fn default() -> Self {
        PartitionTiming {
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(20),
            poll_interval: Duration::from_millis(200),
            timeout: None,
        }
    }
}

/// Runs `worker` over the partition execution `execution` (stored, with the partition's
/// context and, when resumed, its last commit) and records the outcome in the repository.
///
/// While the partition runs its execution is marked alive every `timing.heartbeat`; with
/// `watch_job` the job execution's status is read at each beat too, and a job that is no
/// longer running (stopping, or ended by recovery) stops the partition at its next chunk.
/// The error is the repository's: the partition's own failure is recorded in `execution`.
pub async fn run_partition(
    worker: &dyn Step,
    execution: &mut StepExecution,
    ctx: &StepContext,
    timing: &PartitionTiming,
    watch_job: bool,
) -> Result<()> {
    let cancel = ctx.cancel.child_token();
    execution.status = BatchStatus::Started;
    execution.end_time = None;
    if execution.start_time.is_none() {
        execution.start_time = Some(Utc::now());
    }
    ctx.repository.update_step_execution(execution).await?;
    let beat = tokio::spawn(heartbeat(
        ctx.clone(),
        execution.id,
        cancel.clone(),
        timing.heartbeat,
        watch_job,
    ));
    let _stop_beat = AbortOnDrop(beat);
    let worker_ctx = StepContext {
        cancel,
        ..ctx.clone()
    };
    let span = tracing::info_span!(
        "partition",
        step = %execution.step_name,
        step_execution_id = execution.id
    );
    let result = worker
        .execute(execution, &worker_ctx)
        .instrument(span.clone())
        .await;
    let _enter = span.enter();
    record_outcome(execution, result);
    execution.end_time = Some(Utc::now());
    drop(_enter);
    ctx.repository.update_step_execution(execution).await
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn heartbeat(
    ctx: StepContext,
    step_execution_id: i64,
    cancel: CancellationToken,
    every: Duration,
    mut watch_job: bool,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(err) = ctx
            .repository
            .heartbeat_step_execution(step_execution_id)
            .await
        {
            tracing::warn!(error = %err.report(), "partition heartbeat failed; trying again");
            continue;
        }
        if !watch_job {
            continue;
        }
        match ctx.repository.job_execution(ctx.job_execution_id).await {
            Ok(Some(job)) if job.status.is_running() && job.status != BatchStatus::Stopping => {}
            Ok(job) => {
                let status = job.map_or("gone".to_string(), |j| j.status.to_string());
                tracing::info!(
                    job_execution_id = ctx.job_execution_id,
                    "job execution is {status}: stopping the partition at its next chunk"
                );
                cancel.cancel();
                // Beating on until the partition has stopped tells a restarted manager that
                // its chunk in progress is not finished yet.
                watch_job = false;
            }
            Err(err) => {
                tracing::warn!(error = %err.report(), "reading the job execution's status failed");
            }
        }
    }
}

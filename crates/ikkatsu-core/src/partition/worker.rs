//! [`PartitionWorker`]: receives partition requests from a broker and runs them against the
//! shared job repository (what `ikkatsu worker` does).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::remote::{Delivery, PartitionBroker, StepLocator};
use super::run::{PartitionTiming, run_partition};
use crate::error::Result;
use crate::execution::{JobExecution, StepExecution};
use crate::repository::JobRepository;
use crate::status::{BatchStatus, ExitStatus};
use crate::step::StepContext;

/// Runs the partitions a broker delivers, `concurrency` at a time, until cancelled.
///
/// A request is acknowledged after its partition's final commit. A partition already ended
/// is acknowledged without running (a duplicate delivery). A partition another worker is
/// running is left alone until that worker's heartbeat is older than `stale_after`, then
/// taken over from its last commit. When the worker is asked to shut down, its running
/// partitions stop at their next chunk and are handed back (status STARTING, request
/// requeued) for another worker to continue.
pub struct PartitionWorker {
    repository: Arc<dyn JobRepository>,
    broker: Arc<dyn PartitionBroker>,
    locator: Arc<dyn StepLocator>,
    timing: PartitionTiming,
    concurrency: usize,
}

impl PartitionWorker {
    /// A worker taking requests from `broker`, recording in `repository`, finding steps with
    /// `locator`; one partition at a time.
    pub fn new(
        repository: Arc<dyn JobRepository>,
        broker: Arc<dyn PartitionBroker>,
        locator: Arc<dyn StepLocator>,
    ) -> Self {
        PartitionWorker {
            repository,
            broker,
            locator,
            timing: PartitionTiming::default(),
            concurrency: 1,
        }
    }

    /// How many partitions run at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Replaces the heartbeat timing.
    pub fn with_timing(mut self, timing: PartitionTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Receives and runs requests until `shutdown` is cancelled (then waits for the running
    /// partitions to stop and hands them back) or the broker fails.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.concurrency));
        let mut running = JoinSet::new();
        tracing::info!(broker = %this.broker.describe(), repository = %this.repository.describe(), "worker waiting for partitions");
        let outcome = loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let delivery = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                delivery = this.broker.receive() => delivery,
            };
            let delivery = match delivery {
                Ok(delivery) => delivery,
                Err(err) => {
                    break Err(err.context(format!("receiving from {}", this.broker.describe())));
                }
            };
            let (worker, shutdown) = (this.clone(), shutdown.clone());
            running.spawn(async move {
                let _permit = permit;
                if let Err(err) = worker.handle(delivery, &shutdown).await {
                    tracing::error!(error = %err.report(), "partition request not handled; the broker delivers it again");
                }
            });
            while running.try_join_next().is_some() {}
        };
        while running.join_next().await.is_some() {}
        outcome
    }

    async fn handle(
        &self,
        delivery: Box<dyn Delivery>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let request = delivery.request().clone();
        let Some(job) = self
            .repository
            .job_execution(request.job_execution_id)
            .await?
        else {
            tracing::warn!(
                job_execution_id = request.job_execution_id,
                "partition request for a job execution that does not exist; dropped"
            );
            return delivery.ack().await;
        };
        let Some(mut execution) = self.find(&job, request.step_execution_id).await? else {
            tracing::warn!(partition = %request.partition, "partition request for a step execution that does not exist; dropped");
            return delivery.ack().await;
        };
        if !execution.status.is_running() {
            tracing::info!(partition = %request.partition, status = %execution.status, "partition already ended; request acknowledged");
            return delivery.ack().await;
        }
        if !job.status.is_running() || job.status == BatchStatus::Stopping {
            end(
                &mut execution,
                BatchStatus::Stopped,
                &format!(
                    "the job execution was {} before the partition ran",
                    job.status
                ),
            );
            self.repository
                .update_step_execution(&mut execution)
                .await?;
            return delivery.ack().await;
        }
        if execution.status != BatchStatus::Starting {
            match self
                .wait_until_free(delivery.as_ref(), &job, execution.id)
                .await?
            {
                Some(free) => execution = free,
                None => return delivery.ack().await,
            }
        }
        let step = match self.locator.worker_step(&job, &request.step_name).await {
            Ok(step) => step,
            Err(err) => {
                end(
                    &mut execution,
                    BatchStatus::Failed,
                    &format!(
                        "the worker cannot build step `{}`: {}",
                        request.step_name,
                        err.report()
                    ),
                );
                self.repository
                    .update_step_execution(&mut execution)
                    .await?;
                return delivery.ack().await;
            }
        };
        let ctx = StepContext {
            job_execution_id: job.id,
            instance_id: job.instance_id,
            job_name: job.job_name.clone(),
            parameters: job.parameters.clone(),
            job_context: job.execution_context.clone(),
            repository: self.repository.clone(),
            cancel: shutdown.child_token(),
        };
        tracing::info!(partition = %request.partition, job_execution_id = job.id, "running partition");
        {
            let run = run_partition(step.as_ref(), &mut execution, &ctx, &self.timing, true);
            tokio::pin!(run);
            let mut pings = tokio::time::interval(self.timing.heartbeat);
            loop {
                tokio::select! {
                    result = &mut run => break result?,
                    _ = pings.tick() => {
                        if let Err(err) = delivery.in_progress().await {
                            tracing::warn!(error = %err.report(), "telling the broker the partition is in progress failed");
                        }
                    }
                }
            }
        }
        if execution.status == BatchStatus::Stopped
            && shutdown.is_cancelled()
            && self.job_running(job.id).await?
        {
            execution.status = BatchStatus::Starting;
            execution.exit_status =
                ExitStatus::executing().with_description("handed back: its worker shut down");
            execution.end_time = None;
            self.repository
                .update_step_execution(&mut execution)
                .await?;
            tracing::info!(partition = %request.partition, "worker shutting down: partition handed back to the broker");
            return delivery.requeue().await;
        }
        tracing::info!(partition = %request.partition, status = %execution.status, "partition ended");
        delivery.ack().await
    }

    async fn find(&self, job: &JobExecution, id: i64) -> Result<Option<StepExecution>> {
        Ok(self
            .repository
            .step_executions(job.id)
            .await?
            .into_iter()
            .find(|s| s.id == id))
    }

    async fn job_running(&self, id: i64) -> Result<bool> {
        Ok(self
            .repository
            .job_execution(id)
            .await?
            .is_some_and(|j| j.status.is_running() && j.status != BatchStatus::Stopping))
    }

    /// Waits while another worker's heartbeat on the partition is fresh: `Some` (to take
    /// over) once it is stale, `None` when the partition ended meanwhile.
    async fn wait_until_free(
        &self,
        delivery: &dyn Delivery,
        job: &JobExecution,
        id: i64,
    ) -> Result<Option<StepExecution>> {
        loop {
            let Some(stored) = self.find(job, id).await? else {
                return Ok(None);
            };
            if !stored.status.is_running() {
                return Ok(None);
            }
            let age = (Utc::now() - stored.last_updated)
                .to_std()
                .unwrap_or_default();
            if stored.status == BatchStatus::Starting || age > self.timing.stale_after {
                if stored.status != BatchStatus::Starting {
                    tracing::warn!(
                        partition = %stored.step_name,
                        "taking over a partition whose worker stopped beating {}s ago; resuming from its last commit",
                        age.as_secs()
                    );
                }
                return Ok(Some(stored));
            }
            delivery.in_progress().await.ok();
            let wait = (self.timing.stale_after - age).min(self.timing.heartbeat);
            tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        }
    }
}

fn end(execution: &mut StepExecution, status: BatchStatus, why: &str) {
    execution.status = status;
    execution.exit_status = ExitStatus::for_status(status).with_description(why);
    execution.end_time = Some(Utc::now());
    if status == BatchStatus::Failed {
        tracing::error!(partition = %execution.step_name, "{why}");
    }
}

//! Launching and controlling jobs: [`JobOperator`] (start, restart, stop, abandon, recover)
//! and the flow engine that runs a job execution.

mod engine;
mod flow_run;
mod owner;
mod step_run;

pub(crate) use step_run::record_outcome;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

pub use owner::{ProcessOwner, current_owner};

use crate::error::{Error, ErrorKind, Result};
use crate::execution::JobExecution;
use crate::job::Job;
use crate::parameters::JobParameters;
use crate::repository::{ExecutionQuery, JobRepository, NewJobExecution};
use crate::status::{BatchStatus, ExitStatus};

/// Timing settings of a [`JobOperator`].
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// How often a running execution marks itself alive and checks for a stop request.
    pub heartbeat_interval: Duration,
    /// A running execution whose heartbeat is older than this is considered dead (its
    /// process was killed). Executions owned by a dead process on this host are considered
    /// dead at once.
    pub stale_after: Duration,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            heartbeat_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(60),
        }
    }
}

/// Starts, restarts, stops, abandons and recovers job executions (Spring Batch's
/// `JobOperator`).
#[derive(Clone)]
pub struct JobOperator {
    repository: Arc<dyn JobRepository>,
    settings: OperatorSettings,
}

impl JobOperator {
    /// An operator over `repository` with default settings.
    pub fn new(repository: Arc<dyn JobRepository>) -> Self {
        JobOperator {
            repository,
            settings: OperatorSettings::default(),
        }
    }

    /// Replaces the settings.
    pub fn with_settings(mut self, settings: OperatorSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The repository.
    pub fn repository(&self) -> &Arc<dyn JobRepository> {
        &self.repository
    }

    /// The parameters a start of `job` with `given` would use: `given` over the job's
    /// defaults; with an incrementer, the parameters of the last execution if it failed or
    /// stopped (so that it is restarted), otherwise the incremented ones.
    pub async fn resolve_parameters(
        &self,
        job: &Job,
        given: &JobParameters,
    ) -> Result<JobParameters> {
        let mut params = given.clone();
        params.merge_defaults(job.default_parameters());
        let Some(incrementer) = job.incrementer() else {
            return Ok(params);
        };
        let last = self.last_execution(job).await?;
        let Some(last) = last else {
            return Ok(overlay(incrementer.next(&JobParameters::new()), &params));
        };
        let pending_restart =
            last.status.is_restartable() || (last.status.is_running() && self.is_stale(&last));
        if pending_restart {
            let candidate = overlay(last.parameters.clone(), given);
            if candidate.job_key() == last.parameters.job_key() {
                return Ok(candidate);
            }
        }
        Ok(overlay(incrementer.next(&last.parameters), &params))
    }

    /// The newest execution of `job`, if any.
    async fn last_execution(&self, job: &Job) -> Result<Option<JobExecution>> {
        Ok(self
            .repository
            .find_job_executions(&ExecutionQuery {
                job_name: Some(job.name().to_string()),
                status: None,
                limit: Some(1),
            })
            .await?
            .into_iter()
            .next())
    }

    /// The parameters of a new instance of `job` (Spring Batch's `-next`): the incrementer's
    /// next parameters after the last execution's, whatever that execution's status (a
    /// failed or stopped one is left for a restart), with `given` and the job's defaults
    /// over them. A job without an incrementer is a [`ErrorKind::Config`] error.
    pub async fn next_parameters(&self, job: &Job, given: &JobParameters) -> Result<JobParameters> {
        let Some(incrementer) = job.incrementer() else {
            return Err(Error::config(format!(
                "job `{}` has no incrementer: a next instance is made by one (`incrementer: \
                 run-id` in the job file); without it, give other identifying parameters",
                job.name()
            )));
        };
        let last = self
            .last_execution(job)
            .await?
            .map(|last| last.parameters)
            .unwrap_or_default();
        let mut params = given.clone();
        params.merge_defaults(job.default_parameters());
        Ok(overlay(incrementer.next(&last), &params))
    }

    /// Starts `job` (restarting its instance if the last execution failed or stopped) and runs
    /// it to the end. A running execution of the same instance whose process is gone is marked
    /// FAILED first, with a log line saying so. Returns the finished execution.
    pub async fn start(
        &self,
        job: &Job,
        parameters: JobParameters,
        cancel: CancellationToken,
    ) -> Result<JobExecution> {
        let parameters = self.resolve_parameters(job, &parameters).await?;
        self.recover_instance(job.name(), &parameters).await?;
        let owner = current_owner().to_string();
        let execution = self
            .repository
            .create_job_execution(NewJobExecution {
                job_name: job.name(),
                parameters: &parameters,
                job_configuration_location: job.location(),
                owner: &owner,
            })
            .await?;
        if !execution.execution_context.is_empty() || self.is_restart(&execution).await? {
            if !job.is_restartable() {
                let mut execution = execution;
                execution.status = BatchStatus::Failed;
                execution.exit_status =
                    ExitStatus::failed().with_description("job is not restartable");
                execution.end_time = Some(Utc::now());
                self.repository.update_job_execution(&mut execution).await?;
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "job `{}` is marked restartable: false and its instance already ran; change an identifying parameter",
                        job.name()
                    ),
                ));
            }
            tracing::info!(
                job = job.name(),
                execution_id = execution.id,
                "restarting job instance {}",
                execution.instance_id
            );
        }
        engine::run(self, job, execution, cancel).await
    }

    async fn is_restart(&self, execution: &JobExecution) -> Result<bool> {
        Ok(self
            .repository
            .job_executions(execution.instance_id)
            .await?
            .len()
            > 1)
    }

    /// Restarts the failed or stopped execution `execution_id` of `job` (rebuilt by the caller
    /// from the execution's `job_configuration_location`) and runs it to the end.
    pub async fn restart(
        &self,
        execution_id: i64,
        job: &Job,
        cancel: CancellationToken,
    ) -> Result<JobExecution> {
        let execution = self.require_execution(execution_id).await?;
        if execution.job_name != job.name() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "execution {execution_id} belongs to job `{}`, not `{}`",
                    execution.job_name,
                    job.name()
                ),
            ));
        }
        let latest = self
            .repository
            .job_executions(execution.instance_id)
            .await?
            .into_iter()
            .next();
        if let Some(latest) = latest
            && latest.id != execution_id
        {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "execution {execution_id} is not the latest of its job instance (execution {} is, status {}); restart that one",
                    latest.id, latest.status
                ),
            ));
        }
        let mut execution = execution;
        if execution.status.is_running() {
            if !self.is_stale(&execution) {
                return Err(Error::new(
                    ErrorKind::AlreadyRunning,
                    format!(
                        "execution {execution_id} is still running (status {}); stop it first with `ikkatsu stop {execution_id}`",
                        execution.status
                    ),
                ));
            }
            self.mark_dead(&mut execution).await?;
        }
        if !execution.status.is_restartable() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "execution {execution_id} is {} and cannot be restarted: only FAILED or STOPPED executions can",
                    execution.status
                ),
            ));
        }
        self.start(job, execution.parameters.clone(), cancel).await
    }

    /// Asks a running execution to stop at its next chunk boundary (it ends STOPPED and can be
    /// restarted). An execution whose process is gone is marked STOPPED at once.
    pub async fn stop(&self, execution_id: i64) -> Result<JobExecution> {
        let mut execution = self.require_execution(execution_id).await?;
        if !execution.status.is_running() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "execution {execution_id} is not running (status {}); nothing to stop",
                    execution.status
                ),
            ));
        }
        if self.is_stale(&execution) {
            self.end_dead(
                &mut execution,
                BatchStatus::Stopped,
                "stopped after its process was gone",
            )
            .await?;
            return Ok(execution);
        }
        execution.status = BatchStatus::Stopping;
        self.repository.update_job_execution(&mut execution).await?;
        Ok(execution)
    }

    /// Marks a stopped or failed execution ABANDONED: it will never be restarted.
    pub async fn abandon(&self, execution_id: i64) -> Result<JobExecution> {
        let mut execution = self.require_execution(execution_id).await?;
        if execution.status.is_running() && !self.is_stale(&execution) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "execution {execution_id} is running (status {}); stop it first with `ikkatsu stop {execution_id}`",
                    execution.status
                ),
            ));
        }
        if execution.status == BatchStatus::Completed {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("execution {execution_id} COMPLETED; there is nothing to abandon"),
            ));
        }
        self.end_dead(&mut execution, BatchStatus::Abandoned, "abandoned")
            .await?;
        Ok(execution)
    }

    /// Marks every running execution whose process is gone (stale heartbeat, or dead pid on
    /// this host) as FAILED so it can be restarted. Returns the executions recovered.
    pub async fn recover(&self) -> Result<Vec<JobExecution>> {
        let mut recovered = Vec::new();
        for status in [
            BatchStatus::Starting,
            BatchStatus::Started,
            BatchStatus::Stopping,
        ] {
            let executions = self
                .repository
                .find_job_executions(&ExecutionQuery {
                    job_name: None,
                    status: Some(status),
                    limit: None,
                })
                .await?;
            for mut execution in executions {
                if self.is_stale(&execution) {
                    self.mark_dead(&mut execution).await?;
                    recovered.push(execution);
                }
            }
        }
        Ok(recovered)
    }

    /// Whether a running execution's process is gone.
    pub fn is_stale(&self, execution: &JobExecution) -> bool {
        if !execution.status.is_running() {
            return false;
        }
        if let Some(owner) = execution.owner.as_deref().and_then(ProcessOwner::parse)
            && let Some(alive) = owner.is_alive_here()
        {
            return !alive;
        }
        let age = Utc::now() - execution.last_updated;
        age.to_std().unwrap_or_default() > self.settings.stale_after
    }

    async fn recover_instance(&self, job_name: &str, parameters: &JobParameters) -> Result<()> {
        let Some(instance) = self
            .repository
            .find_job_instance(job_name, &parameters.job_key())
            .await?
        else {
            return Ok(());
        };
        for mut execution in self.repository.job_executions(instance.id).await? {
            if execution.status.is_running() && self.is_stale(&execution) {
                tracing::warn!(
                    job = job_name,
                    execution_id = execution.id,
                    owner = execution.owner.as_deref().unwrap_or("?"),
                    "execution {} was left {} by a process that is gone; marking it FAILED and restarting from its last committed chunk",
                    execution.id,
                    execution.status
                );
                self.mark_dead(&mut execution).await?;
            }
        }
        Ok(())
    }

    async fn mark_dead(&self, execution: &mut JobExecution) -> Result<()> {
        self.end_dead(
            execution,
            BatchStatus::Failed,
            "recovered: the process running it was gone (killed or crashed)",
        )
        .await
    }

    async fn end_dead(
        &self,
        execution: &mut JobExecution,
        status: BatchStatus,
        why: &str,
    ) -> Result<()> {
        for mut step in self.repository.step_executions(execution.id).await? {
            if step.status.is_running() {
                step.status = status;
                step.exit_status = ExitStatus::for_status(status).with_description(why);
                step.end_time = Some(Utc::now());
                self.repository.update_step_execution(&mut step).await?;
            }
        }
        execution.status = status;
        execution.exit_status = ExitStatus::for_status(status).with_description(why);
        if execution.end_time.is_none() {
            execution.end_time = Some(Utc::now());
        }
        self.repository.update_job_execution(execution).await
    }

    async fn require_execution(&self, execution_id: i64) -> Result<JobExecution> {
        self.repository
            .job_execution(execution_id)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "job execution {execution_id} does not exist in {}; list executions with `ikkatsu executions`",
                        self.repository.describe()
                    ),
                )
            })
    }

    pub(crate) fn settings(&self) -> &OperatorSettings {
        &self.settings
    }
}

fn overlay(mut base: JobParameters, top: &JobParameters) -> JobParameters {
    for (name, param) in top.iter() {
        base.insert(name.clone(), param.value.clone(), param.identifying);
    }
    base
}

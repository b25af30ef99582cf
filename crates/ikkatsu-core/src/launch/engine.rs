//! Runs one job execution: heartbeat, job listeners, the flow (module `flow_run`) and its
//! steps.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::JobOperator;
use super::flow_run::{FlowEnd, FlowRun};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::{JobExecution, StepExecution};
use crate::job::Job;
use crate::listener::StepExecutionListener;
use crate::repository::JobRepository;
use crate::status::{BatchStatus, ExitStatus};
use crate::step::{Step, StepContext};

pub(crate) async fn run(
    operator: &JobOperator,
    job: &Job,
    mut execution: JobExecution,
    cancel: CancellationToken,
) -> Result<JobExecution> {
    let repository = operator.repository().clone();
    let span = tracing::info_span!("job", job = job.name(), execution_id = execution.id);
    async {
        execution.status = BatchStatus::Started;
        execution.start_time = Some(Utc::now());
        execution.exit_status = ExitStatus::executing();
        repository.update_job_execution(&mut execution).await?;
        tracing::info!(parameters = %execution.parameters.identifying_text(), "job started");

        let heartbeat_done = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat_loop(
            repository.clone(),
            execution.id,
            operator.settings().heartbeat_interval,
            cancel.clone(),
            heartbeat_done.clone(),
        ));

        let mut end = match before_job(job, &execution).await {
            Ok(()) => {
                let run = FlowRun {
                    repository: &repository,
                    cancel: &cancel,
                };
                run.run_job_flow(job.flow(), &mut execution).await
            }
            Err(err) => Err(err),
        }
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "job failed");
            let status = if err.kind() == ErrorKind::Cancelled {
                BatchStatus::Stopped
            } else {
                BatchStatus::Failed
            };
            FlowEnd::new(
                status,
                ExitStatus::failed().with_description(err.report()),
            )
        });
        heartbeat_done.cancel();
        let _ = heartbeat.await;

        if end.status == BatchStatus::Stopped && end.exit_status.exit_code == ExitStatus::FAILED {
            end.exit_status.exit_code = ExitStatus::STOPPED.to_string();
        }
        execution.status = end.status;
        execution.exit_status = end.exit_status;
        execution.end_time = Some(Utc::now());
        for listener in job.listeners() {
            if let Err(err) = listener.after_job(&execution).await {
                tracing::error!(error = %err, "job listener failed after the job");
                execution.status = BatchStatus::Failed;
                execution.exit_status =
                    ExitStatus::failed().with_description(err.report());
            }
        }
        repository.update_job_execution(&mut execution).await?;
        tracing::info!(status = %execution.status, exit_code = %execution.exit_status.exit_code, "job ended");
        Ok(execution)
    }
    .instrument(span)
    .await
}

async fn before_job(job: &Job, execution: &JobExecution) -> Result<()> {
    for listener in job.listeners() {
        listener.before_job(execution).await?;
    }
    Ok(())
}

async fn heartbeat_loop(
    repository: Arc<dyn JobRepository>,
    execution_id: i64,
    interval: std::time::Duration,
    cancel: CancellationToken,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match repository.heartbeat(execution_id).await {
            Ok(BatchStatus::Stopping) if !cancel.is_cancelled() => {
                tracing::info!(
                    execution_id,
                    "stop requested; stopping at the next chunk boundary"
                );
                cancel.cancel();
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(execution_id, error = %err, "heartbeat failed"),
        }
    }
}

pub(super) async fn run_step(
    step: &dyn Step,
    listeners: &[Arc<dyn StepExecutionListener>],
    execution: &JobExecution,
    repository: &Arc<dyn JobRepository>,
    cancel: &CancellationToken,
) -> Result<StepExecution> {
    let name = step.name();
    let last = repository
        .last_step_execution(execution.instance_id, name)
        .await?;
    if let Some(last) = &last
        && last.status == BatchStatus::Completed
        && !step.allow_start_if_complete()
    {
        tracing::info!(
            step = name,
            "step already completed in execution {}; not run again",
            last.job_execution_id
        );
        return Ok(last.clone());
    }
    let started = repository
        .step_execution_count(execution.instance_id, name)
        .await?;
    if started >= step.start_limit() {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "step `{name}` reached its start limit ({}); raise `start-limit` or abandon the execution",
                step.start_limit()
            ),
        ));
    }
    let mut step_execution = StepExecution::new(execution.id, name);
    if let Some(last) = last
        && last.status != BatchStatus::Completed
    {
        step_execution.execution_context = last.execution_context;
    }
    step_execution.status = BatchStatus::Started;
    repository.add_step_execution(&mut step_execution).await?;
    let span = tracing::info_span!("step", step = name, step_execution_id = step_execution.id);
    let ctx = StepContext {
        job_execution_id: execution.id,
        job_name: execution.job_name.clone(),
        parameters: execution.parameters.clone(),
        job_context: execution.execution_context.clone(),
        repository: repository.clone(),
        cancel: cancel.clone(),
    };
    let result = async {
        for listener in listeners {
            listener.before_step(&step_execution).await?;
        }
        step.execute(&mut step_execution, &ctx).await
    }
    .instrument(span.clone())
    .await;
    let _enter = span.enter();
    match result {
        Ok(()) => {
            step_execution.status = BatchStatus::Completed;
            if step_execution.exit_status.exit_code == ExitStatus::EXECUTING {
                step_execution.exit_status = ExitStatus::completed();
            }
            tracing::info!(
                read = step_execution.counts.read_count,
                written = step_execution.counts.write_count,
                commits = step_execution.counts.commit_count,
                "step completed"
            );
        }
        Err(err) if err.kind() == ErrorKind::Cancelled => {
            step_execution.status = BatchStatus::Stopped;
            step_execution.exit_status = ExitStatus::stopped().with_description(err.report());
            tracing::info!("step stopped");
        }
        Err(err) => {
            step_execution.status = BatchStatus::Failed;
            step_execution.exit_status = ExitStatus::failed().with_description(err.report());
            tracing::error!(error = %err.report(), "step failed");
        }
    }
    drop(_enter);
    for listener in listeners {
        match listener.after_step(&step_execution).await {
            Ok(Some(exit)) => step_execution.exit_status = exit,
            Ok(None) => {}
            Err(err) => {
                step_execution.status = BatchStatus::Failed;
                step_execution.exit_status = ExitStatus::failed().with_description(err.report());
            }
        }
    }
    step_execution.end_time = Some(Utc::now());
    repository
        .update_step_execution(&mut step_execution)
        .await?;
    Ok(step_execution)
}

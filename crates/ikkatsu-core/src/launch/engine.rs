//! Runs one job execution: heartbeat, job listeners and the flow (module `flow_run`, whose
//! steps module `step_run` runs).

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::JobOperator;
use super::flow_run::{FlowEnd, FlowRun};
use crate::error::{ErrorKind, Result};
use crate::execution::JobExecution;
use crate::job::Job;
use crate::repository::JobRepository;
use crate::status::{BatchStatus, ExitStatus};

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

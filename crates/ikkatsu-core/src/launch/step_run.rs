//! Runs one step of a flow: skipped when it already completed (unless it may start again),
//! refused past its start limit, resumed from its last execution's context, with its
//! listeners around it and its external calls told to the listeners that want them; its
//! outcome recorded in the repository.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::call::CallScope;
use crate::error::{Error, ErrorKind, Result};
use crate::execution::{JobExecution, StepExecution};
use crate::listener::StepExecutionListener;
use crate::repository::JobRepository;
use crate::status::{BatchStatus, ExitStatus};
use crate::step::{Step, StepContext};

pub(crate) async fn run_step(
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
        instance_id: execution.instance_id,
        job_name: execution.job_name.clone(),
        parameters: execution.parameters.clone(),
        job_context: execution.execution_context.clone(),
        repository: repository.clone(),
        cancel: cancel.clone(),
    };
    let calls = CallScope::new(
        name,
        step_execution.id,
        listeners.iter().filter_map(|l| l.call_listener()).collect(),
    );
    let result = calls
        .run(async {
            for listener in listeners {
                listener.before_step(&step_execution).await?;
            }
            step.execute(&mut step_execution, &ctx).await
        })
        .instrument(span.clone())
        .await;
    let _enter = span.enter();
    record_outcome(&mut step_execution, result);
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

/// Sets a step execution's status and exit status from the outcome of its work: `Ok` is
/// COMPLETED (keeping a custom exit code), a [`Cancelled`](ErrorKind::Cancelled) error
/// STOPPED, any other error FAILED with the error as the exit description.
pub(crate) fn record_outcome(step_execution: &mut StepExecution, result: Result<()>) {
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
}

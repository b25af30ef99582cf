//! Runs a flow: its elements one after the other, each followed by the transition its exit
//! code selects; decisions; splits running their flows in parallel and joining them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::step_run::run_step;
use crate::error::{Error, Result};
use crate::execution::{JobExecution, StepExecution};
use crate::job::{Flow, FlowElement, Routing, TransitionTarget, exit_code_matches};
use crate::repository::JobRepository;
use crate::status::{BatchStatus, ExitStatus};

/// Job-context key holding the element a stopped flow restarts at.
pub(crate) const RESTART_AT_KEY: &str = "ikkatsu.flow.restart-at";

/// How a flow ended.
pub(crate) struct FlowEnd {
    pub status: BatchStatus,
    pub exit_status: ExitStatus,
    /// The element a restart begins at (set when the flow stopped).
    pub restart_at: Option<String>,
    /// The step execution that ran last.
    pub last: Option<StepExecution>,
}

impl FlowEnd {
    pub(crate) fn new(status: BatchStatus, exit_status: ExitStatus) -> Self {
        FlowEnd {
            status,
            exit_status,
            restart_at: None,
            last: None,
        }
    }
}

/// What a flow runs with.
pub(crate) struct FlowRun<'a> {
    pub repository: &'a Arc<dyn JobRepository>,
    pub cancel: &'a CancellationToken,
}

/// Where an element's outcome leads.
enum Route {
    Next(String),
    End(Box<FlowEnd>),
}

impl Route {
    fn end(status: BatchStatus, exit_status: ExitStatus) -> Self {
        Route::End(Box::new(FlowEnd::new(status, exit_status)))
    }
}

impl FlowRun<'_> {
    /// Runs the job's flow; a stopped flow's restart element is saved in the job context.
    pub(crate) async fn run_job_flow(
        &self,
        flow: &Flow,
        execution: &mut JobExecution,
    ) -> Result<FlowEnd> {
        let start = match execution.execution_context.remove(RESTART_AT_KEY) {
            Some(serde_json::Value::String(at)) if flow.element(&at).is_some() => at,
            _ => flow.start().to_string(),
        };
        let end = self.run_flow(flow, start, execution).await?;
        // An empty restart element: a restart begins at the start.
        if let Some(at) = end.restart_at.as_deref().filter(|at| !at.is_empty()) {
            execution.execution_context.put(RESTART_AT_KEY, at);
            self.repository.update_job_execution(execution).await?;
        }
        Ok(end)
    }

    /// Runs `flow` from the element `current` on. Boxed: splits run flows within flows.
    fn run_flow<'s>(
        &'s self,
        flow: &'s Flow,
        mut current: String,
        execution: &'s mut JobExecution,
    ) -> Pin<Box<dyn Future<Output = Result<FlowEnd>> + Send + 's>> {
        Box::pin(async move {
            let mut last: Option<StepExecution> = None;
            loop {
                if self.cancel.is_cancelled() {
                    let exit = ExitStatus::stopped()
                        .with_description(format!("stopped on request before `{current}`"));
                    return Ok(stopped(exit, Some(current), last));
                }
                let element = flow.element(&current).ok_or_else(|| {
                    Error::config(format!("flow element `{current}` does not exist"))
                })?;
                let (status, exit) = match element {
                    FlowElement::Step {
                        step,
                        promote_keys,
                        listeners,
                        ..
                    } => {
                        let step_execution = run_step(
                            step.as_ref(),
                            listeners,
                            execution,
                            self.repository,
                            self.cancel,
                        )
                        .await?;
                        if step_execution.status == BatchStatus::Completed
                            && !promote_keys.is_empty()
                        {
                            execution
                                .execution_context
                                .promote_from(&step_execution.execution_context, promote_keys);
                            self.repository.update_job_execution(execution).await?;
                        }
                        let outcome = (step_execution.status, step_execution.exit_status.clone());
                        last = Some(step_execution);
                        outcome
                    }
                    FlowElement::Decision { decider, .. } => {
                        let decided = decider
                            .decide(execution, last.as_ref())
                            .await
                            .map_err(|err| err.context(format!("decision `{current}`")))?;
                        tracing::info!(decision = %current, status = %decided, "decided");
                        (BatchStatus::Completed, ExitStatus::new(decided))
                    }
                    FlowElement::Split { flows, .. } => {
                        let end = self.run_split(&current, flows, execution).await?;
                        if end.last.is_some() {
                            last = end.last;
                        }
                        (end.status, end.exit_status)
                    }
                };
                match route(&current, element.routing(), status, exit) {
                    Route::Next(next) => current = next,
                    Route::End(end) => {
                        let mut end = *end;
                        if end.status == BatchStatus::Stopped && end.restart_at.is_none() {
                            end.restart_at = Some(current.clone());
                        }
                        end.last = last;
                        return Ok(end);
                    }
                }
            }
        })
    }

    /// Runs the flows of the split `name` in parallel, each on a copy of the job execution
    /// (their promoted keys are merged into the job context when all are done), and joins
    /// them: any failed flow fails the split, else any stopped flow stops it.
    async fn run_split(
        &self,
        name: &str,
        flows: &[Flow],
        execution: &mut JobExecution,
    ) -> Result<FlowEnd> {
        let copies: Vec<JobExecution> = flows.iter().map(|_| execution.clone()).collect();
        let runs = flows.iter().zip(copies).map(|(flow, mut copy)| async move {
            let end = self
                .run_flow(flow, flow.start().to_string(), &mut copy)
                .await;
            (end, copy)
        });
        let results = futures::future::join_all(runs).await;
        let mut outcome: Option<FlowEnd> = None;
        let mut first_error = None;
        for (end, copy) in results {
            for (key, value) in copy.execution_context.iter() {
                if execution.execution_context.get_value(key) != Some(value) {
                    execution.execution_context.put(key.clone(), value.clone());
                }
            }
            match end {
                Ok(end) => {
                    let rank = |s: BatchStatus| match s {
                        BatchStatus::Failed => 2,
                        BatchStatus::Stopped => 1,
                        _ => 0,
                    };
                    if outcome
                        .as_ref()
                        .is_none_or(|o| rank(end.status) > rank(o.status))
                    {
                        outcome = Some(end);
                    }
                }
                Err(err) if first_error.is_none() => first_error = Some(err),
                Err(_) => {}
            }
        }
        self.repository.update_job_execution(execution).await?;
        if let Some(err) = first_error {
            return Err(err.context(format!("split `{name}`")));
        }
        let mut end =
            outcome.ok_or_else(|| Error::config(format!("split `{name}` has no flows")))?;
        end.restart_at = None;
        if end.status == BatchStatus::Failed {
            end.exit_status = ExitStatus::failed().with_description(format!(
                "a flow of split `{name}` failed: {}",
                end.exit_status.description
            ));
        }
        Ok(end)
    }
}

fn stopped(exit: ExitStatus, restart_at: Option<String>, last: Option<StepExecution>) -> FlowEnd {
    FlowEnd {
        status: BatchStatus::Stopped,
        exit_status: exit,
        restart_at,
        last,
    }
}

/// The route from the element `current`, which ended with `status` and `exit`: the first
/// transition (most specific first) matching the exit code, else by the status: failed and
/// stopped end the flow so, completed goes to `next` or ends the flow.
fn route(current: &str, routing: &Routing, status: BatchStatus, exit: ExitStatus) -> Route {
    let matched = routing
        .transitions
        .iter()
        .find(|t| exit_code_matches(&t.on, &exit.exit_code));
    let with_code = |code: &Option<String>, default: &str| {
        ExitStatus::new(code.clone().unwrap_or_else(|| default.to_string()))
    };
    match matched.map(|t| &t.target) {
        Some(TransitionTarget::To(to)) => Route::Next(to.clone()),
        Some(TransitionTarget::End { exit_code }) => Route::end(
            BatchStatus::Completed,
            with_code(exit_code, ExitStatus::COMPLETED),
        ),
        Some(TransitionTarget::Fail { exit_code }) => {
            let detail = if exit.description.is_empty() {
                String::new()
            } else {
                format!(": {}", exit.description)
            };
            Route::end(
                BatchStatus::Failed,
                with_code(exit_code, ExitStatus::FAILED).with_description(format!(
                    "`{current}` ended with exit code {}{detail}",
                    exit.exit_code
                )),
            )
        }
        Some(TransitionTarget::Stop { restart, exit_code }) => {
            let exit = with_code(exit_code, ExitStatus::STOPPED)
                .with_description(format!("stopped by a transition after `{current}`"));
            // Without `restart`, a restart re-evaluates the flow from its start.
            let restart = restart.clone().or_else(|| Some(String::new()));
            Route::End(Box::new(stopped(exit, restart, None)))
        }
        None => match status {
            BatchStatus::Failed => Route::end(
                BatchStatus::Failed,
                ExitStatus::failed()
                    .with_description(format!("`{current}` failed: {}", exit.description)),
            ),
            BatchStatus::Stopped => {
                let exit = ExitStatus::stopped()
                    .with_description(format!("stopped in `{current}`: {}", exit.description));
                Route::End(Box::new(stopped(exit, Some(current.to_string()), None)))
            }
            _ => match &routing.next {
                Some(next) => Route::Next(next.clone()),
                None if routing.transitions.is_empty() => {
                    Route::end(BatchStatus::Completed, exit)
                }
                None => Route::end(
                    BatchStatus::Failed,
                    ExitStatus::failed().with_description(format!(
                        "no transition of `{current}` matches its exit code `{}`; add `on: \"*\"` or a pattern for it",
                        exit.exit_code
                    )),
                ),
            },
        },
    }
}

//! Decisions: a [`JobExecutionDecider`] chooses the status a flow's transitions are matched
//! against, from the job execution and the last step execution.

use async_trait::async_trait;

use crate::error::Result;
use crate::execution::{JobExecution, StepExecution};

/// Decides where a flow goes next (Spring Batch's `JobExecutionDecider`): the returned
/// status is matched against the decision element's transitions as a step's exit code is
/// (`on: FULL`, `on: "*"`). A decider runs again on every execution that reaches it,
/// restarts included; it is not recorded as a step.
#[async_trait]
pub trait JobExecutionDecider: Send + Sync {
    /// The status for the transitions. `execution` holds the job parameters and the job
    /// execution context; `last` is the step execution that ran last in this flow, if any.
    async fn decide(
        &self,
        execution: &JobExecution,
        last: Option<&StepExecution>,
    ) -> Result<String>;
}

/// A decider from a function.
pub struct FnDecider<F>(pub F);

#[async_trait]
impl<F> JobExecutionDecider for FnDecider<F>
where
    F: Fn(&JobExecution, Option<&StepExecution>) -> Result<String> + Send + Sync,
{
    async fn decide(
        &self,
        execution: &JobExecution,
        last: Option<&StepExecution>,
    ) -> Result<String> {
        (self.0)(execution, last)
    }
}

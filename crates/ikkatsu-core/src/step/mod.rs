//! Steps: the [`Step`] trait, chunk-oriented steps ([`ChunkStep`]) and tasklet steps
//! ([`TaskletStep`]), with their retry and skip policies (fault tolerance: see
//! [`ChunkStep`]).

mod chunk;
mod policy;
mod tasklet;

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use chunk::{ChunkStep, ChunkStepBuilder};
pub use policy::{Phase, RetryPolicy, SkipPolicy};
pub use tasklet::{RepeatStatus, Tasklet, TaskletStep};

use crate::context::ExecutionContext;
use crate::error::Result;
use crate::execution::StepExecution;
use crate::parameters::JobParameters;
use crate::repository::JobRepository;

/// What a running step can see of its job execution.
#[derive(Clone)]
pub struct StepContext {
    /// The job execution's id.
    pub job_execution_id: i64,
    /// The job instance's id.
    pub instance_id: i64,
    /// The job's name.
    pub job_name: String,
    /// The job execution's parameters.
    pub parameters: JobParameters,
    /// A snapshot of the job-level execution context when the step started.
    pub job_context: ExecutionContext,
    /// Where every chunk is committed.
    pub repository: Arc<dyn JobRepository>,
    /// Cancelled when the job is asked to stop; steps stop at the next chunk boundary.
    pub cancel: CancellationToken,
}

/// A step of a job. The engine creates the [`StepExecution`] (restoring the context of the
/// last unfinished execution of the same step on restart), calls [`Step::execute`], and
/// records the outcome: `Ok` is COMPLETED, an error of kind
/// [`Cancelled`](crate::ErrorKind::Cancelled) is STOPPED, any other error is FAILED.
#[async_trait]
pub trait Step: Send + Sync {
    /// The step's name, unique within its job.
    fn name(&self) -> &str;

    /// Whether a step that COMPLETED in an earlier execution runs again on restart.
    fn allow_start_if_complete(&self) -> bool {
        false
    }

    /// How many times the step may be started within one job instance.
    fn start_limit(&self) -> u64 {
        u64::MAX
    }

    /// The worker step, when this is a partitioned step's manager (what `ikkatsu worker`
    /// runs for each partition request it receives).
    fn partition_worker(&self) -> Option<Arc<dyn Step>> {
        None
    }

    /// Does the step's work, committing progress to `ctx.repository` as it goes. May set
    /// a custom exit code in `execution.exit_status`.
    async fn execute(&self, execution: &mut StepExecution, ctx: &StepContext) -> Result<()>;
}

//! The [`JobRepository`] port: where instances, executions, their counts and saved contexts
//! live. The core ships [`MemoryJobRepository`]; `ikkatsu-repository-sql` adds SQLite,
//! PostgreSQL and MySQL/MariaDB.

mod memory;

use async_trait::async_trait;

pub use memory::{MemoryJobRepository, check_can_create};

use crate::error::Result;
use crate::execution::{JobExecution, JobInstance, StepExecution};
use crate::parameters::JobParameters;
use crate::status::BatchStatus;

/// Filter for [`JobRepository::find_job_executions`].
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    /// Only executions of this job.
    pub job_name: Option<String>,
    /// Only executions in this status.
    pub status: Option<BatchStatus>,
    /// At most this many, newest first (`None`: all).
    pub limit: Option<u64>,
}

/// What [`JobRepository::create_job_execution`] needs to know about the new run.
#[derive(Debug, Clone)]
pub struct NewJobExecution<'a> {
    /// The job's name.
    pub job_name: &'a str,
    /// All parameters of the run; the identifying ones select the instance.
    pub parameters: &'a JobParameters,
    /// Where the job is defined (a YAML path), kept so `restart` can rebuild it.
    pub job_configuration_location: Option<&'a str>,
    /// `host:pid` of the process that will run the execution.
    pub owner: &'a str,
}

/// Stores job instances, job executions and step executions with their contexts.
///
/// Every backend passes the conformance suite in `ikkatsu-testkit`, which is the
/// specification of this trait.
///
/// # Chunk commit cost
/// [`JobRepository::update_step_execution`] is the only call made per chunk; backends do it in
/// one statement (counts, status and context together).
#[async_trait]
pub trait JobRepository: Send + Sync + 'static {
    /// A short description for logs (`sqlite:///path`, `memory`); never contains secrets.
    fn describe(&self) -> String;

    /// Finds or creates the job instance for the job name and identifying parameters, then,
    /// atomically with respect to other launches, creates a new execution in `STARTING`.
    ///
    /// Refuses with
    /// * [`ErrorKind::AlreadyRunning`](crate::ErrorKind::AlreadyRunning) when an execution
    ///   of the instance is `STARTING`, `STARTED` or `STOPPING` (the message names its id);
    /// * [`ErrorKind::AlreadyComplete`](crate::ErrorKind::AlreadyComplete) when the last
    ///   execution `COMPLETED` and the instance has identifying parameters, or when it was
    ///   `ABANDONED`.
    ///
    /// A new execution of an instance whose last execution failed or stopped starts with that
    /// execution's job-level execution context (a restart).
    async fn create_job_execution(&self, new: NewJobExecution<'_>) -> Result<JobExecution>;

    /// Stores the execution's status, exit status, times, owner and context, bumps its version
    /// and sets `last_updated` to now. A stored `STOPPING` is never replaced by `STARTING` or
    /// `STARTED`, so a stop requested from another process is not lost; `execution.status`
    /// is set to what was stored.
    async fn update_job_execution(&self, execution: &mut JobExecution) -> Result<()>;

    /// Marks a running execution alive (`last_updated` = now) and returns its stored status,
    /// through which a stop requested elsewhere reaches the running process.
    async fn heartbeat(&self, job_execution_id: i64) -> Result<BatchStatus>;

    /// Marks a running step execution alive (`last_updated` = now), touching nothing else:
    /// a partition's worker calls it while the partition runs, so another worker can tell a
    /// live partition from one whose worker is gone.
    async fn heartbeat_step_execution(&self, step_execution_id: i64) -> Result<()>;

    /// Stores a new step execution and sets its id.
    async fn add_step_execution(&self, execution: &mut StepExecution) -> Result<()>;

    /// Stores a step execution's counts, status, exit status, times and context in one
    /// statement, bumps its version and sets `last_updated`.
    async fn update_step_execution(&self, execution: &mut StepExecution) -> Result<()>;

    /// The instance with this id.
    async fn job_instance(&self, instance_id: i64) -> Result<Option<JobInstance>>;

    /// The instance of `job_name` with this key ([`JobParameters::job_key`]).
    async fn find_job_instance(&self, job_name: &str, job_key: &str)
    -> Result<Option<JobInstance>>;

    /// The execution with this id.
    async fn job_execution(&self, job_execution_id: i64) -> Result<Option<JobExecution>>;

    /// The executions of an instance, newest first.
    async fn job_executions(&self, instance_id: i64) -> Result<Vec<JobExecution>>;

    /// Executions matching the query, newest first.
    async fn find_job_executions(&self, query: &ExecutionQuery) -> Result<Vec<JobExecution>>;

    /// The step executions of a job execution, in the order they were created.
    async fn step_executions(&self, job_execution_id: i64) -> Result<Vec<StepExecution>>;

    /// The latest step execution named `step_name` across all executions of an instance.
    async fn last_step_execution(
        &self,
        instance_id: i64,
        step_name: &str,
    ) -> Result<Option<StepExecution>>;

    /// How many times a step has been started across all executions of an instance.
    async fn step_execution_count(&self, instance_id: i64, step_name: &str) -> Result<u64>;

    /// Names of all jobs that have instances, sorted.
    async fn job_names(&self) -> Result<Vec<String>>;
}

//! The records the job repository keeps: [`JobInstance`], [`JobExecution`] and
//! [`StepExecution`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::ExecutionContext;
use crate::parameters::JobParameters;
use crate::status::{BatchStatus, ExitStatus};

/// A job name plus its identifying parameters: the unit that is run, fails and is restarted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInstance {
    /// Repository id.
    pub id: i64,
    /// The job's name.
    pub job_name: String,
    /// Hash of the identifying parameters ([`JobParameters::job_key`]).
    pub job_key: String,
}

/// One run of a job instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobExecution {
    /// Repository id.
    pub id: i64,
    /// The instance this execution runs.
    pub instance_id: i64,
    /// The job's name.
    pub job_name: String,
    /// All parameters of this run.
    pub parameters: JobParameters,
    /// Lifecycle state.
    pub status: BatchStatus,
    /// Exit status (set when the execution ends).
    pub exit_status: ExitStatus,
    /// When the execution record was created.
    pub create_time: DateTime<Utc>,
    /// When it started running.
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    pub end_time: Option<DateTime<Utc>>,
    /// Last heartbeat or update; a running execution whose heartbeat is stale is recovered.
    pub last_updated: DateTime<Utc>,
    /// `host:pid` of the process running it.
    pub owner: Option<String>,
    /// Where the job was defined (a YAML path), so that `restart` can rebuild it.
    pub job_configuration_location: Option<String>,
    /// Job-level saved state.
    pub execution_context: ExecutionContext,
    /// Optimistic-lock version, increased by each update.
    pub version: i64,
}

impl JobExecution {
    /// A new, not yet stored execution.
    pub fn new(instance: &JobInstance, parameters: JobParameters) -> Self {
        let now = Utc::now();
        JobExecution {
            id: 0,
            instance_id: instance.id,
            job_name: instance.job_name.clone(),
            parameters,
            status: BatchStatus::Starting,
            exit_status: ExitStatus::unknown(),
            create_time: now,
            start_time: None,
            end_time: None,
            last_updated: now,
            owner: None,
            job_configuration_location: None,
            execution_context: ExecutionContext::new(),
            version: 0,
        }
    }
}

/// Counters of a step execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    /// Items read.
    pub read_count: u64,
    /// Items written.
    pub write_count: u64,
    /// Items filtered out by a processor (returned `None`).
    pub filter_count: u64,
    /// Items skipped on read.
    pub read_skip_count: u64,
    /// Items skipped on process.
    pub process_skip_count: u64,
    /// Items skipped on write.
    pub write_skip_count: u64,
    /// Chunks (or tasklet iterations) committed.
    pub commit_count: u64,
    /// Chunks rolled back.
    pub rollback_count: u64,
}

impl StepCounts {
    /// All skips.
    pub fn skip_count(&self) -> u64 {
        self.read_skip_count + self.process_skip_count + self.write_skip_count
    }
}

/// One run of a step within a job execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepExecution {
    /// Repository id.
    pub id: i64,
    /// The job execution this step ran in.
    pub job_execution_id: i64,
    /// The step's name.
    pub step_name: String,
    /// Lifecycle state.
    pub status: BatchStatus,
    /// Exit status (matched by flow transitions).
    pub exit_status: ExitStatus,
    /// Counters.
    pub counts: StepCounts,
    /// When the step started.
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    pub end_time: Option<DateTime<Utc>>,
    /// Last update.
    pub last_updated: DateTime<Utc>,
    /// Step-level saved state (reader/writer positions).
    pub execution_context: ExecutionContext,
    /// Optimistic-lock version, increased by each update.
    pub version: i64,
}

impl StepExecution {
    /// A new, not yet stored step execution.
    pub fn new(job_execution_id: i64, step_name: impl Into<String>) -> Self {
        let now = Utc::now();
        StepExecution {
            id: 0,
            job_execution_id,
            step_name: step_name.into(),
            status: BatchStatus::Starting,
            exit_status: ExitStatus::executing(),
            counts: StepCounts::default(),
            start_time: Some(now),
            end_time: None,
            last_updated: now,
            execution_context: ExecutionContext::new(),
            version: 0,
        }
    }
}

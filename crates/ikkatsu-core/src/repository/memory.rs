//! An in-memory [`JobRepository`]: for tests and for jobs that need no restart.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;

use super::{ExecutionQuery, JobRepository, NewJobExecution};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::{JobExecution, JobInstance, StepExecution};
use crate::status::BatchStatus;

#[derive(Default)]
struct State {
    instances: Vec<JobInstance>,
    jobs: Vec<JobExecution>,
    steps: Vec<StepExecution>,
}

/// Keeps everything in process memory; lost when the process ends.
#[derive(Default)]
pub struct MemoryJobRepository {
    state: Mutex<State>,
}

impl MemoryJobRepository {
    /// An empty repository.
    pub fn new() -> Self {
        MemoryJobRepository::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn instance_of<'a>(state: &'a State, id: i64) -> impl Iterator<Item = &'a JobExecution> + 'a {
    state.jobs.iter().filter(move |e| e.instance_id == id)
}

/// The checks every backend makes before creating an execution for an instance whose
/// newest execution is `last`. Shared with the SQL backends so that messages match.
pub fn check_can_create(
    job_name: &str,
    has_identifying: bool,
    last: Option<&JobExecution>,
    running: Option<&JobExecution>,
) -> Result<()> {
    if let Some(running) = running {
        return Err(Error::new(
            ErrorKind::AlreadyRunning,
            format!(
                "job `{job_name}` with these parameters is already running (execution {}, status {}); wait for it, stop it with `ikkatsu stop {}`, or if its process is gone run `ikkatsu recover`",
                running.id, running.status, running.id
            ),
        ));
    }
    if let Some(last) = last {
        match last.status {
            BatchStatus::Completed if has_identifying => {
                return Err(Error::new(
                    ErrorKind::AlreadyComplete,
                    format!(
                        "job `{job_name}` already completed with these parameters (execution {}); change an identifying parameter or add `incrementer: run-id` to the job to run it again",
                        last.id
                    ),
                ));
            }
            BatchStatus::Abandoned => {
                return Err(Error::new(
                    ErrorKind::AlreadyComplete,
                    format!(
                        "job `{job_name}` with these parameters was abandoned (execution {}) and cannot be restarted; change an identifying parameter to run it again",
                        last.id
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[async_trait]
impl JobRepository for MemoryJobRepository {
    fn describe(&self) -> String {
        "memory".to_string()
    }

    async fn create_job_execution(&self, new: NewJobExecution<'_>) -> Result<JobExecution> {
        let mut state = self.lock();
        let key = new.parameters.job_key();
        let instance = match state
            .instances
            .iter()
            .find(|i| i.job_name == new.job_name && i.job_key == key)
        {
            Some(instance) => instance.clone(),
            None => {
                let instance = JobInstance {
                    id: state.instances.len() as i64 + 1,
                    job_name: new.job_name.to_string(),
                    job_key: key,
                };
                state.instances.push(instance.clone());
                instance
            }
        };
        let last = instance_of(&state, instance.id)
            .max_by_key(|e| e.id)
            .cloned();
        let running = instance_of(&state, instance.id)
            .find(|e| e.status.is_running())
            .cloned();
        check_can_create(
            new.job_name,
            !new.parameters.identifying().is_empty(),
            last.as_ref(),
            running.as_ref(),
        )?;
        let mut execution = JobExecution::new(&instance, new.parameters.clone());
        execution.id = state.jobs.len() as i64 + 1;
        execution.owner = Some(new.owner.to_string());
        execution.job_configuration_location = new.job_configuration_location.map(str::to_string);
        if let Some(last) = last {
            execution.execution_context = last.execution_context;
        }
        state.jobs.push(execution.clone());
        Ok(execution)
    }

    async fn update_job_execution(&self, execution: &mut JobExecution) -> Result<()> {
        let mut state = self.lock();
        let stored = state
            .jobs
            .iter_mut()
            .find(|e| e.id == execution.id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("job execution {} does not exist", execution.id),
                )
            })?;
        if stored.status == BatchStatus::Stopping
            && matches!(
                execution.status,
                BatchStatus::Starting | BatchStatus::Started
            )
        {
            execution.status = BatchStatus::Stopping;
        }
        execution.version = stored.version + 1;
        execution.last_updated = Utc::now();
        *stored = execution.clone();
        Ok(())
    }

    async fn heartbeat(&self, job_execution_id: i64) -> Result<BatchStatus> {
        let mut state = self.lock();
        let stored = state
            .jobs
            .iter_mut()
            .find(|e| e.id == job_execution_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("job execution {job_execution_id} does not exist"),
                )
            })?;
        stored.last_updated = Utc::now();
        Ok(stored.status)
    }

    async fn heartbeat_step_execution(&self, step_execution_id: i64) -> Result<()> {
        let mut state = self.lock();
        let stored = state
            .steps
            .iter_mut()
            .find(|e| e.id == step_execution_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("step execution {step_execution_id} does not exist"),
                )
            })?;
        stored.last_updated = Utc::now();
        Ok(())
    }

    async fn add_step_execution(&self, execution: &mut StepExecution) -> Result<()> {
        let mut state = self.lock();
        execution.id = state.steps.len() as i64 + 1;
        execution.last_updated = Utc::now();
        state.steps.push(execution.clone());
        Ok(())
    }

    async fn update_step_execution(&self, execution: &mut StepExecution) -> Result<()> {
        let mut state = self.lock();
        let stored = state
            .steps
            .iter_mut()
            .find(|e| e.id == execution.id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("step execution {} does not exist", execution.id),
                )
            })?;
        execution.version = stored.version + 1;
        execution.last_updated = Utc::now();
        *stored = execution.clone();
        Ok(())
    }

    async fn job_instance(&self, instance_id: i64) -> Result<Option<JobInstance>> {
        Ok(self
            .lock()
            .instances
            .iter()
            .find(|i| i.id == instance_id)
            .cloned())
    }

    async fn find_job_instance(
        &self,
        job_name: &str,
        job_key: &str,
    ) -> Result<Option<JobInstance>> {
        Ok(self
            .lock()
            .instances
            .iter()
            .find(|i| i.job_name == job_name && i.job_key == job_key)
            .cloned())
    }

    async fn job_execution(&self, job_execution_id: i64) -> Result<Option<JobExecution>> {
        Ok(self
            .lock()
            .jobs
            .iter()
            .find(|e| e.id == job_execution_id)
            .cloned())
    }

    async fn job_executions(&self, instance_id: i64) -> Result<Vec<JobExecution>> {
        let state = self.lock();
        let mut out: Vec<_> = instance_of(&state, instance_id).cloned().collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.id));
        Ok(out)
    }

    async fn find_job_executions(&self, query: &ExecutionQuery) -> Result<Vec<JobExecution>> {
        let state = self.lock();
        let mut out: Vec<_> = state
            .jobs
            .iter()
            .filter(|e| query.job_name.as_deref().is_none_or(|n| e.job_name == n))
            .filter(|e| query.status.is_none_or(|s| e.status == s))
            .cloned()
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.id));
        if let Some(limit) = query.limit {
            out.truncate(limit as usize);
        }
        Ok(out)
    }

    async fn step_executions(&self, job_execution_id: i64) -> Result<Vec<StepExecution>> {
        Ok(self
            .lock()
            .steps
            .iter()
            .filter(|s| s.job_execution_id == job_execution_id)
            .cloned()
            .collect())
    }

    async fn last_step_execution(
        &self,
        instance_id: i64,
        step_name: &str,
    ) -> Result<Option<StepExecution>> {
        let state = self.lock();
        let job_ids: Vec<i64> = instance_of(&state, instance_id).map(|e| e.id).collect();
        Ok(state
            .steps
            .iter()
            .filter(|s| s.step_name == step_name && job_ids.contains(&s.job_execution_id))
            .max_by_key(|s| s.id)
            .cloned())
    }

    async fn step_execution_count(&self, instance_id: i64, step_name: &str) -> Result<u64> {
        let state = self.lock();
        let job_ids: Vec<i64> = instance_of(&state, instance_id).map(|e| e.id).collect();
        Ok(state
            .steps
            .iter()
            .filter(|s| s.step_name == step_name && job_ids.contains(&s.job_execution_id))
            .count() as u64)
    }

    async fn job_names(&self) -> Result<Vec<String>> {
        let state = self.lock();
        let mut names: Vec<String> = state.instances.iter().map(|i| i.job_name.clone()).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

//! `ikkatsu worker`: takes partition requests from a broker and runs them against the
//! shared job repository, building each partition's worker step from the job file recorded
//! with its job execution.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use ikkatsu_config::{AppConfig, BrokerSettings};
use ikkatsu_core::partition::{PartitionTiming, PartitionWorker, StepLocator};
use ikkatsu_core::{CancellationToken, Error, ErrorKind, JobExecution, Step};

use crate::args::{GlobalArgs, WorkerArgs};
use crate::exit::{EXIT_COMPLETED, stop_on_signals};
use crate::open::{existing_repository, load_definition};

pub async fn worker(global: &GlobalArgs, args: WorkerArgs) -> Result<u8, Error> {
    ikkatsu_core::secret::register_url(&args.broker);
    let repository = existing_repository(&global.repository_url).await?;
    let registry = ikkatsu::registry(global.app.clone());
    let broker = registry.broker(&BrokerSettings::new(&args.broker, &args.queue))?;
    let timing = PartitionTiming {
        heartbeat: args.partition_heartbeat,
        stale_after: args.partition_stale_after,
        ..PartitionTiming::default()
    };
    if timing.stale_after <= timing.heartbeat * 2 {
        return Err(Error::config(
            "--partition-stale-after must be more than twice --partition-heartbeat, or a live partition would look abandoned",
        ));
    }
    let locator = Arc::new(JobFileLocator {
        app: global.app.clone(),
    });
    let shutdown = CancellationToken::new();
    stop_on_signals(shutdown.clone());
    PartitionWorker::new(repository, broker, locator)
        .with_concurrency(args.concurrency as usize)
        .with_timing(timing)
        .run(shutdown)
        .await?;
    tracing::info!("worker stopped");
    Ok(EXIT_COMPLETED)
}

/// Builds a job execution's job from the job file it recorded, with its parameters.
struct JobFileLocator {
    app: AppConfig,
}

#[async_trait]
impl StepLocator for JobFileLocator {
    async fn worker_step(
        &self,
        job: &JobExecution,
        step_name: &str,
    ) -> Result<Arc<dyn Step>, Error> {
        let location = job.job_configuration_location.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!(
                    "job execution {} has no job file recorded; workers run partitions of jobs started with `ikkatsu run`",
                    job.id
                ),
            )
        })?;
        let definition = load_definition(Path::new(location)).map_err(|err| {
            err.context(format!(
                "the worker reads the job file of execution {} (the file must be at the same path on every worker's machine)",
                job.id
            ))
        })?;
        let built = definition
            .build(&ikkatsu::registry(self.app.clone()), &job.parameters)
            .map_err(Error::from)?;
        let step = built.flow().find_step(step_name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("job `{}` in {location} has no step `{step_name}`; was the file changed since the job started?", built.name()),
            )
        })?;
        step.partition_worker().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("step `{step_name}` of {location} is not a partitioned step"),
            )
        })
    }
}

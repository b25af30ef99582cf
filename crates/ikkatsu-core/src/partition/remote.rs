//! Remote partitioning: the manager sends one [`PartitionRequest`] per partition through a
//! [`PartitionBroker`] and follows the partitions in the shared job repository; `ikkatsu
//! worker` processes ([`PartitionWorker`]) receive the requests and run them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PartitionHandler;
use super::run::PartitionTiming;
use crate::error::{Error, ErrorKind, Result};
use crate::execution::{JobExecution, StepExecution};
use crate::step::{Step, StepContext};

pub use super::worker::PartitionWorker;

/// What a worker is asked to run: one partition execution, by id. Everything else (the
/// job file, the parameters, the partition's context) is read from the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRequest {
    /// The job execution the partition belongs to.
    pub job_execution_id: i64,
    /// The partition's step execution.
    pub step_execution_id: i64,
    /// The manager step's name (the partitioned element).
    pub step_name: String,
    /// The partition's step execution name (`step:partition`).
    pub partition: String,
}

impl PartitionRequest {
    /// The request as a message body (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a message body; an error names what is wrong.
    pub fn from_bytes(body: &[u8]) -> Result<Self> {
        serde_json::from_slice(body).map_err(|err| {
            Error::new(
                ErrorKind::Parse,
                format!("a partition request is not the JSON ikkatsu sends: {err}"),
            )
        })
    }
}

/// A message broker carrying partition requests from managers to workers: one module per
/// broker (RabbitMQ, NATS JetStream) in `ikkatsu-broker`.
///
/// Delivery is at least once: a request is acknowledged only after its partition's final
/// commit, and is delivered again when its worker dies before that.
#[async_trait]
pub trait PartitionBroker: Send + Sync {
    /// The broker and queue for logs (`amqp://host:5672/%2f queue ikkatsu.partitions`),
    /// without secrets.
    fn describe(&self) -> String;

    /// Sends a request (durably: it survives a broker restart where the broker can).
    async fn send(&self, request: &PartitionRequest) -> Result<()>;

    /// Waits for the next request. A broker that is gone is an error, never "no request".
    async fn receive(&self) -> Result<Box<dyn Delivery>>;
}

/// A received request, to be acknowledged once its partition has ended.
#[async_trait]
pub trait Delivery: Send + Sync {
    /// The request.
    fn request(&self) -> &PartitionRequest;

    /// Whether the broker delivered it before (to a worker that did not acknowledge it).
    fn redelivered(&self) -> bool;

    /// Done with: the broker forgets the request.
    async fn ack(self: Box<Self>) -> Result<()>;

    /// Not done: the broker delivers the request again (to this or another worker).
    async fn requeue(self: Box<Self>) -> Result<()>;

    /// Still being worked on (brokers that redeliver after a time, like NATS JetStream,
    /// wait longer); a no-op where the broker waits for the connection instead.
    async fn in_progress(&self) -> Result<()> {
        Ok(())
    }
}

/// Finds the worker step a request names, by building the job its execution was started
/// from (the CLI reads the job file recorded with the execution).
#[async_trait]
pub trait StepLocator: Send + Sync {
    /// The worker step of the partitioned step `step_name` of `job`'s job.
    async fn worker_step(&self, job: &JobExecution, step_name: &str) -> Result<Arc<dyn Step>>;
}

/// Sends partitions to workers through a broker and waits for them in the repository
/// (Spring Batch's `MessageChannelPartitionHandler` polling the repository).
pub struct RemotePartitionHandler {
    broker: Arc<dyn PartitionBroker>,
    timing: PartitionTiming,
}

impl RemotePartitionHandler {
    /// A handler sending requests through `broker`.
    pub fn new(broker: Arc<dyn PartitionBroker>) -> Self {
        RemotePartitionHandler {
            broker,
            timing: PartitionTiming::default(),
        }
    }

    /// Replaces the timing (poll interval, timeout, staleness).
    pub fn with_timing(mut self, timing: PartitionTiming) -> Self {
        self.timing = timing;
        self
    }
}

#[async_trait]
impl PartitionHandler for RemotePartitionHandler {
    fn describe(&self) -> String {
        format!("remote workers through {}", self.broker.describe())
    }

    async fn handle(
        &self,
        manager: &str,
        _worker: Arc<dyn Step>,
        partitions: Vec<StepExecution>,
        ctx: &StepContext,
    ) -> Result<Vec<StepExecution>> {
        for partition in &partitions {
            let request = PartitionRequest {
                job_execution_id: ctx.job_execution_id,
                step_execution_id: partition.id,
                step_name: manager.to_string(),
                partition: partition.step_name.clone(),
            };
            self.broker.send(&request).await.map_err(|err| {
                err.context(format!(
                    "sending partition `{}` to {}",
                    partition.step_name,
                    self.broker.describe()
                ))
            })?;
        }
        tracing::info!(
            step = manager,
            partitions = partitions.len(),
            "sent to {}; waiting for workers",
            self.broker.describe()
        );
        self.wait(partitions, ctx).await
    }
}

impl RemotePartitionHandler {
    /// Polls the repository until every partition has ended, the timeout passes, or (after
    /// a stop request) the workers had the time to stop.
    async fn wait(
        &self,
        partitions: Vec<StepExecution>,
        ctx: &StepContext,
    ) -> Result<Vec<StepExecution>> {
        let started = Instant::now();
        let mut pending: BTreeMap<i64, StepExecution> =
            partitions.into_iter().map(|p| (p.id, p)).collect();
        let mut ended = Vec::with_capacity(pending.len());
        let mut stop_asked: Option<Instant> = None;
        let mut warned_stale = std::collections::HashSet::new();
        loop {
            for stored in ctx.repository.step_executions(ctx.job_execution_id).await? {
                if !pending.contains_key(&stored.id) {
                    continue;
                }
                if !stored.status.is_running() {
                    pending.remove(&stored.id);
                    ended.push(stored);
                } else if stored.status != crate::status::BatchStatus::Starting
                    && (chrono::Utc::now() - stored.last_updated)
                        .to_std()
                        .unwrap_or_default()
                        > self.timing.stale_after
                    && warned_stale.insert(stored.id)
                {
                    tracing::warn!(
                        partition = %stored.step_name,
                        "partition's worker stopped beating; waiting for another worker to take it over (start one with `ikkatsu worker`)"
                    );
                }
            }
            if pending.is_empty() {
                return Ok(ended);
            }
            if ctx.cancel.is_cancelled() {
                let since = *stop_asked.get_or_insert_with(Instant::now);
                if since.elapsed() > self.timing.stale_after {
                    return Err(Error::new(
                        ErrorKind::Cancelled,
                        format!(
                            "stopped; {} partitions had not stopped yet: {}",
                            pending.len(),
                            names(pending.values())
                        ),
                    ));
                }
            }
            if let Some(timeout) = self.timing.timeout
                && started.elapsed() > timeout
            {
                return Err(Error::new(
                    ErrorKind::Component,
                    format!(
                        "partitions not finished after the timeout of {}: {}; are workers running (`ikkatsu worker`)? A restart runs only the partitions that did not complete",
                        crate::duration::HumanDuration(timeout),
                        names(pending.values())
                    ),
                ));
            }
            tokio::time::sleep(self.timing.poll_interval).await;
        }
    }
}

fn names<'a>(executions: impl Iterator<Item = &'a StepExecution>) -> String {
    executions
        .map(|e| format!("`{}` ({})", e.step_name, e.status))
        .collect::<Vec<_>>()
        .join(", ")
}

//! Partitioning (Spring Batch's `PartitionStep`): a [`Partitioner`] splits a step's work into
//! partitions, each with its own execution context, and a [`PartitionHandler`] runs the
//! worker step once per partition — in this process ([`LocalPartitionHandler`]) or in
//! `ikkatsu worker` processes reached through a message broker ([`RemotePartitionHandler`]).
//!
//! # Partition step executions
//! The manager step (`load`) records its plan — every partition's name and context — in its
//! own execution context before any partition runs, then creates one step execution per
//! partition, named `load:NAME`, holding the partition's context. A restart of a failed or
//! stopped manager reads the plan back instead of calling the partitioner again, and runs
//! only the partitions whose last execution did not complete, each resuming from its own
//! last commit.
//!
//! # Context keys
//! Built-in partitioners write their values under `partition.` (`partition.min`,
//! `partition.file`, ...); the engine adds `partition.name` and `partition.index`. Job files
//! read them as `${partition.KEY}` in the worker step's properties.

mod builtin;
mod local;
mod remote;
mod run;
mod step;
mod worker;

pub use builtin::{ListPartitioner, RangePartitioner};
pub use local::LocalPartitionHandler;
pub use remote::{
    Delivery, PartitionBroker, PartitionRequest, PartitionWorker, RemotePartitionHandler,
    StepLocator,
};
pub use run::{PartitionTiming, run_partition};
pub use step::{PLAN_KEY, PartitionStep};

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::context::ExecutionContext;
use crate::error::Result;
use crate::execution::StepExecution;
use crate::step::{Step, StepContext};

/// The context key of a partition's name.
pub const NAME_KEY: &str = "partition.name";
/// The context key of a partition's index (0-based, in the partitioner's order).
pub const INDEX_KEY: &str = "partition.index";

/// One partition: a name unique within its step and the context its worker starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// The partition's name (`partition0`, ...); its step execution is `STEP:NAME`.
    pub name: String,
    /// What the worker step reads to know its share of the work.
    pub context: ExecutionContext,
}

impl Partition {
    /// A partition named `name` with `context`.
    pub fn new(name: impl Into<String>, context: ExecutionContext) -> Self {
        Partition {
            name: name.into(),
            context,
        }
    }
}

/// Splits a step's work into partitions (Spring Batch's `Partitioner`). Called once per job
/// instance: a restart reuses the partitions recorded by the first run.
#[async_trait]
pub trait Partitioner: Send + Sync {
    /// The partitions, at most about `grid_size` of them (a hint: a partitioner over a list of
    /// files makes one per file).
    async fn partition(&self, grid_size: usize, ctx: &StepContext) -> Result<Vec<Partition>>;
}

/// Runs the worker step once for each partition execution and returns them ended
/// (COMPLETED, FAILED or STOPPED). The executions are stored (status STARTING) with their
/// partition's context before the handler is called.
#[async_trait]
pub trait PartitionHandler: Send + Sync {
    /// Where the partitions run, for logs (`local`, `amqp://host/queue`); no secrets.
    fn describe(&self) -> String;

    /// Runs `partitions` of the manager step `manager` with the worker step `worker`.
    async fn handle(
        &self,
        manager: &str,
        worker: Arc<dyn Step>,
        partitions: Vec<StepExecution>,
        ctx: &StepContext,
    ) -> Result<Vec<StepExecution>>;
}

/// The step execution name of partition `partition` of step `step`: `step:partition`.
pub fn execution_name(step: &str, partition: &str) -> String {
    format!("{step}:{partition}")
}

//! `partition: {...}`: a partitioned step — its partitioner, its worker step and where the
//! partitions run.

use std::time::Duration;

use super::element::ElementKind;
use super::step::ComponentDefinition;
use crate::error::Position;
use crate::node::Node;

/// A partitioned step: the partitioner splits the work, the worker step runs once per
/// partition, locally or on remote workers.
#[derive(Debug, Clone)]
pub struct PartitionDefinition {
    /// Makes the partitions (`type: range | list | files`, or `ref`).
    pub partitioner: ComponentDefinition,
    /// The worker step: a `chunk` or a `tasklet`, built for each partition with its
    /// context (`${partition.KEY}`).
    pub worker: Box<ElementKind>,
    /// Where the worker step is written.
    pub worker_position: Position,
    /// How many partitions to ask the partitioner for (default 4).
    pub grid_size: Option<u64>,
    /// How many partitions run at once in this process (default: the grid size); not used
    /// with `remote`.
    pub parallelism: Option<u64>,
    /// Send the partitions to `ikkatsu worker` processes instead of running them here.
    pub remote: Option<RemoteDefinition>,
    /// How often a running partition marks itself alive (default 2s).
    pub heartbeat: Option<Duration>,
    /// A running partition whose heartbeat is older than this has lost its worker (default
    /// 20s).
    pub stale_after: Option<Duration>,
}

/// `remote: {broker, queue, timeout, poll-interval}`.
#[derive(Debug, Clone)]
pub struct RemoteDefinition {
    /// The broker URL (`amqp://…`, `nats://…`), not yet interpolated.
    pub broker: Node,
    /// The queue or subject (default `ikkatsu.partitions`).
    pub queue: Option<String>,
    /// The longest the manager waits for the partitions (default: no limit).
    pub timeout: Option<Duration>,
    /// How often the manager reads the partitions' state (default 200ms).
    pub poll_interval: Option<Duration>,
}
